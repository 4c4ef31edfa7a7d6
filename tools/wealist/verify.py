"""The proof by rendering: render HEAD's tree before and after the edit, and refuse any rendered
change beyond the selected images' ``image:`` fields."""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .config import Config, Environment
from .errors import RefusedError
from .files import write_if_changed
from .gitrepo import GitRepo
from .images import split_reference
from .plan import Base, Intent, Plan, ask_early, check_plan, draft_plan
from .render import Renderer, RenderJob, find_renderer
from .treecopy import TreeCopy

CACHE_ENTRIES = 16


@dataclass(frozen=True)
class RenderCheck:
    """The proof: the rendered diff, and the promoted render (cached for the next promotion)."""

    renderer: Renderer
    diff: str  # unified diff of the rendered manifests
    after: str  # the promoted environment, rendered

    def remember(self, repo: GitRepo, env: Environment, commit: str) -> None:
        """Cache the promoted render under the commit's tree: the next promotion renders once."""
        _cache_put(repo, self.renderer, env, repo.tree(commit), self.after)


def planned_and_proved(
    repo: GitRepo,
    cfg: Config,
    intent: Intent,
    base: Base,
    locked: bool = True,
    alongside: Callable[[], None] | None = None,
) -> tuple[Plan, RenderCheck | None]:
    """The checked plan on ``base`` and its proof by rendering (None when nothing changes).

    The draft's render starts first and runs on another core while everything that may refuse
    runs here: the registry lookups and the Argo CD gate's questions (started at once, in the
    background: they wait on the network), the caller's ``alongside`` checks, then the plan's own
    (order guard, Argo CD gate, holds, freeze). A check that refuses stops the render; when the
    registry pinned digests the overlay text changed, and the promoted side is rendered again."""
    draft = draft_plan(repo, intent, base)
    if not draft.changes:
        if alongside is not None:
            alongside()
        return draft, None
    with _Proof(repo, draft, locked) as proof:
        argocd = ask_early(cfg, intent, draft)
        if alongside is not None:
            alongside()
        plan = check_plan(repo, cfg, intent, draft, argocd)
        if not plan.changes:
            return plan, None
        return plan, proof.finish(plan)


class _Proof:
    """Both renders of a promotion: HEAD's tree before and after the edit.

    Under the lock they run in .git/wealist/render, a copy of HEAD's tree kept up to date
    incrementally, and the render of an unchanged tree comes from .git/wealist/cache (keyed by tree
    id and renderer): a promotion after a promotion writes one file and renders once. On a cache
    miss the edited overlay goes into a sibling directory (same depth, so its relative paths still
    resolve) and both renders run at once. A dry run (no lock) uses a throwaway extraction."""

    def __init__(self, repo: GitRepo, draft: Plan, locked: bool) -> None:
        self._repo, self._draft, self._locked = repo, draft, locked
        self._renderer = find_renderer()
        self._tree = repo.tree(draft.head)
        self._cached = _cache_get(repo, self._renderer, draft.env, self._tree)
        self._jobs: list[RenderJob] = []
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._copy: TreeCopy | None = None
        self._after: Path | None = None  # the directory the promoted side renders

    def __enter__(self) -> _Proof:
        overlay = self._draft.env.overlay
        if self._locked:
            self._copy = TreeCopy(self._repo)
            root = self._copy.checkout(self._tree)
        else:
            self._scratch = tempfile.TemporaryDirectory(prefix="wealist-render-")
            root = Path(self._scratch.name)
            self._repo.archive(self._draft.head, root)
        if self._copy is not None and self._cached is not None:
            self._after = root / overlay  # edited in place, put back on exit
            self._copy.edit(self._draft.path, self._draft.new_text)
        else:
            self._after = root / overlay.parent / f".{overlay.name}.promoted"
            shutil.rmtree(self._after, ignore_errors=True)
            shutil.copytree(root / overlay, self._after)
            write_if_changed(self._after / "kustomization.yaml", self._draft.new_text)
        before = None if self._cached is not None else self._renderer.start(root / overlay)
        self._jobs = [self._renderer.start(self._after), *([before] if before else [])]
        return self

    def finish(self, plan: Plan) -> RenderCheck:
        """Wait for the renders of ``plan`` and refuse any change beyond its image fields."""
        assert self._after is not None
        after_job, *before_job = self._jobs
        if plan.new_text != self._draft.new_text:
            after_job.cancel()
            write_if_changed(self._after / "kustomization.yaml", plan.new_text)
            after_job = self._jobs[0] = self._renderer.start(self._after)
        before = before_job[0].result() if before_job else self._cached
        assert before is not None
        after = after_job.result()
        if self._locked and self._cached is None:
            _cache_put(self._repo, self._renderer, plan.env, self._tree, before)
        overlay = plan.env.overlay
        diff = unified(before, after, f"{overlay} (rendered, {plan.head[:10]})", f"{overlay} (promoted)")
        _check_only_images(plan, diff, before, after)
        return RenderCheck(self._renderer, diff, after)

    def __exit__(self, *exc: object) -> None:
        for job in self._jobs:
            job.cancel()
        if self._scratch is not None:
            self._scratch.cleanup()
        elif self._copy is not None and self._cached is not None:
            self._copy.restore(self._tree, self._draft.path, self._draft.old_text)
        elif self._after is not None:
            shutil.rmtree(self._after, ignore_errors=True)


def unified(before: str, after: str, label_a: str, label_b: str, context: int = 3) -> str:
    """Unified diff of two renders, in difflib's format.

    A promotion changes lines but never their number, so when both renders have the same length
    the diff is a position-by-position comparison, linear in the size of the environment; difflib's
    general matcher (quadratic here: 250 ms for 40 components) only runs otherwise.
    """
    a, b = before.splitlines(True), after.splitlines(True)
    if len(a) != len(b):
        import difflib  # rarely needed: kept off every promotion's start-up

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
    digest = hashlib.sha1(renderer.identity().encode()).hexdigest()[:12]
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
