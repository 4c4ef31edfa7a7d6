"""Rendered views for review: one environment, and its difference against a ref or another env."""

from __future__ import annotations

import tempfile
from pathlib import Path

from .config import load_config
from .gitrepo import GitRepo
from .plan import PromotionRequest
from .promote import promote
from .render import find_renderer
from .verify import unified


def render_env(root: Path, env_name: str, cluster_name: str | None = None) -> str:
    """The environment as the work tree renders it now (uncommitted edits included); with a
    cluster, as Argo CD renders it for that cluster (its flavour's component added)."""
    from .errors import UsageError
    from .render import with_components

    repo = GitRepo(root)
    cfg = load_config(repo.root)
    env = cfg.env(env_name)
    if cluster_name is None:
        return find_renderer().build(repo.root / env.overlay)
    cluster = cfg.cluster(cluster_name)
    if cluster.environment != env.name:
        raise UsageError(f"cluster {cluster.name} runs {cluster.environment}, not {env.name}")
    with with_components(repo.root, env.overlay, [cluster.component]) as overlay:
        return find_renderer().build(overlay)


def diffs_against_ref(root: Path, env_names: list[str], base: str) -> dict[str, str]:
    """Rendered difference from ``base`` (a commit, branch or tag) to the work tree, per environment:
    ``base`` is extracted once and all the renders run in parallel."""
    repo = GitRepo(root)
    cfg = load_config(repo.root)
    envs = [cfg.env(name) for name in env_names]
    commit = repo.rev(base)
    with tempfile.TemporaryDirectory(prefix="wealist-diff-") as tmp:
        repo.archive(commit, Path(tmp))
        texts = find_renderer().build_many(
            [Path(tmp) / e.overlay for e in envs] + [repo.root / e.overlay for e in envs]
        )
    return {
        e.name: unified(
            before, after, f"{e.overlay} (rendered, {base})", f"{e.overlay} (rendered, work tree)"
        )
        for e, before, after in zip(envs, texts[: len(envs)], texts[len(envs) :], strict=True)
    }


def diff_against_env(root: Path, env_name: str, source: str) -> str:
    """What ``--from SOURCE`` would change in ``env_name`` on the checked-out commit: a dry-run
    promotion (direct, so it is planned on HEAD, not on the remote), guard not applied."""
    request = PromotionRequest(env=env_name, source_env=source, dry_run=True, force=True, delivery="direct")
    result = promote(root, request, lambda _msg: None)
    return result.diff
