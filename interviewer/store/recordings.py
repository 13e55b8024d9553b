"""Applicants' audio and video on disk: the only code that builds a path for applicant media.

Paths are made from server-side ids only (database ids, bank identifiers), each checked against a
strict pattern, and every result is resolved and checked to lie inside the root, so neither a
crafted id nor a symlink planted in the tree can make the server write or serve another file.
The database stores paths relative to the root (``relative``) so the folder can move.
This is the local backend of ``interviewer.store.storage`` (which adds S3).

Layout::

    <root>/<interview_id>/<question_id>.wav               the answer to a question
    <root>/<interview_id>/<question_id>.followup-<n>.wav  the answer to its n-th follow-up
    <root>/<interview_id>/media/<kind>/<seq:08d>.webm     camera chunks (and thumbnails)

Question ids are lowercase ``[a-z0-9_-]`` (no dots), so an answer's name can never be another
question's follow-up, and no answer file can be the ``media`` folder.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path, PurePosixPath

_QUESTION_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # banks.Identifier, plus "practice"
_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")
_EXT = re.compile(r"[a-z0-9]{1,8}")
_MAX_ID = 2**63 - 1
_MAX_ATTEMPT = 99
_MAX_SEQ = 99_999_999


def _int_id(name: str, value: object, low: int, high: int) -> int:
    # bool is an int subclass; True must not become interview 1.
    if type(value) is not int or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return value


def _text_id(name: str, value: object, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"{name} {value!r} does not match {pattern.pattern}")
    return value


class Recordings:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"Recordings({str(self.root)!r})"

    def answer_audio(
        self, interview_id: int, question_id: str, attempt: int = 0, *, ext: str = "wav"
    ) -> Path:
        """Where one answer's audio goes (attempt 0: the question, n: its n-th follow-up);
        the interview's folder is created."""
        interview_id = _int_id("interview_id", interview_id, 1, _MAX_ID)
        question_id = _text_id("question_id", question_id, _QUESTION_ID)
        attempt = _int_id("attempt", attempt, 0, _MAX_ATTEMPT)
        ext = _text_id("ext", ext, _EXT)
        stem = question_id if attempt == 0 else f"{question_id}.followup-{attempt}"
        return self._prepare(self.root / str(interview_id), f"{stem}.{ext}")

    def media_chunk(self, interview_id: int, kind: str, seq: int, *, ext: str = "webm") -> Path:
        """Where the ``seq``-th chunk of a continuous stream (camera, screen, ...) goes."""
        interview_id = _int_id("interview_id", interview_id, 1, _MAX_ID)
        kind = _text_id("kind", kind, _KIND)
        seq = _int_id("seq", seq, 0, _MAX_SEQ)
        ext = _text_id("ext", ext, _EXT)
        folder = self.root / str(interview_id) / "media" / kind
        return self._prepare(folder, f"{seq:08d}.{ext}")

    def relative(self, path: Path | str) -> str:
        """The form stored in the database: POSIX, relative to the root."""
        return self._inside(Path(path)).relative_to(self.root).as_posix()

    def commit(self, path: Path | str) -> str:
        """A finished file's key for the database. Here just ``relative``; the S3 backend
        (``store.storage``) also uploads it. Call it off the event loop."""
        return self.relative(path)

    def open_for_read(self, relative_path: str | PurePosixPath) -> Path:
        """The file a stored relative path names, refusing anything that leads outside the root.

        Raises ValueError for a path that is absolute, climbs with ``..`` or escapes through a
        symlink, and FileNotFoundError when it is inside but not an existing file.
        """
        text = str(relative_path)
        if not text or "\x00" in text or "\\" in text:
            raise ValueError(f"not a recordings path: {text!r}")
        pure = PurePosixPath(text)
        if pure.is_absolute() or ".." in pure.parts:
            raise ValueError(f"not a recordings path: {text!r}")
        path = self._inside(self.root.joinpath(*pure.parts))
        if not path.is_file():
            raise FileNotFoundError(f"no recording {text!r} under {self.root}")
        return path

    def purge_interview(self, interview_id: int) -> bool:
        """Delete all media of one interview (retention, erasure requests); False if none."""
        interview_id = _int_id("interview_id", interview_id, 1, _MAX_ID)
        folder = self.root / str(interview_id)
        if folder.is_symlink():
            folder.unlink()  # a planted link: remove it, never what it points at
            return True
        if not folder.exists():
            return False
        shutil.rmtree(self._inside(folder))  # rmtree unlinks nested symlinks, never follows them
        return True

    def _prepare(self, folder: Path, name: str) -> Path:
        # Check before mkdir, so a symlinked folder cannot make us create directories elsewhere.
        self._inside(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return self._inside(folder / name)

    def _inside(self, path: Path) -> Path:
        resolved = path.resolve()
        if resolved == self.root or not resolved.is_relative_to(self.root):
            raise ValueError(f"{path} is outside the recordings folder {self.root}")
        return resolved


def stored_keys(recordings: Recordings, interview_id: int) -> list[str]:
    """Every stored file of one interview, as keys relative to the root: the local folder's
    files (symlinks not followed, staged uploads skipped) and, for a bucket backend
    (``store/storage.py``), the bucket's objects too."""
    keys: set[str] = set()
    folder = recordings.root / str(interview_id)
    if folder.is_dir() and not folder.is_symlink():
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink() and not path.name.startswith("."):
                keys.add(path.relative_to(recordings.root).as_posix())
    list_keys = getattr(recordings, "list_keys", None)
    if callable(list_keys):
        keys.update(list_keys(interview_id))
    return sorted(keys)
