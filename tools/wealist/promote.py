"""The promotion use case: resolve the request, plan, prove by rendering, commit with git, deliver.

Nothing in the work tree changes until the new overlay has rendered and its rendered difference
has been checked: the renders run on scratch copies of HEAD's tree, so what is validated is exactly
what is committed, whatever else the user has uncommitted.
"""

from __future__ import annotations

from pathlib import Path

from . import transaction
from .config import load_config
from .delivery import (
    PromotionResult,
    check_clean,
    deliver_pull_request,
    plan_verify_commit,
    publish_base,
    push_direct,
    remote_branch,
)
from .gitrepo import GitRepo
from .images import ImageRef
from .plan import Log, PromotionRequest, make_plan, resolve
from .verify import verify_render


def promote(
    root: Path,
    req: PromotionRequest,
    log: Log,
    targets: dict[str, ImageRef] | None = None,
    rollback_of: str | None = None,
) -> PromotionResult:
    """Promote as ``req`` asks (or to explicit ``targets``, for a rollback of ``rollback_of``)."""
    repo = GitRepo(root)
    cfg = load_config(repo.root)
    intent = resolve(cfg, req, targets, rollback_of)
    if intent.dry_run:
        # Reads only: no lock, no journal, no scratch directory inside .git.
        plan = make_plan(repo, cfg, intent, repo.head())
        diff = verify_render(repo, plan, locked=False).diff if plan.changes else ""
        return PromotionResult(plan=plan, diff=diff)

    with transaction.RepoLock(repo) as lock:
        if lock.recovered:
            log(lock.recovered)
        repo.identity()
        check_clean(repo, intent.env, intent.delivery)
        target = remote_branch(repo) if intent.push or intent.delivery == "pull-request" else None
        head = publish_base(repo, intent.delivery, target) if target else repo.head()
        if intent.delivery == "pull-request":
            assert target is not None
            plan = make_plan(repo, cfg, intent, head)
            if not plan.changes:
                return PromotionResult(plan=plan)
            check = verify_render(repo, plan)
            return deliver_pull_request(repo, cfg, plan, check.diff, target, log)
        result = plan_verify_commit(repo, cfg, intent, head)
        if target is not None and result.commit is not None:
            result = push_direct(repo, cfg, intent, result, target, log)
        return result
