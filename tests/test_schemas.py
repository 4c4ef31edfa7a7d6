"""validate's pinned schemas (Argo CD's CRDs, k3d's config schema): fetched once from a mirror of
their projects, checked against the sums recorded in the repository, cached, served offline from
the cache, refused when upstream changed, and a skip (a failure with --strict) when not to be had."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import ROOT, SCHEMAS, World, git, needs_schemas
from wealist.validate import validate
from wealist.validate.pinned import MIRROR_ENV, cache_dir, pinned

pytestmark = needs_schemas


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "wealist" / "schemas"


@pytest.fixture
def mirror() -> object:
    from conftest import SchemaMirror

    server = SchemaMirror()
    os.environ[MIRROR_ENV], saved = server.url, os.environ[MIRROR_ENV]
    yield server
    os.environ[MIRROR_ENV] = saved
    server.close()


def with_k3d_config(world: World) -> None:
    target = world.work / "tools/local-cluster/k3d.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text((ROOT / "tools/local-cluster/k3d.yaml").read_text())


def test_fetched_once_then_served_from_the_cache(world: World, empty_cache: Path, mirror: object) -> None:
    with_k3d_config(world)  # then every pinned schema is needed
    report = validate(world.work)
    assert report.findings == [] and report.skipped == []
    assert sorted(p.name for p in empty_cache.iterdir()) == sorted(e.sha256 for e in pinned())
    assert len(mirror.hits) == len(pinned())  # type: ignore[attr-defined]
    mirror.close()  # type: ignore[attr-defined]
    again = validate(world.work)
    assert again.findings == [] and again.skipped == []  # offline now: the cache serves


def test_the_fetched_crds_catch_a_typo_without_any_flag(world: World, empty_cache: Path) -> None:
    path = world.work / "argocd/apps/applicationset-dev.yaml"
    path.write_text(path.read_text().replace("selfHeal: true", "selfHeel: true"))
    findings = [str(f) for f in validate(world.work).findings]
    assert any("'selfHeel' was unexpected" in f for f in findings), findings


def test_a_changed_upstream_file_is_refused(world: World, empty_cache: Path, mirror: object) -> None:
    mirror.changed.add("appproject-crd.yaml")  # type: ignore[attr-defined]
    report = validate(world.work)
    changed = [str(f) for f in report.findings if f.check == "schemas"]
    assert len(changed) == 1 and "argocd/appproject-crd.yaml from http://127.0.0.1:" in changed[0]
    assert "the upstream file changed" in changed[0]
    entry = next(e for e in pinned() if e.name == "argocd/appproject-crd.yaml")
    assert not (empty_cache / entry.sha256).exists()  # never cached


def test_a_corrupted_cache_entry_is_fetched_again(world: World, empty_cache: Path, mirror: object) -> None:
    validate(world.work)
    entry = pinned()[0]
    (empty_cache / entry.sha256).write_text("tampered")
    assert validate(world.work).findings == []
    assert (empty_cache / entry.sha256).read_bytes() == (SCHEMAS / entry.name).read_bytes()


def test_offline_without_a_cache_is_a_skip_and_strict_fails(
    world: World, empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MIRROR_ENV, "http://127.0.0.1:9")  # nothing listens there
    report = validate(world.work)
    assert report.findings == []
    assert report.skipped and all(s.startswith("schema check skipped (offline): ") for s in report.skipped)
    wealist = str(Path(sys.executable).parent / "wealist")
    proc = subprocess.run(
        [wealist, "validate", "--strict", "--format", "json"], cwd=world.work, capture_output=True, text=True
    )
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["ok"] is False and {f["check"] for f in data["findings"]} == {"strict"}


def test_only_the_schemas_something_needs_are_fetched(
    world: World, empty_cache: Path, mirror: object
) -> None:
    validate(world.work)  # argocd/ but no k3d config here
    assert sorted(mirror.hits) == sorted(  # type: ignore[attr-defined]
        e.url.removeprefix("https://raw.githubusercontent.com")
        for e in pinned()
        if e.name.startswith("argocd/")
    )


def test_the_k3d_config_is_checked_against_k3ds_schema(world: World, empty_cache: Path) -> None:
    with_k3d_config(world)
    target = world.work / "tools/local-cluster/k3d.yaml"
    git(world.work, "add", "-A")
    assert validate(world.work).findings == []
    target.write_text(target.read_text().replace("agents: 2", "agent: 2"))
    findings = [str(f) for f in validate(world.work).findings]
    assert any(
        f.startswith("local-cluster: tools/local-cluster/k3d.yaml: Additional properties") for f in findings
    )


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda t: t + "  : [\n", "is not valid YAML"),
        (lambda t: t + "# \udcff\n", "is not UTF-8 text"),
        (lambda t: t + "x: " + "[" * 100_000 + "]" * 100_000 + "\n", "nests too deeply to read"),
    ],
    ids=["bad-yaml", "not-utf8", "deep"],
)
def test_a_damaged_k3d_config_is_a_finding(
    world: World, empty_cache: Path, damage: Callable[[str], str], message: str
) -> None:
    """Read only when k3d's schema is at hand: a config that cannot be read is reported like any
    other finding (it crashed validate before)."""
    with_k3d_config(world)
    target = world.work / "tools/local-cluster/k3d.yaml"
    target.write_bytes(damage(target.read_text()).encode("utf-8", "surrogateescape"))
    local = [str(f) for f in validate(world.work).findings if f.check == "local-cluster"]
    assert len(local) == 1 and local[0].startswith(f"local-cluster: tools/local-cluster/k3d.yaml: {message}")


def test_the_cache_lives_in_the_users_cache_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "wealist" / "schemas"
