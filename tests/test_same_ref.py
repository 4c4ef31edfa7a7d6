"""The dry run, the plan and the commit come from the same commit, and the output names it: a
stale clone or an unpushed promotion never makes the real run do something the dry run did not
show (hardening pass: both cases failed before their fix)."""

from __future__ import annotations

from pathlib import Path

from conftest import Snapshot, World, git
from wealist.plan import PromotionRequest
from wealist.promote import promote, rollback

DEV = "overlays/dev/kustomization.yaml"


def quiet(_message: str) -> None:
    pass


def tags(result: object) -> list[tuple[str, str, str]]:
    plan = result.plan  # type: ignore[attr-defined]
    return [(c.component, str(c.old), str(c.new)) for c in plan.changes]


def push_dev(path: Path, tag: str) -> None:
    promote(path, PromotionRequest(env="dev", tag=tag, push=True), quiet)


def test_a_stale_clone_rolls_back_what_the_remote_runs(world: World) -> None:
    push_dev(world.work, "v1.1.0")
    other = world.clone("other")
    push_dev(other, "v1.2.0")  # the user's clone has not fetched this
    request = PromotionRequest(env="dev", delivery="pull-request", components=("board-api",))

    before = Snapshot.take(world.work)
    dry = rollback(world.work, PromotionRequest(**{**request.__dict__, "dry_run": True}), None, quiet)
    assert Snapshot.take(world.work) == before  # no ref written, not even origin/main
    real = rollback(world.work, request, None, quiet)

    # Undo v1.2.0 (the remote's last promotion), not v1.1.0 (the clone's): never skip a version.
    assert tags(dry) == tags(real) == [("board-api", "v1.2.0", "v1.1.0")]
    assert dry.plan.head == real.plan.head == git(other, "rev-parse", "HEAD")
    assert real.plan.base.name == "origin/main"
    assert "newTag: v1.1.0" in git(world.origin, "show", f"{real.branch}:{DEV}")


def test_rollback_to_a_tag_uses_the_remote_history_too(world: World) -> None:
    push_dev(world.work, "v1.1.0")
    other = world.clone("other")
    push_dev(other, "v1.2.0")
    push_dev(other, "v1.3.0")
    request = PromotionRequest(env="dev", delivery="pull-request", dry_run=True)
    result = rollback(world.work, request, "v1.2.0", quiet)  # only the remote knows it ran
    assert [new for _, _, new in tags(result)] == ["v1.2.0", "v1.2.0"]


def test_an_unpushed_source_promotion_is_named_in_both_runs(world: World) -> None:
    promote(world.work, PromotionRequest(env="dev", tag="v1.2.0"), quiet)  # committed, not pushed
    request = PromotionRequest(env="prod", source_env="dev", delivery="pull-request")
    dry = promote(world.work, PromotionRequest(**{**request.__dict__, "dry_run": True}), quiet)
    real = promote(world.work, request, quiet)
    expected = (
        "planned on origin/main, not on your branch: dev differ there (1 local commit(s) not on "
        "origin/main); push them first to promote what you see",
    )
    assert dry.plan.base.notes == real.plan.base.notes == expected
    assert tags(dry) == tags(real) == []  # origin's dev runs what prod runs: nothing to do, and said why
    assert real.as_json(dry_run=False)["notes"] == list(expected)
