"""Rollback targets: where an environment goes back to, found in its own history at the commit the
promotion is planned on (so the dry run, the plan and the commit all agree)."""

from __future__ import annotations

from .config import Environment
from .errors import RefusedError
from .gitrepo import GitRepo
from .history import promotions
from .images import ImageRef


def rollback_targets(
    repo: GitRepo, env: Environment, selected: set[str], wanted: ImageRef | None, head: str
) -> tuple[dict[str, ImageRef], str]:
    """(targets, the promotion undone): back to ``wanted`` (a reference that ran in ``env``), or,
    without it, to what the last promotion of the ``selected`` components replaced."""
    history = promotions(repo, head, env=env.name)
    relevant = [p for p in history if selected & p.images.keys()]
    if not relevant:
        raise RefusedError(f"no promotion of {env.name} in the history: nothing to roll back to")

    targets: dict[str, ImageRef] = {}
    if wanted is None:
        last = relevant[0]
        for comp in sorted(selected & last.images.keys()):
            before = last.previous.get(comp)
            if before is None:
                raise RefusedError(f"before {last.sha[:10]}, {comp} had no tag in {env.name}: use --to TAG")
            targets[comp] = before
        return targets, last.sha
    for comp in sorted(selected):
        # What ran: every promotion's new reference, and what the oldest one replaced (the
        # environment's starting point, which no promotion put there).
        ran_refs = [p.images.get(comp) for p in history] + [p.previous.get(comp) for p in history[-1:]]
        for ran in ran_refs:
            if ran is not None and ran.tag == wanted.tag and (wanted.digest in (None, ran.digest)):
                targets[comp] = ran  # as it ran, digest included
                break
    missing = sorted(selected - targets.keys())
    if missing:
        raise RefusedError(
            f"{wanted} never ran in {env.name} for {', '.join(missing)}: cannot roll back to it"
        )
    return targets, relevant[0].sha
