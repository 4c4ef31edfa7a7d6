"""promote and rollback: change an environment through a git commit."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..options import (
    common_options,
    complete_names,
    delivery_options,
    env_option,
    format_option,
    wait_options,
)
from ..output import log, print_result

if TYPE_CHECKING:
    from ..delivery import PromotionResult
    from ..plan import PromotionRequest


@click.command("promote")
@common_options
@env_option(help_text="Environment to change.")
@click.option("--tag", metavar="TAG", help="Set this tag (TAG or TAG@sha256:<digest>).")
@click.option(
    "--from",
    "source_env",
    metavar="ENV",
    shell_complete=complete_names("env"),
    help="Copy exactly what ENV runs now (tag and digest).",
)
@click.option(
    "--force", is_flag=True, help="Promote even if the previous environment never ran it (recorded)."
)
@delivery_options
@wait_options
@format_option
def promote_cmd(
    repo: Path,
    env: str,
    tag: str | None,
    source_env: str | None,
    force: bool,
    components: tuple[str, ...],
    message: str | None,
    dry_run: bool,
    push: bool,
    delivery: str | None,
    wait: bool,
    wait_timeout: str,
    no_verify_image: bool,
    fmt: str,
) -> None:
    """Promote image tags to an environment through a git commit (or a pull request).

    Every new image is first looked up in its registry (it must exist; where promotion.yaml says
    `pin: digest` the digest is recorded too)."""
    from ..plan import PromotionRequest
    from ..promote import promote

    request = PromotionRequest(
        env=env,
        tag=tag,
        source_env=source_env,
        components=components,
        force=force,
        message=message,
        dry_run=dry_run,
        push=push,
        delivery=delivery,
        wait=wait,
    )
    _run(repo, request, lambda r: promote(repo, r, log), no_verify_image, wait_timeout, fmt)


@click.command("rollback")
@common_options
@env_option(help_text="Environment to roll back.")
@click.option(
    "--to",
    "to",
    metavar="TAG",
    help="Go back to this tag (it must have run in ENV before). Default: undo the last promotion of ENV.",
)
@delivery_options
@wait_options
@format_option
def rollback_cmd(
    repo: Path,
    env: str,
    to: str | None,
    components: tuple[str, ...],
    message: str | None,
    dry_run: bool,
    push: bool,
    delivery: str | None,
    wait: bool,
    wait_timeout: str,
    no_verify_image: bool,
    fmt: str,
) -> None:
    """Return an environment to an earlier state with a new commit (history is never rewritten)."""
    from ..plan import PromotionRequest
    from ..promote import rollback

    request = PromotionRequest(
        env=env,
        components=components,
        message=message,
        dry_run=dry_run,
        push=push,
        delivery=delivery,
        wait=wait,
    )
    _run(repo, request, lambda r: rollback(repo, r, to, log), no_verify_image, wait_timeout, fmt)


def _run(
    repo: Path,
    request: PromotionRequest,
    action: Callable[[PromotionRequest], PromotionResult],
    no_verify_image: bool,
    wait_timeout: str,
    fmt: str,
) -> None:
    """What promote and rollback share after parsing: the run, its result, and --wait (progress on
    stderr; the outcome as the last line of text output, so JSON stays one document)."""
    if no_verify_image:  # otherwise the default: WEALIST_NO_VERIFY_IMAGE, else verify
        request = dataclasses.replace(request, verify_image=False)
    if not request.wait:
        print_result(action(request), fmt, request.dry_run, request.push)
        return
    # Only --wait needs the Argo CD client (and its HTTP stack): about 25 ms of imports otherwise.
    from ..wait import after_promotion, parse_duration

    seconds = parse_duration(wait_timeout)  # a bad duration: before anything
    result = action(request)
    print_result(result, fmt, request.dry_run, request.push)
    if not request.dry_run and after_promotion(repo, result, seconds, log) and fmt == "text":
        click.echo(f"{result.plan.env.name} runs it: synced and Healthy.")
