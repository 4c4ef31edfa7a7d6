"""--wait: after a promotion is published, follow Argo CD until the environment runs it.

Direct delivery waits for the pushed commit; pull-request delivery first waits for the pull request
to be merged (polling the forge), then for the merge commit. Argo CD is asked to refresh first
(``?refresh=normal``), so its 3-minute polling interval is not waited out. Success when every
Application of the environment has synced a revision that contains the commit, finished its
operation, reconciled since, is Healthy and runs the new images; failure (exit 1) when it turns
Degraded or the sync fails on that revision; exit 3 when the timeout passes first.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .argocd import AppState, ArgoCD
from .config import Config, Environment
from .errors import ConfigError, RefusedError, UsageError, WealistError
from .gitrepo import GitRepo

if TYPE_CHECKING:
    from .delivery import PromotionResult
    from .forge import GitHub

POLL_SECONDS = 2.0
Log = Callable[[str], None]


class WaitTimeout(WealistError):
    """--wait gave up before the environment ran the promotion (exit 3)."""

    exit_code = 3


class Failed(RefusedError):
    """Argo CD reports the promotion failed: the sync failed or the application is Degraded."""


def parse_duration(text: str) -> float:
    """Seconds from ``90s``, ``10m``, ``1h`` or ``1h30m``."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text.strip())
    if not text.strip() or parts is None:
        raise UsageError(f"--timeout {text!r} is not a duration like 90s, 10m or 1h30m")
    hours, minutes, seconds = (int(p or 0) for p in parts.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


@dataclass(frozen=True)
class Target:
    """What the environment must run: the commit (or one containing it) and its images."""

    env: Environment
    commit: str
    images: tuple[str, ...]


def follow(repo: GitRepo, cfg: Config, target: Target, timeout: float, log: Log) -> list[AppState]:
    """Poll every Application of ``target.env`` until it runs ``target`` (returns the states),
    fails (Failed) or ``timeout`` seconds pass (WaitTimeout). One progress line per change.

    Long because the loop keeps what each Application last said, for the progress lines and for
    the message of a timeout."""
    if cfg.argocd_server is None:
        raise ConfigError("--wait needs Argo CD: add argocd: server: to promotion.yaml")
    argocd = ArgoCD.from_env(cfg.argocd_server)
    apps = cfg.applications(target.env)
    if not apps:
        raise ConfigError(f"no cluster of the fleet runs {target.env.name}: nothing to wait for")
    deadline = time.monotonic() + timeout
    said: dict[str, str] = {}
    refreshed: set[str] = set()
    fetched: set[str] = set()
    while True:
        done = []
        for app in apps:
            state = argocd.application(app, refresh=app not in refreshed)
            refreshed.add(app)
            if state.revision and not repo.has_commit(state.revision) and state.revision not in fetched:
                fetched.add(state.revision)  # synced past what this clone has: fetch it, once
                remote, branch = repo.push_target()
                repo.fetch(remote, branch)
            verdict, detail = _judge(repo, state, target)
            if verdict == "waiting" and not _contains(repo, state, target.commit):
                blocked = argocd.denied_by_window(app)
                detail += f"; {blocked}" if blocked else ""
            at = (state.revision or "?")[:10]
            line = f"{app}: {state.sync or '?'}, {state.health or '?'} at {at}: {detail}"
            if said.get(app) != line:
                log(line)
                said[app] = line
            if verdict == "failed":
                raise Failed(
                    f"{target.env.name} did not take the promotion {target.commit[:10]}: {app}: {detail}"
                )
            done.append(verdict == "done")
        if all(done):
            return [argocd.application(app) for app in apps]
        if time.monotonic() + POLL_SECONDS > deadline:
            waiting = "; ".join(line for line in said.values())
            raise WaitTimeout(f"gave up after {timeout:.0f}s waiting for {target.env.name}: {waiting}")
        time.sleep(POLL_SECONDS)


def _contains(repo: GitRepo, state: AppState, commit: str) -> bool:
    return bool(state.revision) and repo.is_ancestor(commit, str(state.revision))


def _judge(repo: GitRepo, state: AppState, target: Target) -> tuple[str, str]:
    """("done" | "failed" | "waiting", what the Application shows)."""
    if not _contains(repo, state, target.commit):
        return "waiting", f"not yet synced to {target.commit[:10]}"
    if state.operation_running:
        return "waiting", f"syncing ({state.phase or 'starting'})"
    if state.phase in ("Failed", "Error"):
        return "failed", f"sync {state.phase.lower()}: {state.message or 'no message'}"
    if state.health == "Degraded":
        failing = "; ".join(state.failing) or "no resource named"
        return "failed", f"Degraded: {failing}" + (f" (operation: {state.message})" if state.message else "")
    if state.stale():
        return "waiting", "synced; waiting for Argo CD to reconcile"
    if state.health != "Healthy":
        return "waiting", f"synced; {state.health or 'health unknown'}"
    missing = [image for image in target.images if image not in state.images]
    if missing:
        return "waiting", f"Healthy; not yet running {', '.join(missing)}"
    return "done", "runs it, Healthy"


def wait_for_merge(github: GitHub, number: int, deadline: float, log: Log) -> str:
    """Poll the forge until pull request ``number`` is merged; its merge commit."""
    said = None
    while True:
        merged, state, sha = github.pull_state(number)
        line = f"pull request #{number}: {'merged' if merged else state}"
        if line != said:
            log(line)
            said = line
        if merged and sha:
            return sha
        if state == "closed":
            raise Failed(f"pull request #{number} was closed without being merged")
        if time.monotonic() + POLL_SECONDS > deadline:
            raise WaitTimeout(f"gave up waiting for pull request #{number} to be merged")
        time.sleep(POLL_SECONDS)


def after_promotion(root: Path, result: PromotionResult, timeout: float, log: Log) -> list[AppState]:
    """Wait until the environment ``result`` promoted runs it (see the module's docstring)."""
    from .config import load_config
    from .forge import GitHub

    repo = GitRepo(root)
    cfg = load_config(repo.root)
    plan = result.plan
    if result.commit is None:
        return []
    deadline = time.monotonic() + timeout
    commit = result.commit
    if plan.delivery == "pull-request":
        github = GitHub.from_env(cfg.forge.repository) if cfg.forge else None
        if github is None or result.pull_number is None:
            raise ConfigError("--wait on a pull request needs GITHUB_TOKEN and a forge to see it merged")
        commit = wait_for_merge(github, result.pull_number, deadline, log)
        remote, branch = repo.push_target()
        repo.fetch(remote, branch)
    target = Target(plan.env, commit, tuple(c.reference(c.new) for c in plan.changes))
    return follow(repo, cfg, target, max(0.0, deadline - time.monotonic()), log)
