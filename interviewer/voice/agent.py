"""The livekit Agent that runs the interview core (:mod:`interviewer.interview`) in an AgentSession.

Turns are scripted, not generated: the session is given a placeholder LLM (voice/scripted.py)
only so that it runs :meth:`InterviewAgent.llm_node` at the end of each user turn; the node hands
the answer to the core and yields the lines the core wants said. Lines that are not replies
(greeting, re-prompts, time warnings, the cut-off) go out with ``session.say``.

Audio mode adds an :class:`~interviewer.voice.capture.AnswerCapture` in the STT node: it
records, segments and transcribes each answer (see :mod:`interviewer.voice.capture`).

Time limits and the no-answer timeout run on the applicant's audio clock (samples received
since the question was spoken), not on the wall clock: in a room or a browser the two are the
same, and a WAV fed faster than real time keeps the interview's timing intact.

The agent also tells its transport, through ``on_status``, what the applicant should see: the
interviewer is ``speaking``, ``listening`` (a question is out and has been heard in full),
``hearing`` (listening, and the applicant's speech is heard), ``thinking`` (about to speak: the
introduction, the end of an answer, between lines) or ``finished`` (the closing line has
played), with whether the answer recorded last may still be continued.

Nothing here knows about rooms, WebSockets or files: the caller wires inputs, outputs, the
recording writer and persistence (see :mod:`interviewer.voice.session`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from livekit import rtc
from livekit.agents import Agent, llm, stt
from livekit.agents.voice import ModelSettings, SpeechHandle

from interviewer.interview import Action, Ask, End, InterviewFlow, Record, Say
from interviewer.utterances import is_request
from interviewer.voice.capture import AnswerAudio, AnswerCapture, Turn
from interviewer.voice.take_back import TakeBackWindow
from interviewer.voice.turns import EndOfTurn, TurnPolicy

log = logging.getLogger(__name__)

INSTRUCTIONS = "Scripted interviewer: every line comes from the interview core, never a model."


# --- what the agent hands to persistence -----------------------------------------------------


@dataclass
class Step:
    """One transition of the interview, to persist atomically before the next line is spoken."""

    records: list[tuple[Record, AnswerAudio | None]]
    state: dict[str, Any]
    next_question_index: int
    finished: bool
    event: str


class Persist(Protocol):
    def __call__(self, step: Step) -> Awaitable[None]: ...


NO_ANSWER_TIMEOUT_S = 30.0
"""Silence after a question that counts as no answer (then again after the re-prompt): long
enough for an expert to think before answering; openings may set their own."""

OnStatus = Callable[[str, bool], None]
"""``on_status(status, can_continue)``; see the module docstring."""


# --- the agent -------------------------------------------------------------------------------


class InterviewAgent(Agent):
    """Carries out the core's actions in a session; one instance per interview.

    ``persist`` is awaited with every :class:`Step` before the next line is spoken, so what the
    applicant hears never runs ahead of what is stored. ``capture`` is None in text mode.
    ``no_answer_timeout_s`` is the silence after a question (or its re-prompt) that counts as
    no answer; ``end_of_turn`` decides when an answer is over (:mod:`interviewer.voice.turns`;
    without one, ``silence_threshold_s`` of silence on the capture's VAD clock ends it).
    """

    def __init__(
        self,
        flow: InterviewFlow,
        *,
        persist: Persist | None = None,
        capture: AnswerCapture | None = None,
        no_answer_timeout_s: float = NO_ANSWER_TIMEOUT_S,
        silence_threshold_s: float = 1.2,
        end_of_turn: EndOfTurn | None = None,
        log_name: str = "interview",
    ) -> None:
        super().__init__(instructions=INSTRUCTIONS)
        self.log_name = log_name  # names this interview in the log
        self.flow = flow
        self.capture = capture
        self.no_answer_timeout_s = no_answer_timeout_s
        self.silence_threshold_s = silence_threshold_s
        self.end_of_turn = end_of_turn or EndOfTurn(
            TurnPolicy(max_pause_s=silence_threshold_s), None, log_name=log_name
        )
        self._persist = persist
        self._lock = asyncio.Lock()
        self._epoch = 0
        self._ask: Ask | None = None
        self._fired: set[tuple[int, str]] = set()
        self._prompt_spoken = False
        self.ended = asyncio.Event()
        self._ending = False
        self.steps: list[Step] = []
        self.said: list[str] = []
        self.on_status: OnStatus | None = None
        # a question back on screen without being spoken (the applicant took the turn back)
        self.on_question: Callable[[Ask], None] | None = None
        self._status: tuple[str, bool] | None = None
        self._deciding = False  # the session handed over the turn; the policy has not ended it
        self._take_back: TakeBackWindow | None = None  # the answer that may be taken back
        self._taken_back_epoch: int | None = None  # a take-back's continued answer, while out
        self.taken_back = 0  # how many times an applicant took a turn back (reports, tests)
        self._acked_epoch: int | None = None  # the question whose answer was acknowledged
        if capture is not None:
            capture.set_listeners(on_tick=self._tick, on_speech=self._on_user_speech)

    # -- session hooks --

    async def on_enter(self) -> None:
        self.session.on("agent_state_changed", self._on_agent_state)
        async with self._lock:
            actions = self.flow.start()
            texts = await self._apply(actions, event="start")
        self._end_after(self._say(texts))
        self._emit_status()

    async def on_exit(self) -> None:
        self.session.off("agent_state_changed", self._on_agent_state)

    async def llm_node(
        self, chat_ctx: llm.ChatContext, tools: list[llm.Tool], model_settings: ModelSettings
    ) -> AsyncIterator[str]:
        """The end of a user turn: hand the answer to the core, yield what it wants said."""
        can_take_back = False
        asked_epoch = self._epoch  # the question this turn answers
        if self.capture is not None:
            # the end-of-turn decision, on the capture's VAD clock. Cancellable: if the
            # applicant speaks again, the session interrupts this reply and nothing has been
            # decided yet
            self._deciding = True  # still the applicant's turn: the page keeps "Listening"
            self._emit_status()
            # an answer to any question but the last may be taken back if the applicant goes
            # on speaking right after the turn ends (_tick): so the policy may end it sooner.
            # The last one cannot (its reply closes the interview): when it sounds finished
            # the agent says "Thank you." at the same moment and still waits, this reply's
            # first words, cut off like the rest of it if the applicant goes on
            can_take_back = not self.flow.last_question
            heard = asyncio.Event()
            ack = None
            if not can_take_back and self._acked_epoch != self._epoch:
                ack = functools.partial(_acknowledge, heard)
            # cancelled (the applicant spoke again): still their turn, so _deciding stays set
            # and the page never flashes "about to speak" while the session moves back to
            # listening; the next decision clears it
            waiting = asyncio.ensure_future(
                self.end_of_turn.wait(self.capture, can_take_back=can_take_back, acknowledge=ack)
            )
            acknowledged = asyncio.ensure_future(heard.wait())
            try:
                await asyncio.wait({waiting, acknowledged}, return_when=asyncio.FIRST_COMPLETED)
                if acknowledged.done() and not waiting.done():
                    self._acked_epoch = self._epoch
                    yield self.flow.script.ack + " "
                await waiting
            finally:
                waiting.cancel()
                acknowledged.cancel()
            self._deciding = False
            self._emit_status()
            log.debug("%s: the turn is over", self.log_name)
        # where the answer's speech ended, for the take-back window (before anything else is
        # heard: speech that resumes while the turn is stored must not move it)
        speech_end = self.capture.speech_ended_s if can_take_back and self.capture else None
        decided = asyncio.ensure_future(self._answer_turn(chat_ctx, speech_end))
        try:
            texts, _ = await asyncio.shield(decided)
        except asyncio.CancelledError:
            # the answer is (being) stored and the core has moved on: its lines must still be
            # said, or the applicant would never hear the next question
            decided.add_done_callback(self._say_late)
            raise
        if self.flow.finished:
            self._end_after(self.session.current_speech)
        log.debug("%s: stored; %d lines to say", self.log_name, len(texts))
        if self._acked_epoch == asked_epoch and texts and texts[0] == self.flow.script.ack:
            texts = texts[1:]  # said already (maybe in a reply the applicant cut short)
        for text in texts:
            yield text + " "

    async def _answer_turn(
        self, chat_ctx: llm.ChatContext, take_back_after: float | None = None
    ) -> tuple[list[str], int]:
        """The lines to say, and the epoch they belong to. ``take_back_after``: where the
        answer's speech ended, when the applicant may take the turn back."""
        async with self._lock:
            if self.capture is not None:
                turn = await self.capture.take_turn()
                log.debug("%s: end of turn, %d words", self.log_name, len(turn.text.split()))
                if not turn.text:
                    return [], self._epoch  # words from a question already closed, or noise
                actions = self.flow.answer(turn.text)
            else:
                turn = None
                actions = self.flow.answer(_last_user_text(chat_ctx))
            texts = await self._apply(actions, event="answer", turn=turn)
            if take_back_after is not None and texts:
                self._arm_take_back(take_back_after)
            return texts, self._epoch

    def _say_late(self, decided: asyncio.Future[tuple[list[str], int]]) -> None:
        if decided.cancelled() or decided.exception() is not None:
            return
        texts, epoch = decided.result()
        if epoch != self._epoch:
            return  # the applicant took the turn back: the lines were for a question withdrawn
        with contextlib.suppress(RuntimeError):  # the session may be closing
            self._end_after(self._say(texts))

    async def tts_node(
        self, text: AsyncIterable[str], model_settings: ModelSettings
    ) -> AsyncIterator[rtc.AudioFrame]:
        """One synthesis per line, so every prerendered line is a cache hit."""
        engine = self.session.tts
        if engine is None:
            return
        async for line in text:
            if not line.strip():
                continue
            async with engine.synthesize(line.strip()) as stream:
                first = True
                async for ev in stream:
                    if first:
                        log.debug("%s: first audio of %r", self.log_name, line.strip()[:40])
                        first = False
                    yield ev.frame

    def stt_node(
        self, audio: AsyncIterable[rtc.AudioFrame], model_settings: ModelSettings
    ) -> AsyncIterable[stt.SpeechEvent]:
        if self.capture is None:
            return Agent.default.stt_node(self, audio, model_settings)
        return self.capture.run(audio)

    # -- requests from the transport --

    async def repeat_question(self) -> str:
        """Say the pending question again (the page's "repeat the question" button).

        The same as asking aloud, without a turn: nothing is recorded, the answer's recording
        goes on, the line in progress is cut short. Returns "ok", "none" (no question is
        waiting for an answer) or "limit" (repeated ``MAX_REPEATS`` times already: the
        transport tells the applicant to answer as best they can).
        """
        return await self._request("repeat", self.flow.repeat)

    async def more_time(self) -> str:
        """The applicant asked for more time (the page's button): the line in progress is cut
        short, the agent says it will wait, and the no-answer clock starts again once it has
        said so. "ok", "none" (no question waiting) or "limit" (asked too often already)."""
        return await self._request("more_time", self.flow.more_time)

    async def continue_answer(self) -> str:
        """The applicant was not finished ("I wasn't finished"): back to the answer recorded
        last, whose audio and words the next speech continues. "ok", or "none" when there is
        nothing to continue (no answer yet, timed out, continued too often, the interview over,
        or its audio not at hand after a restart)."""
        return await self._request("continue", self.flow.continue_answer)

    async def _request(self, event: str, act: Callable[[], list[Action]]) -> str:
        """One of the applicant's requests, outside any turn: the core decides, the line in
        progress is cut short and the core's lines are said."""
        async with self._lock:
            if event == "continue":
                key = self.flow.continuable
                if key is None or (self.capture is not None and not self.capture.holds(key)):
                    return "none"
            elif self.flow.finished or self.flow.current is None:
                return "none"
            actions = act()
            if not actions:
                return "none" if event == "continue" else "limit"
            texts = await self._apply(actions, event=event)
        with contextlib.suppress(RuntimeError):  # nothing to interrupt, or the session closing
            self.session.interrupt()
        self._say(texts)
        return "ok"

    # -- taking a turn back --

    def _arm_take_back(self, speech_end_s: float) -> None:
        """The turn just ended and the reply is going out (:mod:`voice.take_back`)."""
        key = self.flow.continuable
        if key is not None and self.capture is not None and self.capture.holds(key):
            self._take_back = TakeBackWindow(key, self._epoch, speech_end_s)

    async def _take_back_turn(self, armed: TakeBackWindow) -> None:
        """Back to the answer the applicant is continuing: the reply stops, nothing is said
        (they are talking), and their speech goes on into that answer's audio and words."""
        capture = self.capture
        if capture is None:
            return
        key, epoch, speech_end = armed.key, armed.epoch, armed.speech_end_s
        async with self._lock:
            if epoch != self._epoch or self.flow.continuable != key or not capture.holds(key):
                return
            started = capture.speech_started_s
            actions = [
                a
                for a in self.flow.continue_answer()
                if not (isinstance(a, Say) and a.kind == "continue")
            ]
            if not actions:
                return
            await self._apply(actions, event="take_back")
            rec = capture.current
            if rec is not None:  # the continued answer is out already: no line to wait for
                rec.prompt_end_s = 0.0
                rec.listening_since_s = 0.0
                if started is not None:
                    rec.pauses.append(round(started - speech_end, 3))  # the applicant's pace
            self._taken_back_epoch = self._epoch
            self.taken_back += 1
            if self.on_question is not None and self._ask is not None:
                self.on_question(self._ask)
        log.info("%s: the applicant took the turn back (%s)", self.log_name, key)
        with contextlib.suppress(RuntimeError):  # nothing playing, or the session closing
            self.session.interrupt()
        self._emit_status()

    # -- timer events (also callable directly, e.g. from text-mode tests) --

    async def silence_timeout(self) -> SpeechHandle | None:
        return await self._timer_event("silence", self._epoch, ("direct", "silence"))

    async def time_warning(self) -> SpeechHandle | None:
        return await self._timer_event("warning", self._epoch, ("direct", "warning"))

    async def time_up(self) -> SpeechHandle | None:
        return await self._timer_event("time_up", self._epoch, ("direct", "time_up"))

    async def _timer_event(
        self, kind: str, epoch: int, key: tuple[Any, str]
    ) -> SpeechHandle | None:
        """Returns the speech it started, if any."""
        log.debug("%s: timer %s (epoch %s, now %s)", self.log_name, kind, epoch, self._epoch)
        async with self._lock:
            if epoch != self._epoch or self.flow.finished:
                return None  # the question it was for is gone
            turn: Turn | None = None
            if kind == "silence":
                if self.capture is not None and self.capture.transcribing():
                    self._fired.discard(key)  # look again once the words are in
                    return None
                if self.capture is not None and self.capture.has_untaken_words():
                    # words the session never turned into a turn (it was speaking over them):
                    # the long silence after them ends the answer
                    turn = await self.capture.take_turn()
                    actions = self.flow.answer(turn.text)
                else:
                    actions = self.flow.silence_timeout()
            elif kind == "kept":
                if self.capture is not None and (
                    self.capture.has_untaken_words() or self.capture.transcribing()
                ):
                    return None  # words came after all: the session's turn takes them
                actions = self.flow.end_continuation()
            elif kind == "warning":
                actions = self.flow.time_warning()
            else:
                if self.capture is not None:
                    turn = await self.capture.take_turn(cut=True)
                    text = turn.text
                else:
                    text = ""
                actions = self.flow.time_up(text)
            texts = await self._apply(actions, event=kind, turn=turn)
            if kind == "time_up" and self.capture is not None:
                with contextlib.suppress(RuntimeError):
                    self.session.clear_user_turn()  # its words are recorded already
        # the cut-off must be heard: the applicant is probably still talking
        handle = self._say(texts, allow_interruptions=kind != "time_up")
        self._end_after(handle)
        return handle

    # -- carrying out actions --

    async def _apply(
        self, actions: list[Action], *, event: str, turn: Turn | None = None
    ) -> list[str]:
        """Record, persist and route audio for ``actions``; return the lines to speak."""
        records: list[tuple[Record, AnswerAudio | None]] = []
        texts: list[str] = []
        for action in actions:
            if isinstance(action, Record):
                audio = None
                if self.capture is not None:
                    audio = self.capture.finish(turn or Turn("", [], []))
                records.append((action, audio))
            elif isinstance(action, Ask):
                self._epoch += 1
                self._ask = action
                self._prompt_spoken = False
                if self.capture is not None:
                    self.capture.begin(action, self._epoch)
                if not action.continued:  # a continued answer's question is not said again
                    texts.append(action.text)
            elif isinstance(action, Say):
                rec = self.capture.current if self.capture is not None else None
                if action.kind in ("reprompt", "more_time") and rec is not None:
                    rec.listening_since_s = None  # the silence clock restarts after this line
                texts.append(action.text)
            elif isinstance(action, End):
                if self.capture is not None:
                    self.capture.stop()
                self._ask = None
        if not actions:
            return texts
        self._emit_status()
        step = Step(
            records=records,
            state=self.flow.state,
            next_question_index=self.flow.next_question_index,
            finished=self.flow.finished,
            event=event,
        )
        self.steps.append(step)
        if self._persist is not None:
            await self._persist(step)
        self.said.extend(texts)
        return texts

    def _say(self, texts: list[str], *, allow_interruptions: bool = True) -> SpeechHandle | None:
        if not texts:
            return None

        async def lines() -> AsyncIterator[str]:
            for text in texts:
                yield text + " "

        return self.session.say(lines(), allow_interruptions=allow_interruptions)

    def _end_after(self, speech: SpeechHandle | None) -> None:
        """Once the interview is over, set ``ended`` when its last line has played."""
        if not self.flow.finished or self._ending:
            return
        self._ending = True

        async def wait() -> None:
            if speech is not None:
                await speech.wait_for_playout()

        task = asyncio.create_task(wait())
        task.add_done_callback(lambda _t: self.ended.set())

    # -- audio clock: prompt end, time limit, no answer --

    def _on_agent_state(self, ev: Any) -> None:
        rec = self.capture.current if self.capture is not None else None
        log.debug(
            "%s: agent %s -> %s; question %s, epoch %s, prompt spoken %s",
            self.log_name,
            ev.old_state,
            ev.new_state,
            rec.ask.question_id if rec is not None else None,
            self._epoch,
            self._prompt_spoken,
        )
        if ev.new_state == "speaking":
            self._prompt_spoken = True
            if rec is not None:
                rec.listening_since_s = None
        elif ev.old_state == "speaking" and rec is not None and not rec.finished:
            rec.listening_since_s = rec.time_s
            if rec.prompt_end_s is None and self._prompt_spoken:
                rec.prompt_end_s = rec.time_s
            self._tick()
        heard = rec is not None and rec.prompt_end_s is not None and not rec.finished
        if ev.new_state == "thinking" and heard:
            # the session hands over the turn before llm_node runs, and llm_node asks the
            # end-of-turn policy first: still the applicant's turn, or the page would flash
            # "about to speak" mid-answer (llm_node clears this once the policy has decided)
            self._deciding = True
        self._emit_status(ev.new_state)

    def _on_user_speech(self, speaking: bool) -> None:
        """The applicant started or stopped speaking (VAD); the timers read it on each frame."""
        if speaking:
            self._tick()
        self._emit_status()

    # -- what the applicant sees --

    def status(self, agent_state: str | None = None) -> str:
        """What the interviewer is doing, for the page (see the module docstring)."""
        if agent_state is None:
            try:
                agent_state = self.session.agent_state
            except RuntimeError:  # not running in a session (yet)
                agent_state = "initializing"
        if agent_state == "speaking":
            return "speaking"
        if self.flow.finished:
            return "finished"
        if agent_state not in ("listening", "idle") and not self._deciding:
            return "thinking"
        if self.capture is None:
            heard = self._prompt_spoken and self.flow.current is not None
            return "listening" if heard else "thinking"
        rec = self.capture.current
        if rec is None or rec.finished or rec.prompt_end_s is None:
            return "thinking"  # between lines, or a question not yet heard in full
        return "hearing" if self.capture.speaking else "listening"

    def _emit_status(self, agent_state: str | None = None) -> None:
        if self.on_status is None:
            return
        now = (self.status(agent_state), self.flow.can_continue)
        if now != self._status:
            self._status = now
            self.on_status(*now)

    def _tick(self) -> None:
        """Called as the VAD advances: fire the timers that are due on the audio clock."""
        capture, ask = self.capture, self._ask
        armed = self._take_back
        if armed is not None and capture is not None:
            due = armed.due(capture, self._epoch, self.end_of_turn.policy.take_back_s)
            if due is not False:
                self._take_back = None
            if due:
                asyncio.create_task(self._take_back_turn(armed)).add_done_callback(_log_failure)
        if capture is None or ask is None or self.flow.finished:
            return
        rec = capture.current
        if rec is None or rec.finished or rec.epoch != self._epoch or rec.prompt_end_s is None:
            return
        now = rec.vad_time_s
        elapsed = now - rec.prompt_end_s
        # an applicant who has stopped talking and whose words are still being transcribed has
        # finished in time: the limit is on their speaking, not on our transcription
        finished = not capture.speaking and (capture.transcribing() or capture.has_untaken_words())
        if elapsed >= ask.time_limit_s and not finished:
            self._fire("time_up")
        elif elapsed >= ask.warning_at_s and not finished:
            self._fire("warning")
        if rec.listening_since_s is None or capture.speaking or capture.transcribing():
            return
        if (
            self._taken_back_epoch == self._epoch
            and rec.last_speech_end_s is not None
            and rec.open_segment is None
            and not capture.has_untaken_words()
            and now - rec.last_speech_end_s >= self.end_of_turn.policy.max_pause_s
        ):
            # the speech that took the turn back held no words (no turn will come of it): the
            # answer stands as it was once the applicant has been quiet for the maximum pause
            self._fire("kept", at=rec.last_speech_end_s, repeatable=True)
        quiet_from = max(rec.listening_since_s, rec.last_speech_end_s or 0.0)
        if now - quiet_from >= self.no_answer_timeout_s:
            self._fire("silence", repeatable=True, at=quiet_from)

    def _fire(self, kind: str, *, repeatable: bool = False, at: float = 0.0) -> None:
        """Start the timer event ``kind`` once per question (per quiet spell for silence)."""
        key = (self._epoch, f"{kind}@{at:.2f}" if repeatable else kind)
        if key in self._fired:
            return
        self._fired.add(key)
        task = asyncio.create_task(self._timer_event(kind, self._epoch, key))
        task.add_done_callback(_log_failure)


def _acknowledge(heard: asyncio.Event, words: str) -> None:
    if not is_request(words):  # "could you repeat that?" is not an answer to thank for
        heard.set()


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("interview timer event failed", exc_info=task.exception())


def _last_user_text(chat_ctx: llm.ChatContext) -> str:
    for item in reversed(chat_ctx.items):
        if isinstance(item, llm.ChatMessage) and item.role == "user":
            return item.text_content or ""
    return ""
