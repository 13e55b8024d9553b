"""deploy/: the compose stack and the image hang together (no Docker daemon runs here).

``docker-compose config`` (Debian's docker-compose, installed by ``make test``) validates the
file against the Compose schema without a daemon; the rest checks what a schema cannot: that
services name each other correctly, the app and the workers get settings this product really
has, and every file the stack mounts or copies exists.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from interviewer.cli import app as cli_app
from interviewer.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _env_example() -> dict[str, str]:
    out = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def test_compose_validates_against_the_schema(tmp_path: Path) -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.fail("docker-compose is not installed: run `make test` (apt package docker-compose)",
                    pytrace=False)  # fmt: skip
    env = tmp_path / ".env"
    env.write_text((DEPLOY / ".env.example").read_text())
    for profile in ([], ["--profile", "egress"]):
        run = subprocess.run(
            [tool, "--env-file", str(env), "-f", str(COMPOSE), *profile, "config", "--quiet"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
    # a secret left out is refused by name, not silently empty
    env.write_text("")
    run = subprocess.run([tool, "--env-file", str(env), "-f", str(COMPOSE), "config"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode != 0 and "set it in deploy/.env" in run.stderr


def test_services_reference_each_other(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "minio", "minio-init", "redis", "livekit", "app", "worker"} <= set(services)
    for name, svc in services.items():
        deps = svc.get("depends_on", [])
        for dep in deps if isinstance(deps, list) else list(deps):
            assert dep in services, f"{name} depends on unknown service {dep}"
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).is_file(), f"{name} mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name} uses undeclared volume {source}"
    # every URL a service is given points at a service of the stack, on the port it listens on
    ports = {"postgres": 5432, "minio": 9000, "livekit": 7880}
    livekit_conf = yaml.safe_load((DEPLOY / "livekit.yaml").read_text())
    assert livekit_conf["port"] == ports["livekit"]
    assert livekit_conf["redis"]["address"].split(":")[0] in services
    for name, svc in services.items():
        for key, value in (svc.get("environment") or {}).items():
            if not isinstance(value, str) or "://" not in value:
                continue
            url = urlparse(re.sub(r"\$\{[^}]*\}", "x", value))
            if url.hostname in ("localhost", None):
                continue
            assert url.hostname in services, f"{name}.{key} points at unknown host {url.hostname}"
            assert url.port == ports[url.hostname], f"{name}.{key}: wrong port"


def test_app_and_workers_get_real_settings(compose: dict[str, Any]) -> None:
    fields = set(Settings.model_fields)
    commands = {c.name for c in cli_app.registered_commands}
    app, worker = compose["services"]["app"], compose["services"]["worker"]
    assert app["command"][:2] == ["interviewer", "serve"] and "serve" in commands
    assert worker["command"][:2] == ["interviewer", "worker"] and "worker" in commands
    assert worker["command"][-2:] == ["--max-interviews", "${MAX_INTERVIEWS:-0}"]
    assert worker["deploy"]["replicas"] == "${WORKERS:-2}"
    scorer = compose["services"]["scorer"]
    assert scorer["command"] == ["interviewer", "scorer"] and "scorer" in commands
    assert "deploy" not in scorer  # one scorer: answers are never judged twice
    for svc in (app, worker):
        env = svc["environment"]
        for key in env:
            assert key.startswith("INTERVIEWER_"), key
            assert key.removeprefix("INTERVIEWER_").lower() in fields, f"no setting {key}"
        assert env["INTERVIEWER_TRANSPORT"] == "livekit" and env["INTERVIEWER_STORAGE"] == "s3"
    shared = ("INTERVIEWER_DATABASE_URL", "INTERVIEWER_S3_BUCKET", "INTERVIEWER_SECRET_KEY",
              "INTERVIEWER_LIVEKIT_API_KEY", "INTERVIEWER_LIVEKIT_API_SECRET")  # fmt: skip
    for key in shared:  # one database, one bucket, one LiveKit project for everyone
        assert app["environment"][key] == worker["environment"][key], key
    assert worker["environment"]["INTERVIEWER_LIVEKIT_URL"] == "ws://livekit:7880"
    # the keys LiveKit accepts are the keys the app signs with
    lk_keys = compose["services"]["livekit"]["environment"]["LIVEKIT_KEYS"]
    assert "LIVEKIT_API_KEY" in lk_keys and "LIVEKIT_API_SECRET" in lk_keys
    # every variable the file needs without a default is in .env.example
    needed = set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text()))
    assert needed <= set(_env_example()), needed - set(_env_example())


def test_dockerfile_copies_what_exists_and_sets_real_settings() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    fields = set(Settings.model_fields)
    for key in re.findall(r"\bINTERVIEWER_(\w+)=", text):
        assert key.lower() in fields, key
    for line in text.splitlines():
        if line.startswith("COPY") and "--from" not in line:
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), src
    assert "npm ci" in text and "package-lock.json" in text
    assert "interviewer models install" in text  # the weights are in the image, checked
