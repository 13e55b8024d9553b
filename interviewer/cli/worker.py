"""`interviewer worker` (the LiveKit agent server, transports/livekit/) and `interviewer scorer`."""

from __future__ import annotations

import typer

from interviewer.cli._common import open_database, run_or_exit
from interviewer.config import get_settings
from interviewer.scoring.live import LiveScoring, score_pending


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
) -> None:
    """Score the answers LiveKit workers store, as they arrive (run one per deployment).

    Uses INTERVIEWER_SCORING_MODEL in one worker process; answers that were already scored are
    never judged again, and a restart picks up whatever is still unscored.
    """
    import asyncio

    settings = get_settings()

    async def go() -> None:
        engine = open_database(settings.resolved_database_url)
        scoring = LiveScoring(
            settings.resolved_database_url,
            model=settings.scoring_model,
            model_dir=settings.model_dir,
            threads=None,
        )
        try:
            await score_pending(engine, scoring, interval_s=interval_s)
        finally:
            await scoring.aclose()

    with run_or_exit():
        asyncio.run(go())
