"""What a short utterance of the applicant asks for, instead of being an answer.

Plain text checks for the interview core (:mod:`interviewer.interview`): "could you repeat the
question?", "I need more time", "sorry, I wasn't finished". Only short utterances count, so a
long answer that happens to use one of these words stays an answer.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+")

_REPEAT = re.compile(
    r"\b("
    r"repeat|say (that|it|this) again|come again|pardon|once more|one more time"
    r"|(didn't|did not|couldn't|could not|can't|cannot) (quite )?(hear|catch|understand|follow)"
    r"|what was the question|what's the question|rephrase"
    r")\b"
)
_MAX_REPEAT_WORDS = 14


def is_repeat_request(text: str) -> bool:
    """A short utterance asking to hear the question again ("sorry, can you say that again?").

    Only short utterances count: a long answer that happens to contain "repeat" is an answer.
    """
    words = _WORD.findall(text.lower().replace("’", "'"))
    if not words or len(words) > _MAX_REPEAT_WORDS:
        return False
    normalized = " ".join(re.findall(r"[a-z0-9']+", text.lower().replace("’", "'")))
    return _REPEAT.search(normalized) is not None


_CONTINUE = re.compile(
    r"\b("
    r"(i was|i'm|i am|i wasn't|i was not) (not )?(quite )?(finished|done)( yet)?"
    r"|i (hadn't|had not|haven't|have not) (quite )?finished"
    r"|(let me|i'd like to|i want to|can i|could i|may i) (just )?finish"
    r"|not (quite )?(finished|done) yet"
    r")\b"
)
_MORE_TIME = re.compile(
    r"\b("
    r"more time|let me think|(need|have) to think|i'm thinking|i am thinking|bear with me"
    r"|(give me|need|just|wait) (a|one) (moment|minute|second|sec)"
    r"|one moment|hold on|hang on"
    r")\b"
)
_NEGATED = re.compile(r"\b(not|wasn't|hadn't|haven't|let me|like to|want to|can i|could i|may i)\b")
_MAX_REQUEST_WORDS = 10


def _short_request(text: str, pattern: re.Pattern[str]) -> bool:
    words = re.findall(r"[a-z0-9']+", text.lower().replace("’", "'"))
    if not words or len(words) > _MAX_REQUEST_WORDS:
        return False
    return pattern.search(" ".join(words)) is not None


def is_continue_request(text: str) -> bool:
    """A short utterance saying the last answer was cut off ("sorry, I wasn't finished").

    Positive phrasings only: "I'm done" is the end of an answer, not a request."""
    if not _short_request(text, _CONTINUE):
        return False
    normalized = " ".join(re.findall(r"[a-z0-9']+", text.lower().replace("’", "'")))
    return _NEGATED.search(normalized) is not None


def is_more_time_request(text: str) -> bool:
    """A short utterance asking to wait ("I need more time to think", "one moment please")."""
    return _short_request(text, _MORE_TIME)


def is_request(text: str) -> bool:
    """Any of the requests above: to repeat, for more time, to continue."""
    return is_repeat_request(text) or is_more_time_request(text) or is_continue_request(text)
