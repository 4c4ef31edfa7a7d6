"""Freezes: a committed record stops promotions (not rollbacks) until it expires or is removed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Snapshot, World, git
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
