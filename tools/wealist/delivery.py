"""Pull-request delivery: the promotion commit goes on its own branch, pushed, with a pull request.

The commit is made by git in a scratch worktree at HEAD, so the user's branch, index and files stay
exactly as they were; only a new branch ref appears, locally and on the remote.
"""

from __future__ import annotations

import shutil
import uuid

from . import transaction
from .config import Config
from .errors import ForgeError, GitError, RefusedError
from .files import write_if_changed
from .forge import BODY_LIMIT, GitHub, compare_url, fit_lines
from .gitrepo import GitRepo
from .promote import Log, Plan, PromotionResult


def deliver_pull_request(
    repo: GitRepo, cfg: Config, plan: Plan, diff: str, target: tuple[str, str], log: Log
) -> PromotionResult:
    """``target`` is (remote, branch): where the branch is pushed and what the pull request merges into."""
    remote, base = target
    commit = _commit_in_worktree(repo, plan)
    branch, replaces = _free_branch(repo, remote, plan.branch_name(), repo.tree(commit))
    repo.set_branch(branch, commit)
    log(f"pushing {branch} to {remote}")
    try:
        # Same content as the existing branch (a re-run, perhaps with a new reason): replace it,
        # but only if nobody pushed to it since we looked.
        repo.push(remote, commit, branch, lease=replaces)
    except GitError as exc:
        raise type(exc)(
            f"{exc.message}. The promotion {commit[:10]} is kept on local branch {branch}: push it when the "
            "remote accepts it"
        ) from None
    result = PromotionResult(plan=plan, diff=diff, commit=commit, branch=branch, pushed=True)
    if cfg.forge is None:
        result.notes.append("promotion.yaml names no forge: open the pull request by hand")
        return result
    result.compare_url = compare_url(cfg.forge.repository, base, branch)
    github = GitHub.from_env(cfg.forge.repository)
    if github is None:
        result.notes.append(
            f"GITHUB_TOKEN is not set: branch {branch} is pushed; open the pull request at the URL below"
        )
        return result
    try:
        pull = github.open_or_update(
            head=branch,
            base=base,
            title=plan.subject(),
            body=pull_request_body(plan, diff),
            labels=["promotion", f"env:{plan.env.name}"],
        )
    except ForgeError as exc:
        raise ForgeError(
            f"{exc.message}. Branch {branch} is pushed and kept: open the pull request at "
            f"{result.compare_url}"
        ) from None
    result.pull_request = pull.url
    if not pull.created:
        result.notes.append(f"updated the open pull request #{pull.number} for {branch}")
    return result


def _commit_in_worktree(repo: GitRepo, plan: Plan) -> str:
    path = transaction.scratch_dir(repo) / f"pr-{uuid.uuid4().hex[:8]}"
    repo.add_worktree(path, plan.head)
    try:
        worktree = GitRepo(path)
        write_if_changed(worktree.root / plan.path, plan.new_text)
        return worktree.commit(plan.message(), [plan.path])
    finally:
        shutil.rmtree(path, ignore_errors=True)
        repo.prune_worktrees()


def _free_branch(repo: GitRepo, remote: str, wanted: str, tree: str) -> tuple[str, str | None]:
    """``wanted``, or ``wanted-2``, ``-3``...: the first that is free or already holds this tree,
    with the remote commit it would replace (None for a new branch)."""
    remote_heads = repo.remote_heads(remote, f"{wanted}*")
    for n in range(1, 100):
        name = wanted if n == 1 else f"{wanted}-{n}"
        local = repo.local_branch(name)
        tips = [t for t in (remote_heads.get(name), local) if t]
        if not tips:
            return name, None
        if all(repo.has_commit(t) and repo.tree(t) == tree for t in tips):
            return name, remote_heads.get(name)
    raise RefusedError(f"branches {wanted} to {wanted}-99 all exist: delete merged promotion branches")


def pull_request_body(plan: Plan, diff: str) -> str:
    rows = "\n".join(
        f"| {c.component} | {c.old or '(unset)'} | **{c.new}** | `{c.reference(c.new)}` "
        f"| {c.evidence or '—'} |"
        for c in plan.changes
    )
    parts = [
        f"Promotion of **{plan.env.name}**"
        + (f" from **{plan.source_env}**" if plan.source_env else "")
        + (" (rollback)" if plan.rollback_of else ""),
        "| component | from | to | image | order guard |\n|---|---|---|---|---|\n" + rows,
    ]
    if plan.reason:
        parts.append(f"> {plan.reason.strip()}")
    if plan.forced:
        parts.append("**Forced past the order guard:**\n" + "\n".join(f"- {f}" for f in plan.forced))
    footer = (
        f"Merging lets Argo CD sync {plan.env.name}. Made by `wealist-promote`; the commit's trailers "
        "record it for `wealist history`."
    )
    head = "\n\n".join(parts)
    opening = f"<details><summary>Rendered manifest diff ({plan.env.overlay})</summary>\n\n```diff\n"
    closing = "```\n</details>"
    room = BODY_LIMIT - len(head) - len(opening) - len(closing) - len(footer) - 400
    shown, kept, total = fit_lines(diff, room)
    note = ""
    if kept < total:
        note = (
            f"\n\nThe diff is truncated ({kept} of {total} lines shown, GitHub limits a body to "
            f"{BODY_LIMIT} characters): run `wealist diff --env {plan.env.name} --base {plan.head[:10]}` "
            "on this branch."
        )
    return f"{head}\n\n{opening}{shown}{closing}{note}\n\n{footer}\n"
