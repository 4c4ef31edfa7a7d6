"""freeze and unfreeze: stop promotions to an environment, through a reviewed, audited commit."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import common_options, env_option


@click.command("freeze")
@common_options
@env_option(help_text="Environment to freeze.")
@click.option("--reason", required=True, help="Why (shown to whoever is refused).")
@click.option(
    "--until",
    "until",
    metavar="TIME",
    help="ISO 8601 end (e.g. 2026-12-27T09:00:00Z); default: until unfrozen.",
)
@click.option("--push", is_flag=True, help="Push the commit.")
def freeze_cmd(repo: Path, env: str, reason: str, until: str | None, push: bool) -> None:
    """Refuse promotions to ENV (rollbacks stay allowed) until --until or `wealist unfreeze`: a commit
    adding freezes/ENV.yaml. `wealist-promote --force -m REASON` overrides, recorded."""
    from ..freeze import freeze

    commit = freeze(repo, env, reason, until, push)
    click.echo(f"Committed {commit[:10]}: {env} is frozen{' (pushed)' if push else ''}.")


@click.command("unfreeze")
@common_options
@env_option(help_text="Environment to unfreeze.")
@click.option("--push", is_flag=True, help="Push the commit.")
def unfreeze_cmd(repo: Path, env: str, push: bool) -> None:
    """Allow promotions to ENV again: a commit removing freezes/ENV.yaml."""
    from ..freeze import unfreeze

    commit = unfreeze(repo, env, push)
    click.echo(f"Committed {commit[:10]}: {env} is no longer frozen{' (pushed)' if push else ''}.")
