"""--wait: follow Argo CD (the stand-in of its API) until the environment runs the promotion,
fails, or the timeout passes (exit 3)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FakeArgoCD, FakeGitHub, World, application, git, promote_cli
from wealist import wait
from wealist.errors import UsageError
from wealist.plan import PromotionRequest
from wealist.promote import promote
from wealist.wait import Failed, after_promotion, parse_duration

DEV_APP = "wealist-dev-in-cluster"
BIN = Path(sys.executable).parent


def images(tag: str, registry: str = "k3d-wealist-registry:5000") -> list[str]:
    return [f"{registry}/wealist/board-api:{tag}", f"{registry}/wealist/frontend:{tag}"]


@pytest.fixture
def waiting(world: World, argocd: FakeArgoCD, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setattr(wait, "POLL_SECONDS", 0.01)
    world.write("promotion.yaml", world.read("promotion.yaml") + f"argocd:\n  server: {argocd.url}\n")
    world.commit_all("ask Argo CD")
    git(world.work, "push", "-q", "origin", "main")
    return world


def pushed(world: World, tag: str) -> object:
    return promote(world.work, PromotionRequest(env="dev", tag=tag, push=True, wait=True), lambda _m: None)


def test_it_follows_the_rollout_until_healthy(waiting: World, argocd: FakeArgoCD) -> None:
    before = waiting.head()
    result = pushed(waiting, "v1.1.0")
    new = result.commit  # type: ignore[attr-defined]
    argocd.step_every_get = True
    argocd.apps[DEV_APP] = [
        application(DEV_APP, before, images("v1.0.0")),  # not yet synced to it
        application(DEV_APP, new, images("v1.0.0"), operation=True, phase="Running", finished=None),
        application(DEV_APP, new, images("v1.1.0"), health="Progressing"),
        application(DEV_APP, new, images("v1.1.0")),
    ]
    progress: list[str] = []
    states = after_promotion(waiting.work, result, 30, progress.append)  # type: ignore[arg-type]
    assert [s.health for s in states] == ["Healthy"]
    assert progress == [
        f"{DEV_APP}: Synced, Healthy at {before[:10]}: not yet synced to {new[:10]}",
        f"{DEV_APP}: Synced, Healthy at {new[:10]}: syncing (Running)",
        f"{DEV_APP}: Synced, Progressing at {new[:10]}: synced; Progressing",
        f"{DEV_APP}: Synced, Healthy at {new[:10]}: runs it, Healthy",
    ]
    assert argocd.requests[0][0] == f"/api/v1/applications/{DEV_APP}?refresh=normal"  # no polling wait


def test_degraded_fails_naming_the_resources(waiting: World, argocd: FakeArgoCD) -> None:
    result = pushed(waiting, "v1.1.0")
    new = result.commit  # type: ignore[attr-defined]
    broken = (("Deployment", "board-api", "Degraded", "Deployment exceeded its progress deadline"),)
    argocd.apps[DEV_APP] = [application(DEV_APP, new, images("v1.1.0"), health="Degraded", resources=broken)]
    with pytest.raises(Failed) as caught:
        after_promotion(waiting.work, result, 30, lambda _m: None)  # type: ignore[arg-type]
    assert caught.value.exit_code == 1
    assert "Degraded: Deployment/board-api: Degraded (Deployment exceeded its progress deadline)" in (
        caught.value.message
    )


def test_a_failed_sync_fails_with_its_message(waiting: World, argocd: FakeArgoCD) -> None:
    result = pushed(waiting, "v1.1.0")
    argocd.apps[DEV_APP] = [application(DEV_APP, result.commit, images("v1.0.0"), phase="Failed")]  # type: ignore[attr-defined]
    with pytest.raises(Failed, match="sync failed: sync failed"):
        after_promotion(waiting.work, result, 30, lambda _m: None)  # type: ignore[arg-type]


def test_a_timeout_is_exit_3_and_names_a_deny_window(waiting: World, argocd: FakeArgoCD) -> None:
    argocd.apps[DEV_APP] = [application(DEV_APP, waiting.head(), images("v1.0.0"))]
    argocd.windows[DEV_APP] = {
        "canSync": False,
        "activeWindows": [{"kind": "deny", "schedule": "0 22 * * *", "duration": "8h"}],
    }
    proc = subprocess.run(
        [
            str(BIN / "wealist-promote"),
            "--env",
            "dev",
            "--tag",
            "v1.1.0",
            "--push",
            "--wait",
            "--timeout",
            "1s",
        ],
        cwd=waiting.work,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert proc.returncode == 3, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: gave up after 1s waiting for dev: ")
    assert "a sync window forbids syncing now (deny 0 22 * * * for 8h)" in last


def test_a_pull_request_is_waited_for_until_merged_then_synced(
    waiting: World, argocd: FakeArgoCD, github: FakeGitHub
) -> None:
    promote(waiting.work, PromotionRequest(env="dev", tag="v1.1.0", push=True), lambda _m: None)
    argocd.apps[DEV_APP] = [application(DEV_APP, waiting.head(), images("v1.1.0"))]
    request = PromotionRequest(env="prod", source_env="dev", wait=True)
    result = promote(waiting.work, request, lambda _m: None)
    number = result.pull_number  # type: ignore[attr-defined]
    base = f"/repos/wealist/wealist-gitops/pulls/{number}"
    github.routes[("GET", base)] = (200, {"number": number, "state": "open", "merged": False})
    # The reviewer merges (here: fast-forward on the origin), and GitHub says so.
    git(waiting.origin, "update-ref", "refs/heads/main", f"refs/heads/{result.branch}")  # type: ignore[attr-defined]
    merge = git(waiting.origin, "rev-parse", "main")
    progress: list[str] = []

    def merged_on_second_poll(message: str) -> None:
        progress.append(message)
        github.routes[("GET", base)] = (
            200,
            {"number": number, "state": "closed", "merged": True, "merge_commit_sha": merge},
        )

    live = images("v1.1.0", "ghcr.io")
    live = [
        next(c.reference(c.new) for c in result.plan.changes if c.component == n)
        for n in ("board-api", "frontend")
    ]  # type: ignore[attr-defined]
    for app in ("wealist-prod-gke-prod", "wealist-prod-eks-prod"):
        argocd.apps[app] = [application(app, merge, live)]
    states = after_promotion(waiting.work, result, 30, merged_on_second_poll)  # type: ignore[arg-type]
    assert progress[:2] == [f"pull request #{number}: open", f"pull request #{number}: merged"]
    assert {s.name for s in states} == {"wealist-prod-gke-prod", "wealist-prod-eks-prod"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env", "dev", "--tag", "v1.1.0", "--wait"], "--wait needs --push with direct delivery"),
        (["--env", "dev", "--tag", "v1.1.0", "--push", "--wait", "--timeout", "soon"], "is not a duration"),
    ],
)
def test_wait_usage_errors_change_nothing(waiting: World, args: list[str], message: str) -> None:
    head = waiting.head()
    proc = promote_cli(waiting, *args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert waiting.head() == head


def test_durations() -> None:
    assert [parse_duration(t) for t in ("90s", "10m", "1h30m")] == [90, 600, 5400]
    with pytest.raises(UsageError, match="is not a duration"):
        parse_duration("")
