"""pr-comment: the rendered diff of a pull request, as one comment."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import common_options


@click.command("pr-comment")
@common_options
@click.option("--base", required=True, help="The ref the pull request merges into (e.g. origin/main).")
@click.option("--pull-request", "number", type=click.IntRange(min=1), required=True, help="Its number.")
def pr_comment_cmd(repo: Path, base: str, number: int) -> None:
    """Comment (or update the comment with) the rendered diff of each environment a pull request touches.

    For the repository's CI; needs GITHUB_TOKEN.
    """
    from ..pr_comment import post

    click.echo(post(repo, base, number))
