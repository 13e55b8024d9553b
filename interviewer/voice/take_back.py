"""Taking a turn back: the applicant goes on speaking right after the agent ended their turn.

The end-of-turn policy (:mod:`interviewer.voice.turns`) may end an answer that was not over;
an early end is cheap if the applicant can simply go on. From the moment a turn ends until
``TurnPolicy.take_back_s`` after the answer's speech, speech from the applicant continues that
answer, as long as the question asked after it has not been heard in full (an applicant who
has heard it may be answering it). ``InterviewAgent`` arms a :class:`TakeBackWindow` when it
stores an answer and asks :meth:`TakeBackWindow.due` on every VAD step.
"""

from __future__ import annotations

from dataclasses import dataclass

from interviewer.voice.capture import AnswerCapture

MIN_SPEECH_S = 0.3
"""Speech that takes a turn back must last this long: a click or a breath does not stop the
interviewer (livekit interrupts a line after 0.5 s of speech)."""


@dataclass(frozen=True)
class TakeBackWindow:
    """The answer that may be taken back, and where its speech ended (the capture's stream
    clock); ``epoch`` is the agent's epoch of the question asked after it."""

    key: tuple[str, int]
    epoch: int
    speech_end_s: float

    def due(self, capture: AnswerCapture, epoch: int, window_s: float) -> bool | None:
        """True: the applicant has been speaking again, inside the window, long enough to mean
        it. False: not (yet). None: the window is gone for good (another question, the
        question answered or heard in full, or the time past)."""
        rec = capture.current
        if epoch != self.epoch or rec is None or rec.finished or rec.segments:
            return None
        if rec.prompt_end_s is not None and not capture.speaking:
            return None  # the question was heard in full before any speech: answers are its
        if capture.vad_stream_s - self.speech_end_s >= window_s + 1.0:
            return None
        started = capture.speech_started_s
        if not capture.speaking or started is None or not capture.sample_rate:
            return False
        heard_at = None  # when the question had been heard in full, on the stream clock
        if rec.prompt_end_s is not None:
            heard_at = rec.stream_start / capture.sample_rate + rec.prompt_end_s
        return (
            self.speech_end_s < started < self.speech_end_s + window_s
            and (heard_at is None or started < heard_at)
            and capture.vad_stream_s - started >= MIN_SPEECH_S
        )
