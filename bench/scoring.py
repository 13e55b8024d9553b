"""Rubric scoring speed: model load, seconds per criterion and per question, answers per minute,
peak memory, and the latency that matters: how long after an interview's last answer its
score is ready.

    .venv/bin/python bench/scoring.py [--model qwen2.5-1.5b] [--bank journalism]
                                      [--answers strong] [--no-worker] [--threads N]

Two parts:

- in-process: ``Judge.score`` + ``EvidenceFinder.find`` on every question of the bank with its
  demo answers (``question_banks/demo_answers``), timed one by one after the model is loaded;
- worker: the production path. A temporary SQLite database holds an interview with the bank's
  answers; a ``ScorerProcess`` process scores the first answers as they would arrive during
  the interview, then the last answer is submitted alone and timed until its score *and the
  interview's score* are in the database. Because each answer is scored while the next
  question is being asked, this is the wait after the interview ends (target: 60 s).

The machine is shared and has 2 cores: the load average is printed with the figures; a busy
machine makes every number worse (OpenMP threads are set to sleep when idle, as in the worker).
CPU seconds per question (this process's, all threads) are printed too: they hardly change with
the load, so they compare runs made at different times; on an idle machine the wall time is
about half of them with 2 threads.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the worker and the CLI run it

import argparse
import asyncio
import resource
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from interviewer.banks.check import load_bank
from interviewer.scoring.evidence import EvidenceFinder, Part
from interviewer.scoring.judge import Judge

BANKS = Path(__file__).resolve().parent.parent / "question_banks"
TARGET_S = 60.0


def peak_rss_gb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory; RUSAGE_CHILDREN covers the worker once it has been joined."""
    return resource.getrusage(who).ru_maxrss / 1e6  # ru_maxrss is in KiB on Linux


def load(args: argparse.Namespace):
    bank = load_bank(BANKS / f"{args.bank}.yaml")
    if args.questions:
        bank = bank.model_copy(update={"questions": bank.questions[: args.questions]})
    return bank


def in_process(args: argparse.Namespace) -> dict:
    bank = load(args)
    demo = yaml.safe_load((BANKS / "demo_answers" / f"{args.bank}.yaml").read_text())["answers"]
    judge = Judge(args.model, args.model_dir, threads=args.threads)
    finder = EvidenceFinder(args.model_dir)
    started = time.perf_counter()
    judge.load()
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    finder.load()
    embedder_load_s = time.perf_counter() - started
    per_question, per_criterion, per_check, evidence_s, tokens = [], [], [], [], []
    anchors_s, cpu_s = [], []
    for question in bank.questions:
        started = time.perf_counter()
        judge.warm(question)  # once per question per judge: timed apart from the answers
        anchors_s.append(time.perf_counter() - started)
        for kind in args.answers:
            transcript = demo[question.id][kind]
            started, cpu = time.perf_counter(), time.process_time()
            judgement = judge.score(question, transcript)
            judged = time.perf_counter()
            finder.find(question, [Part(transcript)])
            done = time.perf_counter()
            cpu_s.append(time.process_time() - cpu)
            per_question.append(done - started)
            per_criterion.append((judged - started) / len(question.rubric.criteria))
            per_check.append((judged - started) / judgement.checks)
            evidence_s.append(done - judged)
            tokens.append(judgement.prefix_tokens)
            print(
                f"  {question.id:<28} {kind:<7} score {judgement.score:.3f} "
                f"conf {judgement.confidence:.2f}  {judgement.checks:>2} checks "
                f"{judgement.prefix_tokens:>4} prefix tokens  {done - started:5.1f} s",
                flush=True,
            )
    return {
        "torch threads": judge.threads,
        "model load (s)": load_s,
        "embedder load (s)": embedder_load_s,
        "questions judged": len(per_question),
        "prefix tokens (mean)": statistics.mean(tokens),
        "s per check (mean)": statistics.mean(per_check),
        "s per criterion (mean)": statistics.mean(per_criterion),
        "s per question (mean)": statistics.mean(per_question),
        "s per question (max)": max(per_question),
        "CPU s per question, all threads (mean)": statistics.mean(cpu_s),
        "evidence s per question (mean)": statistics.mean(evidence_s),
        "anchors s per question, once (mean)": statistics.mean(anchors_s),
        "answers per minute": 60.0 / statistics.mean(per_question),
        "whole 8-question interview, all at the end (s)": statistics.mean(per_question) * 8,
        "peak RSS in-process (GB)": peak_rss_gb(),
    }


async def through_worker(args: argparse.Namespace) -> dict:
    from interviewer.scoring.process import ScorerProcess
    from interviewer.store import repo
    from interviewer.store.db import create_db_engine, migrate, session_scope
    from interviewer.store.models import Answer, Interview, InterviewState

    bank = load(args)
    demo = yaml.safe_load((BANKS / "demo_answers" / f"{args.bank}.yaml").read_text())["answers"]
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = create_db_engine(url)
        migrate(engine)
        with session_scope(engine) as s:
            version = repo.publish_bank(s, bank)
            opening = repo.create_opening(s, slug="bench", title="Bench", bank_version=version)
            applicant = repo.create_applicant(s, name="Bench", email="bench@example.org")
            interview = repo.create_interview(s, opening=opening, applicant=applicant)
            interview_id = interview.id
            ids = []
            for index, question in enumerate(bank.questions):
                answer = Answer(
                    interview_id=interview_id,
                    question_id=question.id,
                    question_index=index,
                    transcript=demo[question.id][args.answers[0]],
                )
                ids.append(repo.save_answer(s, answer).id)
            s.get(Interview, interview_id).state = InterviewState.completed
            # (completed up front so the last answer's scoring also writes the interview score)
        worker = ScorerProcess(
            url, model=args.model, model_dir=args.model_dir, threads=args.threads
        )
        started = time.perf_counter()
        worker.start()
        await worker.ready()
        ready_s = time.perf_counter() - started
        worker.prepare(interview_id)  # as the agent does when the interview starts
        for answer_id in ids[:-1]:
            await worker.submit(answer_id)
        await worker.drain()
        await worker.idle()  # the applicant is still answering the last question
        started = time.perf_counter()
        await worker.submit(ids[-1])
        await worker.drain()
        last_s = time.perf_counter() - started
        await worker.aclose()
        with session_scope(engine) as s:
            score = s.get(Interview, interview_id).score
            scored = sum(s.get(Answer, i).score is not None for i in ids)
        engine.dispose()
    return {
        "worker start to model loaded (s)": ready_s,
        "last answer -> interview score (s)": last_s,
        "interview score": score,
        "answers scored by worker": scored,
        "peak RSS worker (GB)": peak_rss_gb(resource.RUSAGE_CHILDREN),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="qwen2.5-1.5b")
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--bank", default="journalism")
    parser.add_argument("--answers", nargs="+", default=["strong"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--questions", type=int, default=None, help="Only the bank's first N questions."
    )
    parser.add_argument("--no-worker", action="store_true")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    print(f"{args.model} on bank {args.bank} ({', '.join(args.answers)} answers)")
    figures = in_process(args)
    if not args.no_worker:
        # The in-process judge is released first: one Qwen in memory at a time.
        import gc

        gc.collect()
        figures.update(asyncio.run(through_worker(args)))
    print(f"load average after: {os.getloadavg()}")
    width = max(map(len, figures))
    for name, value in figures.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"{name:<{width}}  {shown}")
    last = figures.get("last answer -> interview score (s)")
    if last is not None:
        verdict = "meets" if last <= TARGET_S else "MISSES"
        print(f"{verdict} the {TARGET_S:.0f} s target after the last answer ({last:.1f} s)")


if __name__ == "__main__":
    main()
