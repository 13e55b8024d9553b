"""`interviewer turns`: where the product's turn-taking would end each turn of a recording."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from interviewer.cli._common import run_or_exit
from interviewer.config import get_settings

if TYPE_CHECKING:
    import numpy as np

    from interviewer.voice.turns import Replay


def turns(
    files: list[Path] = typer.Argument(..., help="Recordings (any format ffmpeg reads)."),
    as_json: bool = typer.Option(
        False,
        "--json",
        help='One line per file: {"file", "turn_ends_s", "speech_end_s", "taken_back_s"}.',
    ),
) -> None:
    """Run the product's own turn-taking over recordings as if they arrived live.

    The VAD, whisper (the settings' model), the end-of-turn model and the default opening's
    maximum pause decide, at each pause, whether the applicant is done; this prints where each
    turn would have ended (seconds from the start of the file). As live before the last
    question, a turn that ends inside a pause shorter than the policy's ``take_back_s`` is
    taken back by the speech after it: those times are printed apart (``taken_back_s``).
    """
    # the voice stack (onnxruntime, whisper, livekit) loads only when this command runs, so
    # every other command starts quickly (as `transcribe` does)
    from interviewer.voice.stt import decode_file

    with run_or_exit():
        settings = get_settings()
        for path in files:
            audio = decode_file(path)  # mono 16 kHz float32
            result = asyncio.run(_run(audio, settings.silence_threshold_s))
            if as_json:
                line = {
                    "file": str(path),
                    "turn_ends_s": result.turn_ends_s,
                    "speech_end_s": _rounded(result.speech_end_s),
                    "taken_back_s": result.taken_back_s,
                }
                typer.echo(json.dumps(line))
                continue
            typer.echo(f"{path}: speech ends at {_seconds(result.speech_end_s)}")
            for d in result.decisions:
                verdict = "turn ends" if d["ends_turn"] else "goes on"
                if d["taken_back"]:
                    verdict = "turn ends, taken back by the speech after it"
                typer.echo(
                    f"  pause after {d['speech_end_s']:.2f} s: {verdict} "
                    f"(waits {d['wait_s']:.2f} s; {d['reason']}; "
                    f"model {d['probability']}) {d['text'][-60:]!r}"
                )
            ends = ", ".join(f"{t:.2f} s" for t in result.turn_ends_s) or "none"
            typer.echo(f"  turns end at: {ends}")
            if result.taken_back_s:
                back = ", ".join(f"{t:.2f} s" for t in result.taken_back_s)
                typer.echo(f"  taken back at: {back}")


async def _run(audio: np.ndarray, max_pause_s: float) -> Replay:
    from interviewer.voice.stack import build_vad
    from interviewer.voice.stt import transcribe_array
    from interviewer.voice.turns import EndOfTurn, TurnPolicy, load_turn_model, replay

    settings = get_settings()
    vad_model = await asyncio.to_thread(build_vad)
    end_of_turn = EndOfTurn(TurnPolicy(max_pause_s=max_pause_s), await load_turn_model(settings))

    async def transcribe(segment: np.ndarray, sample_rate: int) -> str:
        t = await asyncio.to_thread(
            transcribe_array, segment, backend=settings.stt_backend, model=settings.stt_model
        )
        return t.text

    return await replay(
        audio,
        16_000,
        vad_model=vad_model,
        end_of_turn=end_of_turn,
        transcribe=transcribe,
        take_back=True,  # as live before the last question
    )


def _rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _seconds(x: float | None) -> str:
    return "never (no speech)" if x is None else f"{x:.2f} s"
