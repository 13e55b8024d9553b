"""`interviewer say TEXT --out FILE.wav`: the interviewer's voice, exactly as an applicant hears it.

For listening to a prompt before an interview does, or checking a voice: the same voice, rate and
prompt cache as the product (voice/stack.py builds it). ``--voice`` picks the voice (hibari,
espeak) or, as a shorthand for espeak, one of espeak-ng's voices.
"""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import typer

from interviewer.cli._common import run_or_exit
from interviewer.config import VOICES, get_settings
from interviewer.errors import UserError


def say(
    text: str = typer.Argument(..., help="What the interviewer says."),
    out: Path = typer.Option(..., "--out", help="The WAV to write (16-bit mono)."),
    voice: str | None = typer.Option(
        None,
        "--voice",
        help=f"{' or '.join(VOICES)} (default: INTERVIEWER_VOICE), or an espeak-ng voice "
        "such as en-gb or en-us+f3 (the espeak voice speaking it).",
        show_default=False,
    ),
) -> None:
    """Write TEXT, spoken in the interviewer's voice, to a WAV file."""
    # lazy: livekit and the speech engine, for this command only
    from interviewer.voice.stack import build_tts
    from interviewer.voice.tts import check_voice

    with run_or_exit():
        if not text.strip():
            raise UserError("nothing to say: give the text to speak, e.g. interviewer say 'Hello'")
        settings = get_settings()
        if voice is not None and voice not in VOICES:
            settings = settings.model_copy(update={"tts_voice": check_voice(voice)})
            voice = "espeak"
        engine = build_tts(settings, voice=voice)
        pcm = asyncio.run(engine.pcm(text))
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            with wave.open(str(out), "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(engine.sample_rate)
                wav.writeframes(pcm)
        except OSError as err:
            raise UserError(f"cannot write {out}: {err.strerror or err}") from None
    typer.echo(f"{out}: {len(pcm) / 2 / engine.sample_rate:.1f} s, voice {engine.voice}")
