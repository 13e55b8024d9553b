"""The LiveKit transport: interviews in LiveKit rooms, for deployments past one machine.

``rooms`` is the contract between the web app and the agent server (room names, the
applicant's identity and token, Egress); ``server`` is the livekit-agents server
(``interviewer worker``) whose job processes run each room's interview through
:mod:`interviewer.lifecycle`. The web app's routes for it are in :mod:`interviewer.web.livekit`.
"""

from interviewer.transports.livekit.rooms import (
    AGENT_NAME,
    LiveKitNotConfigured,
    applicant_identity,
    applicant_token,
    egress_request,
    interview_of_room,
    require_config,
    room_name,
)

__all__ = [
    "AGENT_NAME",
    "LiveKitNotConfigured",
    "applicant_identity",
    "applicant_token",
    "egress_request",
    "interview_of_room",
    "require_config",
    "room_name",
]
