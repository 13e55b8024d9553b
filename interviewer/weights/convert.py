"""Format conversions done once at install: CTranslate2 Whisper -> openai-whisper checkpoint,
and GGUF -> dequantized transformers folder.

numpy, torch and transformers are imported inside the functions, not at the top: only an install
needs them, and every model load imports this package to locate its files."""

from __future__ import annotations

import contextlib
import re
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interviewer.errors import ModelError
from interviewer.weights.catalog import GGUF, LLM_DTYPES, _package_file
from interviewer.weights.files import (
    _assemble,
    _atomic,
    _check_source,
    _replace_dir,
    _seal_tree,
    _sha256,
    _Ui,
)

if TYPE_CHECKING:
    import numpy as np


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

    def block(dst: str, src: str, *, cross: bool) -> None:
        """One residual block; the decoder's also attends to the audio (cross-attention)."""
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        fused(f"{dst}.attn", f"{src}/self_attention/linear_0", ("query", "key", "value"))
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        if cross:
            norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
            linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
            fused(f"{dst}.cross_attn", f"{src}/attention/linear_1", ("key", "value"))
            linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
        norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")

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
        block(f"encoder.blocks.{i}", f"encoder/layer_{i}", cross=False)
    norm("encoder.ln_post", "encoder/layer_norm")

    put("decoder.token_embedding.weight", v.pop("decoder/embeddings/weight"))
    put("decoder.positional_embedding", v.pop("decoder/position_encodings/encodings"))
    for i in range(n_text_layer):
        block(f"decoder.blocks.{i}", f"decoder/layer_{i}", cross=True)
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
