"""Recruiters' openings: create one, invite applicants (one at a time or a CSV), the ranked
shortlist with statuses and decisions, its exports, and the numbers behind its charts.

No web here: ``interviewer/web/openings.py`` turns requests into these calls and renders what
they return, so the same rules hold for anything else that ever calls them. The names below are
the ones the web layer and the tests use as ``openings.<name>``.
"""

from interviewer.errors import UserError
from interviewer.openings.access import is_admin, visible_opening, visible_openings
from interviewer.openings.applicants import (
    MAX_CSV_BYTES,
    MAX_CSV_ROWS,
    MAX_ERRORS_SHOWN,
    OPTIONAL_COLUMNS,
    RACE_VALUES,
    SEX_VALUES,
    ApplicantRow,
    CsvCheck,
    InviteLink,
    check_applicant,
    invite_applicants,
    invite_links,
    invited_emails,
    parse_applicants_csv,
    renew_link,
)
from interviewer.openings.charts import distributions, histogram, load_audit
from interviewer.openings.decisions import history, record_decision
from interviewer.openings.exports import links_csv, shortlist_csv, shortlist_json
from interviewer.openings.manage import (
    OpeningCard,
    assign,
    assignable,
    bank_versions,
    cards,
    create_opening,
    opening_form,
    parse_opening_form,
    recruiters_of,
    unassign,
    unique_slug,
    update_opening,
)
from interviewer.openings.shortlist import DECISIONS, STATUS_LABELS, Filters, load_shortlist

__all__ = [
    "DECISIONS",
    "MAX_CSV_BYTES",
    "MAX_CSV_ROWS",
    "MAX_ERRORS_SHOWN",
    "OPTIONAL_COLUMNS",
    "RACE_VALUES",
    "SEX_VALUES",
    "STATUS_LABELS",
    "ApplicantRow",
    "CsvCheck",
    "Filters",
    "InviteLink",
    "OpeningCard",
    "UserError",
    "assign",
    "assignable",
    "bank_versions",
    "cards",
    "check_applicant",
    "create_opening",
    "distributions",
    "histogram",
    "history",
    "invite_applicants",
    "invite_links",
    "invited_emails",
    "is_admin",
    "links_csv",
    "load_audit",
    "load_shortlist",
    "opening_form",
    "parse_applicants_csv",
    "parse_opening_form",
    "record_decision",
    "recruiters_of",
    "renew_link",
    "shortlist_csv",
    "shortlist_json",
    "unassign",
    "unique_slug",
    "update_opening",
    "visible_opening",
    "visible_openings",
]
