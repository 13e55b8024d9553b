"""The end-of-turn decision: is the applicant done, or only pausing?

A fixed silence either cuts thinking pauses off (short) or makes every reply slow (long). After
a short silence (``TurnPolicy.check_after_s``) three cheap signals are asked:

- the audio: smart-turn v3.2 (pipecat-ai, BSD-2-Clause), an ONNX model over the last 8 s of
  speech that scores how finished the intonation sounds;
- the words so far: a phrase that stops on "and", "of", "the", "because" or on a filler ("um")
  is not finished, whatever the intonation;
- the applicant's own pace: the pauses after which they went on speaking, in this interview.

If all say "finished" the turn ends at once; otherwise it waits up to the opening's maximum
pause (``silence_threshold_s``), or less when this applicant's pauses are clearly shorter.
LiveKit's audio end-of-turn model (``livekit-local-inference``) was measured against smart-turn
(``bench/turn_taking.py --models``, docs/turn-taking.md) and is not used: its licence limits it
to LiveKit Agents, and it sees only the last 1.2 s.

livekit-agents' turn-detector hook turns a probability into one of two fixed delays and cannot
read our transcript or pace, so the decision lives here and is applied in one place:
``InterviewAgent.llm_node`` awaits :meth:`EndOfTurn.wait` before the answer is taken (the
session's own endpointing only hands over quickly). :func:`replay` runs the very same decision
over a recording (``interviewer turns``, the benchmark).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort
from livekit import rtc
from livekit.agents import vad as lk_vad
from scipy.signal import resample_poly

from interviewer.config import Settings
from interviewer.interview import MAX_CONTINUES
from interviewer.voice.smart_turn_features import compute_whisper_log_mel_features
from interviewer.weights.locate import smart_turn_model

if TYPE_CHECKING:  # typing only: capture.py does not import this module
    from interviewer.voice.capture import AnswerCapture, Recording

log = logging.getLogger(__name__)

MODEL_RATE = 16_000
WINDOW_S = 8.0
"""smart-turn reads the last 8 s (zero-padded in front when less was said)."""

# Words after which a phrase cannot end: conjunctions, prepositions, articles, possessives, modals
# and fillers; not words that often end a phrase too ("it", "that", "in", "up", "is", "can").
# English first (the product transcribes English); a few French, Spanish and Italian ones so
# the benchmark's other languages are judged the same way.
_CONTINUATION = """
and or but nor because since although though unless until while whereas if than whether
of to at for with from into onto between during within toward towards upon via per among
the a an my your our their its every
would could should shall must might
et ou mais donc car que qui de du des le la les un une au aux dans pour par avec sur
y o pero porque el los las una del al con por para
e ma perché il gli di da nel per che
"""
_FILLERS = "um umm uh uhm er erm ah hmm mm mmm euh ehm"
CONTINUATION_WORDS = frozenset(_CONTINUATION.split())
FILLERS = frozenset(_FILLERS.split())

_TOKEN = re.compile(r"\w+(?:['’]\w+)?", re.UNICODE)  # words and numbers ("press 2.")


def unfinished_text(text: str) -> bool:
    """The words so far stop where a phrase cannot end (or nothing was heard yet).

    A trailing comma, dash or ellipsis from whisper says the same thing.
    """
    stripped = text.strip()
    if not stripped:
        return True
    if stripped.endswith((",", "-", "—", "...", "…", ":", ";")):
        return True
    words = _TOKEN.findall(stripped.lower())
    return bool(words) and (words[-1] in CONTINUATION_WORDS or words[-1] in FILLERS)


# --- the audio model ------------------------------------------------------------------------------


class SmartTurn:
    """smart-turn v3.2 (pipecat-ai's ONNX file, assembled into the model directory).

    ``predict`` is blocking (0.1-0.2 s on one busy core): call it off the event loop. One ONNX
    session serves every interview of the process; onnxruntime's ``run`` is thread-safe.
    """

    def __init__(self, path: Path | None = None, *, threads: int = 1) -> None:
        if path is None:
            path = smart_turn_model()  # ModelError naming `interviewer models install` if absent
        options = ort.SessionOptions()
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = threads
        self._session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def predict(self, audio: np.ndarray, sample_rate: int = MODEL_RATE) -> float:
        """P(the speaker has finished) for mono audio (int16 or float) ending now."""
        x = to_model_audio(audio, sample_rate)
        n = int(WINDOW_S * MODEL_RATE)
        x = x[-n:] if x.size > n else np.pad(x, (n - x.size, 0))
        features = compute_whisper_log_mel_features(x, do_normalize=True)[None, ...]
        out = self._session.run(None, {"input_features": features})
        return float(np.asarray(out[0]).reshape(-1)[0])


def to_model_audio(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """float32 in [-1, 1] at 16 kHz."""
    x = np.asarray(audio)
    x = x.astype(np.float32) / 32768.0 if x.dtype == np.int16 else x.astype(np.float32)
    if sample_rate != MODEL_RATE:
        g = np.gcd(sample_rate, MODEL_RATE)
        x = resample_poly(x, MODEL_RATE // g, sample_rate // g).astype(np.float32)
    return x


_shared: SmartTurn | None = None
_shared_lock = threading.Lock()


def shared_model() -> SmartTurn:
    """Blocking on first use (loads in well under a second): the process's one SmartTurn."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = SmartTurn()
        return _shared


async def load_turn_model(settings: Settings) -> SmartTurn | None:
    """The settings' end-of-turn model, loaded off the event loop (None: ``turn_model=none``)."""
    if settings.turn_model == "none":
        return None
    return await asyncio.to_thread(shared_model)


# --- the policy -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TurnPolicy:
    """When a silence ends the answer. Defaults tuned by ``bench/turn_taking.py`` (see
    docs/turn-taking.md); ``max_pause_s`` is the opening's ``silence_threshold_s``."""

    max_pause_s: float = 3.0
    check_after_s: float = 0.5
    """Silence before the signals are asked (and the quickest a turn can end)."""
    complete_at: float = 0.5
    """smart-turn's score from which the audio sounds finished."""
    short_speech_s: float = 1.0
    """Under this much speech the model over-scores "finished": wait ``short_wait_s`` instead."""
    short_wait_s: float = 1.5
    pace_pauses: int = 3
    """Pauses the applicant has resumed after, before their pace counts..."""
    pace_speech_s: float = 10.0
    """...or this much speech for each pause they made, plus this much: a fluent speaker whose
    pauses are too short for the VAD to report (under ``min_pause_s``) has a pace too, their
    longest pause so far (``min_pause_s`` after 10 s without one, 0.9 s after 20 s with one
    of 0.9 s). A pause or two in little speech says too little: the pace stays unknown."""
    min_pause_s: float = 0.3
    """The shortest silence the VAD reports as a pause (``voice/stack.py`` SEGMENT_SILENCE_S)."""
    unknown_pace_wait_s: float = 2.5
    """A finished-sounding pause waits at least this long while their pace is not known..."""
    take_back_wait_s: float = 2.0
    """...or only this long when a turn ended too early can be taken back (see ``take_back_s``).
    Tuned by ``bench/turn_taking.py --tune`` (docs/turn-taking.md): 0.8 s interjected in a
    quarter of the mid-answer pauses; 2.0 s is the quickest with at most 10%."""
    take_back_s: float = 3.0
    """Speech that resumes within this long of the end of the applicant's speech, after the turn
    was ended, takes the turn back: the answer continues and the interviewer stops talking. A
    reply from the interviewer is cheap to withdraw in its first seconds ("Thank you.
    Question 2 of 8." carries no question yet), so a finished-sounding pause need not wait out
    the applicant's longest possible pause before it is answered."""
    pace_margin_s: float = 0.6
    """Added to the applicant's longest usual pause (90th percentile)..."""
    take_back_margin_s: float = 0.2
    """...or this when the turn can be taken back (tuned with ``take_back_wait_s``)."""
    pace_factor: float = 1.5
    """An unfinished-sounding pause waits this many times their usual longest pause..."""
    min_unfinished_wait_s: float = 2.0
    """...but never less than this (and never more than ``max_pause_s``)."""

    def usual_pause(self, pauses: Sequence[float], spoken_s: float = 0.0) -> float | None:
        """The applicant's longest usual pause (90th percentile), once there are enough; after
        enough speech (``spoken_s``, this interview's, see ``pace_speech_s``) with fewer, their
        longest.

        Pauses as long as the maximum were not pauses inside an answer (a turn ended there and
        the applicant went on after the reply): they say nothing about the pace."""
        inside = [p for p in pauses if p < self.max_pause_s]
        if len(inside) >= self.pace_pauses:
            return float(np.percentile(np.asarray(inside, dtype=float), 90))
        if spoken_s >= self.pace_speech_s * (len(inside) + 1):
            return max(inside, default=self.min_pause_s)
        return None

    def verdict(
        self,
        probability: float | None,
        text: str,
        speech_s: float,
        pauses: Sequence[float],
        *,
        spoken_s: float = 0.0,
        can_take_back: bool = False,
    ) -> Verdict:
        """How long a silence (from the end of speech) ends this turn, and why.

        ``pauses`` and ``spoken_s``: the applicant's pace so far (:class:`Pace`).
        ``can_take_back``: speech resuming within ``take_back_s`` would continue this answer
        (not after the last question, whose reply closes the interview)."""
        usual = self.usual_pause(pauses, spoken_s)
        finished = (
            probability is not None
            and probability >= self.complete_at
            and not unfinished_text(text)
        )
        if not finished:
            wait, reason = self.max_pause_s, "unfinished"
            if usual is not None:
                paced = max(self.min_unfinished_wait_s, usual * self.pace_factor)
                if paced < wait:
                    wait, reason = paced, "unfinished, quick pace"
            wait = min(wait, self.max_pause_s)
            return Verdict(wait, reason, probability, text, wait)
        wait, reason = self._finished_wait(speech_s, usual, can_take_back)
        quick, _ = self._finished_wait(speech_s, usual, True)
        return Verdict(wait, reason, probability, text, quick)

    def _finished_wait(
        self, speech_s: float, usual: float | None, can_take_back: bool
    ) -> tuple[float, str]:
        wait, reason = self.check_after_s, "finished"
        if speech_s < self.short_speech_s:
            wait, reason = self.short_wait_s, "finished, short"
        unknown = self.take_back_wait_s if can_take_back else self.unknown_pace_wait_s
        margin = self.take_back_margin_s if can_take_back else self.pace_margin_s
        if usual is None and unknown > wait:
            wait, reason = unknown, "finished, pace unknown"
        if usual is not None and usual + margin > wait:
            wait, reason = usual + margin, "finished, slow pace"
        return min(wait, self.max_pause_s), reason


@dataclass
class Pace:
    """What an applicant's speech so far says about their pauses: the pauses they went on
    speaking after, and how long they have spoken (a recording's replay adds its own)."""

    pauses: list[float] = field(default_factory=list)
    spoken_s: float = 0.0


@dataclass(frozen=True)
class Verdict:
    wait_s: float
    """The silence after the end of speech at which the turn ends."""
    reason: str
    probability: float | None
    text: str
    take_back_wait_s: float
    """The silence at which it would end were it a turn that can be taken back: an answer
    that cannot be is acknowledged then (``EndOfTurn.wait``)."""


# --- live: inside the agent ----------------------------------------------------------------------


Predict = Callable[[np.ndarray, int], Awaitable[float | None]]


class EndOfTurn:
    """One interview's end-of-turn decisions, on the capture's VAD clock."""

    def __init__(
        self, policy: TurnPolicy, model: SmartTurn | None = None, *, log_name: str = "interview"
    ) -> None:
        self.policy = policy
        self.model = model
        self.log_name = log_name
        self.verdicts: list[tuple[float, Verdict]] = []  # (speech end s, verdict): for tests/logs

    async def probability(self, audio: np.ndarray, sample_rate: int) -> float | None:
        """The model's score, off the event loop; None without a model (text and pace only)."""
        if self.model is None or audio.size == 0:
            return None
        return await asyncio.to_thread(self.model.predict, audio, sample_rate)

    async def judge(
        self,
        audio: np.ndarray,
        sample_rate: int,
        text: str,
        speech_s: float,
        pace: Pace,
        *,
        can_take_back: bool = False,
    ) -> Verdict:
        return self.policy.verdict(
            await self.probability(audio, sample_rate),
            text,
            speech_s,
            pace.pauses,
            spoken_s=pace.spoken_s,
            can_take_back=can_take_back,
        )

    async def wait(
        self,
        capture: AnswerCapture,
        *,
        can_take_back: bool = False,
        acknowledge: Callable[[str], None] | None = None,
        poll_s: float = 0.05,
        give_up_s: float = 60.0,
    ) -> None:
        """Until the current answer is over by the policy (cancellable: the session interrupts
        the reply if the applicant speaks again; speech that resumes here starts over).
        ``can_take_back``: the agent continues this answer if speech resumes soon after.
        ``acknowledge(words)`` is called once when a pause that sounds finished has lasted as
        long as a turn that can be taken back waits, but this one waits longer (the last):
        the agent can say "Thank you." then, as a person would, without ending the turn."""
        deadline = time.monotonic() + give_up_s
        judged: tuple[float, Verdict] | None = None  # for which speech end, what
        while time.monotonic() < deadline:
            rec = capture.current
            if rec is None or rec.finished:
                return
            last = rec.last_speech_end_s
            if capture.speaking or rec.open_segment is not None or last is None:
                if last is None and not capture.speaking and rec.open_segment is None:
                    return  # nothing said: the no-answer timer handles it
                await asyncio.sleep(poll_s)
                continue
            silence = rec.vad_time_s - last
            if silence >= self.policy.max_pause_s:
                return
            if silence >= self.policy.check_after_s and (judged is None or judged[0] != last):
                verdict = await self._judge_live(capture, rec, last, can_take_back)
                judged = (last, verdict)
                self.verdicts.append(judged)
                log.debug(
                    "%s: pause after %.2f s of audio: %s (p=%s), waits %.2f s (%d words)",
                    self.log_name,
                    last,
                    verdict.reason,
                    _rounded(verdict.probability),
                    verdict.wait_s,
                    len(verdict.text.split()),
                )
                continue  # speech may have resumed while the model ran: look again
            if judged is not None and judged[0] == last and silence >= judged[1].wait_s:
                return
            if (
                acknowledge is not None
                and judged is not None
                and judged[0] == last
                and judged[1].reason.startswith("finished")
                and silence >= judged[1].take_back_wait_s
            ):
                acknowledge(judged[1].text)
                acknowledge = None
            await asyncio.sleep(poll_s)

    async def _judge_live(
        self, capture: AnswerCapture, rec: Recording, last: float, can_take_back: bool
    ) -> Verdict:
        untaken = [s for s in rec.segments if not s.taken]
        # the words are needed anyway before the answer is taken: waiting for them costs
        # nothing, and deciding without the last words would judge a stale phrase
        pending = [s.task for s in untaken if s.task is not None and not s.task.done()]
        if pending:
            await asyncio.wait(pending, timeout=self.policy.max_pause_s)
        text = " ".join(s.text for s in untaken if s.text)
        start = untaken[0].start_s if untaken else max(0.0, last - WINDOW_S)
        now = rec.vad_time_s
        lo = int(max(start, now - WINDOW_S) * rec.sample_rate) * 2
        hi = int(now * rec.sample_rate) * 2
        audio = np.frombuffer(bytes(rec.pcm[lo:hi]), dtype=np.int16)
        speech = sum((s.end_s or s.start_s) - s.start_s for s in untaken)
        pace = Pace(
            [p for r in capture.history for p in r.pauses],
            sum((s.end_s or s.start_s) - s.start_s for r in capture.history for s in r.segments),
        )
        return await self.judge(
            audio, rec.sample_rate, text, speech, pace, can_take_back=can_take_back
        )


# --- replay: the same decision over a recording ---------------------------------------------------


@dataclass
class Replay:
    """Where the turns of one recording end, and what was decided at each pause."""

    turn_ends_s: list[float] = field(default_factory=list)
    taken_back_s: list[float] = field(default_factory=list)
    """Where a turn ended and the applicant's resumed speech took it back (``take_back``)."""
    speech_end_s: float | None = None
    speech: list[tuple[float, float]] = field(default_factory=list)  # VAD's (start, end)
    decisions: list[dict[str, Any]] = field(default_factory=list)


async def speech_regions(
    audio: np.ndarray, sample_rate: int, vad_model: Any, *, frame_s: float = 0.02
) -> list[tuple[float, float]]:
    """Where the product's VAD hears speech in ``audio`` (int16 mono), fed as if live."""
    stream = vad_model.stream()
    step = int(sample_rate * frame_s)
    pcm = as_int16(audio)
    for i in range(0, pcm.size, step):
        chunk = pcm[i : i + step]
        stream.push_frame(rtc.AudioFrame(chunk.tobytes(), sample_rate, 1, chunk.size))
    # the input goes silent after the file, as a microphone would
    silence = np.zeros(step, dtype=np.int16).tobytes()
    for _ in range(int(1.0 / frame_s)):
        stream.push_frame(rtc.AudioFrame(silence, sample_rate, 1, step))
    stream.end_input()
    regions: list[tuple[float, float]] = []
    start: float | None = None
    async for ev in stream:
        at = ev.samples_index / MODEL_RATE  # silero counts at its inference rate
        if ev.type == lk_vad.VADEventType.START_OF_SPEECH:
            start = max(0.0, at - ev.speech_duration)
        elif ev.type == lk_vad.VADEventType.END_OF_SPEECH and start is not None:
            regions.append((start, min(at - ev.silence_duration, audio.size / sample_rate)))
            start = None
    await stream.aclose()
    return regions


async def replay(
    audio: np.ndarray,
    sample_rate: int,
    *,
    vad_model: Any,
    end_of_turn: EndOfTurn,
    transcribe: Callable[[np.ndarray, int], Awaitable[str]] | None = None,
    pace: Pace | None = None,
    regions: list[tuple[float, float]] | None = None,
    prefix_s: float = 0.3,
    tail_s: float = 0.2,
    take_back: bool = False,
) -> Replay:
    """Run the live decision over a recording: at each pause, the verdict the agent would reach
    after ``check_after_s`` of silence; the turn ends if the pause outlasts its wait.

    ``take_back``: as live before any question but the last, a turn that ends inside a pause
    shorter than the policy's ``take_back_s`` is taken back by the speech after it (at most
    ``MAX_CONTINUES`` times a turn, as live) and goes on.

    ``transcribe`` gives the words of one stretch of speech (the capture transcribes each
    segment on its own); ``pace`` carries the applicant's pace from earlier recordings and
    gets this one's pauses and speech added, as the capture's recordings do live. ``regions`` skips
    the VAD when the caller already ran it (:func:`speech_regions`).
    """
    policy = end_of_turn.policy
    audio = as_int16(audio)
    pace = pace if pace is not None else Pace()
    pauses = pace.pauses
    if regions is None:
        regions = await speech_regions(audio, sample_rate, vad_model)
    out = Replay(speech=regions, speech_end_s=regions[-1][1] if regions else None)
    total = audio.size / sample_rate
    turn_first = 0  # index of the first region of the current turn
    taken = 0  # take-backs in the current turn
    texts: list[str] = []
    for i, (begin, end) in enumerate(regions):
        pace.spoken_s += end - begin
        nxt = regions[i + 1][0] if i + 1 < len(regions) else None
        pause = (nxt if nxt is not None else total + policy.max_pause_s + 1.0) - end
        if transcribe is not None:
            seg = _cut(audio, sample_rate, regions[i][0] - prefix_s, end + tail_s)
            texts.append(await transcribe(seg, sample_rate))
        if pause < policy.check_after_s:
            if nxt is not None:
                pauses.append(pause)
            continue
        now = end + policy.check_after_s
        start = regions[turn_first][0] - prefix_s
        window = _cut(audio, sample_rate, max(start, now - WINDOW_S), now)
        text = " ".join(t for t in texts[turn_first : i + 1] if t)
        speech = sum(e - s for s, e in regions[turn_first : i + 1])
        can_take_back = take_back and taken < MAX_CONTINUES
        verdict = await end_of_turn.judge(
            window,
            sample_rate,
            text,
            speech,
            Pace(list(pauses), pace.spoken_s),
            can_take_back=can_take_back,
        )
        ends = pause >= verdict.wait_s
        back = ends and can_take_back and nxt is not None and pause < policy.take_back_s
        out.decisions.append(
            {
                "speech_end_s": round(end, 3),
                "pause_s": round(pause, 3) if nxt is not None else None,
                "wait_s": round(verdict.wait_s, 3),
                "reason": verdict.reason,
                "probability": _rounded(verdict.probability),
                "text": text,
                "ends_turn": ends,
                "taken_back": back,
            }
        )
        if back:
            out.taken_back_s.append(round(end + verdict.wait_s, 3))
            taken += 1
            pauses.append(pause)  # a pause inside the answer after all: the pace learns it
        elif ends:
            out.turn_ends_s.append(round(end + verdict.wait_s, 3))
            turn_first, taken = i + 1, 0
        elif nxt is not None:
            pauses.append(pause)
    return out


def as_int16(audio: np.ndarray) -> np.ndarray:
    """int16 PCM from int16 or float ([-1, 1]) samples."""
    x = np.asarray(audio)
    if x.dtype != np.int16:
        x = np.clip(np.round(x.astype(np.float32) * 32767.0), -32768, 32767).astype(np.int16)
    return np.ascontiguousarray(x)


def _cut(audio: np.ndarray, sample_rate: int, start_s: float, end_s: float) -> np.ndarray:
    """``audio`` from ``start_s`` to ``end_s``, zero-padded past its end (the silence after)."""
    lo = max(0, int(start_s * sample_rate))
    hi = max(lo, int(end_s * sample_rate))
    part = audio[lo:hi]
    if part.size < hi - lo:
        part = np.concatenate([part, np.zeros(hi - lo - part.size, dtype=audio.dtype)])
    return part


def _rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 3)
