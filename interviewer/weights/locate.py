"""Finding installed weights (cheap: a stat against the manifest, so it runs before every model
load) and `verify`, which rehashes everything."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interviewer.errors import ModelError
from interviewer.weights.catalog import (
    COMPONENTS,
    COPIED,
    EMBEDDER,
    FACES,
    LLM_NAMES,
    MANIFEST,
    RECIPE_VERSION,
    SMART_TURN,
    SPEAKER_ENCODER,
    VOICE_MODEL,
    WHISPER_SIZES,
)
from interviewer.weights.files import _dir, _fix, _read_manifest, _sha256


@dataclass(frozen=True)
class CheckResult:
    """One line of `verify`: ``message`` is None when the file is fine."""

    component: str
    file: Path
    size: int | None
    status: str  # "ok", "missing", "truncated", "wrong size", "corrupt", "not installed"
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.message is None


# --- locating installed weights (cheap: stat against the manifest) --------------------------------


def whisper_checkpoint(name: str, model_dir: Path | None = None) -> Path:
    """The openai-whisper checkpoint (``whisper.load_model(path)``) for a size in WHISPER_SIZES."""
    _known(name, WHISPER_SIZES)
    return _located(name, _dir(model_dir), f"whisper/{name}.pt")


def faster_whisper_dir(name: str, model_dir: Path | None = None) -> Path:
    """The CTranslate2 folder (``faster_whisper.WhisperModel(str(path))``) for a Whisper size."""
    _known(name, WHISPER_SIZES)
    return _located(name, _dir(model_dir), f"whisper/{name}/")


def llm_dir(name: str, model_dir: Path | None = None) -> Path:
    """The transformers folder (``AutoModelForCausalLM.from_pretrained(path)``) for an LLM."""
    _known(name, LLM_NAMES)
    return _located(name, _dir(model_dir), f"llm/{name}/")


def embedder_dir(model_dir: Path | None = None) -> Path:
    """The sentence-transformers folder of all-MiniLM-L6-v2."""
    return _located(EMBEDDER, _dir(model_dir), f"embedder/{EMBEDDER}/")


def voice_model(model_dir: Path | None = None) -> Path:
    """The ONNX file of the neural voice (hibari), loaded in place of the copy inside the
    package so that it is sha256-checked like every other model."""
    return _located(VOICE_MODEL, _dir(model_dir), "tts/hibari.onnx")


def faces_dir(model_dir: Path | None = None) -> Path:
    """The folder of dlib's face detector, landmark predictor and face embedder (``*.dat``)."""
    return _located(FACES, _dir(model_dir), "faces/")


def smart_turn_model(model_dir: Path | None = None) -> Path:
    """The ONNX file of the smart-turn v3.2 end-of-turn model (``voice/turns.py``)."""
    return _located(SMART_TURN, _dir(model_dir), "turn/smart-turn-v3.2-cpu.onnx")


def speaker_encoder_file(model_dir: Path | None = None) -> Path:
    """The GE2E speaker encoder's state dict (proctoring's voice comparisons)."""
    return _located(SPEAKER_ENCODER, _dir(model_dir), f"speaker/{SPEAKER_ENCODER}.pt")


def _known(name: str, names: tuple[str, ...]) -> None:
    if name not in names:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(names)}")


def _located(component: str, model_dir: Path, prefix: str) -> Path:
    files = _component_files(model_dir, component)
    wanted = {rel: rec for rel, rec in files.items() if rel == prefix or rel.startswith(prefix)}
    if not wanted:  # the manifest predates this layout
        raise ModelError(f"model {component} is incomplete in {model_dir}: run {_fix(model_dir)}")
    for rel, rec in wanted.items():
        problem = _cheap_check(model_dir, rel, rec)
        if problem:
            raise ModelError(problem[1])
    return model_dir / prefix.rstrip("/")


def _component_files(model_dir: Path, component: str) -> dict[str, dict[str, Any]]:
    manifest = _read_manifest(model_dir, strict=True)
    entry = manifest["components"].get(component)
    if entry is None or entry.get("recipe") != RECIPE_VERSION:
        raise ModelError(
            f"model {component} is not installed in {model_dir}: run {_fix(model_dir)}"
        )
    return entry["files"]


def _cheap_check(model_dir: Path, rel: str, rec: dict[str, Any]) -> tuple[str, str] | None:
    """(status, message) when the file does not match its manifest record by size (or, when its
    mtime moved, by sha256); None when it does."""
    path = model_dir / rel
    try:
        st = path.stat()
    except FileNotFoundError:
        return "missing", f"model file {path} is missing: run {_fix(model_dir)}"
    if st.st_size != rec["size"]:
        return _size_problem(path, rec["size"], st.st_size, _fix(model_dir))
    if st.st_mtime_ns != rec["mtime_ns"]:
        return _sha_problem(path, rec["sha256"], _sha256(path), _fix(model_dir))
    return None


def _size_problem(path: Path, want: int, got: int, fix: str) -> tuple[str, str]:
    status = "truncated" if got < want else "wrong size"
    return status, f"model file {path} is {status}: expected {want} bytes, found {got}: run {fix}"


def _sha_problem(path: Path, want: str, got: str, fix: str) -> tuple[str, str] | None:
    if got == want:
        return None
    return "corrupt", (
        f"model file {path} is corrupt: sha256 {got}, expected {want}: delete it and run {fix}"
    )


# --- verify: full rehash --------------------------------------------------------------------------


def verify(model_dir: Path | None = None) -> list[CheckResult]:
    """Rehash every file of every component; copied files must also match their pinned sha256."""
    model_dir = _dir(model_dir)
    fix = _fix(model_dir)
    try:
        manifest = _read_manifest(model_dir, strict=True)
    except ModelError as err:
        return [CheckResult("-", model_dir / MANIFEST, None, "missing", str(err))]
    results = []
    for component in COMPONENTS:
        entry = manifest["components"].get(component)
        if entry is None or entry.get("recipe") != RECIPE_VERSION:
            msg = f"model {component} is not installed in {model_dir}: run {fix}"
            results.append(CheckResult(component, model_dir, None, "not installed", msg))
            continue
        pinned = COPIED.get(component, {})
        for rel, rec in entry["files"].items():
            path = model_dir / rel
            want = pinned[rel].sha256 if rel in pinned else rec["sha256"]
            size = path.stat().st_size if path.exists() else None
            if size is None:
                problem = "missing", f"model file {path} is missing: run {fix}"
            elif size != rec["size"]:
                problem = _size_problem(path, rec["size"], size, fix)
            else:
                problem = _sha_problem(path, want, _sha256(path), fix)
            status, msg = problem or ("ok", None)
            results.append(CheckResult(component, path, size, status, msg))
    return results
