"""rehearse: start an environment for real, without a cluster."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..options import common_options, env_option, format_option
from ..output import color, log


@click.command("rehearse")
@common_options
@env_option(help_text="Environment to rehearse.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="Seconds a command may run before it counts as hanging (an init container's wait loop).",
)
@format_option
def rehearse_cmd(repo: Path, env: str, timeout: float, fmt: str) -> None:
    """Start the environment for real, without a cluster: a real PostgreSQL as the StatefulSet
    describes it, then every command of every container, probe, hook and CronJob that can run
    here, as Kubernetes would run it (needs root and the PostgreSQL server programs)."""
    from ..errors import RehearsalFailed
    from ..rehearse import rehearse

    report = rehearse(repo, env, timeout, log)
    if fmt == "json":
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        for step in report.steps:
            mark = click.style("ok  ", fg="green") if step.ok else click.style("FAIL", fg="red")
            click.echo(f"{mark} {step.name}: {step.detail} ({step.seconds:.1f} s)", color=color())
        for skipped in report.skipped:
            click.echo(f"note: {skipped}")
    if not report.ok:
        raise RehearsalFailed(f"{len(report.failures)} step(s) failed: {env} would not start as rendered")
