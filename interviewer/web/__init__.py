"""The web app (FastAPI): the applicant's interview in the browser."""

from interviewer.web.app import create_app

__all__ = ["create_app"]
