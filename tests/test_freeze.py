"""Freezes: a committed record stops promotions (not rollbacks) until it expires or is removed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Snapshot, World, git, killed_midway
from wealist.errors import RefusedError, UsageError
from wealist.freeze import freeze, unfreeze
from wealist.history import repository_status
from wealist.plan import PromotionRequest
from wealist.promote import promote, rollback

WEALIST = str(Path(sys.executable).parent / "wealist")


def quiet(_message: str) -> None:
    pass


def test_a_freeze_refuses_promotions_naming_who_why_and_until(world: World) -> None:
    promote(world.work, PromotionRequest(env="dev", tag="v1.1.0"), quiet)
    freeze(world.work, "dev", "holiday: nobody on call", "2999-01-01T00:00:00Z", push=False)
    assert git(world.work, "show", "--name-only", "--format=%s", "HEAD").splitlines() == [
        "freeze(dev): holiday: nobody on call",
        "",
        "freezes/dev.yaml",
    ]
    before = Snapshot.take(world.work)
    with pytest.raises(RefusedError) as caught:
        promote(world.work, PromotionRequest(env="dev", tag="v1.2.0"), quiet)
    assert (
        caught.value.message.startswith("frozen: dev is frozen by Test Promoter since ")
        and "until 2999-01-01T00:00:00+00:00: holiday: nobody on call" in caught.value.message
    )
    assert Snapshot.take(world.work) == before
    with pytest.raises(UsageError, match="--force needs -m REASON"):
        promote(world.work, PromotionRequest(env="dev", tag="v1.2.0", force=True), quiet)
    # The emergency path stays open, and status shows the freeze.
    assert rollback(world.work, PromotionRequest(env="dev"), None, quiet).commit is not None
    assert repository_status(world.work).freezes[0].startswith("dev is frozen by Test Promoter")
    forced = PromotionRequest(env="dev", tag="v1.2.0", force=True, message="security fix")
    promote(world.work, forced, quiet)
    assert "Wealist-Forced: dev is frozen by Test Promoter" in git(world.work, "log", "-1", "--format=%B")
    unfreeze(world.work, "dev", push=False)
    assert promote(world.work, PromotionRequest(env="dev", tag="v1.3.0"), quiet).commit is not None


def test_an_expired_freeze_is_reported_and_ignored(world: World) -> None:
    freeze(world.work, "dev", "was until yesterday", "2999-01-01", push=False)
    record = world.read("freezes/dev.yaml").replace("2999-01-01T00:00:00+00:00", "2020-01-01T00:00:00+00:00")
    world.write("freezes/dev.yaml", record)
    world.commit_all("the freeze ended")
    result = promote(world.work, PromotionRequest(env="dev", tag="v1.2.0"), quiet)
    assert result.commit is not None
    assert result.plan.notes == (
        "the freeze of dev expired at 2020-01-01 00:00:00+00:00: ignored (wealist unfreeze removes it)",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env", "dev", "--reason", " "], "--reason must say why"),
        (["--env", "dev", "--reason", "x", "--until", "tomorrow"], "is not an ISO 8601 time"),
        (["--env", "dev", "--reason", "x", "--until", "2001-01-01"], "is in the past"),
        (["--env", "nope", "--reason", "x"], "unknown environment 'nope'"),
    ],
)
def test_bad_freezes_are_refused_in_one_line(world: World, args: list[str], message: str) -> None:
    before = Snapshot.take(world.work)
    proc = subprocess.run([WEALIST, "freeze", *args], cwd=world.work, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("Error: ") and message in proc.stderr, proc.stderr
    assert Snapshot.take(world.work) == before


def test_unfreezing_what_is_not_frozen_is_refused(world: World) -> None:
    proc = subprocess.run(
        [WEALIST, "unfreeze", "--env", "prod"], cwd=world.work, capture_output=True, text=True
    )
    assert proc.returncode == 1 and proc.stderr == "Error: prod is not frozen\n"


def test_validate_checks_the_records(world: World) -> None:
    from wealist.validate import validate

    (world.work / "freezes").mkdir()
    world.write("freezes/dev.yaml", "until: 2030-01-01\n")  # no reason
    world.write("freezes/staging.yaml", "reason: x\n")
    messages = sorted(str(f) for f in validate(world.work).findings if f.check == "freezes")
    assert messages == [
        "freezes: freezes/dev.yaml: freezes/dev.yaml must hold reason: (and optionally until:)",
        "freezes: freezes/staging.yaml: is not <environment>.yaml for one of dev, prod",
    ]


def test_freezes_are_in_the_history(world: World) -> None:
    freeze(world.work, "prod", "audit week", None, push=False)
    unfreeze(world.work, "prod", push=False)
    text = subprocess.run(
        [WEALIST, "history", "--env", "prod"], cwd=world.work, capture_output=True, text=True
    )
    lines = text.stdout.splitlines()
    assert "unfreeze(prod)  — Test Promoter" in lines[0] and "freeze(prod): audit week" in lines[1], lines


def test_a_freeze_never_overwrites_uncommitted_work(world: World) -> None:
    """A record somebody is editing (or wrote and never committed) is theirs: refused, untouched."""
    (world.work / "freezes").mkdir()
    (world.work / "freezes" / "dev.yaml").write_text("reason: drafted by hand\n")
    before = Snapshot.take(world.work)
    with pytest.raises(RefusedError, match=r"freezes/dev\.yaml has uncommitted changes"):
        freeze(world.work, "dev", "release week", None, push=False)
    assert Snapshot.take(world.work) == before


def test_a_refused_freeze_commit_puts_everything_back(world: World) -> None:
    """A pre-commit hook refuses the freeze: no record left in the work tree or the index, no
    journal, and the next run has nothing to heal."""
    from wealist.errors import GitError
    from wealist.gitrepo import GitRepo
    from wealist.transaction import RepoLock

    hook = world.work / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'no freezes on Fridays' >&2\nexit 1\n")
    hook.chmod(0o755)
    before = Snapshot.take(world.work)
    with pytest.raises(GitError, match="no freezes on Fridays"):
        freeze(world.work, "dev", "release week", None, push=False)
    assert Snapshot.take(world.work) == before
    assert not (world.work / ".git" / "wealist" / "journal.json").exists()
    with RepoLock(GitRepo(world.work)) as lock:
        assert lock.recovered is None


@pytest.mark.parametrize("removing", [False, True], ids=["freeze", "unfreeze"])
def test_a_killed_freeze_is_healed_by_the_next_run(world: World, removing: bool) -> None:
    """A freeze (or unfreeze) killed after writing its record but before its commit: the next run
    puts the record back as HEAD has it, and the index too."""
    from wealist import transaction
    from wealist.gitrepo import GitRepo
    from wealist.transaction import RepoLock

    path = "freezes/dev.yaml"
    if removing:
        freeze(world.work, "dev", "release week", None, push=False)
    before = Snapshot.take(world.work)
    repo = GitRepo(world.work)
    original = repo.show("HEAD", path)
    new = None if removing else 'reason: "half-way"\n'
    transaction.begin(repo, world.head(), path, original, new, "unfreeze" if removing else "freeze")
    if removing:
        (world.work / path).unlink()
    else:
        (world.work / "freezes").mkdir(exist_ok=True)
        (world.work / path).write_text(new or "")
        git(world.work, "add", path)
    with RepoLock(repo) as lock:
        what = "unfreeze" if removing else "freeze"
        assert lock.recovered == f"an interrupted {what} was rolled back; {path} is as it was"
    assert Snapshot.take(world.work) == before


def test_an_unfreeze_whose_commit_moved_the_branch_but_not_the_index_is_cleaned_up(world: World) -> None:
    """Found by the random kills: an unfreeze's `git commit` killed after the branch moved but
    before the index was replaced leaves the removed record staged as an addition ("AD"); recovery
    makes the index match the finished commit."""
    import shutil

    from wealist import transaction
    from wealist.gitrepo import GitRepo
    from wealist.transaction import RepoLock

    path = "freezes/dev.yaml"
    freeze(world.work, "dev", "release week", None, push=False)
    repo = GitRepo(world.work)
    before = world.head()
    transaction.begin(repo, before, path, world.read(path), None, "unfreeze")
    (world.work / path).unlink()
    index = world.work / ".git" / "index"
    shutil.copy(index, index.with_suffix(".before"))
    repo.commit("unfreeze(dev)\n\nWealist-Freeze: freezes/dev.yaml\n", [path])
    shutil.copy(index.with_suffix(".before"), index)
    index.with_suffix(".before").unlink()
    assert git(world.work, "status", "--porcelain") == f"AD {path}"
    with RepoLock(repo) as lock:
        assert lock.recovered == "an interrupted unfreeze had completed its commit; cleaned up after it"
    assert world.head() != before
    assert git(world.work, "status", "--porcelain", "--untracked-files=all") == ""


def test_freezes_survive_sigkill_at_random_moments(world: World) -> None:
    """`wealist freeze` / `unfreeze` killed at random moments: the clone is always as before or
    holds the finished commit, with nothing left over once the next run took the lock."""
    import random
    import time

    from wealist.gitrepo import GitRepo
    from wealist.transaction import RepoLock

    rng = random.Random(20261125)
    started = time.monotonic()
    subprocess.run([WEALIST, "freeze", "--env", "dev", "--reason", "timing"], cwd=world.work, check=True)
    subprocess.run([WEALIST, "unfreeze", "--env", "dev"], cwd=world.work, check=True)
    duration = (time.monotonic() - started) / 2
    outcomes = []
    for attempt in range(12):
        head = world.head()
        frozen = (world.work / "freezes" / "dev.yaml").exists()
        args = ["unfreeze", "--env", "dev"]
        if not frozen:
            args = ["freeze", "--env", "dev", "--reason", f"r{attempt}"]
        killed_midway([WEALIST, *args], world.work, rng.uniform(0.1, 1.5) * duration)
        with RepoLock(GitRepo(world.work), timeout=5):
            pass
        if world.head() != head:
            assert git(world.work, "rev-parse", "HEAD~1") == head
            assert git(world.work, "log", "-1", "--format=%s").startswith(args[0] + "(dev)")
        outcomes.append(world.head() != head)
        assert git(world.work, "status", "--porcelain", "--untracked-files=all") == "", f"attempt {attempt}"
        assert not (world.work / ".git" / "wealist" / "journal.json").exists()
        git_dir = world.work / ".git"
        assert [*git_dir.glob("*.lock"), *git_dir.glob("refs/heads/*.lock")] == [], f"attempt {attempt}"
    print(f"{sum(outcomes)} of {len(outcomes)} killed runs had committed")


def test_a_freeze_record_nested_past_the_limit_is_a_clear_error(world: World) -> None:
    """A record is read with the C YAML parser, which dies on ~100,000 levels: refused before."""
    from wealist.errors import ConfigError
    from wealist.freeze import parse_record

    with pytest.raises(ConfigError, match=r"freezes/dev\.yaml nests too deeply to read"):
        parse_record("reason: " + "[" * 100_000 + "]" * 100_000 + "\n", "freezes/dev.yaml")
