"""`interviewer transcribe FILE...`: whisper transcripts of audio files.

For checking a recording, a microphone or the models without running an interview. Any format
ffmpeg reads. A file that is missing or undecodable is reported on stderr in one line and the
others still run (exit status 1 at the end); a missing model or ffmpeg stops at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import typer

from interviewer.cli._common import err_console, run_or_exit
from interviewer.config import get_settings
from interviewer.errors import MissingSystemPackage, ModelError, UserError


def transcribe(
    files: list[Path] = typer.Argument(..., help="Audio or video files (any ffmpeg format)."),
    model: Literal["tiny.en", "base"] | None = typer.Option(
        None,
        "--model",
        help="Whisper model (default: INTERVIEWER_STT_MODEL).",
        show_default=False,
    ),
    backend: Literal["whisper", "faster-whisper"] | None = typer.Option(
        None,
        "--backend",
        help="openai-whisper or faster-whisper (default: INTERVIEWER_STT_BACKEND).",
        show_default=False,
    ),
    as_json: bool = typer.Option(
        False, "--json", help="One JSON object per line: file, text, words, duration."
    ),
) -> None:
    """Print the transcript of each file (with --json: word timings too)."""
    from interviewer.voice.stt import (
        transcribe_file,  # lazy: whisper and livekit, this command only
    )

    settings = get_settings()
    model = model or settings.stt_model
    backend = backend or settings.stt_backend
    failed = False
    with run_or_exit():  # a missing model or ffmpeg: one line, exit 1, no traceback
        for path in files:
            try:
                transcript = transcribe_file(path, backend=backend, model=model)
            except (ModelError, MissingSystemPackage):
                raise
            except UserError as err:  # this file only: say so and go on with the others
                err_console.print(str(err), style="red", markup=False, soft_wrap=True)
                failed = True
                continue
            if as_json:
                record = {"file": str(path), **transcript.to_dict()}
                typer.echo(json.dumps(record, ensure_ascii=False))
            elif len(files) == 1:
                typer.echo(transcript.text)
            else:
                typer.echo(f"{path}: {transcript.text}")
    if failed:
        raise typer.Exit(1)
