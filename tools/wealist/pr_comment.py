"""The repository's own review step: one pull-request comment with the rendered diff of every
environment the pull request touches, posted or updated (never duplicated) on each push."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import load_config
from .errors import ConfigError
from .forge import BODY_LIMIT, GitHub, fit_lines
from .gitrepo import GitRepo
from .review import diffs_against_ref

MARKER = "<!-- wealist:rendered-diff -->"
SHARED_PATHS = ("base/", "components/", "promotion.yaml")  # a change here can change every environment


@dataclass(frozen=True)
class EnvDiff:
    env: str
    diff: str


def touched_environments(root: Path, base: str) -> list[str]:
    repo = GitRepo(root)
    cfg = load_config(repo.root)
    changed = repo.changed_paths(repo.rev(base))
    if any(path.startswith(SHARED_PATHS) for path in changed):
        return [e.name for e in cfg.environments]
    return [e.name for e in cfg.environments if any(path.startswith(f"{e.overlay}/") for path in changed)]


def rendered_diffs(root: Path, base: str) -> list[EnvDiff]:
    envs = touched_environments(root, base)
    diffs = diffs_against_ref(root, envs, base) if envs else {}
    return [EnvDiff(env, diffs[env]) for env in envs]


def comment_body(diffs: list[EnvDiff], base: str) -> str:
    head = f"{MARKER}\n### Rendered changes against `{base}`\n"
    if not diffs:
        return head + "\nNo environment's manifests change.\n"
    parts = [head]
    room = (BODY_LIMIT - 2_000) // len(diffs)
    for item in diffs:
        changed = sum(
            1 for line in item.diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")
        )
        if not item.diff:
            parts.append(f"\n**{item.env}**: no rendered change.\n")
            continue
        shown, kept, total = fit_lines(item.diff, room)
        cut = f"\n_truncated: {kept} of {total} lines; run `wealist diff --env {item.env} --base {base}`_\n"
        summary = f"<summary><b>{item.env}</b>: {changed} changed lines</summary>"
        parts.append(
            f"\n<details>{summary}\n\n```diff\n{shown}```\n{cut if kept < total else ''}</details>\n"
        )
    return "".join(parts)


def post(root: Path, base: str, number: int) -> str:
    """Compute the diffs and post or update the comment; returns its URL."""
    cfg = load_config(GitRepo(root).root)
    if cfg.forge is None:
        raise ConfigError("promotion.yaml names no forge to comment on")
    github = GitHub.from_env(cfg.forge.repository)
    if github is None:
        raise ConfigError("GITHUB_TOKEN is not set: cannot comment on the pull request")
    return github.upsert_comment(number, MARKER, comment_body(rendered_diffs(root, base), base))
