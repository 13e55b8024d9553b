"""Tests run offline: the conftest refuses connections beyond loopback, the hub is off."""

from __future__ import annotations

import socket
import time

import pytest

import interviewer  # noqa: F401  (sets HF_HUB_OFFLINE=1 before the hub library loads)


def test_a_connection_beyond_this_machine_fails_at_once() -> None:
    started = time.monotonic()
    with pytest.raises(OSError, match="offline"):
        socket.create_connection(("1.1.1.1", 443), timeout=5)
    assert time.monotonic() - started < 1.0


def test_loopback_connections_still_work() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_the_model_hub_is_never_asked() -> None:
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    assert constants.HF_HUB_OFFLINE
    started = time.monotonic()
    with pytest.raises(LocalEntryNotFoundError):
        hf_hub_download("sentence-transformers/all-MiniLM-L6-v2", "config.json")
    # online, with the network refused, the hub library retries for ~20 s before this error
    assert time.monotonic() - started < 2.0
