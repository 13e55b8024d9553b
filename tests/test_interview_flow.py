"""The interview core, branch by branch: pure Python, no audio, no livekit."""

from __future__ import annotations

import json
from typing import Any

import pytest

from interviewer.banks.model import Bank
from interviewer.interview import (
    MAX_CONTINUES,
    MAX_MORE_TIME,
    PRACTICE_ID,
    Ask,
    End,
    InterviewFlow,
    Phase,
    Record,
    Say,
    Status,
    is_continue_request,
    is_more_time_request,
    is_repeat_request,
    key_point_coverage,
    misses_key_point,
    warning_offset,
)


def _criterion(cid: str, key_points: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "id": cid,
        "description": "d",
        "weight": 1,
        "levels": [{"score": 0, "descriptor": "no"}, {"score": 1, "descriptor": "yes"}],
        "key_points": [{"id": k, "text": t} for k, t in key_points],
    }


def make_bank() -> Bank:
    return Bank.model_validate(
        {
            "id": "cuts",
            "title": "Video editor screen",
            "domain": "video",
            "version": 1,
            "description": "test bank",
            "practice_question": "Tell me what you edit.",
            "questions": [
                {
                    "id": "split-edits",
                    "prompt": "When do you use a J cut?",
                    "time_limit_s": 120,
                    "reference_answer": "r",
                    "follow_ups": [
                        {"trigger": "room-tone", "prompt": "What about the room tone?"},
                    ],
                    "rubric": {
                        "criteria": [
                            _criterion(
                                "c1",
                                [
                                    ("j-cut", "Audio of the incoming shot starts early."),
                                    ("room-tone", "Crossfades room tone under the split edit."),
                                ],
                            )
                        ]
                    },
                },
                {
                    "id": "proxies",
                    "prompt": "How do proxies relink?",
                    "time_limit_s": 30,
                    "reference_answer": "r",
                    "rubric": {"criteria": [_criterion("c2", [("meta", "Matching timecode.")])]},
                },
            ],
        }
    )


def asks(actions: list[Any]) -> list[Ask]:
    return [a for a in actions if isinstance(a, Ask)]


def records(actions: list[Any]) -> list[Record]:
    return [a for a in actions if isinstance(a, Record)]


def only_ask(actions: list[Any]) -> Ask:
    found = asks(actions)
    assert len(found) == 1, actions
    return found[0]


GOOD_J = "The sound of the next shot leads and I crossfade room tone under the split."


def test_start_greets_asks_consent_then_practice() -> None:
    flow = InterviewFlow(make_bank())
    actions = flow.start()
    says = [a for a in actions if isinstance(a, Say)]
    assert says[0].kind == "greeting" and "Video editor screen" in says[0].text
    assert says[1].kind == "consent" and "recorded" in says[1].text
    ask = only_ask(actions)
    assert ask.question_id == PRACTICE_ID and ask.question_index == -1
    assert actions[-1] is ask
    assert flow.next_question_index == -1


def test_practice_is_recorded_apart_then_questions_in_order_then_closing() -> None:
    flow = InterviewFlow(make_bank())
    flow.start()
    out = flow.answer("I cut documentaries in Premiere.")
    assert records(out) == [
        Record(PRACTICE_ID, -1, 0, Status.answered, "I cut documentaries in Premiere.")
    ]
    assert only_ask(out).question_id == "split-edits"
    assert flow.next_question_index == 0

    out = flow.answer(GOOD_J)  # covers room tone: no follow-up
    assert records(out)[0].question_id == "split-edits"
    assert only_ask(out).question_id == "proxies"
    intro = [a for a in out if isinstance(a, Say) and a.kind == "question_intro"]
    assert intro and intro[0].text == "Question 2 of 2."

    out = flow.answer("They relink when the timecode and reel names match.")
    assert records(out)[0].question_id == "proxies"
    assert not asks(out)
    assert isinstance(out[-1], End)
    assert any(isinstance(a, Say) and a.kind == "closing" for a in out)
    assert flow.finished and flow.next_question_index == 2
    assert flow.answer("anything") == [] and flow.silence_timeout() == []


def test_repeat_request_reasks_without_recording() -> None:
    flow = InterviewFlow(make_bank())
    flow.start()
    flow.answer("I edit trailers.")
    out = flow.answer("Sorry, could you repeat the question?")
    assert not records(out)
    again = only_ask(out)
    assert again.question_id == "split-edits" and again.repeat
    assert again.text == "When do you use a J cut?"
    out = flow.answer(GOOD_J)
    assert records(out)[0].transcript == GOOD_J


@pytest.mark.parametrize(
    "text",
    [
        "could you repeat the question",
        "Sorry, can you say that again?",
        "Pardon?",
        "I didn't catch that",
        "Come again?",
        "Can you repeat that please",
        "What was the question?",
    ],
)
def test_repeat_requests_detected(text: str) -> None:
    assert is_repeat_request(text)


@pytest.mark.parametrize(
    "text",
    [
        "I use a J cut when the next speaker should be heard first.",
        "",
        "We repeat the room tone under every split edit so the background never jumps, and we "
        "also check levels on every single cut before we lock the edit for the client review.",
    ],
)
def test_answers_are_not_repeat_requests(text: str) -> None:
    assert not is_repeat_request(text)


def test_repeats_are_bounded() -> None:
    flow = InterviewFlow(make_bank())
    flow.start()
    for _ in range(3):
        assert not records(flow.answer("repeat please"))
    assert records(flow.answer("repeat please"))[0].transcript == "repeat please"


def test_no_answer_reprompts_once_then_moves_on() -> None:
    flow = InterviewFlow(make_bank())
    flow.start()
    flow.answer("I edit trailers.")
    out = flow.silence_timeout()
    assert out == [Say(flow.script.reprompt, "reprompt")]
    assert flow.current is not None and flow.current.question_id == "split-edits"
    out = flow.silence_timeout()
    assert records(out) == [Record("split-edits", 0, 0, Status.no_answer, "")]
    assert only_ask(out).question_id == "proxies"  # no follow-up after no answer


def test_empty_transcript_counts_as_silence() -> None:
    flow = InterviewFlow(make_bank())
    flow.start()
    assert [a.kind for a in flow.answer("  ") if isinstance(a, Say)] == ["reprompt"]
    assert records(flow.answer(""))[0].status is Status.no_answer


def test_answer_after_reprompt_is_recorded_normally() -> None:
    flow = InterviewFlow(make_bank())
    flow.start()
    flow.silence_timeout()
    out = flow.answer("I cut news.")
    assert records(out)[0].status is Status.answered


def test_time_warning_once_then_cut_off_keeps_what_was_said() -> None:
    flow = InterviewFlow(make_bank())
    flow.start()
    flow.answer("I edit trailers.")
    ask = flow.current
    assert ask is not None and ask.time_limit_s == 120 and ask.warning_at_s == 90
    out = flow.time_warning()
    assert len(out) == 1 and out[0].kind == "warning" and "30 seconds" in out[0].text
    assert flow.time_warning() == []  # only once
    out = flow.time_up("The sound leads the picture and")
    assert records(out) == [
        Record("split-edits", 0, 0, Status.timed_out, "The sound leads the picture and")
    ]
    assert any(isinstance(a, Say) and a.kind == "time_up" for a in out)
    assert only_ask(out).question_id == "proxies"  # no follow-up after a cut-off


def test_short_limits_warn_halfway() -> None:
    assert warning_offset(30) == 15
    assert warning_offset(120) == 90
    flow = InterviewFlow(make_bank())
    flow.start()
    flow.answer("x y z")
    flow.answer(GOOD_J)
    assert flow.current is not None and flow.current.warning_at_s == 15
    assert "15 seconds" in flow.time_warning()[0].text


def test_follow_up_only_when_key_point_missed() -> None:
    flow = InterviewFlow(make_bank())
    flow.start()
    flow.answer("I edit trailers.")
    out = flow.answer("The audio of the incoming shot starts before the picture.")
    assert records(out)[0].attempt == 0
    follow = only_ask(out)
    assert (follow.question_id, follow.attempt) == ("split-edits", 1)
    assert follow.text == "What about the room tone?"
    assert flow.next_question_index == 0
    out = flow.answer("I crossfade the ambience.")
    assert records(out) == [
        Record("split-edits", 0, 1, Status.answered, "I crossfade the ambience.")
    ]
    assert only_ask(out).question_id == "proxies"


def test_follow_up_repeat_and_silence() -> None:
    flow = InterviewFlow(make_bank())
    flow.start()
    flow.answer("I edit trailers.")
    flow.answer("Audio starts early.")
    out = flow.answer("say that again?")
    assert only_ask(out).attempt == 1 and only_ask(out).repeat
    flow.silence_timeout()
    out = flow.silence_timeout()
    assert records(out) == [Record("split-edits", 0, 1, Status.no_answer, "")]


def test_lexical_key_point_check() -> None:
    kp = "Overlaps and crossfades room tone or ambience under the split."
    assert not misses_key_point(kp, "I crossfade the room tone under every split edit.")
    assert misses_key_point(kp, "I just cut on the beat.")
    assert key_point_coverage("the of and", "anything") == 1.0  # nothing to miss


def test_state_is_json_and_resume_asks_the_pending_question() -> None:
    bank = make_bank()
    flow = InterviewFlow(bank)
    flow.start()
    flow.answer("I edit trailers.")
    flow.silence_timeout()  # re-prompted, then the process dies
    saved = json.loads(json.dumps(flow.state))

    resumed = InterviewFlow(bank, saved)
    assert resumed.phase is Phase.asking and resumed.next_question_index == 0
    out = resumed.start()
    assert [a.kind for a in out if isinstance(a, Say)] == ["resume"]
    ask = only_ask(out)
    assert (ask.question_id, ask.attempt, ask.repeat) == ("split-edits", 0, True)
    # the re-prompt budget starts afresh after a resume
    assert [a.kind for a in resumed.silence_timeout() if isinstance(a, Say)] == ["reprompt"]
    out = resumed.answer(GOOD_J)
    assert records(out)[0].question_id == "split-edits"


def test_resume_mid_follow_up_and_after_close() -> None:
    bank = make_bank()
    flow = InterviewFlow(bank)
    flow.start()
    flow.answer("I edit trailers.")
    flow.answer("Audio starts early.")
    resumed = InterviewFlow(bank, flow.state)
    assert only_ask(resumed.start()).key == ("split-edits", 1)

    flow.answer("I crossfade the ambience.")
    flow.answer("Timecode and reel names must match.")
    assert flow.finished
    closed = InterviewFlow(bank, flow.state)
    assert closed.start() == [End()]


def test_bad_state_is_refused() -> None:
    with pytest.raises(ValueError):
        InterviewFlow(make_bank(), {"v": 1, "phase": "asking", "index": 7, "attempt": 0})
    with pytest.raises(ValueError):
        InterviewFlow(make_bank(), {"v": 99, "phase": "asking"})


def test_state_is_a_copy() -> None:
    flow = InterviewFlow(make_bank())
    flow.start()
    state = flow.state
    state["index"] = 1
    assert flow.next_question_index == -1


def test_prompts_cover_every_line_said() -> None:
    bank = make_bank()
    flow = InterviewFlow(bank)
    prompts = set(flow.prompts())
    said: list[str] = []
    said += [a.text for a in flow.start() if isinstance(a, Say | Ask)]
    for event in (
        lambda: flow.silence_timeout(),
        lambda: flow.time_warning(),
        lambda: flow.answer("repeat"),
        lambda: flow.answer("I edit."),
        lambda: flow.answer("Audio starts early."),
        lambda: flow.time_up("x"),
        lambda: flow.silence_timeout(),
        lambda: flow.silence_timeout(),
    ):
        said += [a.text for a in event() if isinstance(a, Say | Ask)]
    assert set(said) <= prompts, set(said) - prompts


# --- more time, and "I wasn't finished" ------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "I need more time.",
        "One moment please",
        "Let me think",
        "Can you give me a minute?",
        "Hold on, I am thinking",
    ],
)
def test_more_time_requests_detected(text: str) -> None:
    assert is_more_time_request(text)
    assert not is_continue_request(text)


@pytest.mark.parametrize(
    "text",
    [
        "Sorry, I wasn't finished.",
        "I was not done yet",
        "Wait, let me finish",
        "I hadn't finished",
        "I'm not finished",
    ],
)
def test_continue_requests_detected(text: str) -> None:
    assert is_continue_request(text)


@pytest.mark.parametrize(
    "text",
    [
        "I'm done.",
        "That is all, I am finished.",
        "When the render was not finished yet we waited for the proxies to relink with the "
        "original timecode of the camera files and then moved on",
        "I take a moment to listen to the room tone before I cut.",
        "The grade takes more time than the cut, because every shot is matched by hand.",
    ],
)
def test_answers_are_not_requests(text: str) -> None:
    assert not is_continue_request(text)
    assert not is_more_time_request(text)


def test_more_time_restarts_the_no_answer_clock() -> None:
    flow = InterviewFlow(make_bank())
    flow.start()
    assert [a.kind for a in flow.silence_timeout() if isinstance(a, Say)] == ["reprompt"]
    out = flow.answer("I need more time to think.")
    assert out == [Say(flow.script.more_time, "more_time")] and not records(out)
    # the re-prompt is owed again: the next silence re-prompts instead of moving on
    assert [a.kind for a in flow.silence_timeout() if isinstance(a, Say)] == ["reprompt"]
    assert records(flow.silence_timeout())[0].status is Status.no_answer


def test_more_time_is_bounded_per_question() -> None:
    flow = InterviewFlow(make_bank())
    flow.start()
    for _ in range(MAX_MORE_TIME):
        assert flow.more_time()
    assert flow.more_time() == []
    # beyond the bound, the words are the answer
    assert records(flow.answer("one moment"))[0].transcript == "one moment"
    assert flow.more_time()  # a new question, a new allowance


def test_continue_goes_back_and_appends_to_the_answer() -> None:
    flow = InterviewFlow(make_bank())
    flow.start()
    flow.answer("I cut documentaries.")
    assert flow.can_continue
    out = flow.answer("The sound of the next shot leads.")  # misses room tone: a follow-up
    assert only_ask(out).attempt == 1
    out = flow.continue_answer()
    ask = only_ask(out)
    assert out[0] == Say(flow.script.go_on, "continue")
    assert (ask.question_id, ask.attempt, ask.continued) == ("split-edits", 0, True)
    assert not flow.can_continue and flow.next_question_index == 0
    # the state survives a restart in the middle of it
    flow = InterviewFlow(make_bank(), json.loads(json.dumps(flow.state)))
    out = flow.answer("And I crossfade room tone under the split.")
    rec = records(out)[0]
    assert rec == Record(
        "split-edits",
        0,
        0,
        Status.answered,
        "The sound of the next shot leads. And I crossfade room tone under the split.",
        True,
    )
    # the whole answer now covers room tone: no follow-up, on to the next question
    assert only_ask(out).question_id == "proxies"


def test_continue_with_nothing_added_keeps_the_answer() -> None:
    flow = InterviewFlow(make_bank())
    flow.start()
    flow.answer("I cut documentaries.")
    flow.answer(GOOD_J)
    assert only_ask(flow.continue_answer()).question_id == "split-edits"
    flow.silence_timeout()
    out = flow.silence_timeout()
    assert records(out) == [Record("split-edits", 0, 0, Status.answered, GOOD_J, True)]
    assert only_ask(out).question_id == "proxies"


def test_a_taken_back_answer_that_gained_no_words_stands_as_it_was() -> None:
    flow = InterviewFlow(make_bank())
    assert flow.end_continuation() == []  # nothing being continued
    flow.start()
    flow.answer("I cut documentaries.")
    flow.answer(GOOD_J)
    flow.continue_answer()
    out = flow.end_continuation()  # no re-prompt, no waiting: the answer is recorded again
    assert records(out) == [Record("split-edits", 0, 0, Status.answered, GOOD_J, True)]
    assert only_ask(out).question_id == "proxies"
    assert flow.end_continuation() == []


def test_the_last_question_is_known() -> None:
    flow = InterviewFlow(make_bank())
    assert not flow.last_question  # not started
    flow.start()
    seen = []
    while not flow.finished:
        seen.append(flow.last_question)
        flow.answer(GOOD_J)
    assert seen == [False] * len(make_bank().questions) + [True]  # practice first
    assert not flow.last_question


def test_continue_said_aloud_and_its_limits() -> None:
    flow = InterviewFlow(make_bank())
    assert flow.continue_answer() == []  # not started
    flow.start()
    assert not flow.can_continue and flow.continue_answer() == []  # nothing recorded yet
    # "I wasn't finished" with nothing to continue is an answer like any other
    assert records(flow.answer("I wasn't finished"))[0].question_id == PRACTICE_ID
    for n in range(MAX_CONTINUES):
        out = flow.answer("Sorry, I wasn't finished.")
        assert only_ask(out).question_id == PRACTICE_ID, n
        flow.answer(f"part {n}")
    assert not flow.can_continue
    assert flow.continue_answer() == []
    stored = records(flow.time_up("late"))[0]
    assert stored.question_id == "split-edits"


def test_a_timed_out_answer_cannot_be_continued_nor_a_closed_interview() -> None:
    flow = InterviewFlow(make_bank())
    flow.start()
    flow.time_up("I cut")
    assert not flow.can_continue and flow.continue_answer() == []
    flow.answer(GOOD_J)
    flow.answer("Timecode.")
    assert flow.finished and flow.continue_answer() == [] and flow.more_time() == []
