"""status and history: what runs where, and how it got there, from git alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..options import common_options, env_option, format_option
from ..output import color, table

if TYPE_CHECKING:
    from ..history import Status


@click.command("status")
@common_options
@click.option(
    "--registry",
    "ask_registry",
    is_flag=True,
    help="Also ask each image's registry whether the running tags still exist with the pinned digests.",
)
@click.option(
    "--live",
    is_flag=True,
    help="Also what Argo CD runs: sync, health, revision, live images, drift from git.",
)
@format_option
def status_cmd(repo: Path, ask_registry: bool, live: bool, fmt: str) -> None:
    """What every environment runs, and which one lags which."""
    from ..history import repository_status

    result = repository_status(repo, ask_registry, live)
    if fmt == "json":
        click.echo(json.dumps(result.as_json(), indent=2))
        return
    _print_status(result)


def _print_status(result: Status) -> None:
    from ..images import show

    rows = [("COMPONENT", *result.environments)] + [
        (
            comp,
            *(show(result.running[env][comp]) for env in result.environments),
        )
        for comp in result.components
    ]
    table(rows)
    for lag in result.lags:
        click.echo(click.style(lag, fg="yellow"), color=color())
    if not result.lags:
        click.echo("All environments run the same versions.")
    for frozen in result.freezes:
        click.echo(click.style(f"freeze: {frozen}", fg="red"), color=color())
    for hold in result.holds:
        click.echo(click.style(f"hold: {hold.describe()}", fg="yellow"), color=color())
    for app in result.live or []:
        state = app.state
        drift = f"  DRIFT: {', '.join(app.drift)} not live as git says" if app.drift else ""
        line = (
            f"argocd: {app.env} {state.name}: {state.sync or '?'}, {state.health or '?'}, "
            f"at {(state.revision or '?')[:10]}{drift}"
        )
        click.echo(click.style(line, fg="yellow") if app.drift else line, color=color())
    if result.images is not None:
        problems = [i for i in result.images if i.state != "ok"]
        for item in problems:
            r = item.running
            click.echo(
                click.style(
                    f"registry: {r.env} {r.component} {r.tag}: {item.state}: {item.detail}", fg="yellow"
                ),
                color=color(),
            )
        if not problems:
            click.echo(f"Registry: all {len(result.images)} running images exist as pinned.")


@click.command("history")
@common_options
@env_option(required=False, help_text="Only this environment.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Newest N promotions."
)
@format_option
def history_cmd(repo: Path, env: str | None, limit: int, fmt: str) -> None:
    """Every change to the environments, from git alone: promotions (read from their trailers) and
    any commit that edited an overlay's kustomization.yaml by other means, flagged as manual."""
    from ..history import ManualChange, repository_history
    from ..images import show

    entries = repository_history(repo, env, limit)
    if fmt == "json":
        click.echo(json.dumps([p.as_json() for p in entries], indent=2))
        return
    if not entries:
        click.echo("No changes to the environments yet.")
    lines = []  # echoed at once: a long history is one write, not one per entry
    for p in entries:
        when = p.date[:16].replace("T", " ")
        if isinstance(p, ManualChange) and p.freeze:
            lines.append(f"{p.sha[:10]}  {when}  {','.join(p.envs):<6} {p.subject}  — {p.author}")
            continue
        if isinstance(p, ManualChange):
            warning = click.style(f"manual edit, not via wealist: {p.subject!r}", fg="yellow")
            lines.append(f"{p.sha[:10]}  {when}  {','.join(p.envs):<6} {warning}  — {p.author}")
            continue
        images = ", ".join(
            f"{comp} {show(p.previous.get(comp))} → {ref.short()}" for comp, ref in p.images.items()
        )
        extra = f" from {p.source_env}" if p.source_env else ""
        extra += " (rollback)" if p.rollback_of else ""
        extra += " (forced)" if p.forced else ""
        extra += " (image not verified)" if not p.image_verified else ""
        lines.append(f"{p.sha[:10]}  {when}  {p.env:<6} {images}{extra}  — {p.author}")
    if lines:
        click.echo("\n".join(lines), color=color())
