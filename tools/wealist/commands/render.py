"""render and diff: the rendered manifests, for review."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import common_options, env_option
from ..output import echo_diff


@click.command("render")
@common_options
@env_option()
@click.option(
    "--cluster",
    metavar="NAME",
    help="As Argo CD renders it for this cluster of promotion.yaml (with its flavour's component).",
)
def render_cmd(repo: Path, env: str, cluster: str | None) -> None:
    """Print the environment's rendered manifests (work tree, uncommitted edits included)."""
    from ..review import render_env

    click.echo(render_env(repo, env, cluster), nl=False)


@click.command("diff")
@common_options
@env_option()
@click.option("--base", default="HEAD", show_default=True, help="Compare the work tree with this ref.")
@click.option("--against", "against", metavar="ENV", help="Instead: what promoting --from ENV would change.")
def diff_cmd(repo: Path, env: str, base: str, against: str | None) -> None:
    """Rendered difference, for review (unified diff; empty when nothing differs)."""
    from ..review import diff_against_env, diffs_against_ref

    diff = diff_against_env(repo, env, against) if against else diffs_against_ref(repo, [env], base)[env]
    echo_diff(diff)
