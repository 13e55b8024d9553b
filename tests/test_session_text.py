"""The interview agent in a real AgentSession, text mode: turns typed, lines read back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from livekit.agents import AgentSession, llm

from interviewer.banks.model import Bank
from interviewer.interview import MAX_REPEATS, InterviewFlow, Status
from interviewer.voice.agent import InterviewAgent, Step
from interviewer.voice.scripted import ScriptedLLM


def _criterion(cid: str, key_points: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "id": cid,
        "description": "d",
        "weight": 1,
        "levels": [{"score": 0, "descriptor": "no"}, {"score": 1, "descriptor": "yes"}],
        "key_points": [{"id": k, "text": t} for k, t in key_points],
    }


BANK = Bank.model_validate(
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
                "reference_answer": "r",
                "follow_ups": [{"trigger": "room-tone", "prompt": "What about the room tone?"}],
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
                "reference_answer": "r",
                "rubric": {"criteria": [_criterion("c2", [("meta", "Matching timecode.")])]},
            },
        ],
    }
)


@pytest.fixture
async def interview() -> AsyncIterator[tuple[AgentSession, InterviewAgent, list[Step]]]:
    steps: list[Step] = []

    async def persist(step: Step) -> None:
        steps.append(step)

    session: AgentSession = AgentSession(llm=ScriptedLLM())
    agent = InterviewAgent(InterviewFlow(BANK), persist=persist)
    await session.start(agent)
    try:
        yield session, agent, steps
    finally:
        await session.aclose()


def assistant_text(result: Any) -> str:
    return result.expect.next_event().is_message(role="assistant").event().item.text_content


def messages(session: AgentSession, role: str) -> list[str]:
    return [
        item.text_content or ""
        for item in session.history.items
        if isinstance(item, llm.ChatMessage) and item.role == role
    ]


async def test_greeting_consent_and_practice_on_enter(interview: Any) -> None:
    session, _agent, steps = interview
    for _ in range(50):
        if messages(session, "assistant"):
            break
        await asyncio.sleep(0.02)
    opening = messages(session, "assistant")[0]
    assert "Video editor screen" in opening and "recorded" in opening
    assert opening.rstrip().endswith("Tell me what you edit.")
    assert steps[0].event == "start" and steps[0].next_question_index == -1


async def test_a_whole_interview_in_text(interview: Any) -> None:
    session, agent, steps = interview

    reply = assistant_text(await session.run(user_input="I cut documentaries."))
    assert "When do you use a J cut?" in reply and "Question 1 of 2" in reply

    reply = assistant_text(await session.run(user_input="Sorry, can you say that again?"))
    assert reply.startswith("Of course") and "When do you use a J cut?" in reply

    # misses the room-tone key point: the follow-up comes
    reply = assistant_text(await session.run(user_input="The incoming audio starts early."))
    assert "What about the room tone?" in reply

    reply = assistant_text(await session.run(user_input="I crossfade the room tone."))
    assert "How do proxies relink?" in reply

    reply = assistant_text(await session.run(user_input="Timecode and reel names must match."))
    assert "Goodbye" in reply
    await asyncio.wait_for(agent.ended.wait(), 5)

    recorded = [
        (r.question_id, r.attempt, r.status, r.transcript) for s in steps for r, _ in s.records
    ]
    assert recorded == [
        ("practice", 0, Status.answered, "I cut documentaries."),
        ("split-edits", 0, Status.answered, "The incoming audio starts early."),
        ("split-edits", 1, Status.answered, "I crossfade the room tone."),
        ("proxies", 0, Status.answered, "Timecode and reel names must match."),
    ]
    assert steps[-1].finished and steps[-1].next_question_index == 2
    # every step carries the state to resume from
    assert all(s.state["v"] == 1 for s in steps)


async def test_timers_in_text_mode(interview: Any) -> None:
    session, agent, steps = interview
    await session.run(user_input="I cut trailers.")

    handle = await agent.silence_timeout()
    assert handle is not None
    await handle
    assert "Take your time" in messages(session, "assistant")[-1]

    handle = await agent.time_warning()
    assert handle is not None
    await handle
    assert "seconds left" in messages(session, "assistant")[-1]

    handle = await agent.time_up()
    assert handle is not None
    await handle
    assert "How do proxies relink?" in messages(session, "assistant")[-1]
    assert steps[-1].records[0][0].status is Status.timed_out

    await (await agent.silence_timeout())  # type: ignore[misc]
    await (await agent.silence_timeout())  # type: ignore[misc]
    assert "Goodbye" in messages(session, "assistant")[-1]
    assert steps[-1].records[0][0].status is Status.no_answer
    await asyncio.wait_for(agent.ended.wait(), 5)


async def test_repeat_question_button(interview: Any) -> None:
    """The page's button: the pending question again, nothing recorded, at most MAX_REPEATS."""
    session, agent, steps = interview
    reply = assistant_text(await session.run(user_input="I cut documentaries."))
    assert "When do you use a J cut?" in reply
    recorded = len([r for s in steps for r in s.records])
    for _ in range(MAX_REPEATS):
        before = len(messages(session, "assistant"))
        assert await agent.repeat_question() == "ok"
        for _ in range(250):
            if len(messages(session, "assistant")) > before:
                break
            await asyncio.sleep(0.02)
        said = messages(session, "assistant")[-1]
        assert said.startswith("Of course") and "When do you use a J cut?" in said
    assert await agent.repeat_question() == "limit"
    assert steps[-1].event == "repeat"
    assert len([r for s in steps for r in s.records]) == recorded  # a repeat is not an answer
    # the repeats did not change which question the answer goes to
    await session.run(user_input="The incoming audio starts early and I crossfade room tone.")
    assert [r.question_id for r, _ in steps[-1].records] == ["split-edits"]
    await session.run(user_input="Timecode and reel names must match.")
    await asyncio.wait_for(agent.ended.wait(), 5)
    assert await agent.repeat_question() == "none"
