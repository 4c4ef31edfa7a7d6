"""Rollback: a new forward promotion back to an earlier state of the same environment."""

from __future__ import annotations

from pathlib import Path

from .config import load_config
from .errors import RefusedError
from .gitrepo import GitRepo
from .history import promotions
from .images import ImageRef, parse_ref
from .promote import Log, PromotionRequest, PromotionResult, promote


def rollback(
    root: Path,
    env_name: str,
    to: str | None,
    components: tuple[str, ...],
    *,
    message: str | None,
    dry_run: bool,
    push: bool,
    delivery: str | None,
    log: Log,
) -> PromotionResult:
    repo = GitRepo(root)
    cfg = load_config(repo.root)
    env = cfg.env(env_name)
    selected = {c.name for c in cfg.select(components)}
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
            for promo in history:
                ran = promo.images.get(comp)
                if ran is not None and ran.tag == wanted.tag and (wanted.digest in (None, ran.digest)):
                    targets[comp] = ran  # as it ran, digest included
                    break
        missing = sorted(selected - targets.keys())
        if missing:
            raise RefusedError(
                f"{wanted} never ran in {env.name} for {', '.join(missing)}: cannot roll back to it"
            )
        undone = relevant[0].sha
    request = PromotionRequest(
        env=env.name,
        components=tuple(targets),
        targets=targets,
        rollback_of=undone,
        message=message,
        dry_run=dry_run,
        push=push,
        delivery=delivery,
    )
    return promote(repo.root, request, log)
