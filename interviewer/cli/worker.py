"""`interviewer worker` (the LiveKit agent server, transports/livekit/) and `interviewer scorer`."""

from __future__ import annotations

import contextlib
import os

import typer

from interviewer.cli._common import open_database, run_or_exit
from interviewer.config import get_settings
from interviewer.priority import background_process, yield_to_live
from interviewer.scoring.claims import (
    DEFAULT_LEASE_S,
    Status,
    score_claimed,
    scorer_name,
    status,
)
from interviewer.scoring.evidence import EvidenceFinder
from interviewer.scoring.judge import Judge


def worker(
    load_threshold: float = typer.Option(
        0.75,
        "--load-threshold",
        min=0.05,
        max=1.0,
        help="CPU load (0-1) past which this worker takes no new interviews; LiveKit sends "
        "them to another worker, or they wait for one.",
    ),
    max_interviews: int = typer.Option(
        0,
        "--max-interviews",
        min=0,
        help="Take at most this many interviews at once (bench/load.py's knee for this "
        "machine); 0: use --load-threshold on the CPU load instead.",
    ),
    http_port: int = typer.Option(
        8081, "--http-port", help="Health-check port (GET /); 0 = any free port."
    ),
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING, ERROR."),
    dev: bool = typer.Option(False, "--dev", help="livekit-agents development mode."),
) -> None:
    """Join LiveKit rooms as the interviewer (INTERVIEWER_LIVEKIT_URL, _API_KEY, _API_SECRET).

    Runs the same interview session as the embedded WebSocket transport; start as many as you
    need on as many machines as you like (docs/deploy.md).
    """

    # livekit-agents' own runner (what `python -m livekit.agents start` does): signal
    # handling, job processes, reconnects
    from livekit.agents.cli import proto
    from livekit.agents.cli.cli import _run_worker

    # lazy: livekit, only for this command
    from interviewer.transports.livekit.server import build_server

    with run_or_exit():
        server = build_server(
            get_settings(),
            load_threshold=load_threshold,
            http_port=http_port,
            max_interviews=max_interviews,
        )
    _run_worker(
        server=server,
        args=proto.CliArgs(log_level=log_level.upper(), log_format="colored", dev=dev),
    )


def scorer(
    interval_s: float = typer.Option(5.0, "--interval", help="Seconds between database polls."),
    lease_s: float = typer.Option(
        DEFAULT_LEASE_S,
        "--lease",
        min=3.0,
        help="Seconds a claimed question stays this scorer's without a renewal; a scorer "
        "killed mid-answer leaves it to another after this long.",
    ),
    until_idle: bool = typer.Option(
        False, "--until-idle", help="Exit once nothing is left to score (benchmarks, batches)."
    ),
    show_status: bool = typer.Option(
        False, "--status", help="Print the backlog and each scorer's rate, then exit."
    ),
    minutes: float = typer.Option(10.0, "--minutes", min=0.1, help="--status: the rate window."),
    threads: int = typer.Option(
        0, "--threads", min=0, help="Torch threads of the judge; 0: every CPU this process may use."
    ),
) -> None:
    """Score the answers interviews store, as they arrive; run as many as you like, on as many
    machines as share the database (PostgreSQL), and each question is judged by one of them.

    Uses INTERVIEWER_SCORING_MODEL; answers already scored are never judged again, and a
    restart picks up whatever is still unscored.
    """
    settings = get_settings()
    with run_or_exit():
        engine = open_database(settings.resolved_database_url)
        if show_status:
            _print_status(status(engine, minutes))
            return
        # before torch loads: idle OpenMP threads sleep instead of spinning on the cores that
        # live interviews (whisper, VAD) and other scorers need
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        # live interviews on this machine first: the backlog waits (priority, and a pause
        # between the model's layers while one holds the live gate)
        background_process()
        judge = Judge(settings.scoring_model, settings.model_dir, threads=threads or None).load()
        judge.pause_between_layers(yield_to_live)
        finder = EvidenceFinder(settings.model_dir).load()
        name = scorer_name()
        print(f"scorer {name}: {settings.scoring_model}, lease {lease_s:.0f} s", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            judged = score_claimed(
                engine, judge, finder, scorer=name, lease_s=lease_s, interval_s=interval_s,
                until_idle=until_idle,
            )  # fmt: skip
            print(f"scorer {name}: {judged} questions judged", flush=True)


def _print_status(st: Status) -> None:
    print(f"backlog: {st.backlog} questions waiting; {st.claimed} being judged")
    print(
        f"last {st.minutes:g} min: {sum(r.scored for r in st.scorers)} judged, {st.failed} failed"
    )
    for r in st.scorers:
        print(f"  {r.scorer}: {r.scored} ({r.per_minute:.2f}/min), last at {r.last}")
