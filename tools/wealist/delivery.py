"""Delivery: the promotion commit, made by git, and how it leaves this clone (a direct push with
compare-and-swap retries, or a branch and a pull request).

Pull-request delivery commits in a scratch worktree at the planned commit, so the user's branch,
index and files stay exactly as they were; only a new branch ref appears, locally and on the remote.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from . import transaction
from .config import Config, Environment
from .errors import ForgeError, GitError, PushRejected, RefusedError
from .files import write_if_changed
from .gitrepo import GitRepo
from .history import overlay_images
from .images import ImageRef
from .plan import Base, Intent, Log, Plan
from .verify import planned_and_proved

PUSH_ATTEMPTS = 5


@dataclass(frozen=True)
class PromotionResult:
    """What a promotion did: its plan, the rendered diff, and where the commit went."""

    plan: Plan
    diff: str = ""
    commit: str | None = None
    branch: str | None = None
    pushed: bool = False
    pull_request: str | None = None
    pull_number: int | None = None
    compare_url: str | None = None
    notes: list[str] = field(default_factory=list)

    def as_json(self, dry_run: bool) -> dict[str, object]:
        plan = self.plan
        return {
            "env": plan.env.name,
            "delivery": plan.delivery,
            "dry_run": dry_run,
            "changes": [
                {
                    "component": c.component,
                    "from": str(c.old) if c.old else None,
                    "to": str(c.new),
                    "image": c.reference(c.new),
                    "evidence": c.evidence,
                    "registry": c.registry,
                }
                for c in plan.changes
            ],
            "unchanged": list(plan.unchanged),
            "forced": list(plan.forced),
            "image_verified": plan.image_verified,
            "gate": plan.gate,
            "planned_on": {"ref": plan.base.name, "commit": plan.head},
            "commit": self.commit,
            "branch": self.branch,
            "pushed": self.pushed,
            "pull_request": self.pull_request,
            "compare_url": self.compare_url,
            "diff": self.diff,
            "notes": [*plan.base.notes, *self.notes],
        }


def check_clean(repo: GitRepo, env: Environment, delivery: str) -> None:
    """Refuse when anything is staged or the overlay has uncommitted changes; and, where the commit
    is made in this checkout (direct delivery), when it would not stay on a branch or git would
    not see the file written."""
    staged = repo.staged()
    if staged:
        raise RefusedError(f"staged changes exist ({', '.join(staged[:5])}): commit or unstage them first")
    path = str(env.kustomization)
    if repo.modified(path):
        raise RefusedError(f"{path} has uncommitted changes: commit or discard them first")
    if delivery != "direct":
        return  # pull-request delivery commits in a scratch worktree of its own
    operation = repo.operation_in_progress()
    if operation:
        raise RefusedError(
            f"{operation} is in progress here: a promotion committed now would be dropped by its "
            "--abort; finish or abort it first"
        )
    if repo.branch() is None:
        raise RefusedError(
            "HEAD is detached: a promotion committed here would be on no branch; check one out"
        )
    flag = repo.index_flags(path)
    if flag == "S":
        raise RefusedError(
            f"{path} is skip-worktree (sparse checkout or git update-index --skip-worktree): git would "
            f"ignore what wealist writes there; include it (git sparse-checkout add {env.overlay}) first"
        )
    if flag.islower():
        raise RefusedError(
            f"{path} is marked assume-unchanged: git would ignore what wealist writes there; clear it "
            f"with git update-index --no-assume-unchanged {path} first"
        )


def planning_base(
    repo: GitRepo, cfg: Config, intent: Intent, target: tuple[str, str] | None, fetch: bool
) -> Base:
    """The commit a promotion is planned on; the dry run (``fetch`` False: it only reads) and the
    real run decide it the same way, so they plan the same thing.

    A pull request is planned on the remote branch, so it holds only the promotion whatever the
    local branch has; a direct push refuses to publish unpushed local commits along with it."""
    if target is None:
        return Base(repo.head())
    remote, branch = target
    upstream = f"{remote}/{branch}"
    if fetch:
        repo.fetch(remote, branch)
        sha = repo.rev(upstream)
    else:
        sha = repo.remote_tip(remote, branch)
    if intent.delivery == "pull-request":
        return Base(sha, upstream, _differences(repo, cfg, intent, sha, upstream))
    ahead = repo.count(f"{sha}..HEAD")
    if ahead:
        raise RefusedError(
            f"{branch} has {ahead} unpushed commit(s): push or drop them first, so that --push "
            "publishes only the promotion"
        )
    return Base(repo.head())


def _differences(repo: GitRepo, cfg: Config, intent: Intent, sha: str, upstream: str) -> tuple[str, ...]:
    """Why a plan on ``upstream`` may not be what the user sees: overlays it reads that differ
    from the checked-out ones (typically an unpushed promotion of the source environment)."""
    if sha == repo.head():
        return ()
    envs = dict.fromkeys(e for e in (intent.env, intent.source, cfg.previous(intent.env)) if e)
    differing = [
        e.name
        for e in envs
        if repo.show(sha, str(e.kustomization)) != repo.show("HEAD", str(e.kustomization))
    ]
    if not differing:
        return ()
    ahead = repo.count(f"{sha}..HEAD")
    return (
        f"planned on {upstream}, not on your branch: {' and '.join(differing)} differ there "
        f"({ahead} local commit(s) not on {upstream}); push them first to promote what you see",
    )


def _overlay(repo: GitRepo, rev: str, env: Environment) -> str | None:
    return repo.show(rev, str(env.kustomization))


def commit_plan(repo: GitRepo, plan: Plan) -> str:
    """Write the overlay and commit it with git, under the journal that heals an interruption.

    Any failure this process survives (a hook refused the commit, Ctrl-C, a hook changed what was
    committed) puts the overlay back here and now, not on the next run."""
    journal = transaction.begin(repo, plan.head, plan.path, plan.old_text, plan.new_text)
    try:
        commit, problem = _write_and_commit(repo, plan)
        if problem:
            repo.undo_commit(commit, plan.head)
            write_if_changed(repo.root / plan.path, plan.old_text)
            raise RefusedError(f"{problem}: the commit is undone and {plan.path} is as it was")
    except BaseException:
        transaction.put_back_after_failure(repo, journal)
        raise
    transaction.finish(repo)
    return commit


def _holds_validated_text(repo: GitRepo, plan: Plan, commit: str) -> bool:
    """The committed overlay is the validated text: byte for byte (read in-process), or, when a
    clean filter such as core.autocrlf changed the bytes, the blob git makes of that text."""
    if repo.show(commit, plan.path) == plan.new_text:
        return True
    return repo.blob_at(commit, plan.path) == repo.blob_id(plan.new_text, plan.path)


def _write_and_commit(repo: GitRepo, plan: Plan) -> tuple[str, str | None]:
    """Write the overlay into ``repo``'s work tree and commit it with git: (the commit, why it is
    not what was validated, or None)."""
    write_if_changed(repo.root / plan.path, plan.new_text)
    try:
        commit = repo.commit(plan.message(), [plan.path])
    except GitError as exc:
        raise GitError(f"{exc.message}{_hooks_ran(repo)}; nothing was committed") from None
    return commit, committed_as_planned(repo, plan, commit)


def _hooks_ran(repo: GitRepo) -> str:
    hooks = repo.hooks("pre-commit", "prepare-commit-msg", "commit-msg")
    return f" (hooks that ran: {', '.join(hooks)})" if hooks else ""


def committed_as_planned(repo: GitRepo, plan: Plan, commit: str) -> str | None:
    """Why ``commit`` is not the promotion that was validated, or None. Hooks run inside `git
    commit` and may restage files or rewrite the message; what lands must be exactly the
    validated overlay on top of the planned commit, with trailers that read back."""
    changes = repo.tree_changes(plan.head, commit)
    if (
        repo.parents(commit) != [plan.head]
        or changes != [("M", plan.path)]
        or not _holds_validated_text(repo, plan, commit)
    ):
        hooks = repo.hooks("pre-commit") or ["a git hook"]
        return f"{' '.join(hooks)} changed what was committed ({plan.path} is not what was validated)"
    entry = repo.log("-1", commit)[0]
    written = [(k, v) for k, v in entry.trailers if k.startswith("Wealist-")]
    if written != plan.trailers().pairs():
        hooks = repo.hooks("prepare-commit-msg", "commit-msg") or ["a git hook"]
        return (
            f"{' '.join(hooks)} changed the commit message so that its Wealist-* trailers no longer "
            "read back (history would not know this promotion; keep them the last paragraph)"
        )
    return None


def plan_verify_commit(
    repo: GitRepo, cfg: Config, intent: Intent, base: Base, alongside: Callable[[], None] | None = None
) -> PromotionResult:
    """Plan on ``base``, prove it by rendering, commit it: the first attempt and every retry.
    ``alongside``: more checks that may refuse, run while the draft renders."""
    plan, check = planned_and_proved(repo, cfg, intent, base, alongside=alongside)
    if check is None:
        return PromotionResult(plan=plan)
    commit = commit_plan(repo, plan)
    check.remember(repo, plan.env, commit)
    return PromotionResult(plan=plan, diff=check.diff, commit=commit, branch=repo.branch())


def push_direct(
    repo: GitRepo, cfg: Config, intent: Intent, result: PromotionResult, target: tuple[str, str], log: Log
) -> PromotionResult:
    """Push the promotion; when the remote moved, re-apply the same edit on its new tip
    (compare-and-swap: refused if the environment no longer runs what the plan said) and retry
    with backoff."""
    remote, branch = target
    retry = intent.retargeted({c.component: c.new for c in result.plan.changes}, result.plan.rollback_of)
    expected = {c.component: c.old for c in result.plan.changes}
    for attempt in range(1, PUSH_ATTEMPTS + 1):
        kept = f"Your promotion {result.commit and result.commit[:10]} is committed on {branch}, not pushed"
        try:
            repo.push(remote, "HEAD", branch)
            return dataclasses.replace(result, pushed=True)
        except PushRejected:
            if attempt == PUSH_ATTEMPTS:
                raise RefusedError(
                    f"{remote}/{branch} kept moving; gave up after {attempt} attempts. {kept}"
                ) from None
        except GitError as exc:  # refused by the server, or it could not be reached: say what stays
            raise type(exc)(f"{exc.message}. {kept}: push it when the remote accepts it") from None
        time.sleep(min(2.0, 0.2 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0))
        upstream = f"{remote}/{branch}"
        repo.fetch(remote, branch)
        _compare(repo, intent.env, result, expected, upstream)
        log(f"{upstream} moved; re-applying the promotion on it (attempt {attempt + 1})")
        own = repo.head()
        repo.move_head_keeping_changes(upstream)
        try:
            again = plan_verify_commit(repo, cfg, retry, Base(repo.head()))
        except BaseException:
            repo.move_head_keeping_changes(own)  # put the user's branch back on their commit
            raise
        if again.commit is None:
            return dataclasses.replace(
                result, commit=None, notes=[f"{upstream} already runs this; nothing left to push"]
            )
        result = again
    raise AssertionError("unreachable")


def _compare(
    repo: GitRepo,
    env: Environment,
    result: PromotionResult,
    expected: dict[str, ImageRef | None],
    upstream: str,
) -> None:
    """The swap's compare: the environment must still run what the plan said it ran (or already
    run the promotion's references)."""
    now = overlay_images(repo, env, upstream)
    moved = [
        f"{c.component} is {now[c.image].ref} there, the plan had {expected[c.component]}"
        for c in result.plan.changes
        if c.image in now and now[c.image].ref not in (expected[c.component], c.new)
    ]
    if moved:
        raise RefusedError(
            f"{env.name} changed on {upstream} meanwhile ({'; '.join(moved)}). Your promotion "
            f"{result.commit and result.commit[:10]} stays committed on {repo.branch()}, not pushed: "
            "review it against the remote and push or drop it"
        )


def deliver_pull_request(
    repo: GitRepo, cfg: Config, plan: Plan, diff: str, target: tuple[str, str], log: Log
) -> PromotionResult:
    """``target`` is (remote, branch): where the branch is pushed and what the pull request merges into.

    Long because each step (commit, branch, push, forge call) has its own failure message that says what
    was already done."""
    from .forge import GitHub, compare_url  # only pull-request delivery talks to the forge

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
        return dataclasses.replace(
            result, notes=["promotion.yaml names no forge: open the pull request by hand"]
        )
    result = dataclasses.replace(result, compare_url=compare_url(cfg.forge.repository, base, branch))
    github = GitHub.from_env(cfg.forge.repository)
    if github is None:
        return dataclasses.replace(
            result,
            notes=[
                f"GITHUB_TOKEN is not set: branch {branch} is pushed; open the pull request at the URL below"
            ],
        )
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
    notes = [] if pull.created else [f"updated the open pull request #{pull.number} for {branch}"]
    return dataclasses.replace(result, pull_request=pull.url, pull_number=pull.number, notes=notes)


def _commit_in_worktree(repo: GitRepo, plan: Plan) -> str:
    path = transaction.scratch_dir(repo) / f"pr-{uuid.uuid4().hex[:8]}"
    repo.add_worktree(path, plan.head)
    try:
        commit, problem = _write_and_commit(GitRepo(path), plan)
        if problem:  # the scratch worktree goes, and the commit with it
            raise RefusedError(f"{problem}: nothing was pushed")
        return commit
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
    """The pull request's text: the change table, the reason, what was forced, the rendered diff
    (cut at a line boundary to fit GitHub's limit)."""
    from .forge import BODY_LIMIT, fit_lines

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
    if plan.gate:
        parts.append(
            f"What proved that {plan.source_env or 'the previous environment'} runs it: {plan.gate}."
        )
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
