"""Helpers for tests/test_faults.py: `interviewer serve` as a process that can be SIGKILLed, and
an applicant on its socket who answers each question with a recorded voice (no browser).

The applicant acts as the page does (tests/test_web_socket.py `_page`): it reports every agent
segment as played, streams its microphone at real time (silence between answers, as an open
microphone does), and starts an answer once the agent listens for a question not yet answered.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets
from web_support import FIXTURE_ANSWERS, csrf_token, free_port

from interviewer.config import Settings
from interviewer.voice.io import answers_wav, read_wav

CLI = Path(sys.executable).with_name("interviewer")
CHUNK = 3200  # 100 ms of 16 kHz Int16 mono, what the page sends
AGREE = {"recording": "yes", "scoring": "yes", "retention": "yes"}


class Server:
    """`interviewer serve` in a child process, configured by ``settings`` through INTERVIEWER_*."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.settings = settings
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        s = self.settings
        return {
            **os.environ,
            "INTERVIEWER_DATA_DIR": str(s.data_dir),
            "INTERVIEWER_DATABASE_URL": s.resolved_database_url,
            "INTERVIEWER_RECORDINGS_DIR": str(s.recordings_dir),
            "INTERVIEWER_SECRET_KEY": s.secret_key or "",
            "INTERVIEWER_STT_MODEL": s.stt_model,
            "INTERVIEWER_SCORE_ANSWERS": "false",
            "INTERVIEWER_ANALYZE_INTEGRITY": "false",
            "HF_HUB_OFFLINE": "1",
        }

    def start(self, timeout: float = 180.0) -> Server:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(CLI), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env(),
                cwd=self.log.parent,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).json()["voice_ready"]:
                    return self
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.3)
        raise AssertionError(f"the server was not ready: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, nothing is flushed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def consent(self, token: str) -> None:
        with httpx.Client(base_url=self.url) as client:
            data = {**AGREE, "csrf_token": csrf_token(client, f"/i/{token}")}
            response = client.post(f"/i/{token}/consent", data=data)
            assert response.status_code < 400, response.text[:300]


def answer_clips() -> dict[str, bytes]:
    """Each fixture question's answer (tests/web_support.py FIXTURE_ANSWERS) as 16 kHz PCM."""
    clips = {}
    with tempfile.TemporaryDirectory() as tmp:
        for qid, (text, _) in FIXTURE_ANSWERS.items():
            path = Path(tmp) / f"{qid}.wav"
            answers_wav([text], path, lead_s=0.2, gap_s=0.0, sample_rate=16_000)
            samples, _ = read_wav(path)
            clips[qid] = samples.tobytes()
    return clips


@dataclass
class Visit:
    """What one connection saw."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)
    close_code: int | None = None

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]


async def visit(
    server: Server,
    token: str,
    clips: dict[str, bytes],
    *,
    during: tuple[str, float, Callable[[], None]] | None = None,
    timeout_s: float = 240.0,
) -> Visit:
    """One page connection until the server closes it (done, error, killed) or ``timeout_s``.

    ``during=(question_id, seconds, action)`` calls ``action`` (in a thread) that many seconds
    into the answer to ``question_id``, while the applicant is still speaking.
    """
    seen = Visit()
    url = f"ws://127.0.0.1:{server.port}/i/{token}/ws"
    outgoing = bytearray()
    current: str | None = None
    pending: set[int] = set()
    listening = False

    async with websockets.connect(url, max_size=None, open_timeout=30) as ws:
        await ws.send(json.dumps({"type": "hello", "tab": "fault-test-tab", "sample_rate": 16000}))

        async def microphone() -> None:
            started = time.monotonic()
            sent = 0
            while True:
                chunk = bytes(outgoing[:CHUNK])
                del outgoing[:CHUNK]
                await ws.send(chunk.ljust(CHUNK, b"\0"))
                sent += 1
                await asyncio.sleep(max(0.0, started + sent * 0.1 - time.monotonic()))

        async def act() -> None:
            assert during is not None
            qid, after_s, action = during
            while current != qid or qid not in seen.answered:
                await asyncio.sleep(0.05)
            await asyncio.sleep(after_s)
            await asyncio.to_thread(action)

        mic = asyncio.create_task(microphone())
        actor = asyncio.create_task(act()) if during is not None else None
        try:
            async with asyncio.timeout(timeout_s):
                async for raw in ws:
                    if isinstance(raw, bytes):
                        continue
                    m = json.loads(raw)
                    seen.messages.append(m)
                    kind = m.get("type")
                    if kind == "segment":
                        pending.add(m["segment"])
                        await ws.send(json.dumps({"type": "started", "segment": m["segment"]}))
                    elif kind == "segment_end":
                        pending.discard(m["segment"])
                        played = {"type": "played", "segment": m["segment"]}
                        await ws.send(json.dumps({**played, "position": m["duration"]}))
                    elif kind == "question" or (kind == "ready" and m.get("question")):
                        current = (m if kind == "question" else m["question"])["id"]
                    elif kind == "taken_back":  # the answer goes on (as the page does)
                        current = m["question"]["id"]
                    elif kind == "state":
                        listening = m["state"] == "listening"
                    if (
                        listening
                        and not pending
                        and current is not None
                        and current not in seen.answered
                    ):
                        seen.answered.append(current)
                        outgoing.extend(clips[current])
        except websockets.ConnectionClosed:
            pass
        finally:
            mic.cancel()
            if actor is not None:
                actor.cancel()
            await asyncio.gather(mic, *([actor] if actor else []), return_exceptions=True)
        seen.close_code = ws.close_code
    return seen
