"""Proctoring: notice what a human proctor would, record it as evidence, show it to a person.

Signals become ``IntegrityEvent`` rows (kind, time, severity, evidence) graded by the opening's
``ProctoringThresholds``; nothing here rejects, scores or ranks an applicant. See
docs/proctoring.md for every signal, threshold and default.
"""
