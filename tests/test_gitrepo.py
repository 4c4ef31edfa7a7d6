"""The git wrapper's own reads: objects through one persistent `git cat-file --batch`, compared with
what git itself answers."""

from __future__ import annotations

import os
import signal

import pytest

from conftest import World, git
from wealist.errors import GitError
from wealist.gitrepo import GitRepo


def test_object_reads_agree_with_git(world: World) -> None:
    (world.work / "with space.yaml").write_text("a: 1\n")
    git(world.work, "add", "with space.yaml")
    git(world.work, "commit", "-qm", "a file with a space in its name")
    repo = GitRepo(world.work)
    assert repo.head() == git(world.work, "rev-parse", "HEAD")
    assert repo.tree("HEAD~1") == git(world.work, "rev-parse", "HEAD~1^{tree}")
    assert repo.parents("HEAD") == [git(world.work, "rev-parse", "HEAD~1")]
    assert repo.parents(git(world.work, "rev-list", "--max-parents=0", "HEAD")) == []
    assert repo.show("HEAD", "with space.yaml") == "a: 1\n"
    assert repo.show("HEAD", "no such file.yaml") is None  # "<spec> missing" has spaces too
    assert repo.show("HEAD", "overlays") is None  # a tree, not a file
    assert repo.blob_at("HEAD", "with space.yaml") == git(world.work, "rev-parse", "HEAD:with space.yaml")
    assert repo.has_commit(repo.head()) and not repo.has_commit("f" * 40)
    with pytest.raises(GitError, match="names no commit here"):
        repo.tree("no-such-branch")


def test_a_reader_killed_by_ctrl_c_is_replaced(world: World) -> None:
    """The terminal's Ctrl-C reaches git's reader too: the read that finds it dead says so, and
    restart_readers (what the put-back after an interrupt calls first) brings a new one."""
    repo = GitRepo(world.work)
    head = repo.head()
    process = repo._objects._proc
    assert process is not None
    os.kill(process.pid, signal.SIGINT)
    process.wait()
    with pytest.raises(GitError, match="git cat-file failed"):
        repo.show("HEAD", "promotion.yaml")
    repo.restart_readers()
    assert repo.head() == head
    assert repo.show("HEAD", "promotion.yaml") == (world.work / "promotion.yaml").read_text()
