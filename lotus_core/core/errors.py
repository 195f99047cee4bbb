"""User-facing errors.

Every problem a user can fix (a bad file, a bad number, missing data, mismatched masks)
is raised as :class:`LotusError` where it is detected, with a one-line message that says
what to do. The CLI prints it to stderr and exits 2; the dashboard shows it with
``st.error``. Anything else is a bug and keeps its traceback. An operating-system error on a path the user gave
(a full disk, a read-only mount, a name too long) is one line too: :func:`os_error_line`.
"""
import errno


class LotusError(Exception):
    """An error whose message is meant for the user (one line, actionable)."""


# What to do about an operating-system error on a path the user gave (--out, --db, --dataset, ...).
OS_ADVICE = {
    errno.ENOSPC: "the disk is full; free space and rerun (finished results are kept)",
    errno.EDQUOT: "the disk quota is used up; free space and rerun (finished results are kept)",
    errno.EROFS: "it is on a read-only file system; pass a writable path",
    errno.EACCES: "permission denied; pass a path you may write",
    errno.EPERM: "permission denied; pass a path you may write",
    errno.ENAMETOOLONG: "the name is too long for the file system; pass a shorter path",
    errno.EEXIST: "a file is in the way where a folder is needed; move it or pass another path",
    errno.ENOTDIR: "a file is in the way where a folder is needed; move it or pass another path",
    errno.EISDIR: "it is a folder; give a file path",
    errno.ENOENT: "it does not exist (a dangling link?); pass an existing path",
    errno.ELOOP: "it is a loop of symbolic links; pass a real path",
}


def os_error_line(exc: OSError) -> str:
    """One line for an OSError on a user-given path: the path (shortened) and what to do."""
    where = str(exc.filename) if exc.filename is not None else ""
    where = where if len(where) <= 120 else where[:60] + "..." + where[-40:]
    advice = OS_ADVICE.get(exc.errno or 0, f"{exc.strerror or type(exc).__name__}; check the path")
    return f"cannot use {where or 'a file'}: {advice}"


def first_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of ``exc``'s message, at most ``limit`` characters (its type's name when it has none): how an
    error raised inside a library (timm, torch, safetensors) is quoted in a one-line LotusError."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
