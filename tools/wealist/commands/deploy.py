"""deploy-approved: move a deploy branch to an approved merge."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import common_options, env_option


@click.command("deploy-approved")
@common_options
@env_option(help_text="Environment whose deploy branch to move (promotion.yaml deploy-branch).")
@click.option("--commit", default="HEAD", show_default=True, help="The commit just pushed to main.")
@click.option("--dry-run", is_flag=True, help="Check, but do not push the deploy branch.")
def deploy_approved_cmd(repo: Path, env: str, commit: str, dry_run: bool) -> None:
    """For CI on every push to main: move ENV's deploy branch to COMMIT if it is the merge of an
    approved pull request (a direct push leaves it where it is). Needs GITHUB_TOKEN."""
    from ..deploy import advance

    decision = advance(repo, env, commit, dry_run=dry_run)
    if decision.pull_request is None:
        click.echo(f"{decision.commit[:10]} is {decision.reason}: {decision.branch} stays where it is.")
        return
    verb = "Moved" if decision.moved else "Would move"
    click.echo(
        f"{verb} {decision.branch} to {decision.commit[:10]} (pull request #{decision.pull_request}, "
        f"{decision.reason})."
    )
