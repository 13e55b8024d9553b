"""When speech right after a turn's end takes it back (voice/take_back.py), on a real
AnswerCapture whose clock is set by hand: the window, the speech it needs, and the question
heard in full."""

from __future__ import annotations

from interviewer.interview import Ask
from interviewer.voice.capture import AnswerCapture, Segment
from interviewer.voice.stt import WhisperSTT
from interviewer.voice.take_back import MIN_SPEECH_S, TakeBackWindow
from interviewer.voice.vad import load_vad

RATE = 16_000
ASK = Ask("colour", 0, 0, "What is your favourite colour?", 60.0, 45.0)


def _capture(*, speech_end_s: float, started_s: float, now_s: float) -> AnswerCapture:
    """The next question's recording began at ``speech_end_s + 0.5``; the applicant's speech
    started at ``started_s`` and the VAD has looked up to ``now_s`` (stream clock)."""
    capture = AnswerCapture(vad=load_vad(0.3), stt=WhisperSTT(model="tiny.en"))
    capture.sample_rate = RATE
    capture.stream_samples = int(now_s * RATE)
    rec = capture.begin(ASK, epoch=2)
    rec.sample_rate = RATE
    rec.stream_start = int((speech_end_s + 0.5) * RATE)
    rec.vad_samples = capture.stream_samples - rec.stream_start
    capture.speaking = True
    capture.speech_started_s = started_s
    rec.open_segment = Segment(start_s=max(0.0, started_s - speech_end_s - 0.5 - 0.3))
    return capture


def test_speech_inside_the_window_takes_the_turn_back_once_it_lasts() -> None:
    window = TakeBackWindow(("practice", 0), epoch=2, speech_end_s=10.0)
    capture = _capture(speech_end_s=10.0, started_s=11.5, now_s=11.5 + MIN_SPEECH_S + 0.05)
    assert window.due(capture, epoch=2, window_s=3.0) is True
    # not long enough yet: wait
    short = _capture(speech_end_s=10.0, started_s=11.5, now_s=11.6)
    assert window.due(short, epoch=2, window_s=3.0) is False
    # another question since: the window is gone
    assert window.due(capture, epoch=3, window_s=3.0) is None


def test_speech_after_the_window_or_the_question_is_an_answer() -> None:
    window = TakeBackWindow(("practice", 0), epoch=2, speech_end_s=10.0)
    late = _capture(speech_end_s=10.0, started_s=13.2, now_s=13.6)
    assert window.due(late, epoch=2, window_s=3.0) is False
    # the question had been heard in full before the applicant spoke: they are answering it
    heard = _capture(speech_end_s=10.0, started_s=12.0, now_s=12.4)
    assert heard.current is not None
    heard.current.prompt_end_s = 1.0  # 11.5 s on the stream clock, before 12.0
    assert window.due(heard, epoch=2, window_s=3.0) is False
    heard.speaking = False
    assert window.due(heard, epoch=2, window_s=3.0) is None
    # ...but speech that began before the question ended still takes it back
    early = _capture(speech_end_s=10.0, started_s=11.2, now_s=11.7)
    assert early.current is not None
    early.current.prompt_end_s = 1.0
    assert window.due(early, epoch=2, window_s=3.0) is True
    # the question answered already (a segment of its own): gone
    answered = _capture(speech_end_s=10.0, started_s=11.5, now_s=12.0)
    assert answered.current is not None
    answered.current.segments.append(Segment(start_s=0.2, end_s=0.9))
    assert window.due(answered, epoch=2, window_s=3.0) is None
