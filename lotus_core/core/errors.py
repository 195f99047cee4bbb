"""User-facing errors.

Every problem a user can fix (a bad file, a bad number, missing data, mismatched masks)
is raised as :class:`LotusError` where it is detected, with a one-line message that says
what to do. The CLI prints it to stderr and exits 2; the dashboard shows it with
``st.error``. Anything else is a bug and keeps its traceback.
"""


class LotusError(Exception):
    """An error whose message is meant for the user (one line, actionable)."""
