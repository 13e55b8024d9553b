"""Question banks: the schema (``model``), the validator (``check``) and the editor's drafts and
published versions (``drafts``).

Nothing is re-exported here: ``interviewer.banks.model`` is imported by the store and the scorer,
which must not pull in the editor's storage (and through it the store) just to read a ``Bank``.
"""
