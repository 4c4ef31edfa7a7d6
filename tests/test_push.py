"""--push: compare-and-swap on the fresh remote state, retries, and concurrent runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Snapshot, World, git
from wealist.errors import RefusedError
from wealist.plan import PromotionRequest
from wealist.promote import promote

BIN = Path(sys.executable).parent
DEV = "overlays/dev/kustomization.yaml"


def push_promote(path: Path, **kwargs: object) -> object:
    return promote(path, PromotionRequest(push=True, **kwargs), lambda _m: None)  # type: ignore[arg-type]


def origin_head(world: World) -> str:
    return git(world.origin, "rev-parse", "main")


def test_push_lands_on_origin(world: World) -> None:
    result = push_promote(world.work, env="dev", tag="v1.1.0")
    assert result.pushed and origin_head(world) == world.head() == result.commit


def test_remote_moved_elsewhere_the_edit_is_reapplied_on_it(world: World) -> None:
    other = world.clone("other")
    world.write(
        "base/frontend/service.yaml", world.read("base/frontend/service.yaml", other) + "# other\n", other
    )
    moved = world.commit_all("unrelated change", other)
    git(other, "push", "-q", "origin", "main")
    result = push_promote(world.work, env="dev", tag="v1.1.0")
    assert result.pushed
    assert git(world.work, "rev-parse", "HEAD~1") == moved  # re-applied on top of the remote
    assert origin_head(world) == world.head()
    assert git(world.work, "status", "--porcelain") == ""
    assert "newTag: v1.1.0" in git(world.origin, "show", f"main:{DEV}")


def test_remote_moved_the_same_image_the_promotion_is_refused_and_kept(world: World) -> None:
    other = world.clone("other")
    push_promote(other, env="dev", tag="v5", components=("board-api",))
    with pytest.raises(
        RefusedError,
        match=r"dev changed on origin/main meanwhile .board-api is v5 there, the plan had v1.0.0",
    ):
        push_promote(world.work, env="dev", tag="v2", components=("board-api",))
    # Nothing lost: the promotion commit stays on the local branch, unpushed.
    assert "promote(dev): board-api v1.0.0 → v2" in git(world.work, "log", "-1", "--format=%s")
    assert "newTag: v5" in git(world.origin, "show", f"main:{DEV}")


def test_unpushed_local_commits_are_not_published_along(world: World) -> None:
    world.write("notes.md", "wip\n")
    world.commit_all("local work")
    snap = Snapshot.take(world.work)
    with pytest.raises(RefusedError, match="1 unpushed commit"):
        push_promote(world.work, env="dev", tag="v1.1.0")
    assert Snapshot.take(world.work) == snap


def _spawn(path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN / "wealist-promote"), *args],
        cwd=path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def test_two_clones_pushing_at_once_both_land(world: World) -> None:
    a, b = world.clone("a"), world.clone("b")
    procs = [
        _spawn(a, "--env", "dev", "--tag", "v2.0.0", "--component", "board-api", "--push"),
        _spawn(b, "--env", "dev", "--tag", "v3.0.0", "--component", "frontend", "--push"),
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    overlay = git(world.origin, "show", f"main:{DEV}")
    assert (
        "name: wealist/board-api\n"
        "    newName: k3d-wealist-registry:5000/wealist/board-api\n    newTag: v2.0.0" in overlay
    )
    assert (
        "name: wealist/frontend\n    newName: k3d-wealist-registry:5000/wealist/frontend\n    newTag: v3.0.0"
        in overlay
    )
    subjects = git(world.origin, "log", "--format=%s", "main").splitlines()
    assert sum(s.startswith("promote(dev)") for s in subjects) == 2


def test_two_runs_in_one_clone_serialise(world: World) -> None:
    procs = [
        _spawn(world.work, "--env", "dev", "--tag", "v2.0.0", "--component", "board-api"),
        _spawn(world.work, "--env", "dev", "--tag", "v3.0.0", "--component", "frontend"),
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    overlay = world.read(DEV)
    assert "newTag: v2.0.0" in overlay and "newTag: v3.0.0" in overlay
    assert git(world.work, "status", "--porcelain") == ""
    assert len(git(world.work, "log", "--format=%H", "--grep=^Wealist-Env: dev").splitlines()) == 2


def test_reapplied_edit_keeps_components_that_were_already_there(world: World) -> None:
    push_promote(world.work, env="dev", tag="v1.1.0", components=("frontend",))
    other = world.clone("other")
    world.write("notes.md", "moved\n", other)
    world.commit_all("the remote moves", other)
    git(other, "push", "-q", "origin", "main")
    result = push_promote(world.work, env="dev", tag="v1.1.0")  # frontend is there already
    assert result.pushed
    assert [c.component for c in result.plan.changes] == ["board-api"]
    assert origin_head(world) == world.head()
    assert git(world.work, "log", "-1", "--format=%s") == "promote(dev): board-api v1.0.0 → v1.1.0"


def test_a_server_side_refusal_is_reported_with_its_reason_and_not_retried(world: World) -> None:
    from wealist.errors import GitError

    hook = world.origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'main is protected: changes go through a pull request' >&2\nexit 1\n")
    hook.chmod(0o755)
    log: list[str] = []
    with pytest.raises(GitError) as caught:
        promote(world.work, PromotionRequest(env="dev", tag="v1.1.0", push=True), log.append)
    commit = world.head()
    assert caught.value.message == (
        "origin refused the push to main: pre-receive hook declined; main is protected: changes go "
        f"through a pull request. Your promotion {commit[:10]} is committed on main, not pushed: "
        "push it when the remote accepts it"
    )
    assert log == []  # no "origin/main moved", no retry
    assert "promote(dev)" in git(world.work, "log", "-1", "--format=%s")
