"""`install`: assemble the components into the model directory, skipping what is still valid."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interviewer.weights.catalog import (
    _CHUNK,
    COMPONENTS,
    COPIED,
    LLM_NAMES,
    RECIPE_VERSION,
    WHISPER_SIZES,
    _package_path,
    _resolve_sources,
    _sources_of,
)
from interviewer.weights.convert import _convert_gguf, convert_ctranslate2_whisper
from interviewer.weights.files import (
    _assemble,
    _dir,
    _locked,
    _read_manifest,
    _record,
    _remove_leftovers,
    _sha256,
    _stat,
    _Ui,
    _write_manifest,
)

if TYPE_CHECKING:
    from rich.progress import Progress


# --- install --------------------------------------------------------------------------------------


def install(
    model_dir: Path | None = None,
    *,
    only: set[str] | None = None,
    progress: Progress | None = None,
) -> None:
    """Assemble the components (all, or ``only`` those named) into ``model_dir``.

    A component whose files, and the package files it comes from, still match the manifest by
    size and mtime is skipped without hashing, so a second run takes well under a second. Every
    file is written under a temporary name and renamed when complete, and the manifest is updated
    after each component, so an interrupted run leaves nothing that passes for finished.
    """
    model_dir = _dir(model_dir)
    names = COMPONENTS if only is None else tuple(c for c in COMPONENTS if c in only)
    unknown = set(only or ()) - set(COMPONENTS)
    if unknown:
        raise ValueError(f"unknown model(s) {sorted(unknown)}; expected some of {COMPONENTS}")
    model_dir.mkdir(parents=True, exist_ok=True)
    ui = _Ui(progress)
    with _locked(model_dir):
        _remove_leftovers(model_dir)
        manifest = _read_manifest(model_dir, strict=False)
        for component in names:
            started = time.monotonic()
            old = manifest["components"].get(component)
            if old:
                before = json.dumps(old, sort_keys=True)
                if _still_valid(component, model_dir, old, ui):
                    if json.dumps(old, sort_keys=True) != before:
                        _write_manifest(model_dir, manifest)
                    ui.log(f"{component}: up to date")
                    continue
            manifest["components"].pop(component, None)
            _write_manifest(model_dir, manifest)
            sources = _resolve_sources(component)
            files = _build(component, model_dir, sources, ui)
            manifest["components"][component] = {
                "recipe": RECIPE_VERSION,
                "sources": {str(p): _stat(p) for p in sources},
                "files": files,
            }
            _write_manifest(model_dir, manifest)
            ui.log(f"{component}: assembled in {time.monotonic() - started:.1f} s")


def _still_valid(component: str, model_dir: Path, entry: dict[str, Any], ui: _Ui) -> bool:
    """True when a recorded component needs no rebuild; refreshes the mtimes of files that were
    touched but still hash the same. Only files whose size or mtime moved are rehashed."""
    if entry.get("recipe") != RECIPE_VERSION:
        return False
    for src in _sources_of(component):
        paths = [_package_path(pkg, path) for pkg, path in src.parts]
        recorded = [entry["sources"].get(str(p)) for p in paths]
        if not all(p and p.is_file() for p in paths):
            continue  # package gone: nothing to rebuild from, and the built files stay valid
        if [_stat(p) for p in paths] == recorded:
            continue
        # Touched or reinstalled: the pinned sha256 says whether it still is the same file.
        digest = hashlib.sha256()
        advance = ui.bytes(f"recheck {paths[0].name}", src.size)
        for p in paths:
            with p.open("rb") as f:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
                    advance(len(chunk))
        if digest.hexdigest() != src.sha256:
            return False
        entry["sources"].update({str(p): _stat(p) for p in paths})
    for rel, rec in entry["files"].items():
        path = model_dir / rel
        try:
            st = path.stat()
        except FileNotFoundError:
            return False
        if st.st_size != rec["size"]:
            return False
        if st.st_mtime_ns != rec["mtime_ns"]:
            if _sha256(path, ui.bytes(f"rehash {rel}", st.st_size)) != rec["sha256"]:
                return False
            rec["mtime_ns"] = st.st_mtime_ns
    return True


def _build(
    component: str, model_dir: Path, sources: list[Path], ui: _Ui
) -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = {}
    for rel, src in COPIED.get(component, {}).items():
        files[rel] = _assemble(src, model_dir / rel, ui)
    if component in WHISPER_SIZES:
        pt = model_dir / f"whisper/{component}.pt"
        convert_ctranslate2_whisper(model_dir / f"whisper/{component}/model.bin", pt, ui)
        files[f"whisper/{component}.pt"] = _record(pt, ui)
    elif component in LLM_NAMES:
        out = model_dir / f"llm/{component}"
        _convert_gguf(component, out, ui)
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            files[path.relative_to(model_dir).as_posix()] = _record(path, ui)
    return files
