"""`interviewer interview` and `interviewer demo`: whole interviews through the real voice stack.

Both feed a WAV to the agent as the applicant's microphone (:class:`WavAudioInput`) and play the
agent into a WAV (:class:`WavAudioOutput`), through the same session, STT, TTS, VAD and store
that a browser interview uses. ``demo`` makes its own applicants: the synthetic answers in
``question_banks/demo_answers/<bank>.yaml`` spoken by espeak-ng, one voice per applicant.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine, select

from interviewer.banks.check import load_banks
from interviewer.banks.model import Bank
from interviewer.cli._common import UrlOption, open_database, run_or_exit
from interviewer.config import get_settings
from interviewer.errors import UserError
from interviewer.scoring.live import LiveScoring
from interviewer.store import repo
from interviewer.store.db import session_scope
from interviewer.store.models import Applicant, Interview, InterviewState, Opening

console = Console(highlight=False)
if not console.is_terminal:  # piped to a file or a log: Rich would wrap tables at 80 columns
    console.width = 160

DEMO_LEVELS = ("strong", "average", "weak")
DEMO_VOICES = {"strong": "en-gb", "average": "en-us+f3", "weak": "en-gb-scotland"}
DEMO_GAP_S = 4.0  # longer than the default maximum pause (3 s): each answer ends


def _find_opening(engine: Engine, ref: str) -> Any:

    with session_scope(engine) as s:
        query = select(Opening).where(Opening.slug == ref)
        opening = s.scalars(query).first()
        if opening is None and ref.isdigit():
            opening = s.get(Opening, int(ref))
        if opening is None:
            raise UserError(
                f"no opening {ref!r}: list them with `interviewer demo --banks ...` or create one"
            )
        return opening


def _new_interview(engine: Engine, opening: Any, name: str, email: str) -> int:

    with session_scope(engine) as s:
        applicant = repo.create_applicant(s, name=name, email=email)
        return repo.create_interview(s, opening=opening, applicant=applicant).id


def _run(
    engine: Engine,
    interview_id: int,
    answers: Path,
    *,
    fast: bool,
    out: Path | None,
    stt_model: str | None,
    max_follow_ups: int,
    no_answer_timeout_s: float,
    score_url: str | None = None,
) -> Any:
    """``score_url``: score each answer as it is stored (a worker process on that database),
    and wait for the scores before returning."""
    # Lazy: loads livekit/whisper (about a second), only for this command.
    from interviewer.voice.io import WavAudioInput, WavAudioOutput
    from interviewer.voice.session import SessionOptions, run_interview
    from interviewer.voice.stack import VoiceModels

    async def go() -> Any:
        speed = 6.0
        audio_in = WavAudioInput(answers, fast=fast, speed=speed)
        audio_out = WavAudioOutput(out, speed=speed if fast else 1.0)
        scoring = None
        settings = get_settings()
        if stt_model:
            settings = settings.model_copy(update={"stt_model": stt_model})
        if score_url is not None:
            scoring = LiveScoring(
                score_url, model=settings.scoring_model, model_dir=settings.model_dir
            )
            await scoring.start_interview(engine, interview_id)
        try:
            report = await run_interview(
                engine,
                interview_id,
                audio_input=audio_in,
                audio_output=audio_out,
                models=await VoiceModels.load(settings) if stt_model else None,
                options=SessionOptions(
                    max_follow_ups=max_follow_ups, no_answer_timeout_s=no_answer_timeout_s
                ),
                on_answer=scoring.submit if scoring is not None else None,
            )
            if scoring is not None:
                with console.status("scoring the last answers…"):
                    await scoring.wait()
                if scoring.error is not None:
                    raise UserError(
                        f"scoring failed: {scoring.error}; the answers are stored, score them "
                        f"with `interviewer score {interview_id}`"
                    )
            return report
        finally:
            await audio_out.aclose()
            if scoring is not None:
                await scoring.aclose()

    return asyncio.run(go())


def _excerpt(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _print_report(report: Any, title: str) -> None:
    table = Table(title=title, title_justify="left", show_lines=False)
    for col in ("question", "status", "transcript", "speech", "onset", "words"):
        table.add_column(col, overflow="fold")
    for a in report.answers:
        qid = a.question_id + (f" (follow-up {a.attempt})" if a.attempt else "")
        style = {"answered": "green", "no_answer": "yellow", "timed_out": "red"}.get(
            str(a.status.value if hasattr(a.status, "value") else a.status), ""
        )
        table.add_row(
            Text(qid),
            Text(str(getattr(a.status, "value", a.status)), style=style),
            Text(_excerpt(a.transcript or "")),
            f"{a.speech_duration_s or 0:.1f} s",
            "-" if a.onset_latency_s is None else f"{a.onset_latency_s:.1f} s",
            str(len(a.words or [])),
        )
    console.print(table)
    lat = [t.turn_latency_s for t in report.turns if t.turn_latency_s is not None]
    lag = [t.transcript_lag_s for t in report.turns if t.transcript_lag_s is not None]
    parts = [
        f"interview {report.interview_id}",
        "completed" if report.completed else "NOT completed",
        f"{report.wall_s:.0f} s wall",
    ]
    if lat:
        lat.sort()
        parts.append(f"end of answer -> next line: median {lat[len(lat) // 2]:.2f} s")
    if lag:
        parts.append(f"transcript lag max {max(lag):.2f} s")
    parts.append(f"maximum pause {report.silence_threshold_s:.1f} s")
    console.print(Text(" · ".join(parts), style="dim"))


def _print_score(engine: Engine, interview_id: int) -> None:

    with session_scope(engine) as s:
        row = s.get(Interview, interview_id)
        if row is None or row.score is None:
            return
        console.print(
            Text(
                f"interview score {row.score:.3f} (confidence {row.score_confidence or 0:.2f})",
                style="bold",
            )
        )


def interview(
    opening: str | None = typer.Option(None, "--opening", help="Opening slug or id."),
    answers: Path = typer.Option(..., "--answers", help="The applicant's microphone: a WAV."),
    fast: bool = typer.Option(False, "--fast", help="Play speech 6x faster (pauses stay real)."),
    out: Path | None = typer.Option(None, "--out", help="Write the agent's side to this WAV."),
    resume: int | None = typer.Option(
        None, "--interview", help="Resume this interview id instead of starting a new one."
    ),
    name: str = typer.Option("Test applicant", "--name", help="Applicant name (new interview)."),
    email: str = typer.Option("applicant@example.invalid", "--email"),
    stt_model: str | None = typer.Option(None, "--stt-model", help="tiny.en or base."),
    follow_ups: int = typer.Option(1, "--follow-ups", help="Follow-ups per question at most."),
    no_answer_s: float = typer.Option(8.0, "--no-answer-timeout", help="Silence = no answer."),
    url: str | None = UrlOption,
    score: bool | None = typer.Option(
        None,
        "--score/--no-score",
        help="Score each answer as it is stored (default: INTERVIEWER_SCORE_ANSWERS, on).",
    ),
) -> None:
    """Run a whole interview with a WAV as the applicant's microphone."""
    logging.basicConfig(level=logging.WARNING)
    with run_or_exit():
        if not answers.is_file():
            raise UserError(f"{answers}: no such file")
        engine = open_database(url, schema="migrate")
        if resume is None:
            if opening is None:
                raise UserError("give --opening SLUG for a new interview, or --interview ID")
            interview_id = _new_interview(engine, _find_opening(engine, opening), name, email)
        else:
            interview_id = resume
        # printed first and flushed: a supervisor (or a test) can resume it if this run dies
        typer.echo(f"interview {interview_id}", err=False)
        report = _run(
            engine,
            interview_id,
            answers,
            fast=fast,
            out=out,
            stt_model=stt_model,
            max_follow_ups=follow_ups,
            no_answer_timeout_s=no_answer_s,
            score_url=(url or get_settings().resolved_database_url)
            if (get_settings().score_answers if score is None else score)
            else None,
        )
        _print_report(report, f"Interview {interview_id}")
        _print_score(engine, interview_id)
        if out is not None:
            console.print(Text(f"agent audio: {out}", style="dim"))


def _demo_answers(folder: Path, bank: Bank) -> dict[str, Any]:
    path = folder / "demo_answers" / f"{bank.id}.yaml"
    if not path.is_file():
        raise UserError(f"{path}: no demo answers for bank {bank.id}")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("bank_id") != bank.id:
        raise UserError(f"{path}: bank_id must be {bank.id!r}")
    return data


def _demo_opening(engine: Engine, bank: Bank) -> Any:

    slug = f"demo-{bank.id}"[:64]
    with session_scope(engine) as s:
        version = repo.publish_bank(s, bank)
        opening = s.scalars(select(Opening).where(Opening.slug == slug)).first()
        if opening is None:
            opening = repo.create_opening(
                s, slug=slug, title=f"{bank.title} (demo)", bank_version=version
            )
        return opening


def _demo_interview(engine: Engine, opening: Any, level: str) -> tuple[int, bool, int]:
    """The demo applicant's interview for this opening: (id, completed, next question)."""

    email = f"demo-{level}@example.invalid"
    with session_scope(engine) as s:
        applicant = s.scalars(select(Applicant).where(Applicant.email == email)).first()
        if applicant is None:
            applicant = repo.create_applicant(s, name=f"Demo {level} applicant", email=email)
        query = select(Interview).where(
            Interview.opening_id == opening.id, Interview.applicant_id == applicant.id
        )
        existing = s.scalars(query.order_by(Interview.id.desc())).first()
        if existing is not None:
            done = InterviewState(existing.state) is InterviewState.completed
            return existing.id, done, existing.next_question_index
        return repo.create_interview(s, opening=opening, applicant=applicant).id, False, -1


def demo(
    banks: str | None = typer.Option(
        None, "--banks", help="Comma-separated bank ids (default: every bank)."
    ),
    applicants: int = typer.Option(3, "--applicants", min=1, max=3, help="strong, average, weak"),
    realtime: bool = typer.Option(False, "--realtime", help="Real-time pace instead of --fast."),
    again: bool = typer.Option(False, "--again", help="Re-run applicants already interviewed."),
    stt_model: str | None = typer.Option(None, "--stt-model", help="tiny.en or base."),
    score: bool = typer.Option(False, "--score", help="Score each answer as it is stored."),
    url: str | None = UrlOption,
) -> None:
    """Demo openings from the shipped banks, and synthetic applicants interviewed end to end."""
    from interviewer.voice.io import answers_wav  # lazy: livekit, as in _run

    logging.basicConfig(level=logging.WARNING)
    settings = get_settings()
    with run_or_exit():
        engine = open_database(url, schema="migrate")
        all_banks = load_banks(settings.banks_dir)
        wanted = [b.strip() for b in banks.split(",")] if banks else [b.id for b in all_banks]
        known = {b.id: b for b in all_banks}
        unknown = [b for b in wanted if b not in known]
        if unknown:
            raise UserError(
                f"unknown bank(s) {', '.join(unknown)} in {settings.banks_dir}: "
                f"see `interviewer bank list`"
            )
        audio_dir = settings.data_dir / "demo-audio"
        for bank_id in wanted:
            bank = known[bank_id]
            demo_answers = _demo_answers(settings.banks_dir, bank)
            opening = _demo_opening(engine, bank)
            console.rule(Text(f"{bank.title}: opening {opening.slug}"))
            for level in DEMO_LEVELS[:applicants]:
                interview_id, completed, next_index = _demo_interview(engine, opening, level)
                if completed and again:
                    interview_id = _new_interview(
                        engine, opening, f"Demo {level} applicant", f"demo-{level}@example.invalid"
                    )
                    completed, next_index = False, -1
                if completed:
                    from interviewer.voice.session import InterviewReport, _answers  # lazy

                    report = InterviewReport(interview_id, True, False, 0.0)
                    report.answers = _answers(engine, interview_id)
                    _print_report(report, f"{level} applicant (stored; --again to re-run)")
                    continue
                # an interrupted earlier run resumes at its next question: answer from there
                texts = [demo_answers["practice"][level]] if next_index < 0 else []
                texts += [
                    demo_answers["answers"][q.id][level]
                    for q in bank.questions[max(next_index, 0) :]
                ]
                wav = audio_dir / bank.id / f"{level}.wav"
                wav.parent.mkdir(parents=True, exist_ok=True)
                answers_wav(texts, wav, voice=DEMO_VOICES[level], gap_s=DEMO_GAP_S)
                report = _run(
                    engine,
                    interview_id,
                    wav,
                    fast=not realtime,
                    out=audio_dir / bank.id / f"{level}-agent.wav",
                    stt_model=stt_model,
                    max_follow_ups=0,  # a recorded applicant cannot answer unforeseen questions
                    no_answer_timeout_s=8.0,
                    score_url=(url or settings.resolved_database_url) if score else None,
                )
                _print_report(report, f"{level} applicant, voice {DEMO_VOICES[level]}")
