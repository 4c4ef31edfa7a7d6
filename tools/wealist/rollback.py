"""Rollback: a new forward promotion back to an earlier state of the same environment."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .config import load_config
from .delivery import PromotionResult
from .errors import RefusedError
from .gitrepo import GitRepo
from .history import promotions
from .images import ImageRef, parse_ref
from .plan import Log, PromotionRequest
from .promote import promote


def rollback(root: Path, request: PromotionRequest, to: str | None, log: Log) -> PromotionResult:
    """Roll ``request.env`` back: to ``to`` (a tag that ran there), or undo its last promotion.

    ``request`` carries the environment, the selected components and the delivery options; the
    targets are found here, in the environment's own history.
    """
    repo = GitRepo(root)
    cfg = load_config(repo.root)
    env = cfg.env(request.env)
    selected = {c.name for c in cfg.select(request.components)}
    wanted = parse_ref(to) if to is not None else None
    history = promotions(repo, env=env.name)
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
        undone = last.sha
    else:
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
        undone = relevant[0].sha
    final = dataclasses.replace(request, components=tuple(targets))
    return promote(repo.root, final, log, targets=targets, rollback_of=undone)
