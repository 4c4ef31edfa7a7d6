"""Safe to interrupt: SIGKILL a promotion at random moments, many times; the repository is always
either as before or holds the finished commit, and the next run is never blocked."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

from conftest import World, git, killed_midway
from wealist.gitrepo import GitRepo
from wealist.transaction import RepoLock

BIN = Path(sys.executable).parent
DEV = "overlays/dev/kustomization.yaml"
KILLS = int(os.environ.get("WEALIST_KILLS", "25"))


def overlay_tags(text: str) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if "newTag:" in line]


def test_sigkill_at_random_moments(world: World) -> None:
    rng = random.Random(20261125)
    # Kill within 1.5x the duration of an uninterrupted run on this machine under this load, so the
    # kills land before, during and after the commit however fast the machine is.
    started = time.monotonic()
    subprocess.run(
        [str(BIN / "wealist-promote"), "--env", "dev", "--tag", "v0.0.1-timing"],
        cwd=world.work,
        check=True,
        capture_output=True,
    )
    duration = time.monotonic() - started
    committed = 0
    for attempt in range(KILLS):
        tag = f"v0.{attempt}.0"
        head = world.head()
        argv = [str(BIN / "wealist-promote"), "--env", "dev", "--tag", tag]
        killed_midway(argv, world.work, rng.uniform(0.1, 1.5) * duration)

        # Never a half-written overlay: it parses, and holds the old or the new tags only.
        text = world.read(DEV)
        assert set(overlay_tags(text)) in ({tag}, set(overlay_tags(git(world.work, "show", f"{head}:{DEV}"))))

        # The next run heals whatever was left, without waiting on a stale lock.
        with RepoLock(GitRepo(world.work), timeout=5):
            pass
        new_head = world.head()
        if new_head != head:
            committed += 1
            assert git(world.work, "rev-parse", "HEAD~1") == head
            assert f"Wealist-Image: board-api=k3d-wealist-registry:5000/wealist/board-api:{tag}" in git(
                world.work, "log", "-1", "--format=%B"
            )
            assert overlay_tags(git(world.work, "show", f"HEAD:{DEV}")) == [tag, tag]
        assert git(world.work, "status", "--porcelain", "--untracked-files=all") == "", f"attempt {attempt}"
        git_dir = world.work / ".git"
        assert [*git_dir.glob("*.lock"), *git_dir.glob("refs/heads/*.lock")] == [], f"attempt {attempt}"
        assert world.read(DEV).rstrip("\n") == git(world.work, "show", f"HEAD:{DEV}")  # git() strips

    # After all that, a normal promotion still works.
    done = subprocess.run(
        [str(BIN / "wealist-promote"), "--env", "dev", "--tag", "v9.9.9"],
        cwd=world.work,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    print(f"{committed} of {KILLS} killed runs had committed")
    assert 0 < committed < KILLS, f"kills should land on both sides of the commit ({committed}/{KILLS})"


def test_recovery_rolls_back_a_written_but_uncommitted_overlay(world: World) -> None:
    from wealist import transaction

    repo = GitRepo(world.work)
    original = world.read(DEV)
    new = original.replace("v1.0.0", "v6.6.6")
    transaction.begin(repo, world.head(), DEV, original, new)
    world.write(DEV, new)  # the state a kill right before `git commit` leaves
    for lock in (
        "index.lock",
        "HEAD.lock",
        "refs/heads/main.lock",
        "next-index-4242.lock",
    ):  # and git's locks, had it started
        (world.work / ".git" / lock).write_text("")
    with RepoLock(repo) as lock:
        assert lock.recovered == f"an interrupted promotion was rolled back; {DEV} is as it was"
    assert world.read(DEV) == original
    assert git(world.work, "status", "--porcelain") == ""
    assert not (world.work / ".git" / "wealist" / "journal.json").exists()
    assert not list((world.work / ".git").rglob("*.lock"))


def test_recovery_keeps_a_finished_commit(world: World) -> None:
    from wealist import transaction

    repo = GitRepo(world.work)
    before = world.head()
    new = world.read(DEV).replace("v1.0.0", "v7.0.0")
    transaction.begin(repo, before, DEV, world.read(DEV), new)
    world.write(DEV, new)
    repo.commit("promote(dev): by hand\n\nWealist-Env: dev\n", [DEV])  # killed before the journal was cleared
    with RepoLock(repo) as lock:
        assert lock.recovered == "an interrupted promotion had completed its commit; cleaned up after it"
    assert world.head() != before
    assert git(world.work, "status", "--porcelain") == ""


def test_recovery_after_git_moved_the_branch_but_not_the_index(world: World) -> None:
    """`git commit` killed after it moved the branch but before it replaced the index: the commit
    landed, and the index still holds the old overlay (staged as a change back). Recovery makes
    the index match the finished commit."""
    import shutil

    from wealist import transaction

    repo = GitRepo(world.work)
    before = world.head()
    original = world.read(DEV)
    new = original.replace("v1.0.0", "v7.1.0")
    transaction.begin(repo, before, DEV, original, new)
    world.write(DEV, new)
    index = world.work / ".git" / "index"
    shutil.copy(index, index.with_suffix(".before"))
    repo.commit("promote(dev): by hand\n\nWealist-Env: dev\n", [DEV])
    shutil.copy(index.with_suffix(".before"), index)  # the old index: as if git never renamed its lock
    index.with_suffix(".before").unlink()
    assert git(world.work, "status", "--porcelain") == f"MM {DEV}"
    with RepoLock(repo) as lock:
        assert lock.recovered == "an interrupted promotion had completed its commit; cleaned up after it"
    assert world.head() != before
    assert git(world.work, "status", "--porcelain") == ""


def test_a_second_run_waits_then_fails_cleanly_while_the_lock_is_held(world: World) -> None:
    from wealist.errors import RefusedError

    repo = GitRepo(world.work)
    with RepoLock(repo):
        started = time.monotonic()
        try:
            with RepoLock(GitRepo(world.work), timeout=0.3):
                raise AssertionError("two holders")
        except RefusedError as exc:
            assert f"another wealist run (pid {os.getpid()})" in exc.message
        assert time.monotonic() - started >= 0.3
