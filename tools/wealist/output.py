"""How results reach the terminal: tables, diffs, colour, progress on stderr (always masked)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from .delivery import PromotionResult


def table(rows: Sequence[tuple[str, ...]], indent: str = "") -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo(indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def log(message: str) -> None:
    from .masking import mask

    click.echo(mask(message), err=True)


def color() -> bool | None:
    return False if os.environ.get("NO_COLOR") else None  # None: Click decides by the terminal


def echo_diff(diff: str) -> None:
    for line in diff.splitlines():
        style = (
            {"+": "green", "-": "red", "@": "cyan"}.get(line[:1])
            if not line.startswith(("+++", "---"))
            else None
        )
        click.echo(click.style(line, fg=style) if style else line, color=color())


def print_result(result: PromotionResult, fmt: str, dry_run: bool, push: bool) -> None:
    """A promotion or rollback: JSON, or the plan, its rendered diff and what was done."""
    plan = result.plan
    if fmt == "json":
        click.echo(json.dumps(result.as_json(dry_run), indent=2))
        return
    for note in (*plan.base.notes, *plan.notes):
        log(f"note: {note}")
    if not plan.changes:
        unchanged = ", ".join(plan.unchanged)
        click.echo(f"Nothing to do: {plan.env.name} already runs {unchanged} at the requested version.")
    else:
        _print_plan(result, dry_run)
        if dry_run:
            _print_dry_run(result, push)
        else:
            _print_done(result)


def _print_plan(result: PromotionResult, dry_run: bool) -> None:
    from .images import show

    plan = result.plan
    default = "rollback" if plan.rollback_of else "first environment" if not plan.forced else "--force"
    rows = [("COMPONENT", "FROM", "TO", "WHY ALLOWED", "REGISTRY")] + [
        (c.component, show(c.old), c.new.short(), c.evidence or default, _short(c.registry or "not asked"))
        for c in plan.changes
    ]
    head = "Would" if dry_run else "Plan:"
    verb = "roll back" if plan.rollback_of else "promote"
    click.echo(f"{head} {verb} {plan.env.name} ({plan.delivery}) on {plan.base.name} ({plan.head[:10]}):")
    table(rows, indent="  ")
    for reason in plan.forced:
        click.echo(click.style(f"  forced: {reason}", fg="yellow"), color=color())
    if plan.gate:
        click.echo(f"  gate: {plan.gate}")
    if not plan.image_verified:
        click.echo(
            click.style("  images not verified in their registry (--no-verify-image; recorded)", fg="yellow"),
            color=color(),
        )
    if plan.unchanged:
        click.echo(f"  unchanged: {', '.join(plan.unchanged)}")
    if result.diff:
        echo_diff(result.diff)


def _short(text: str) -> str:
    """Digests cut to 12 hex digits for the table (JSON keeps them whole)."""
    return re.sub(r"(sha256:[0-9a-f]{12})[0-9a-f]{52}", r"\1…", text)


def _print_dry_run(result: PromotionResult, push: bool) -> None:
    plan = result.plan
    if plan.delivery == "pull-request":
        click.echo(
            f"Dry run: would commit {plan.path} on a new branch {plan.branch_name()} (git worktree, "
            "git commit), git push it and open a pull request; nothing changed."
        )
    else:
        pushing = " and git push" if push else ""
        click.echo(f"Dry run: would change {plan.path} and run git commit{pushing}; nothing changed.")


def _print_done(result: PromotionResult) -> None:
    for note in result.notes:
        log(note)
    if result.commit:
        where = f" on {result.branch}" if result.branch else ""
        click.echo(f"Committed {result.commit[:10]}{where}: {result.plan.subject()}")
    if result.pushed:
        click.echo(f"Pushed {result.branch}.")
    if result.pull_request:
        click.echo(f"Pull request: {result.pull_request}")
    elif result.compare_url:
        click.echo(f"Open a pull request: {result.compare_url}")
