"""The placeholder LLM of the interview's AgentSession: turns are scripted, not generated.

The session is given it only so that it runs ``InterviewAgent.llm_node`` at the end of each
user turn (voice/agent.py); it is never asked to chat.
"""

from __future__ import annotations

from typing import Any

from livekit.agents import NOT_GIVEN, llm
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, NotGivenOr


class ScriptedLLM(llm.LLM):
    """Stands in for a model so that the session runs ``llm_node``; it is never asked to chat."""

    @property
    def model(self) -> str:
        return "scripted"

    @property
    def provider(self) -> str:
        return "interviewer"

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        raise RuntimeError("ScriptedLLM has no model: InterviewAgent.llm_node answers instead")
