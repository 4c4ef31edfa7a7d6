"""What happens around `git commit`: a commit that fails or is interrupted never loses the user's
edits, never takes another git process's lock, and what lands is exactly what was validated.
Each case failed before its fix (hardening pass)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import Snapshot, World, git
from wealist import transaction
from wealist.errors import GitError, RefusedError
from wealist.gitrepo import GitRepo
from wealist.plan import PromotionRequest
from wealist.promote import promote
from wealist.transaction import RepoLock

DEV = "overlays/dev/kustomization.yaml"
BIN = Path(sys.executable).parent
JOURNAL = Path(".git/wealist/journal.json")


def quiet(_message: str) -> None:
    pass


def hook(world: World, name: str, body: str) -> Path:
    path = world.work / ".git" / "hooks" / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def dev(tag: str, **options: object) -> PromotionRequest:
    return PromotionRequest(env="dev", tag=tag, **options)  # type: ignore[arg-type]


def test_a_refusing_pre_commit_hook_leaves_the_repository_as_it_was(world: World) -> None:
    path = hook(world, "pre-commit", "echo 'lint: no' >&2; exit 1")
    before = Snapshot.take(world.work)
    with pytest.raises(GitError) as caught:
        promote(world.work, dev("v2.0.0"), quiet)
    assert f"hooks that ran: {path}" in caught.value.message
    assert "nothing was committed" in caught.value.message
    assert Snapshot.take(world.work) == before
    assert not (world.work / JOURNAL).exists()


def test_signing_without_a_key_leaves_the_repository_as_it_was(world: World) -> None:
    git(world.work, "config", "commit.gpgsign", "true")
    git(world.work, "config", "gpg.program", "false")
    before = Snapshot.take(world.work)
    with pytest.raises(GitError, match="git commit failed"):
        promote(world.work, dev("v2.0.0"), quiet)
    assert Snapshot.take(world.work) == before
    assert not (world.work / JOURNAL).exists()


def test_someone_elses_index_lock_is_left_alone(world: World) -> None:
    lock = world.work / ".git" / "index.lock"
    lock.write_text("")
    before = Snapshot.take(world.work)
    with pytest.raises(GitError, match=r"index\.lock"):
        promote(world.work, dev("v2.0.0"), quiet)
    assert lock.exists()
    assert Snapshot.take(world.work) == before


def test_ctrl_c_during_a_slow_hook_puts_the_overlay_back(world: World) -> None:
    hook(world, "pre-commit", "sleep 10")
    original = world.read(DEV)
    proc = subprocess.Popen(
        [str(BIN / "wealist-promote"), "--env", "dev", "--tag", "v2.0.0"],
        cwd=world.work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while world.read(DEV) == original and time.monotonic() < deadline:
        time.sleep(0.05)  # the overlay is written right before `git commit` runs the hook
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends to the foreground group
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode in (1, 130), stderr  # git's failure or the interrupt, whichever is seen first
    assert stderr.count("Error: ") == 1 and "unexpected" not in stderr, stderr
    assert world.read(DEV) == original
    assert not (world.work / JOURNAL).exists()
    assert git(world.work, "status", "--porcelain") == ""


def test_recovery_never_overwrites_edits_made_after_an_interrupted_run(world: World) -> None:
    repo = GitRepo(world.work)
    original = world.read(DEV)
    new = original.replace("v1.0.0", "v6.6.6")
    transaction.begin(repo, world.head(), DEV, original, new)
    world.write(DEV, new)  # killed before the commit ...
    edited = new.replace("replicas: 1", "replicas: 1  # mine")
    edited = edited + "# the user's own edit\n"
    world.write(DEV, edited)  # ... and the user edited the file since
    with pytest.raises(RefusedError, match="was changed after an interrupted promotion"), RepoLock(repo):
        pass
    assert world.read(DEV) == edited
    assert (world.work / JOURNAL).exists()
    # Once the user has decided (here: discarded the edit), the next run heals and carries on.
    git(world.work, "checkout", "--", DEV)
    with RepoLock(repo) as lock:
        assert lock.recovered == f"an interrupted promotion was rolled back; {DEV} is as it was"
    assert not (world.work / JOURNAL).exists()


def test_recovery_never_takes_the_lock_of_a_live_git_process(world: World) -> None:
    repo = GitRepo(world.work)
    original = world.read(DEV)
    new = original.replace("v1.0.0", "v6.6.6")
    transaction.begin(repo, world.head(), DEV, original, new)
    world.write(DEV, new)
    lock = world.work / ".git" / "index.lock"
    lock.write_text("")
    # A git process of somebody else's (not a child of this one) working in the clone.
    other = subprocess.Popen(
        ["sh", "-c", "sleep 30 | git hash-object --stdin"], cwd=world.work, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 10
        while not transaction.git_processes(repo) and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(RefusedError, match="a git process is running in this clone"), RepoLock(repo):
            pass
        assert lock.exists()
        assert world.read(DEV) == new  # nothing healed while the other process may be writing
    finally:
        os.killpg(other.pid, signal.SIGKILL)
        other.wait()
    with RepoLock(repo) as held:  # gone: now the lock is stale, and it is cleared
        assert held.recovered == f"an interrupted promotion was rolled back; {DEV} is as it was"
    assert not lock.exists()


def test_a_hook_that_changes_the_staged_overlay_is_undone(world: World) -> None:
    hook(world, "pre-commit", f"sed -i 's/newTag: v2.0.0/newTag: latest/' {DEV} && git add {DEV}")
    before = Snapshot.take(world.work)
    with pytest.raises(RefusedError) as caught:
        promote(world.work, dev("v2.0.0"), quiet)
    assert caught.value.message == (
        f"{world.work}/.git/hooks/pre-commit changed what was committed ({DEV} is not what was "
        f"validated): the commit is undone and {DEV} is as it was"
    )
    assert Snapshot.take(world.work) == before
    assert not (world.work / JOURNAL).exists()


def test_a_hook_that_pushes_the_trailers_out_of_the_last_paragraph_is_undone(world: World) -> None:
    hook(world, "prepare-commit-msg", 'printf "\\nRefs: TICKET-1 (see the tracker)\\n\\nmore\\n" >> "$1"')
    before = Snapshot.take(world.work)
    with pytest.raises(RefusedError, match=r"prepare-commit-msg changed the commit message"):
        promote(world.work, dev("v2.0.0"), quiet)
    assert Snapshot.take(world.work) == before


def test_a_hook_that_adds_its_own_trailer_is_fine(world: World) -> None:
    hook(world, "commit-msg", 'printf "Reviewed-by: bot\\n" >> "$1"')
    result = promote(world.work, dev("v2.0.0"), quiet)
    assert result.commit == world.head()
    assert "Reviewed-by: bot" in git(world.work, "log", "-1", "--format=%(trailers:only)")


def test_pull_request_delivery_checks_its_commit_too(world: World) -> None:
    prod = "overlays/prod/kustomization.yaml"
    hook(world, "pre-commit", f"sed -i 's/newTag: v2.0.0/newTag: latest/' {prod} && git add {prod}")
    before = Snapshot.take(world.work)
    remote_before = git(world.origin, "for-each-ref")
    request = PromotionRequest(env="prod", tag="v2.0.0", delivery="pull-request", force=True)
    with pytest.raises(RefusedError, match=r"changed what was committed .*: nothing was pushed"):
        promote(world.work, request, quiet)
    assert Snapshot.take(world.work) == before
    assert git(world.origin, "for-each-ref") == remote_before


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (["update-index", "--skip-worktree", DEV], "is skip-worktree"),
        (["update-index", "--assume-unchanged", DEV], "is marked assume-unchanged"),
        (["checkout", "-q", "--detach"], "HEAD is detached"),
        (["bisect", "start"], "a bisect is in progress"),
    ],
)
def test_checkout_states_a_commit_would_be_lost_in_are_refused(
    world: World, setup: list[str], message: str
) -> None:
    git(world.work, *setup)
    before = Snapshot.take(world.work)
    with pytest.raises(RefusedError, match=message):
        promote(world.work, dev("v2.0.0"), quiet)
    assert Snapshot.take(world.work) == before


def test_a_stopped_rebase_on_a_detached_head_is_refused(world: World) -> None:
    git(world.work, "commit", "-q", "--allow-empty", "-m", "one")
    git(world.work, "commit", "-q", "--allow-empty", "-m", "two")
    git(world.work, "rebase", "-q", "--exec", "false", "HEAD~2", check=False)  # stops, detached
    assert git(world.work, "branch", "--show-current") == ""
    before = Snapshot.take(world.work)
    with pytest.raises(RefusedError, match="a rebase is in progress here"):
        promote(world.work, dev("v2.0.0"), quiet)
    assert Snapshot.take(world.work) == before
