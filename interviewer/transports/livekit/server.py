"""The LiveKit transport's agent server: a livekit-agents worker that runs interviews in rooms.

``interviewer worker`` registers with a LiveKit server (or LiveKit Cloud) under the agent name
``interviewer``. An applicant's token (``rooms.applicant_token``) dispatches it into the
interview's room; the job then runs the very lifecycle the embedded WebSocket runs
(:mod:`interviewer.lifecycle`: ``InterviewAgent``, whisper STT, the interviewer's voice, Silero
VAD), with livekit's RoomIO instead of the WebSocket audio:

1. the room name gives the interview (``interview-<id>``); a room that is not an interview's,
   an interview that does not exist or is already completed, is left at once;
2. it listens to the applicant's identity only (``invite-<invite id>``, bound to the invite),
   so nobody else in the room is ever transcribed as the applicant;
3. the applicant's answers are recorded by the session itself (``AnswerCapture``) through the
   storage interface (``store.storage``: local folder or S3 bucket), exactly like the
   WebSocket transport; with ``INTERVIEWER_LIVEKIT_EGRESS=true`` LiveKit Egress also records
   the applicant's audio and camera as one MP4 into the bucket;
4. a dropped applicant does not end the job: the worker waits for them to come back (a new
   token, the same room) and the session resumes where it stopped; the state is saved after
   every answer anyway, so a worker that dies loses at most the answer in progress.

Many workers can serve one LiveKit server: it hands each room to one worker that has room for
it (``load_threshold``), and every worker shares the database and the bucket.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from livekit.agents import AgentServer, AutoSubscribe, JobContext, JobProcess, JobRequest
from livekit.agents.voice import room_io
from sqlalchemy import Engine

from interviewer.config import Settings, get_settings
from interviewer.lifecycle import Interviews
from interviewer.store.db import create_db_engine, session_scope
from interviewer.store.models import Interview, InterviewState
from interviewer.store.storage import LocalStorage, open_storage
from interviewer.transports.livekit import rooms as lk
from interviewer.voice.session import InterviewReport
from interviewer.voice.stack import VoiceStack

log = logging.getLogger(__name__)

INPUT_SAMPLE_RATE = 16_000
"""What the room's audio is resampled to for the session (whisper's rate)."""


@dataclass
class Target:
    """What a room is for: the interview and the one participant to listen to."""

    interview_id: int
    identity: str
    invite_id: int


def target_of_room(engine: Engine, room_name: str, settings: Settings) -> Target | None:
    """Blocking: the interview a room belongs to, if it exists and is not finished."""
    interview_id = lk.interview_of_room(room_name, settings.livekit_room_prefix)
    if interview_id is None:
        return None
    with session_scope(engine) as s:
        row = s.get(Interview, interview_id)
        if row is None or row.invite_id is None:
            return None
        if InterviewState(row.state) is InterviewState.completed:
            return None
        return Target(interview_id, lk.applicant_identity(row.invite_id), row.invite_id)


def room_options(identity: str) -> room_io.RoomOptions:
    """RoomIO for one applicant: their microphone in, the agent's voice and captions out."""
    return room_io.RoomOptions(
        participant_identity=identity,
        audio_input=room_io.AudioInputOptions(sample_rate=INPUT_SAMPLE_RATE),
        audio_output=True,
        text_output=True,  # captions, as the WebSocket page shows them
        video_input=False,
        close_on_disconnect=False,  # a dropped applicant comes back to the same session
    )


class RoomInterview:
    """The job logic, one instance per job process; the models come from ``prewarm``.

    Job processes do not score or analyse: each would load its own judge. The deployment's
    ``interviewer scorer`` processes score what they store (``scoring.claims``).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        storage: LocalStorage | None = None,
        stack: VoiceStack | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine or create_db_engine(settings.resolved_database_url)
        self.storage = storage or open_storage(settings)
        self.stack = stack or VoiceStack(settings)
        self.interviews = Interviews(self.engine, self.storage, self.stack)

    async def run(self, ctx: JobContext, **io: Any) -> InterviewReport | None:
        """Serve the interview of ``ctx``'s room; ``io`` overrides RoomIO (tests give a WAV's
        ``audio_input`` and ``audio_output``)."""
        name = ctx.job.room.name or ctx.room.name
        target = await asyncio.to_thread(target_of_room, self.engine, name, self.settings)
        if target is None:
            log.warning("room %r is not an open interview: leaving", name)
            ctx.shutdown(reason="not an open interview")
            return None
        log.info("room %s: interview %d, applicant %s", name, target.interview_id, target.identity)
        prepared = await self.interviews.prepare(target.interview_id)
        if not io:  # production: the LiveKit room
            await ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
            await ctx.wait_for_participant(identity=target.identity)
            if self.settings.livekit_egress:
                await self._start_egress(ctx, target)
            io = {"room": ctx.room, "room_options": room_options(target.identity)}
        report = await self.interviews.run(prepared, **io)
        await self.interviews.finish(prepared, report)  # the link is spent, as in the browser
        log.info(
            "interview %d %s: %d answers",
            target.interview_id,
            "completed" if report.completed else "stopped",
            len(report.answers),
        )
        ctx.shutdown(reason="interview completed" if report.completed else "interview stopped")
        return report

    async def _start_egress(self, ctx: JobContext, target: Target) -> None:
        """Best effort: Egress failing never stops the interview (the job records too)."""
        try:
            request = lk.egress_request(
                self.settings, interview_id=target.interview_id, identity=target.identity
            )
            info = await ctx.api.egress.start_participant_egress(request)
            log.info("egress %s recording interview %d", info.egress_id, target.interview_id)
        except Exception:
            log.exception("could not start LiveKit Egress for interview %d", target.interview_id)


# --- the livekit-agents server ------------------------------------------------------------------


def prewarm(proc: JobProcess) -> None:
    """Once per job process, before any job: the VAD and whisper, so a job starts at once."""
    proc.userdata["stack"] = VoiceStack(get_settings()).build()


async def entrypoint(ctx: JobContext) -> None:
    stack = ctx.proc.userdata.get("stack")
    await RoomInterview(get_settings(), stack=stack).run(ctx)


async def accept(request: JobRequest) -> None:
    """Take only interview rooms; the applicant's identity is checked when the job runs."""
    prefix = get_settings().livekit_room_prefix
    if lk.interview_of_room(request.room.name, prefix) is None:
        await request.reject()
        return
    await request.accept(name="Interviewer", identity=f"agent-{request.room.name}")


def interviews_load(max_interviews: int) -> Callable[[Any], float]:
    """A load function counting interviews instead of CPU: ``n / max_interviews``.

    The bench (bench/load.py) gives the number of interviews a machine holds within the turn
    latency target; with it, the worker takes exactly that many and LiveKit queues the rest
    (the applicant's page says the interviewers are busy) instead of slowing everyone down.
    """

    def load(server: Any) -> float:
        return min(1.0, len(server.active_jobs) / max_interviews)

    return load


def build_server(
    settings: Settings,
    *,
    load_threshold: float = 0.75,
    http_port: int = 8081,
    max_interviews: int = 0,
) -> AgentServer:
    """The worker process: registers with LiveKit and runs one job process per interview.

    ``max_interviews`` > 0: take at most that many at once (else: the CPU load threshold).
    """
    url, key, secret = lk.require_config(settings)
    load_fnc = None
    extra: dict[str, Any] = {}
    if max_interviews > 0:
        extra["num_idle_processes"] = min(max_interviews, os.cpu_count() or 1)
        load_fnc = interviews_load(max_interviews)
        # available while fewer than max_interviews run: n / max <= threshold < (n + 1) / max
        load_threshold = (max_interviews - 0.5) / max_interviews
    server = AgentServer(
        ws_url=url,
        api_key=key,
        api_secret=secret,
        load_fnc=load_fnc,
        load_threshold=load_threshold,
        port=http_port,  # its health check (GET /); 0 picks a free port
        setup_fnc=prewarm,
        # whisper in each job process: allow a few minutes' model load on a busy machine
        initialize_process_timeout=120.0,
        **extra,
    )
    server.rtc_session(entrypoint, agent_name=lk.AGENT_NAME, on_request=accept)
    return server
