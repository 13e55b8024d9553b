"""The interview core: what the agent says and records next, given what just happened.

Plain Python on purpose: no I/O, no clock, no livekit, no database. The voice agent (or a test,
or a future text chat) feeds it events and carries out the actions it returns, so every branch
of an interview can be tested in microseconds and the same rules run behind any transport.

Events: :meth:`InterviewFlow.start`, :meth:`~InterviewFlow.answer`,
:meth:`~InterviewFlow.silence_timeout`, :meth:`~InterviewFlow.time_warning`,
:meth:`~InterviewFlow.time_up`, and the applicant's requests :meth:`~InterviewFlow.repeat`,
:meth:`~InterviewFlow.more_time` and :meth:`~InterviewFlow.continue_answer` (spoken requests
are recognised by :mod:`interviewer.utterances`). Each returns a list of actions to carry out
in order: :class:`Say` (speak a line), :class:`Ask` (speak a question and start listening for
its answer), :class:`Record` (store an answer with a status) and :class:`End`.

Flow: greeting and consent line, an unscored practice question, every question of the bank in
order (each optionally followed by the bank's follow-ups), then a closing line.

Per answer: a request to repeat re-asks without recording; silence gets one re-prompt, then the
answer is recorded as ``no_answer`` and the interview moves on; at the time limit what was said
is recorded as ``timed_out``. The applicant may ask for more time (the silence clock starts
again), and, after the agent moved on, say they were not finished: the interview goes back to
the answer recorded last and what they say next is appended to it (:class:`Record` with
``continued``), whatever question had been put since is dropped unrecorded. After an answer,
a follow-up is asked when the answer seems to miss the key point that triggers it. "Seems to
miss" is a cheap lexical check (:func:`misses_key_point`), good enough to decide whether to ask
one more question; the real rubric scorer runs later, on the stored transcript, and never sees
this guess.

:attr:`InterviewFlow.state` is a small JSON-able dict. Persist it after every step: a flow
rebuilt from it resumes by asking the question that was pending (never one already recorded).
"""

from __future__ import annotations

import copy
import enum
import re
from dataclasses import dataclass
from typing import Any

from interviewer.banks.model import Bank, Question
from interviewer.utterances import is_continue_request, is_more_time_request, is_repeat_request

__all__ = ["is_continue_request", "is_more_time_request", "is_repeat_request"]

STATE_VERSION = 1
PRACTICE_ID = "practice"
PRACTICE_INDEX = -1
PRACTICE_TIME_LIMIT_S = 60
MAX_REPEATS = 3
"""Repeat requests honoured per question; beyond that the words count as the answer."""
MAX_MORE_TIME = 5
"""Requests for more time honoured per question (each restarts the no-answer clock)."""
MAX_CONTINUES = 3
"""How often one answer may be taken up again after the agent moved on."""
NO_ANSWER_KEY = "no_answer_timeout_s"
"""An opening's setting (``Opening.settings``): the silence after a question that counts as no
answer, in seconds; the transports time it (``voice/agent.py``), this core only hears of it."""


class Status(enum.StrEnum):
    """How an answer ended; the values are those of ``store.models.AnswerStatus``."""

    answered = "answered"
    no_answer = "no_answer"
    timed_out = "timed_out"


class Phase(enum.StrEnum):
    not_started = "not_started"
    asking = "asking"  # a question is out and its answer not yet recorded
    closed = "closed"


# --- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Say:
    """Speak a line that is not a question (greeting, re-prompt, warning, closing...)."""

    text: str
    kind: str


@dataclass(frozen=True)
class Ask:
    """Speak a question, then listen: the answer's clock starts when it has been spoken."""

    question_id: str
    question_index: int  # -1 for the practice question
    attempt: int  # 0 = the question, n = its n-th follow-up in the bank
    text: str
    time_limit_s: float
    warning_at_s: float  # seconds after the question when the time warning is due
    repeat: bool = False  # the same question asked again (repeat request, resume)
    continued: bool = False
    """Back to an answer already recorded: not spoken again (a :class:`Say` invites the
    applicant to go on), and its recording continues the stored one."""

    @property
    def key(self) -> tuple[str, int]:
        return (self.question_id, self.attempt)


@dataclass(frozen=True)
class Record:
    """Store the answer to a question; the transport attaches audio and timings to it."""

    question_id: str
    question_index: int
    attempt: int
    status: Status
    transcript: str  # the whole answer, the earlier part's words first when ``continued``
    continued: bool = False
    """It replaces the answer recorded before for the same key: the transport appends this
    part's audio and words to that answer's, rather than storing them alone."""

    @property
    def key(self) -> tuple[str, int]:
        return (self.question_id, self.attempt)


@dataclass(frozen=True)
class End:
    reason: str = "completed"


Action = Say | Ask | Record | End


# --- the fixed lines -------------------------------------------------------------------------


@dataclass(frozen=True)
class Script:
    """Everything the agent says that does not come from the bank (override per opening)."""

    greeting: str = "Hello, and thank you for joining this interview: {title}."
    consent: str = (
        "Before we start: this interview is recorded and transcribed, and your answers are "
        "scored against a rubric written by experts in the field. By continuing, you agree "
        "to this. You can ask me to repeat a question at any time."
    )
    practice_intro: str = "First, a short practice question that is not scored."
    practice_done: str = "Thank you, that worked. Now the real questions begin."
    question_intro: str = "Question {number} of {total}."
    follow_up_intro: str = "A follow-up question."
    ack: str = "Thank you."
    repeat: str = "Of course. Here is the question again."
    reprompt: str = (
        "Take your time. Please answer when you are ready, or ask me to repeat the question."
    )
    move_on: str = "Let's move on."
    warning: str = "About {seconds} seconds left for this question."
    time_up: str = "Thank you, that is the time for this question."
    resume: str = "Welcome back. Let's continue where we left off."
    go_on: str = "Of course. Please go on with your answer; I am listening."
    more_time: str = "Of course, take your time. I will wait."
    closing: str = (
        "That was the last question. Thank you for your time. Your answers have been "
        "recorded, and you will hear from us soon. Goodbye."
    )


# --- the lexical check for follow-ups -------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers him his how i if in into is it its itself
    just me more most my no nor not of off on once only or other our ours out over own same she
    should so some such than that the their theirs them then there these they this those through
    to too under until up very was we were what when where which while who whom why will with
    would you your yours one ones use uses used using so make makes made get gets thing things
    way ways e g eg ie etc""".split()  # noqa: SIM905
)
_SUFFIXES = ("ings", "ing", "edly", "ed", "es", "ly", "s")


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    """Lower-cased, crudely stemmed words that carry meaning (no stopwords, no 1-2 letter words)."""
    return {_stem(w) for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in _STOPWORDS}


def key_point_coverage(key_point: str, answer: str) -> float:
    """Share of the key point's content words that the answer also uses (0..1)."""
    wanted = content_words(key_point)
    if not wanted:
        return 1.0
    return len(wanted & content_words(answer)) / len(wanted)


def misses_key_point(key_point: str, answer: str, *, min_coverage: float = 1 / 3) -> bool:
    """Whether an answer seems to miss a key point, judged on shared content words only.

    Deliberately cheap and pure: it only decides whether a follow-up is worth asking. Experts
    paraphrase, so the bar is low (a third of the key point's content words); the rubric scorer
    judges the meaning later from the stored transcript.
    """
    return key_point_coverage(key_point, answer) < min_coverage


def warning_offset(time_limit_s: float, lead_s: float = 30.0) -> float:
    """When the time warning is due: ``lead_s`` before the limit, or halfway for short limits."""
    return max(time_limit_s - lead_s, time_limit_s / 2)


# --- the state machine -----------------------------------------------------------------------


class InterviewFlow:
    """One applicant's interview over one bank: events in, actions out, ``state`` to persist."""

    def __init__(
        self,
        bank: Bank,
        state: dict[str, Any] | None = None,
        *,
        script: Script | None = None,
        max_follow_ups: int = 1,
        warning_lead_s: float = 30.0,
    ) -> None:
        self.bank = bank
        self.script = script or Script()
        self.max_follow_ups = max_follow_ups
        self.warning_lead_s = warning_lead_s
        self._s: dict[str, Any] = _initial_state() if not state else _checked(state, bank)

    # -- what the outside reads --

    @property
    def state(self) -> dict[str, Any]:
        """A deep copy, JSON-serializable; ``InterviewFlow(bank, state)`` resumes from it."""
        return copy.deepcopy(self._s)

    @property
    def phase(self) -> Phase:
        return Phase(self._s["phase"])

    @property
    def finished(self) -> bool:
        return self.phase is Phase.closed

    @property
    def next_question_index(self) -> int:
        """The question to ask on resume (-1 practice); ``len(questions)`` once closed."""
        if self.phase is Phase.closed:
            return len(self.bank.questions)
        return int(self._s["index"])

    @property
    def can_continue(self) -> bool:
        """Whether the applicant may take up the answer recorded last again (the page's
        "I wasn't finished" button is offered while this holds)."""
        last = self._s["last"]
        return (
            self.phase is Phase.asking
            and last is not None
            and last["status"] != Status.timed_out.value
            and last["continues"] < MAX_CONTINUES
        )

    @property
    def continuable(self) -> tuple[str, int] | None:
        """The key (question id, attempt) of the answer :meth:`continue_answer` would take up."""
        if not self.can_continue:
            return None
        last = self._s["last"]
        return self._ask(last["index"], last["attempt"]).key

    @property
    def current(self) -> Ask | None:
        """The question waiting for an answer, if any."""
        if self.phase is not Phase.asking:
            return None
        return self._ask(self._s["index"], self._s["attempt"])

    def prompts(self) -> list[str]:
        """Every line this flow can say, for rendering speech ahead of time."""
        sc = self.script
        total = len(self.bank.questions)
        lines = [
            sc.greeting.format(title=self.bank.title),
            sc.consent,
            sc.practice_intro,
            self.bank.practice_question,
            sc.practice_done,
            sc.follow_up_intro,
            sc.ack,
            sc.repeat,
            sc.reprompt,
            sc.move_on,
            sc.time_up,
            sc.resume,
            sc.go_on,
            sc.more_time,
            sc.closing,
            self._warning_text(PRACTICE_TIME_LIMIT_S),
        ]
        for number, q in enumerate(self.bank.questions, start=1):
            lines.append(sc.question_intro.format(number=number, total=total))
            lines.append(q.prompt)
            lines.extend(f.prompt for f in q.follow_ups)
            lines.append(self._warning_text(q.time_limit_s))
        return list(dict.fromkeys(lines))

    # -- events --

    def start(self) -> list[Action]:
        """Opening lines and the first question; on a resumed flow, the pending question."""
        phase = self.phase
        if phase is Phase.closed:
            return [End()]
        if phase is Phase.asking:
            self._s.update(reprompted=False, warned=False)
            current = self._ask(self._s["index"], self._s["attempt"], repeat=True)
            return [Say(self.script.resume, "resume"), current]
        sc = self.script
        self._s.update(phase=Phase.asking.value, index=PRACTICE_INDEX, attempt=0)
        self._reset_question()
        return [
            Say(sc.greeting.format(title=self.bank.title), "greeting"),
            Say(sc.consent, "consent"),
            Say(sc.practice_intro, "practice_intro"),
            self._ask(PRACTICE_INDEX, 0),
        ]

    def answer(self, text: str) -> list[Action]:
        """The applicant finished speaking (end of turn) with this transcript."""
        if self.phase is not Phase.asking:
            return []
        text = " ".join(text.split())
        if not text:
            return self.silence_timeout()
        if is_repeat_request(text) and self._s["repeats"] < MAX_REPEATS:
            return self.repeat()
        if is_continue_request(text) and self.can_continue:
            return self.continue_answer()
        if is_more_time_request(text) and self._s["more_time"] < MAX_MORE_TIME:
            return self.more_time()
        return self._finish(Status.answered, text)

    def repeat(self) -> list[Action]:
        """The applicant asked for the question again (aloud, or with the page's button).

        Nothing is recorded; [] when no question is out or it was repeated MAX_REPEATS times
        already (the caller tells the applicant to answer as best they can)."""
        if self.phase is not Phase.asking or self._s["repeats"] >= MAX_REPEATS:
            return []
        self._s["repeats"] += 1
        self._s.update(reprompted=False, warned=False)
        current = self._ask(self._s["index"], self._s["attempt"], repeat=True)
        return [Say(self.script.repeat, "repeat"), current]

    def more_time(self) -> list[Action]:
        """The applicant asked for more time (aloud, or with the page's button).

        The re-prompt is owed again and the line said is a :class:`Say` of kind
        ``more_time``: the transport starts the no-answer clock again once it has played, so
        the applicant gets a whole new period. The time limit is not moved. [] when no
        question is out or this question had MAX_MORE_TIME already."""
        if self.phase is not Phase.asking or self._s["more_time"] >= MAX_MORE_TIME:
            return []
        self._s["more_time"] += 1
        self._s["reprompted"] = False
        return [Say(self.script.more_time, "more_time")]

    def continue_answer(self) -> list[Action]:
        """The applicant was not finished with the answer recorded last ("I wasn't finished").

        The interview goes back to that question: the question out now (if the agent had
        moved on) is dropped unrecorded and will be asked again, in full, after it. The next
        answer is recorded as the earlier words followed by the new ones (``continued``), so
        the stored answer, and its score, cover all of it. A timed-out answer cannot be
        continued (that would lift its time limit). [] when there is nothing to continue."""
        if not self.can_continue:
            return []
        last = self._s["last"]
        self._s.update(
            index=last["index"],
            attempt=last["attempt"],
            pending=list(last["pending"]),
            last=None,
            continuing={
                "transcript": last["transcript"],
                "status": last["status"],
                "continues": last["continues"] + 1,
            },
        )
        self._s["recorded"] -= 1
        self._reset_question()
        current = self._ask(last["index"], last["attempt"], repeat=True, continued=True)
        return [Say(self.script.go_on, "continue"), current]

    def end_continuation(self) -> list[Action]:
        """A continued answer gained no words (the speech that took the turn back was a cough,
        a noise): it is recorded as it was, and the interview moves on. [] when no answer is
        being continued."""
        earlier = self._s["continuing"]
        if self.phase is not Phase.asking or earlier is None:
            return []
        return self._finish(Status(earlier["status"]), "")

    @property
    def last_question(self) -> bool:
        """The question out is the bank's last: the reply to its answer may close the
        interview, and then the answer cannot be taken up again."""
        return self.phase is Phase.asking and self._s["index"] == len(self.bank.questions) - 1

    def silence_timeout(self) -> list[Action]:
        """Nothing was said for the no-answer timeout since the question (or the re-prompt)."""
        if self.phase is not Phase.asking:
            return []
        if not self._s["reprompted"]:
            self._s["reprompted"] = True
            return [Say(self.script.reprompt, "reprompt")]
        return self._finish(Status.no_answer, "")

    def time_warning(self) -> list[Action]:
        """The warning point of the current question's time limit was reached."""
        if self.phase is not Phase.asking or self._s["warned"]:
            return []
        self._s["warned"] = True
        current = self._ask(self._s["index"], self._s["attempt"])
        return [Say(self._warning_text(current.time_limit_s), "warning")]

    def time_up(self, transcript: str = "") -> list[Action]:
        """The time limit was reached; ``transcript`` is what was said so far (kept)."""
        if self.phase is not Phase.asking:
            return []
        return self._finish(Status.timed_out, " ".join(transcript.split()))

    # -- internals --

    def _warning_text(self, time_limit_s: float) -> str:
        left = time_limit_s - warning_offset(time_limit_s, self.warning_lead_s)
        return self.script.warning.format(seconds=_round_seconds(left))

    def _question(self, index: int) -> Question:
        return self.bank.questions[index]

    def _ask(
        self, index: int, attempt: int, *, repeat: bool = False, continued: bool = False
    ) -> Ask:
        if index == PRACTICE_INDEX:
            limit: float = PRACTICE_TIME_LIMIT_S
            return Ask(
                PRACTICE_ID,
                PRACTICE_INDEX,
                0,
                self.bank.practice_question,
                limit,
                warning_offset(limit, self.warning_lead_s),
                repeat,
                continued,
            )
        q = self._question(index)
        text = q.prompt if attempt == 0 else q.follow_ups[attempt - 1].prompt
        limit = q.time_limit_s
        offset = warning_offset(limit, self.warning_lead_s)
        return Ask(q.id, index, attempt, text, limit, offset, repeat, continued)

    def _reset_question(self) -> None:
        self._s.update(reprompted=False, warned=False, repeats=0, more_time=0)

    def _finish(self, status: Status, text: str) -> list[Action]:
        index, attempt = self._s["index"], self._s["attempt"]
        current = self._ask(index, attempt)
        earlier = self._s["continuing"]
        if earlier is not None:
            self._s["continuing"] = None
            if status is Status.no_answer:  # nothing added: the answer stays as it was
                status, text = Status(earlier["status"]), earlier["transcript"]
            else:
                text = " ".join(f"{earlier['transcript']} {text}".split())
        actions: list[Action] = [
            Record(current.question_id, index, attempt, status, text, earlier is not None),
        ]
        self._s["recorded"] += 1
        self._s["last"] = {
            "index": index,
            "attempt": attempt,
            "status": status.value,
            "transcript": text,
            "pending": list(self._s["pending"]),
            "continues": earlier["continues"] if earlier is not None else 0,
        }
        if status is Status.no_answer:
            actions.append(Say(self.script.move_on, "move_on"))
        elif status is Status.timed_out:
            actions.append(Say(self.script.time_up, "time_up"))

        if index == PRACTICE_INDEX:
            if status is Status.answered:
                actions.append(Say(self.script.practice_done, "practice_done"))
            return actions + self._next_question(0)

        q = self._question(index)
        if status is Status.answered:
            if attempt == 0:
                candidates = list(range(1, len(q.follow_ups) + 1))
            else:
                candidates = list(self._s["pending"])
            pending = [n for n in candidates if self._missed(q, q.follow_ups[n - 1].trigger, text)]
            if attempt == 0:
                pending = pending[: self.max_follow_ups]
            if pending:
                self._s.update(attempt=pending[0], pending=pending[1:])
                self._reset_question()
                return [
                    *actions,
                    Say(self.script.ack, "ack"),
                    Say(self.script.follow_up_intro, "follow_up_intro"),
                    self._ask(index, pending[0]),
                ]
            actions.append(Say(self.script.ack, "ack"))
        return actions + self._next_question(index + 1)

    def _missed(self, q: Question, key_point_id: str, text: str) -> bool:
        for criterion in q.rubric.criteria:
            for kp in criterion.key_points:
                if kp.id == key_point_id:
                    return misses_key_point(kp.text, text)
        return False

    def _next_question(self, index: int) -> list[Action]:
        self._s["pending"] = []
        if index >= len(self.bank.questions):
            self._s.update(phase=Phase.closed.value, index=len(self.bank.questions), attempt=0)
            return [Say(self.script.closing, "closing"), End()]
        self._s.update(index=index, attempt=0)
        self._reset_question()
        intro = self.script.question_intro.format(number=index + 1, total=len(self.bank.questions))
        return [Say(intro, "question_intro"), self._ask(index, 0)]


def _round_seconds(seconds: float) -> int:
    return max(5, round(seconds / 5.0) * 5)


def _initial_state() -> dict[str, Any]:
    return {
        "v": STATE_VERSION,
        "phase": Phase.not_started.value,
        "index": PRACTICE_INDEX,
        "attempt": 0,
        "pending": [],
        "reprompted": False,
        "warned": False,
        "repeats": 0,
        "more_time": 0,
        "recorded": 0,
        "last": None,  # the answer recorded last, while it may still be continued
        "continuing": None,  # the earlier part of the answer being continued
    }


def _checked(state: dict[str, Any], bank: Bank) -> dict[str, Any]:
    """A stored state, validated against the bank, so a bad row fails loudly here."""
    s = {**_initial_state(), **copy.deepcopy(state)}
    if s["v"] != STATE_VERSION:
        raise ValueError(f"interview state version {s['v']} is not {STATE_VERSION}")
    Phase(s["phase"])
    index, attempt = int(s["index"]), int(s["attempt"])
    if s["phase"] == Phase.asking.value:
        if index == PRACTICE_INDEX:
            if attempt != 0:
                raise ValueError("interview state: the practice question has no follow-ups")
        elif not 0 <= index < len(bank.questions):
            raise ValueError(f"interview state: question index {index} is not in bank {bank.id}")
        elif not 0 <= attempt <= len(bank.questions[index].follow_ups):
            raise ValueError(f"interview state: no follow-up {attempt} for question {index}")
    return s
