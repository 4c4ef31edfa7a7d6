"""Fixtures in one place: hermetic git, and real repositories (a bare origin and clones) in tmp_path.

The template world (a copy of this repository's manifests committed to a bare origin, and a clone)
is built once per session and copied for each test, so every test gets its own real repositories
for the price of a directory copy.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT.parent / "shared" / "schemas"
WORLD_FILES = ("promotion.yaml", "base", "overlays", "argocd", ".gitignore")
KUBECTL_DIR = Path(os.path.realpath(shutil.which("kubectl") or "/nonexistent")).parent


@pytest.fixture(scope="session", autouse=True)
def hermetic_git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No user or system git configuration; a fixed identity; default branch main."""
    home = tmp_path_factory.mktemp("home")
    config = home / ".gitconfig"
    config.write_text(
        "[user]\n\tname = Test Promoter\n\temail = promoter@example.com\n"
        "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n[advice]\n\tdetachedHead = false\n"
    )
    saved = dict(os.environ)
    for key in list(os.environ):
        if key.startswith(("GIT_", "GITHUB_")) or key in ("NO_COLOR", "WEALIST_KUSTOMIZE", "WEALIST_CRDS"):
            del os.environ[key]
    os.environ.update(
        {
            "HOME": str(home),
            "GIT_CONFIG_GLOBAL": str(config),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
        }
    )
    yield
    os.environ.clear()
    os.environ.update(saved)


def git(cwd: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


@dataclass
class World:
    """A bare origin and a clone of it (the user's work tree)."""

    origin: Path
    work: Path

    def clone(self, name: str) -> Path:
        path = self.origin.parent / name
        git(self.origin.parent, "clone", "-q", str(self.origin), str(path))
        return path

    def head(self, path: Path | None = None) -> str:
        return git(path or self.work, "rev-parse", "HEAD")

    def read(self, relative: str, path: Path | None = None) -> str:
        return ((path or self.work) / relative).read_text()

    def write(self, relative: str, text: str, path: Path | None = None) -> None:
        ((path or self.work) / relative).write_text(text)

    def commit_all(self, message: str, path: Path | None = None) -> str:
        git(path or self.work, "add", "-A")
        git(path or self.work, "commit", "-qm", message)
        return self.head(path)


@pytest.fixture(scope="session")
def world_template(tmp_path_factory: pytest.TempPathFactory, hermetic_git: None) -> Path:
    base = tmp_path_factory.mktemp("template")
    seed = base / "seed"
    seed.mkdir()
    for name in WORLD_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, seed / name)
        else:
            shutil.copy2(source, seed / name)
    git(seed, "init", "-q")
    git(seed, "add", "-A")
    git(seed, "commit", "-qm", "weAlist GitOps repository")
    git(base, "clone", "-q", "--bare", str(seed), str(base / "origin.git"))
    git(base, "clone", "-q", str(base / "origin.git"), str(base / "work"))
    shutil.rmtree(seed)
    return base


@pytest.fixture
def world(world_template: Path, tmp_path: Path) -> World:
    shutil.copytree(world_template / "origin.git", tmp_path / "origin.git", symlinks=True)
    shutil.copytree(world_template / "work", tmp_path / "work", symlinks=True)
    # The clone's remote URL points at the template's origin: repoint it at this test's copy.
    git(tmp_path / "work", "remote", "set-url", "origin", str(tmp_path / "origin.git"))
    return World(origin=tmp_path / "origin.git", work=tmp_path / "work")


@dataclass(frozen=True)
class Snapshot:
    """Everything a refusal must leave alone: HEAD, every ref, the index, every work-tree byte."""

    head: str
    refs: str
    index: str
    files: dict[str, str]

    @classmethod
    def take(cls, path: Path) -> Snapshot:
        files = {}
        for file in sorted(path.rglob("*")):
            if file.is_file() and ".git" not in file.relative_to(path).parts:
                files[str(file.relative_to(path))] = hashlib.sha256(file.read_bytes()).hexdigest()
        return cls(
            head=git(path, "rev-parse", "HEAD"),
            refs=git(path, "for-each-ref", "--format=%(refname) %(objectname)"),
            index=git(path, "ls-files", "--stage"),
            files=files,
        )


def kubectl_versions() -> list[Path]:
    """The oldest and newest kubectl builds beside the real binary (Kustomize v5.0 and the newest)."""
    builds = sorted(KUBECTL_DIR.glob("kubectl.1.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
    return [builds[0], builds[-1]] if len(builds) >= 2 else builds
