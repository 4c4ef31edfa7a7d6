"""Rendered views for review: one environment, and its difference against a ref or another env."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from .config import load_config
from .gitrepo import GitRepo
from .promote import PromotionRequest, promote, unified
from .render import find_renderer


def render_env(root: Path, env_name: str) -> str:
    """The environment as the work tree renders it now (uncommitted edits included)."""
    repo = GitRepo(root)
    env = load_config(repo.root).env(env_name)
    return find_renderer().build(repo.root / env.overlay)


def diff_against_ref(root: Path, env_name: str, base: str) -> str:
    """Rendered difference from ``base`` (a commit, branch or tag) to the work tree."""
    repo = GitRepo(root)
    env = load_config(repo.root).env(env_name)
    commit = repo.rev(base)
    renderer = find_renderer()
    with tempfile.TemporaryDirectory(prefix="wealist-diff-") as tmp:
        repo.archive(commit, Path(tmp))
        before, after = renderer.build_many([Path(tmp) / env.overlay, repo.root / env.overlay])
    return unified(before, after, f"{env.overlay} (rendered, {base})", f"{env.overlay} (rendered, work tree)")


def diff_against_env(root: Path, env_name: str, source: str) -> str:
    """What ``--from SOURCE`` would change in ``env_name``: a dry-run promotion, guard not applied."""
    request = PromotionRequest(env=env_name, source_env=source, dry_run=True, force=True)
    result = promote(root, dataclasses.replace(request), lambda _msg: None)
    return result.diff
