"""The promotion use case: plan, validate by rendering, commit with git, deliver.

Nothing in the work tree changes until the new overlay has rendered and its rendered difference
has been checked: the renders run on scratch copies of HEAD's tree, so what is validated is exactly
what is committed, whatever else the user has uncommitted.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import random
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import transaction
from .config import Component, Config, Environment, load_config
from .errors import ConfigError, PushRejected, RefusedError, UsageError
from .files import write_if_changed
from .gitrepo import GitRepo
from .history import TrailerSet, overlay_images, promotions
from .images import ImageRef, parse_ref, show, split_reference
from .kustomization import ImageEntry, read_images, set_images
from .render import Renderer, find_renderer
from .treecopy import TreeCopy

Log = Callable[[str], None]

PUSH_ATTEMPTS = 5
CACHE_ENTRIES = 16


@dataclass(frozen=True)
class PromotionRequest:
    env: str
    tag: str | None = None
    source_env: str | None = None
    components: tuple[str, ...] = ()
    force: bool = False
    message: str | None = None
    dry_run: bool = False
    push: bool = False
    delivery: str | None = None  # overrides promotion.yaml
    # Set by rollback: explicit targets per component, and the promotion being undone.
    targets: dict[str, ImageRef] | None = None
    rollback_of: str | None = None


@dataclass(frozen=True)
class Change:
    component: str
    image: str  # the image name the overlay's entry matches
    rendered_name: str
    old: ImageRef | None
    new: ImageRef
    evidence: str | None = None  # where the order guard found it

    def reference(self, ref: ImageRef | None) -> str:
        return f"{self.rendered_name}:{ref}" if ref else self.rendered_name


@dataclass(frozen=True)
class Plan:
    env: Environment
    delivery: str
    head: str
    changes: tuple[Change, ...]
    unchanged: tuple[str, ...]
    source_env: str | None
    forced: tuple[str, ...]
    reason: str | None
    rollback_of: str | None
    new_text: str
    old_text: str  # the overlay at ``head``

    @property
    def path(self) -> str:
        return str(self.env.kustomization)

    def subject(self) -> str:
        verb = "rollback" if self.rollback_of else "promote"
        parts = ", ".join(f"{c.component} {show(c.old)} → {c.new.short()}" for c in self.changes)
        return f"{verb}({self.env.name}): {parts}"

    def message(self) -> str:
        paragraphs = [self.subject()]
        if self.reason:
            paragraphs.append(self.reason.strip())
        if self.forced:
            paragraphs.append(
                "Promoted with --force past the order guard:\n" + "\n".join(f"- {f}" for f in self.forced)
            )
        trailers = TrailerSet(
            env=self.env.name,
            images={c.component: c.reference(c.new) for c in self.changes},
            previous={c.component: c.reference(c.old) for c in self.changes},
            source_env=self.source_env,
            forced=self.forced,
            rollback_of=self.rollback_of,
        )
        paragraphs.append(trailers.render())
        return "\n\n".join(paragraphs) + "\n"

    def branch_name(self) -> str:
        tags = sorted({c.new.tag for c in self.changes})
        return f"promote/{self.env.name}/{tags[0] if len(tags) == 1 else '-'.join(tags)}"


@dataclass
class PromotionResult:
    plan: Plan | None
    diff: str = ""
    commit: str | None = None
    branch: str | None = None
    pushed: bool = False
    pull_request: str | None = None
    compare_url: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def nothing_to_do(self) -> bool:
        return self.plan is not None and not self.plan.changes


def check_request(cfg: Config, req: PromotionRequest) -> tuple[Environment, tuple[Component, ...]]:
    """Usage errors (exit 2), before anything is read from git."""
    env = cfg.env(req.env)
    comps = cfg.select(req.components)
    if req.targets is None:
        if (req.tag is None) == (req.source_env is None):
            raise UsageError("give exactly one of --tag TAG or --from ENV")
        if req.tag is not None:
            parse_ref(req.tag)
        if req.source_env is not None:
            source = cfg.env(req.source_env)
            if source == env:
                raise UsageError(f"--from {source.name} is the environment being promoted")
    if req.delivery is not None and req.delivery not in ("direct", "pull-request"):
        raise UsageError(f"unknown delivery {req.delivery!r}")
    return env, comps


def promote(root: Path, req: PromotionRequest, log: Log) -> PromotionResult:
    repo = GitRepo(root)
    cfg = load_config(repo.root)
    env, comps = check_request(cfg, req)
    delivery = req.delivery or env.delivery
    if req.dry_run:
        # Reads only: no lock, no journal, no scratch directory inside .git.
        plan = make_plan(repo, cfg, env, comps, req, delivery, repo.head())
        diff = verify_render(repo, plan, locked=False).diff if plan.changes else ""
        return PromotionResult(plan=plan, diff=diff)

    with transaction.RepoLock(repo) as lock:
        if lock.recovered:
            log(lock.recovered)
        repo.identity()
        _check_clean(repo, env)
        target = remote_branch(repo) if req.push or delivery == "pull-request" else None
        head = _publish_base(repo, delivery, target) if target else repo.head()
        plan = make_plan(repo, cfg, env, comps, req, delivery, head)
        if not plan.changes:
            return PromotionResult(plan=plan)
        check = verify_render(repo, plan)
        if delivery == "pull-request":
            from .delivery import deliver_pull_request

            assert target is not None
            return deliver_pull_request(repo, cfg, plan, check.diff, target, log)
        commit = commit_plan(repo, plan)
        check.remember(repo, env, commit)
        result = PromotionResult(plan=plan, diff=check.diff, commit=commit, branch=repo.branch())
        if target is not None:
            _push_direct(repo, cfg, env, comps, req, result, target, log)
        return result


def _check_clean(repo: GitRepo, env: Environment) -> None:
    staged = repo.staged()
    if staged:
        raise RefusedError(f"staged changes exist ({', '.join(staged[:5])}): commit or unstage them first")
    if repo.modified(str(env.kustomization)):
        raise RefusedError(f"{env.kustomization} has uncommitted changes: commit or discard them first")


def remote_branch(repo: GitRepo) -> tuple[str, str]:
    """The remote branch that promotions publish to: the upstream of the current branch."""
    branch = repo.branch()
    if branch is None:
        raise RefusedError("HEAD is detached: check out the branch that environments are promoted on")
    upstream = repo.upstream()
    if upstream is None:
        raise RefusedError(
            f"branch {branch} tracks no remote branch: set one with git branch -u origin/{branch}"
        )
    return upstream


def _publish_base(repo: GitRepo, delivery: str, target: tuple[str, str]) -> str:
    """Fetch the remote branch; the commit a published promotion is planned on.

    A pull request is planned on the remote tip, so it holds only the promotion whatever the local
    branch has; a direct push refuses to publish unpushed local commits along with it.
    """
    remote, branch = target
    repo.fetch(remote, branch)
    if delivery == "pull-request":
        return repo.rev(f"{remote}/{branch}")
    ahead = repo.count(f"{remote}/{branch}..HEAD")
    if ahead:
        raise RefusedError(
            f"{branch} has {ahead} unpushed commit(s): push or drop them first, so that --push "
            "publishes only the promotion"
        )
    return repo.head()


def make_plan(
    repo: GitRepo,
    cfg: Config,
    env: Environment,
    comps: tuple[Component, ...],
    req: PromotionRequest,
    delivery: str,
    head: str,
) -> Plan:
    current_text = repo.show(head, str(env.kustomization))
    if current_text is None:
        raise ConfigError(f"{env.kustomization} does not exist at {head[:10]}")
    current = read_images(current_text, str(env.kustomization))
    targets = _targets(repo, cfg, comps, req, head)
    changes: list[Change] = []
    unchanged = []
    for comp in comps:
        entry = current.get(comp.image)
        if entry is None:
            raise ConfigError(
                f"{env.kustomization} has no images: entry for {comp.image} ({comp.name}); add one"
            )
        new = targets[comp.name]
        if entry.ref == new:
            unchanged.append(comp.name)
        else:
            changes.append(Change(comp.name, comp.image, entry.rendered_name, entry.ref, new))

    forced: tuple[str, ...] = ()
    previous = cfg.previous(env)
    if changes and previous is not None and req.rollback_of is None:
        changes, violations = _order_guard(repo, previous, changes, head)
        if violations and not req.force:
            raise RefusedError(
                "order guard: "
                + "; ".join(violations)
                + f". Promote to {previous.name} first, or pass --force"
            )
        forced = tuple(violations)

    new_text = set_images(current_text, {c.image: c.new for c in changes}, str(env.kustomization))
    return Plan(
        env=env,
        delivery=delivery,
        head=head,
        changes=tuple(changes),
        unchanged=tuple(unchanged),
        source_env=req.source_env,
        forced=forced,
        reason=req.message,
        rollback_of=req.rollback_of,
        new_text=new_text,
        old_text=current_text,
    )


def _targets(
    repo: GitRepo, cfg: Config, comps: tuple[Component, ...], req: PromotionRequest, head: str
) -> dict[str, ImageRef]:
    if req.targets is not None:
        return req.targets
    if req.tag is not None:
        ref = parse_ref(req.tag)
        return {c.name: ref for c in comps}
    assert req.source_env is not None
    source = cfg.env(req.source_env)
    entries = overlay_images(repo, source, head)
    targets = {}
    for comp in comps:
        entry = entries.get(comp.image)
        if entry is None or entry.ref is None:
            raise ConfigError(
                f"{source.kustomization} sets no tag for {comp.image}: nothing to promote from it"
            )
        targets[comp.name] = entry.ref
    return targets


def _order_guard(
    repo: GitRepo, previous: Environment, changes: list[Change], head: str
) -> tuple[list[Change], list[str]]:
    """Every new reference must run, or have run, in the previous environment."""
    running = overlay_images(repo, previous, head)
    guarded = []
    violations = []
    history = None
    for change in changes:
        evidence = None
        entry: ImageEntry | None = running.get(change.image)
        if entry is not None and entry.ref is not None and _covers(entry.ref, change.new):
            evidence = f"running in {previous.name} now"
        else:
            if history is None:
                history = promotions(repo, head, env=previous.name)
            for promo in history:
                ran = promo.images.get(change.component)
                if ran is not None and _covers(ran, change.new):
                    evidence = f"ran in {previous.name} since {promo.sha[:10]} ({promo.date[:10]})"
                    break
        if evidence is None:
            violations.append(f"{change.component} {change.new.short()} has not run in {previous.name}")
        guarded.append(dataclasses.replace(change, evidence=evidence))
    return guarded, violations


def _covers(ran: ImageRef, wanted: ImageRef) -> bool:
    """A tag ran before; a pinned digest must be the very digest that ran."""
    return ran.tag == wanted.tag and (wanted.digest is None or ran.digest == wanted.digest)


# -- validation by rendering ---------------------------------------------------------------------


@dataclass(frozen=True)
class RenderCheck:
    renderer: Renderer
    diff: str  # unified diff of the rendered manifests
    after: str  # the promoted environment, rendered

    def remember(self, repo: GitRepo, env: Environment, commit: str) -> None:
        """Cache the promoted render under the commit's tree: the next promotion renders once."""
        _cache_put(repo, self.renderer, env, repo.tree(commit), self.after)


def verify_render(repo: GitRepo, plan: Plan, locked: bool = True) -> RenderCheck:
    """Render HEAD's tree before and after the edit; refuse any change beyond the image fields.

    Under the lock the renders run in .git/wealist/render, a copy of HEAD's tree kept up to date
    incrementally, and the render of an unchanged tree comes from .git/wealist/cache (keyed by tree
    id and renderer): a promotion after a promotion writes one file and renders once. On a cache
    miss the edited overlay goes into a sibling directory (same depth, so its relative paths still
    resolve) and both renders run in parallel. A dry run (no lock) uses a throwaway extraction.
    """
    renderer = find_renderer()
    tree = repo.tree(plan.head)
    cached = _cache_get(repo, renderer, plan.env, tree)
    overlay = plan.env.overlay
    if not locked:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="wealist-render-") as tmp:
            repo.archive(plan.head, Path(tmp))
            before = cached or renderer.build(Path(tmp) / overlay)
            write_if_changed(Path(tmp) / plan.path, plan.new_text)
            after = renderer.build(Path(tmp) / overlay)
    else:
        copy = TreeCopy(repo)
        root = copy.checkout(tree)
        if cached is not None:
            copy.edit(plan.path, plan.new_text)
            try:
                before, after = cached, renderer.build(root / overlay)
            finally:
                copy.restore(tree, plan.path, plan.old_text)
        else:
            sibling = root / overlay.parent / f".{overlay.name}.promoted"
            shutil.rmtree(sibling, ignore_errors=True)
            shutil.copytree(root / overlay, sibling)
            try:
                write_if_changed(sibling / "kustomization.yaml", plan.new_text)
                before, after = renderer.build_many([root / overlay, sibling])
            finally:
                shutil.rmtree(sibling, ignore_errors=True)
            _cache_put(repo, renderer, plan.env, tree, before)
    diff = unified(before, after, f"{overlay} (rendered, {plan.head[:10]})", f"{overlay} (promoted)")
    _check_only_images(plan, diff, before, after)
    return RenderCheck(renderer, diff, after)


def unified(before: str, after: str, label_a: str, label_b: str, context: int = 3) -> str:
    """Unified diff of two renders, in difflib's format.

    A promotion changes lines but never their number, so when both renders have the same length
    the diff is a position-by-position comparison, linear in the size of the environment; difflib's
    general matcher (quadratic here: 250 ms for 40 components) only runs otherwise.
    """
    a, b = before.splitlines(True), after.splitlines(True)
    if len(a) != len(b):
        return "".join(difflib.unified_diff(a, b, f"a/{label_a}", f"b/{label_b}", n=context))
    changed = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    if not changed:
        return ""
    groups: list[list[int]] = []
    for i in changed:
        if groups and i - groups[-1][-1] - 1 <= 2 * context:  # difflib merges across <= 2n equal lines
            groups[-1].append(i)
        else:
            groups.append([i])
    out = [f"--- a/{label_a}\n", f"+++ b/{label_b}\n"]
    for group in groups:
        start, end = max(0, group[0] - context), min(len(a), group[-1] + context + 1)
        span = _hunk_range(start, end - start)
        out.append(f"@@ -{span} +{span} @@\n")
        members = set(group)
        i = start
        while i < end:
            if i not in members:
                out.append(" " + a[i])
                i += 1
                continue
            j = i
            while j < end and j in members:
                j += 1
            out += ["-" + line for line in a[i:j]] + ["+" + line for line in b[i:j]]
            i = j
    return "".join(out)


def _hunk_range(start: int, length: int) -> str:
    """difflib's notation: 1-based start, the length omitted when it is 1."""
    return f"{start + 1}" if length == 1 else f"{start + 1},{length}"


# An `image:` field as kustomize prints it: `image: X` or `- image: X` (kustomize's output is
# deterministic, sorted and one field per line, so a changed field is a changed line).
IMAGE_LINE = re.compile(r"^\s*(?:- )?image: (?P<ref>\S+)$")


HUNK = re.compile(r"^@@ -(?P<old>\d+)(?:,\d+)? \+(?P<new>\d+)(?:,\d+)? @@")


def _check_only_images(plan: Plan, diff: str, before: str, after: str) -> None:
    """Every changed rendered line must be an `image:` field of a selected component, and each new
    reference must appear: anything else means the overlay holds something unexpected."""
    names = {c.rendered_name for c in plan.changes}
    added: set[str] = set()
    unexpected: dict[str, None] = {}  # the objects, in order
    texts = {"-": before.splitlines(), "+": after.splitlines()}
    position = {"-": 0, "+": 0}
    for line in diff.splitlines():
        hunk = HUNK.match(line)
        if hunk:
            position = {"-": int(hunk["old"]) - 1, "+": int(hunk["new"]) - 1}
            continue
        if line.startswith(("+++ ", "--- ")):
            continue
        side = line[:1]
        if side == " ":
            position["-"] += 1
            position["+"] += 1
            continue
        match = IMAGE_LINE.match(line[1:])
        if match is None or split_reference(match["ref"])[0] not in names:
            unexpected[_object_at(texts[side], position[side])] = None
        elif side == "+":
            added.add(match["ref"])
        position[side] += 1
    if unexpected:
        shown = ", ".join(list(unexpected)[:5])
        raise RefusedError(
            f"the rendered {plan.env.name} would change more than image fields ({shown}): "
            f"{plan.path} holds something unexpected"
        )
    for change in plan.changes:
        if change.reference(change.new) not in added:
            raise RefusedError(
                f"no workload in {plan.env.name} uses {change.rendered_name}: nothing would change"
            )


def _object_at(lines: list[str], index: int) -> str:
    """Kind/namespace/name of the rendered document holding line ``index``."""
    start = index
    while start > 0 and lines[start - 1] != "---":
        start -= 1
    kind = name = namespace = ""
    in_metadata = False
    for line in lines[start:]:
        if line == "---":
            break
        if not line.startswith(" "):
            in_metadata = line == "metadata:"
            kind = line[6:] if line.startswith("kind: ") else kind
        elif in_metadata and line.startswith("  name: "):
            name = line[8:]
        elif in_metadata and line.startswith("  namespace: "):
            namespace = line[13:] + "/"
    return f"{kind}/{namespace}{name}"


def _cache_key(renderer: Renderer, env: Environment, tree: str) -> str:
    digest = hashlib.sha1("\0".join(renderer.argv).encode()).hexdigest()[:12]
    return f"{env.name}-{tree}-{digest}.yaml"


def _cache_get(repo: GitRepo, renderer: Renderer, env: Environment, tree: str) -> str | None:
    path = repo.state_dir() / "cache" / _cache_key(renderer, env, tree)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _cache_put(repo: GitRepo, renderer: Renderer, env: Environment, tree: str, text: str) -> None:
    directory = repo.state_dir() / "cache"
    directory.mkdir(parents=True, exist_ok=True)
    write_if_changed(directory / _cache_key(renderer, env, tree), text)
    entries = sorted(directory.glob("*.yaml"), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in entries[CACHE_ENTRIES:]:
        stale.unlink(missing_ok=True)


# -- committing and pushing ----------------------------------------------------------------------


def commit_plan(repo: GitRepo, plan: Plan) -> str:
    """Write the overlay and commit it with git, under the journal that heals an interruption."""
    transaction.begin(repo, plan.head, plan.path, plan.old_text)
    write_if_changed(repo.root / plan.path, plan.new_text)
    commit = repo.commit(plan.message(), [plan.path])
    transaction.finish(repo)
    return commit


def _push_direct(
    repo: GitRepo,
    cfg: Config,
    env: Environment,
    comps: tuple[Component, ...],
    req: PromotionRequest,
    result: PromotionResult,
    target: tuple[str, str],
    log: Log,
) -> None:
    """Push; when the remote moved, re-apply the same edit on it (compare-and-swap) and retry."""
    assert result.plan is not None
    remote, branch = target
    expected = {c.component: c.old for c in result.plan.changes}
    for attempt in range(1, PUSH_ATTEMPTS + 1):
        try:
            repo.push(remote, "HEAD", branch)
            result.pushed = True
            return
        except PushRejected:
            if attempt == PUSH_ATTEMPTS:
                raise RefusedError(
                    f"{remote}/{branch} kept moving; gave up after {attempt} attempts. Your promotion "
                    f"{result.commit and result.commit[:10]} is committed on {branch}, not pushed"
                ) from None
        time.sleep(min(2.0, 0.2 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0))
        repo.fetch(remote, branch)
        upstream_ref = f"{remote}/{branch}"
        now = overlay_images(repo, env, upstream_ref)
        moved = [
            f"{c.component} is {now[c.image].ref} there, the plan had {expected[c.component]}"
            for c in result.plan.changes
            if c.image in now and now[c.image].ref not in (expected[c.component], c.new)
        ]
        if moved:
            raise RefusedError(
                f"{env.name} changed on {upstream_ref} meanwhile ({'; '.join(moved)}). Your promotion "
                f"{result.commit and result.commit[:10]} stays committed on {branch}, not pushed: "
                "review it against the remote and push or drop it"
            )
        log(f"{upstream_ref} moved; re-applying the promotion on it (attempt {attempt + 1})")
        own = repo.head()
        repo.move_head_keeping_changes(upstream_ref)
        try:
            # The same edit, exactly: the changed components and their new references.
            targets = {c.component: c.new for c in result.plan.changes}
            retry = dataclasses.replace(req, targets=targets)
            changed = tuple(c for c in comps if c.name in targets)
            plan = make_plan(repo, cfg, env, changed, retry, result.plan.delivery, repo.head())
            if not plan.changes:
                result.notes.append(f"{upstream_ref} already runs this; nothing left to push")
                result.commit = None
                return
            check = verify_render(repo, plan)
            result.commit = commit_plan(repo, plan)
            check.remember(repo, env, result.commit)
            result.diff, result.plan = check.diff, plan
        except BaseException:
            repo.move_head_keeping_changes(own)  # put the user's branch back on their commit
            raise
