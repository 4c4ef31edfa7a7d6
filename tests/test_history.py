"""status, history and rollback: everything read back from git alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Snapshot, World, git
from wealist.config import load_config
from wealist.errors import RefusedError, UsageError
from wealist.gitrepo import GitRepo
from wealist.history import promotions, status
from wealist.images import ImageRef
from wealist.plan import PromotionRequest
from wealist.promote import promote, rollback

DEV = "overlays/dev/kustomization.yaml"
DIGEST = "sha256:" + "d1" * 32


def step(world: World, **kwargs: object) -> str:
    result = promote(world.work, PromotionRequest(**kwargs), lambda _m: None)  # type: ignore[arg-type]
    assert result.commit
    return result.commit


def back(
    world: World, env: str, to: str | None = None, components: tuple[str, ...] = (), **kw: object
) -> object:
    request = PromotionRequest(env=env, components=components, delivery="direct", **kw)  # type: ignore[arg-type]
    return rollback(world.work, request, to, lambda _m: None)


def test_history_reads_trailers_newest_first(world: World) -> None:
    first = step(world, env="dev", tag="v1.1.0")
    world.write("notes.md", "unrelated\n")
    world.commit_all("not a promotion")
    second = step(world, env="dev", tag=f"v1.2.0@{DIGEST}", components=("board-api",))
    third = step(world, env="prod", source_env="dev", delivery="direct", components=("frontend",))
    entries = promotions(GitRepo(world.work))
    assert [e.sha for e in entries] == [third, second, first]
    assert entries[0].env == "prod" and entries[0].source_env == "dev"
    assert entries[1].images == {"board-api": ImageRef("v1.2.0", DIGEST)}
    assert entries[1].previous == {"board-api": ImageRef("v1.1.0")}
    assert [e.sha for e in promotions(GitRepo(world.work), env="dev")] == [second, first]
    assert [e.sha for e in promotions(GitRepo(world.work), limit=1)] == [third]


def test_history_ignores_lookalike_messages(world: World) -> None:
    world.write("notes.md", "x\n")
    world.commit_all("docs: mention Wealist-Env: dev in prose\n\nWealist-Env: nowhere")
    assert promotions(GitRepo(world.work)) == []


def test_status_table_and_lags(world: World) -> None:
    step(world, env="dev", tag="v1.1.0")
    result = status(GitRepo(world.work), load_config(world.work))
    assert result.running["dev"] == {"board-api": ImageRef("v1.1.0"), "frontend": ImageRef("v1.1.0")}
    assert result.lags == ["prod differs from dev: board-api v1.0.0 (vs v1.1.0), frontend v1.0.0 (vs v1.1.0)"]
    step(world, env="prod", source_env="dev", delivery="direct")
    assert status(GitRepo(world.work), load_config(world.work)).lags == []


def test_rollback_undoes_the_last_promotion_with_a_new_commit(world: World) -> None:
    step(world, env="dev", tag="v1.1.0")
    undone = step(world, env="dev", tag="v1.2.0")
    result = back(world, "dev")
    assert result.commit == world.head() and git(world.work, "rev-parse", "HEAD~1") == undone
    assert "newTag: v1.1.0" in world.read(DEV) and "v1.2.0" not in world.read(DEV)
    body = git(world.work, "log", "-1", "--format=%B")
    assert body.startswith("rollback(dev): board-api v1.2.0 → v1.1.0, frontend v1.2.0 → v1.1.0")
    assert f"Wealist-Rollback-Of: {undone}" in body


def test_rollback_to_a_tag_restores_its_digest_and_skips_the_order_guard(world: World) -> None:
    step(world, env="dev", tag=f"v1.1.0@{DIGEST}")
    step(world, env="prod", source_env="dev", delivery="direct")
    step(world, env="dev", tag="v1.2.0")
    step(world, env="prod", source_env="dev", delivery="direct")
    step(world, env="dev", tag="v1.3.0")  # dev moved on: v1.1.0 no longer runs there
    back(world, "prod", to="v1.1.0", components=("board-api",))
    prod = world.read("overlays/prod/kustomization.yaml")
    assert (
        "name: wealist/board-api\n    newName: ghcr.io/wealist/board-api\n"
        f"    newTag: v1.1.0\n    digest: {DIGEST}" in prod
    )
    assert "name: wealist/frontend\n    newName: ghcr.io/wealist/frontend\n    newTag: v1.2.0" in prod


def test_rollback_refusals_change_nothing(world: World) -> None:
    snap = Snapshot.take(world.work)
    with pytest.raises(RefusedError, match="no promotion of prod"):
        back(world, "prod")
    step(world, env="dev", tag="v1.1.0")
    snap = Snapshot.take(world.work)
    with pytest.raises(RefusedError, match=r"v0\.1 never ran in dev"):
        back(world, "dev", to="v0.1")
    with pytest.raises(UsageError, match="malformed tag"):
        back(world, "dev", to="bad tag")
    assert Snapshot.take(world.work) == snap


def test_rollback_dry_run(world: World) -> None:
    step(world, env="dev", tag="v1.1.0")
    snap = Snapshot.take(world.work)
    result = back(world, "dev", dry_run=True)
    assert result.commit is None and [str(c.new) for c in result.plan.changes] == ["v1.0.0", "v1.0.0"]
    assert Snapshot.take(world.work) == snap


def test_audit_shows_hand_edits_of_an_overlay(world: World) -> None:
    from wealist.history import ManualChange, audit_log

    step(world, env="dev", tag="v1.1.0")
    prod = "overlays/prod/kustomization.yaml"
    world.write(prod, world.read(prod).replace("newTag: v1.0.0", "newTag: v6.6.6", 1))
    hand = world.commit_all("hotfix prod by hand")
    world.write("notes.md", "unrelated\n")
    world.commit_all("unrelated change")
    entries = audit_log(GitRepo(world.work), load_config(world.work))
    assert isinstance(entries[0], ManualChange) and entries[0].sha == hand and entries[0].envs == ("prod",)
    assert entries[1].env == "dev"  # the promotion
    assert len(entries) == 3  # and the initial commit; the unrelated change is not listed
    only_dev = audit_log(GitRepo(world.work), load_config(world.work), env="dev", limit=1)
    assert [e.env for e in only_dev] == ["dev"]  # type: ignore[union-attr]


def test_a_rolled_back_reference_is_held_until_a_forced_promotion_releases_it(world: World) -> None:
    from wealist.errors import RefusedError
    from wealist.history import repository_status

    for tag in ("v1.1.0", "v1.2.0"):
        promote(world.work, PromotionRequest(env="dev", tag=tag), lambda _m: None)
    rollback(world.work, PromotionRequest(env="dev"), None, lambda _m: None)  # v1.2.0 -> v1.1.0
    held = repository_status(world.work).holds
    assert [(h.env, h.component, str(h.ref)) for h in held] == [
        ("dev", "board-api", "v1.2.0"),
        ("dev", "frontend", "v1.2.0"),
    ]
    # Automation promoting v1.2.0 again is refused, with how to release the hold.
    before = world.head()
    with pytest.raises(RefusedError, match=r"hold: board-api v1\.2\.0 is held in dev since the rollback"):
        promote(world.work, PromotionRequest(env="dev", tag="v1.2.0"), lambda _m: None)
    assert world.head() == before
    promote(world.work, PromotionRequest(env="dev", tag="v1.3.0"), lambda _m: None)  # other tags pass
    done = promote(
        world.work, PromotionRequest(env="dev", tag="v1.2.0", force=True, message="fixed"), lambda _m: None
    )
    assert done.commit is not None
    assert "Wealist-Forced: board-api v1.2.0 is held in dev" in git(world.work, "log", "-1", "--format=%B")
    assert repository_status(world.work).holds == []  # released by the forced promotion


@pytest.mark.parametrize("command", ["history", "status"])
def test_reading_commands_never_load_gitpython(world: World, command: str) -> None:
    """history and status read with git alone (log, one cat-file): GitPython's import (~55 ms, two
    `git version` runs) would be a third of their time, so it must stay out of these paths."""
    import subprocess
    import sys

    step(world, env="dev", tag="v1.1.0")
    code = (
        "import sys\n"
        "from wealist.cli import main\n"
        f"sys.argv = ['wealist', '{command}', '--format', 'json']\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert exit.code == 0, exit.code\n"
        "assert 'git' not in sys.modules, 'GitPython was imported'\n"
        "print('ok', file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=world.work, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "ok"
    assert "v1.1.0" in done.stdout


def test_the_repository_is_found_without_git_and_refused_when_bare(world: World, tmp_path: Path) -> None:
    """From a subdirectory, through a worktree's gitdir file; a bare repository and a missing
    directory are refused by name, not found in a repository above them."""
    assert GitRepo(world.work / "overlays" / "dev").root == world.work
    worktree = tmp_path / "wt"
    git(world.work, "worktree", "add", "-q", "--detach", str(worktree))
    found = GitRepo(worktree / "base")
    assert (found.root, found.git_dir) == (worktree, world.work / ".git" / "worktrees" / "wt")
    assert found.head() == world.head()
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", str(world.work), str(bare))
    with pytest.raises(RefusedError, match="is a bare repository"):
        GitRepo(bare)
    with pytest.raises(RefusedError, match="is not inside a git repository"):
        GitRepo(world.work / "no-such-directory")
