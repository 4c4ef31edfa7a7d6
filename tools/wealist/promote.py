"""The promotion use case: resolve the request, plan, prove by rendering, commit with git, deliver.

Nothing in the work tree changes until the new overlay has rendered and its rendered difference
has been checked: the renders run on scratch copies of HEAD's tree, so what is validated is exactly
what is committed, whatever else the user has uncommitted.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from . import transaction
from .config import load_config
from .delivery import (
    PromotionResult,
    check_clean,
    deliver_pull_request,
    plan_verify_commit,
    planning_base,
    push_direct,
)
from .gitrepo import GitRepo
from .plan import Log, PromotionRequest, resolve
from .verify import planned_and_proved


def promote(root: Path, req: PromotionRequest, log: Log) -> PromotionResult:
    """Promote (or roll back) as ``req`` asks."""
    repo = GitRepo(root)
    cfg = load_config(repo.root)
    intent = resolve(cfg, req)
    target = repo.push_target() if intent.push or intent.delivery == "pull-request" else None
    if intent.dry_run:
        # Reads only: no lock, no journal, no fetch, no scratch directory inside .git.
        base = planning_base(repo, cfg, intent, target, fetch=False)
        plan, check = planned_and_proved(repo, cfg, intent, base, locked=False)
        return PromotionResult(plan=plan, diff=check.diff if check else "")

    with transaction.RepoLock(repo) as lock:
        if lock.recovered:
            log(lock.recovered)

        def checkout_checks() -> None:
            repo.identity()
            check_clean(repo, intent.env, intent.delivery)

        if target is not None:  # a fetch comes next: refuse before it
            checkout_checks()
        base = planning_base(repo, cfg, intent, target, fetch=True)
        if intent.delivery == "pull-request":
            assert target is not None
            plan, check = planned_and_proved(repo, cfg, intent, base)
            if check is None:
                return PromotionResult(plan=plan)
            return deliver_pull_request(repo, cfg, plan, check.diff, target, log)
        # Nothing is fetched: the checks of this checkout run while the draft renders.
        result = plan_verify_commit(repo, cfg, intent, base, checkout_checks if target is None else None)
        if target is not None and result.commit is not None:
            result = push_direct(repo, cfg, intent, result, target, log)
        return result


def rollback(root: Path, req: PromotionRequest, to: str | None, log: Log) -> PromotionResult:
    """Roll ``req.env`` back, to ``to`` (a reference that ran there) or undoing its last promotion:
    a new promotion found in the environment's own history at the commit it is planned on."""
    return promote(root, dataclasses.replace(req, rollback=True, rollback_to=to), log)
