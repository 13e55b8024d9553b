"""The live gate (interviewer.priority): live interviews pause scoring, and a dead one does not.

Real files in a real directory, real processes (the spawned scorer with SmolLM2-135M, a holder
process killed with SIGKILL). The only time bounds are generous: a paused scorer must not
finish an answer in 20 s that it judges in about a second, and must finish soon after.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from test_judge import SMALL, _bank, _demo, _interview_with_answers  # tests/ is on sys.path

from interviewer.priority import LiveGate, LiveWindow, set_gate, yield_to_live
from interviewer.scoring.judge import Judge
from interviewer.scoring.process import ScorerProcess
from interviewer.store.db import create_db_engine, dispose_engine, migrate


def test_hold_release_and_lease(tmp_path: Path) -> None:
    gate = LiveGate(tmp_path / "gate", lease_s=0.5)
    assert not gate.held()  # no directory yet: nobody holds it
    gate.hold("a")
    gate.hold("b")
    assert gate.held()
    gate.release("a")
    assert gate.held()
    gate.release("b")
    assert not gate.held()
    gate.hold("c")  # never released: the lease runs out by itself
    time.sleep(0.8)
    assert not gate.held()


def test_a_pause_is_capped(tmp_path: Path) -> None:
    gate = LiveGate(tmp_path, lease_s=60, max_pause_s=0.5, grace_s=1.0, poll_s=0.02)
    gate.hold("forever")
    started = time.monotonic()
    assert 0.4 < gate.wait() < 30
    assert time.monotonic() - started < 30
    assert gate.wait() == 0.0  # then the work runs a while, however long the hold lasts
    time.sleep(1.2)
    assert gate.wait() > 0.4  # and pauses again
    gate.release("forever")
    assert gate.wait() == 0.0


def test_yield_to_live_only_where_a_gate_is_set(tmp_path: Path) -> None:
    gate = LiveGate(tmp_path, lease_s=60, max_pause_s=0.3, poll_s=0.02)
    gate.hold("x")
    set_gate(None)
    assert yield_to_live() == 0.0  # the interview process itself never waits for the gate
    set_gate(gate)
    try:
        assert yield_to_live() > 0.2
    finally:
        set_gate(None)


async def test_window_holds_from_speech_to_the_next_line(tmp_path: Path) -> None:
    gate = LiveGate(tmp_path, lease_s=0.6)
    window = LiveWindow(gate, "interview-1", quiet_release_s=0.5)
    window.user_speaking(True)
    assert gate.held()
    await asyncio.sleep(1.0)  # longer than the lease: the window renews it while speech goes on
    assert gate.held()
    window.user_speaking(False)  # the answer ended: still held until the next line plays
    assert gate.held()
    window.agent_speaking()
    assert not gate.held() and window.windows == 1
    window.user_speaking(True)
    window.user_speaking(False)
    await asyncio.sleep(1.5)  # a long quiet spell (thinking): the hold lets go by itself
    assert not window.holding and not gate.held()
    window.close()


def test_judge_pauses_between_its_layers(model_dir: Path, tmp_path: Path) -> None:
    judge = Judge(SMALL, model_dir, dtype="float32").load()
    calls = 0

    def checkpoint() -> float:  # returns something, as yield_to_live does
        nonlocal calls
        calls += 1
        return 0.0

    layers = judge.pause_between_layers(checkpoint)
    question = _bank().questions[0]
    judge.score(question, "I check every fact with two independent sources before I publish.")
    assert layers >= 12 and calls >= layers  # every forward pass stops at each layer


def _scored(engine_url: str) -> tuple[str, list[int]]:
    engine = create_db_engine(engine_url)
    migrate(engine)
    bank = _bank()
    demo = _demo(bank.id)["answers"]
    _, ids = _interview_with_answers(
        engine, bank, [(q.id, 0, demo[q.id]["strong"]) for q in bank.questions[:2]]
    )
    return engine_url, ids


async def test_a_live_interview_pauses_a_real_scorer_and_lets_it_go_after(
    tmp_path: Path, model_dir: Path
) -> None:
    db_url, ids = _scored(f"sqlite:///{tmp_path / 'gate.db'}")
    gate_dir = tmp_path / "gate"
    worker = ScorerProcess(db_url, model=SMALL, model_dir=model_dir, gate_dir=gate_dir).start()
    live = LiveGate(gate_dir, lease_s=3.0)
    window = LiveWindow(live, "interview-7")
    try:
        await worker.ready(timeout=600)
        window.user_speaking(True)  # the applicant speaks: the critical window opens
        for answer_id in ids:
            await worker.submit(answer_id)
        await asyncio.sleep(20)  # SmolLM2 judges an answer in about a second
        assert worker.collect() == [], "the scorer judged while the interview was live"
        window.user_speaking(False)
        window.agent_speaking()  # the next line plays: scoring may go on
        results = await worker.drain(timeout=600)
    finally:
        window.close()
        await worker.aclose()
    assert sorted(r[0] for r in results) == sorted(ids)
    assert all(error is None for _, _, error in results)
    dispose_engine(db_url)


async def test_a_dead_interview_process_does_not_hold_scoring_back(
    tmp_path: Path, model_dir: Path
) -> None:
    db_url, ids = _scored(f"sqlite:///{tmp_path / 'stale.db'}")
    gate_dir = tmp_path / "gate"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from interviewer.priority import LiveGate\n"
            "LiveGate(sys.argv[1], lease_s=8.0).hold('interview-9')\n"
            "print('held', flush=True)\n"
            "time.sleep(3600)\n",
            str(gate_dir),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    worker = ScorerProcess(db_url, model=SMALL, model_dir=model_dir, gate_dir=gate_dir).start()
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        holder.send_signal(signal.SIGKILL)  # the live process dies inside its window
        holder.wait(30)
        assert LiveGate(gate_dir).held()  # its hold outlives it, for its lease only
        for answer_id in ids:
            await worker.submit(answer_id)
        results = await worker.drain(timeout=600)
    finally:
        if holder.poll() is None:
            holder.kill()
        await worker.aclose()
    assert sorted(r[0] for r in results) == sorted(ids)
    assert not LiveGate(gate_dir).held()
    time.sleep(1.1)
    LiveGate(gate_dir).held()
    assert not any(gate_dir.iterdir())  # an expired hold is cleaned away
    dispose_engine(db_url)


def test_a_hold_that_cannot_be_written_never_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    gate = LiveGate(blocker / "gate")
    gate.hold("x")  # logged, not raised: the interview goes on
    assert not gate.held()


async def test_whisper_takes_the_transcript_someone_waits_for_first() -> None:
    """With the worker busy, the queued segment of an applicant who has stopped speaking runs
    before older segments of applicants still speaking; otherwise the oldest first."""
    import threading

    from interviewer.voice.transcription_queue import AWAITED, TranscriptionQueue

    queue = TranscriptionQueue(max_pending=8, name="test-order")
    release = threading.Event()
    ran: list[str] = []
    speaking = {"b": True}

    def job(name: str) -> str:
        ran.append(name)
        return name

    async def submit(name: str, awaited: object) -> str:
        AWAITED.set(awaited)  # type: ignore[arg-type]  # each task has its own context
        return await queue.run(job, name)

    blocker = asyncio.ensure_future(queue.run(release.wait, 30))
    await asyncio.sleep(0.1)  # the worker is inside the blocker now
    tasks = [
        asyncio.create_task(submit("a", None)),  # nobody says: oldest-first among the rest
        asyncio.create_task(submit("b", lambda: not speaking["b"])),
        asyncio.create_task(submit("c", lambda: True)),  # its applicant has finished
        asyncio.create_task(submit("d", lambda: 1 / 0)),  # a broken check counts as not awaited
    ]
    await asyncio.sleep(0.1)
    speaking["b"] = False  # b's applicant stops while it waits: it is awaited when picked
    release.set()
    assert await blocker is True
    assert await asyncio.gather(*tasks) == ["a", "b", "c", "d"]
    assert ran == ["b", "c", "a", "d"]
    assert queue.depth == 0 and queue.completed == 5


async def test_the_vad_keeps_up_while_the_default_executor_is_blocked() -> None:
    """Silero's inference runs on the VAD's own thread: every thread of the loop's default
    executor stuck in blocking I/O (a database step waiting on SQLite's lock) delays it not."""
    import wave

    from livekit import rtc
    from livekit.agents import vad as lk_vad

    from interviewer.voice.vad import load_vad

    speech = Path("/usr/share/asterisk/sounds/en_US_f_Allison/vm-intro.wav")
    with wave.open(str(speech)) as w:
        rate, pcm = w.getframerate(), w.readframes(w.getnframes())
    loop = asyncio.get_running_loop()
    blocked_s = 20.0
    blockers = [
        loop.run_in_executor(None, time.sleep, blocked_s) for _ in range((os.cpu_count() or 1) + 8)
    ]
    started = time.monotonic()
    stream = load_vad(0.3).stream()
    step = rate // 50  # 20 ms frames
    for i in range(0, len(pcm) // 2 - step, step):
        stream.push_frame(rtc.AudioFrame(pcm[2 * i : 2 * (i + step)], rate, 1, step))
    stream.end_input()
    kinds = [ev.type async for ev in stream]
    elapsed = time.monotonic() - started
    await stream.aclose()
    assert kinds.count(lk_vad.VADEventType.INFERENCE_DONE) > 20
    assert lk_vad.VADEventType.START_OF_SPEECH in kinds  # real speech, heard as such
    assert elapsed < blocked_s  # it never waited for the blocked executor
    await asyncio.gather(*blockers)
