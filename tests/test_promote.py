"""The promotion use case, called directly, on real repositories and the real renderer."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Snapshot, World, count_renders, git
from wealist.errors import ConfigError, RefusedError, RenderError, UsageError
from wealist.images import ImageRef
from wealist.plan import PromotionRequest
from wealist.promote import promote

DEV = "overlays/dev/kustomization.yaml"
PROD = "overlays/prod/kustomization.yaml"
DIGEST = "sha256:" + "c0ffee00" * 8


def run(world: World, **kwargs: object) -> object:
    messages: list[str] = []
    return promote(world.work, PromotionRequest(**kwargs), messages.append)  # type: ignore[arg-type]


def test_tag_promotion_commits_only_the_overlay_with_readable_trailers(world: World) -> None:
    before = world.read(DEV)
    result = run(world, env="dev", tag="v1.1.0", message="ship the board filters")
    assert result.commit == world.head()
    assert world.read(DEV) == before.replace("newTag: v1.0.0", "newTag: v1.1.0")
    assert git(world.work, "show", "--name-only", "--format=", "HEAD") == DEV
    assert git(world.work, "log", "-1", "--format=%B") == (
        "promote(dev): board-api v1.0.0 → v1.1.0, frontend v1.0.0 → v1.1.0\n\n"
        "ship the board filters\n\n"
        "Wealist-Env: dev\n"
        "Wealist-Image: board-api=k3d-wealist-registry:5000/wealist/board-api:v1.1.0\n"
        "Wealist-Image: frontend=k3d-wealist-registry:5000/wealist/frontend:v1.1.0\n"
        "Wealist-Previous: board-api=k3d-wealist-registry:5000/wealist/board-api:v1.0.0\n"
        "Wealist-Previous: frontend=k3d-wealist-registry:5000/wealist/frontend:v1.0.0\n"
        "Wealist-Image-Unverified: yes"  # these tests run without a registry (conftest)
    )
    assert git(world.work, "status", "--porcelain") == ""
    assert "+        image: k3d-wealist-registry:5000/wealist/board-api:v1.1.0" in result.diff


def test_commit_is_made_by_git_so_hooks_run(world: World) -> None:
    hook = world.work / ".git" / "hooks" / "commit-msg"
    hook.write_text('#!/bin/sh\necho "Hooked-By: commit-msg" >> "$1"\n')
    hook.chmod(0o755)
    run(world, env="dev", tag="v1.1.0")
    assert "Hooked-By: commit-msg" in git(world.work, "log", "-1", "--format=%B")


def test_only_selected_components_change(world: World) -> None:
    result = run(world, env="dev", tag="v2", components=("frontend",))
    assert [c.component for c in result.plan.changes] == ["frontend"]
    assert "board-api" not in git(world.work, "log", "-1", "--format=%B")
    images = world.read(DEV)
    assert (
        "name: wealist/board-api\n"
        "    newName: k3d-wealist-registry:5000/wealist/board-api\n    newTag: v1.0.0" in images
    )
    assert (
        "name: wealist/frontend\n    newName: k3d-wealist-registry:5000/wealist/frontend\n    newTag: v2"
        in images
    )


def test_nothing_to_change_makes_no_commit(world: World) -> None:
    head = world.head()
    before = Snapshot.take(world.work)
    result = run(world, env="dev", tag="v1.0.0")
    assert (result.plan.changes, result.plan.unchanged, result.commit) == (
        (),
        ("board-api", "frontend"),
        None,
    )
    assert world.head() == head and Snapshot.take(world.work) == before


def test_digest_pin_and_unpin(world: World) -> None:
    run(world, env="dev", tag=f"v1.1.0@{DIGEST}", components=("board-api",))
    assert f"newTag: v1.1.0\n    digest: {DIGEST}\n" in world.read(DEV)
    assert f"board-api=k3d-wealist-registry:5000/wealist/board-api:v1.1.0@{DIGEST}" in git(
        world.work, "log", "-1", "--format=%B"
    )
    run(world, env="dev", tag="v1.2.0", components=("board-api",))
    assert "digest" not in world.read(DEV)


def test_order_guard_refuses_a_tag_that_never_ran_in_the_previous_env(world: World) -> None:
    snap = Snapshot.take(world.work)
    with pytest.raises(RefusedError, match="board-api v9 has not run in dev"):
        run(world, env="prod", tag="v9", delivery="direct")
    assert Snapshot.take(world.work) == snap


def test_order_guard_accepts_what_ran_before_and_records_force(world: World) -> None:
    run(world, env="dev", tag="v1.1.0")
    run(world, env="dev", tag="v1.2.0")
    # v1.1.0 no longer runs in dev, but it did: the history says so.
    result = run(world, env="prod", tag="v1.1.0", delivery="direct")
    assert all(c.evidence and c.evidence.startswith("ran in dev since") for c in result.plan.changes)
    forced = run(world, env="prod", tag="v7", delivery="direct", force=True, components=("frontend",))
    assert forced.plan.forced == ("frontend v7 has not run in dev",)
    body = git(world.work, "log", "-1", "--format=%B")
    assert "Wealist-Forced: frontend v7 has not run in dev" in body


def test_from_copies_tag_and_digest_exactly(world: World) -> None:
    run(world, env="dev", tag=f"v1.1.0@{DIGEST}", components=("board-api",))
    run(world, env="dev", tag="v1.3.0", components=("frontend",))
    result = run(world, env="prod", source_env="dev", delivery="direct")
    assert {c.component: c.new for c in result.plan.changes} == {
        "board-api": ImageRef("v1.1.0", DIGEST),
        "frontend": ImageRef("v1.3.0"),
    }
    assert "Wealist-Source-Env: dev" in git(world.work, "log", "-1", "--format=%B")


def test_dry_run_changes_nothing_at_all(world: World) -> None:
    snap = Snapshot.take(world.work)
    state_dir = world.work / ".git" / "wealist"
    result = run(world, env="dev", tag="v1.1.0", dry_run=True)
    assert result.commit is None
    assert [str(c.new) for c in result.plan.changes] == ["v1.1.0", "v1.1.0"]
    assert "-        image: k3d-wealist-registry:5000/wealist/board-api:v1.0.0" in result.diff
    assert Snapshot.take(world.work) == snap
    assert not state_dir.exists()


def test_unrelated_work_in_the_tree_is_neither_touched_nor_committed(world: World) -> None:
    world.write("base/frontend/service.yaml", world.read("base/frontend/service.yaml") + "# local note\n")
    (world.work / "notes.txt").write_text("draft\n")
    run(world, env="dev", tag="v1.1.0")
    assert git(world.work, "show", "--name-only", "--format=", "HEAD") == DEV
    assert git(world.work, "status", "--porcelain") == "M base/frontend/service.yaml\n?? notes.txt"


def test_validated_tree_is_head_not_the_dirty_work_tree(world: World) -> None:
    # A broken uncommitted base must not leak into the validation of what gets committed.
    world.write("base/board-api/kustomization.yaml", "resources: [missing.yaml]\n")
    result = run(world, env="dev", tag="v1.1.0")
    assert result.commit == world.head()


def stage_unrelated_change(w: World) -> None:
    w.write("promotion.yaml", w.read("promotion.yaml") + "# reviewed\n")
    git(w.work, "add", "promotion.yaml")


def edit_overlay(w: World) -> None:
    w.write(DEV, w.read(DEV) + "# edit\n")


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (stage_unrelated_change, "staged changes exist .promotion.yaml"),
        (edit_overlay, "has uncommitted changes"),
    ],
    ids=["staged", "dirty-overlay"],
)
def test_dirty_states_are_refused_untouched(world: World, setup: object, message: str) -> None:
    setup(world)  # type: ignore[operator]
    snap = Snapshot.take(world.work)
    with pytest.raises(RefusedError, match=message):
        run(world, env="dev", tag="v1.1.0")
    assert Snapshot.take(world.work) == snap


def test_render_failure_changes_nothing(world: World) -> None:
    world.write(
        "overlays/dev/board-api/kustomization.yaml",
        world.read("overlays/dev/board-api/kustomization.yaml")
        + "  - missing-file.yaml\n".replace("  -", "patches:\n  - path:"),
    )
    world.commit_all("break the dev overlay")
    snap = Snapshot.take(world.work)
    with pytest.raises(RenderError, match=r"kustomize build .*failed"):
        run(world, env="dev", tag="v1.1.0")
    assert Snapshot.take(world.work) == snap


def test_a_render_that_changes_more_than_images_is_refused(world: World) -> None:
    # A replacement copies board-api's image into the frontend: a tag bump would change the
    # frontend Deployment too, which a promotion must never do silently.
    world.write(
        DEV,
        world.read(DEV)
        + """\
replacements:
  - source:
      kind: Deployment
      name: board-api
      fieldPath: spec.template.spec.containers.[name=board-api].image
    targets:
      - select:
          kind: Deployment
          name: frontend
        fieldPaths:
          - metadata.annotations.api-image
        options:
          create: true
""",
    )
    world.commit_all("copy the api image into an annotation")
    snap = Snapshot.take(world.work)
    with pytest.raises(
        RefusedError, match=r"would change more than image fields .*Deployment/front-dev/frontend"
    ):
        run(world, env="dev", tag="v1.1.0", components=("board-api",))
    assert Snapshot.take(world.work) == snap


def test_missing_images_entry_is_reported(world: World) -> None:
    world.write(
        DEV,
        world.read(DEV).replace(
            "  - name: wealist/frontend\n"
            "    newName: k3d-wealist-registry:5000/wealist/frontend\n    newTag: v1.0.0\n",
            "",
        ),
    )
    world.commit_all("drop the frontend entry")
    with pytest.raises(ConfigError, match="no images: entry for wealist/frontend"):
        run(world, env="dev", tag="v1.1.0")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"env": "staging", "tag": "v1"}, "unknown environment 'staging'"),
        ({"env": "dev", "tag": "v1", "components": ("redis",)}, "unknown component 'redis'"),
        ({"env": "dev"}, "exactly one of --tag"),
        ({"env": "dev", "tag": "v1", "source_env": "prod"}, "exactly one of --tag"),
        ({"env": "dev", "source_env": "dev"}, "is the environment being promoted"),
        ({"env": "dev", "tag": "-rf"}, "malformed tag"),
    ],
)
def test_usage_errors_exit_2(world: World, kwargs: dict[str, object], message: str) -> None:
    snap = Snapshot.take(world.work)
    with pytest.raises(UsageError, match=message) as info:
        run(world, **kwargs)
    assert info.value.exit_code == 2
    assert Snapshot.take(world.work) == snap


def test_second_promotion_renders_once_from_the_cache(world: World) -> None:
    run(world, env="dev", tag="v1.1.0")
    cache = world.work / ".git" / "wealist" / "cache"
    tree = git(world.work, "rev-parse", "HEAD^{tree}")
    assert any(tree in p.name for p in cache.iterdir())
    run(world, env="dev", tag="v1.2.0")  # planned against the cached render of v1.1.0
    assert "newTag: v1.2.0" in world.read(DEV)


def test_the_cache_saves_the_render_of_the_unchanged_tree(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a promotion, the next one renders only the edited tree: one kustomize run, not two."""

    run(world, env="dev", tag="v1.1.0")
    renders = count_renders(monkeypatch)
    run(world, env="dev", tag="v1.2.0")
    assert len(renders) == 1
    cache = world.work / ".git" / "wealist" / "cache"
    for entry in cache.iterdir():
        entry.write_text("stale: the cache was read\n")  # a cache that is read changes the outcome
    with pytest.raises(RefusedError, match="would change more than image fields"):
        run(world, env="dev", tag="v1.3.0")


def test_the_render_runs_while_the_checks_do(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The draft's render is started before the plan's checks (git reads, and the registry and Argo
    CD over the network), so they overlap; then the checked plan is what gets committed."""
    import wealist.plan
    import wealist.promote

    events: list[str] = []
    renders = count_renders(monkeypatch)
    real_held, real_clean = wealist.plan._held, wealist.promote.check_clean

    def held(*args: object) -> list[str]:
        events.append(f"plan checks after {len(renders)} render(s) started")
        return real_held(*args)  # type: ignore[arg-type]

    def clean(*args: object) -> None:
        events.append(f"checkout checks after {len(renders)} render(s) started")
        real_clean(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(wealist.plan, "_held", held)
    monkeypatch.setattr(wealist.promote, "check_clean", clean)
    run(world, env="dev", tag="v1.1.0")
    run(world, env="dev", tag="v1.2.0")
    # A cold cache renders both sides, a warm one only the promoted side: all started before the checks.
    assert events == [
        "checkout checks after 2 render(s) started",
        "plan checks after 2 render(s) started",
        "checkout checks after 3 render(s) started",
        "plan checks after 3 render(s) started",
    ]
    assert "newTag: v1.2.0" in world.read(DEV)


def test_a_refusing_check_stops_the_render_and_leaves_the_render_copy_whole(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A check that refuses while the draft renders: kustomize is stopped, and the scratch copy
    under .git/wealist/render holds the committed tree again (its marker says so)."""
    from wealist.freeze import freeze
    from wealist.render import RenderJob

    run(world, env="dev", tag="v1.1.0")
    freeze(world.work, "dev", "release week", None, push=False)
    cancelled: list[Path] = []
    real_cancel = RenderJob.cancel

    def cancel(job: RenderJob) -> None:
        real_cancel(job)
        assert job._proc.returncode is not None  # killed (or finished), and reaped
        cancelled.append(job.path)

    monkeypatch.setattr(RenderJob, "cancel", cancel)
    before = Snapshot.take(world.work)
    with pytest.raises(RefusedError, match="frozen: dev is frozen"):
        run(world, env="dev", tag="v1.2.0")
    assert Snapshot.take(world.work) == before
    # The freeze commit changed the tree, so both sides were rendering.
    assert [p.name for p in cancelled] == [".dev.promoted", "dev"]
    scratch = world.work / ".git" / "wealist"
    assert (scratch / "render.tree").read_text().strip() == git(world.work, "rev-parse", "HEAD^{tree}")
    assert (scratch / "render" / DEV).read_text() == world.read(DEV)


def test_the_order_guard_compares_digests(world: World) -> None:
    """A pinned digest must be the very digest that ran before: the same tag is not enough."""
    other = "sha256:" + "e" * 64
    run(world, env="dev", tag=f"v1.1.0@{DIGEST}")
    with pytest.raises(
        RefusedError, match=r"order guard: board-api v1\.1\.0@sha256:eeee.* has not run in dev"
    ):
        run(world, env="prod", tag=f"v1.1.0@{other}", delivery="direct")
    run(world, env="prod", tag=f"v1.1.0@{DIGEST}", delivery="direct")  # the digest that ran
    assert f"digest: {DIGEST}" in world.read("overlays/prod/kustomization.yaml")


def test_fast_unified_diff_matches_difflib() -> None:
    import difflib
    import random

    from wealist.verify import unified

    rng = random.Random(7)
    before = [f"line {i}\n" for i in range(300)]
    for _ in range(200):
        after = list(before)
        for i in rng.sample(range(300), rng.randint(1, 12)):
            after[i] = f"changed {i}\n"
        expected = "".join(difflib.unified_diff(before, after, "a/x", "b/y", n=3))
        assert unified("".join(before), "".join(after), "x", "y") == expected
    assert unified("a\n", "a\n", "x", "y") == ""
