"""validate's caches: a whole report for an unchanged tree, and each environment's render for
unchanged inputs; keyed so that any input, the renderer or the tool changing is a miss."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import World, count_renders, git, kubectl_versions, needs_schemas
from wealist import validatecache
from wealist.render import find_renderer
from wealist.validate import validate

WEALIST = str(Path(sys.executable).parent / "wealist")


def run_validate(
    world: World, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [WEALIST, "validate", "--format", "json", *args],
        cwd=world.work,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


@needs_schemas  # only a report that skipped nothing is kept
def test_an_unchanged_tree_answers_from_the_cache(world: World) -> None:
    first = run_validate(world)
    assert first.returncode == 0, first.stdout + first.stderr
    reports = list((world.work / ".git/wealist/validate").glob("*.json"))
    assert len(reports) == 1
    # Make the cached answer recognisable: a hit returns it as stored, without rendering.
    stored = json.loads(reports[0].read_text())
    reports[0].write_text(json.dumps({**stored, "argocd_documents": 999}))
    assert json.loads(run_validate(world).stdout)["argocd_documents"] == 999
    # Any input changing is a miss: the real answer again, with the new finding.
    path = world.work / "base/frontend/namespace/namespace.yaml"
    path.write_text(path.read_text().replace("enforce: restricted", "enforce: baseline"))
    changed = json.loads(run_validate(world).stdout)
    assert changed["argocd_documents"] == 6 and not changed["ok"]


@needs_schemas  # only a report that skipped nothing is kept
def test_another_renderer_or_no_cache_is_a_miss(world: World) -> None:
    run_validate(world)
    reports = list((world.work / ".git/wealist/validate").glob("*.json"))
    reports[0].write_text(json.dumps({**json.loads(reports[0].read_text()), "argocd_documents": 999}))
    other = run_validate(world, env={"WEALIST_KUSTOMIZE": str(kubectl_versions()[0])})
    assert json.loads(other.stdout)["argocd_documents"] == 6
    off = run_validate(world, env={"WEALIST_NO_CACHE": "1"})
    assert json.loads(off.stdout)["argocd_documents"] == 6


def test_only_changed_environments_are_rendered_again(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    validate(world.work)
    built = count_renders(monkeypatch)
    validate(world.work)
    assert built == []
    path = world.work / "overlays/prod/board-api/hpa.yaml"
    path.write_text(path.read_text().replace("maxReplicas: 5", "maxReplicas: 6"))
    validate(world.work)
    assert len(built) == 2 and all("prod" in b for b in built)  # prod x gke, prod x eks; dev from cache


def test_a_render_that_reaches_outside_is_never_cached(world: World, tmp_path: Path) -> None:
    outside = tmp_path / "shared-base"
    outside.mkdir()
    (outside / "kustomization.yaml").write_text("resources: []\n")
    kustomization = world.work / "overlays/dev/kustomization.yaml"
    relative = Path("../../..") / ".." / "shared-base"
    kustomization.write_text(
        kustomization.read_text().replace("  - frontend\n", f"  - frontend\n  - {relative}\n")
    )
    git(world.work, "add", "-A")
    renderer = find_renderer().identity()
    assert validatecache.key(world.work, None, False, renderer) is None
    assert validatecache.render_key(world.work, "overlays/dev", "k3d", renderer) is None
    assert validatecache.render_key(world.work, "overlays/prod", "eks", renderer) is not None


def test_changed_tool_code_is_a_miss(world: World) -> None:
    """An editable install changes without a new version: the key follows the code itself."""
    import os

    import wealist.validate.facts as facts

    renderer = find_renderer().identity()
    before = validatecache.key(world.work, None, False, renderer)
    path = Path(facts.__file__)
    stat = path.stat()
    try:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        assert validatecache.key(world.work, None, False, renderer) != before
    finally:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
