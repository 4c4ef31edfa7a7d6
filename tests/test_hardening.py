"""Defects of the hardening pass, each pinned by a test that failed before its fix: what the tool
writes obeys one grammar, names it builds paths and refs from are checked, the caches know their
renderer, the audit knows where an environment started, and validate always reports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Snapshot, World, git, kubectl_versions
from wealist.config import parse_config
from wealist.errors import ConfigError, RefusedError
from wealist.plan import PromotionRequest
from wealist.promote import promote, rollback
from wealist.validate import validate

DEV = "overlays/dev/kustomization.yaml"
WEALIST = str(Path(sys.executable).parent / "wealist")


def quiet(_message: str) -> None:
    pass


@pytest.mark.parametrize("name", ["../../x", "pr od", "prod.lock", "Prod", "-dev", "a" * 31])
def test_environment_names_must_be_dns_labels(name: str) -> None:
    text = (
        f"namespaces: {{postgres: postgresql}}\nenvironments:\n  - name: '{name}'\n"
        "components: {a: {image: x/a}}\n"
    )
    with pytest.raises(ConfigError, match="must be a lowercase DNS label"):
        parse_config(text)


@pytest.mark.parametrize("tag", ["x,y", "-", 'v1"q', ".hidden"])
def test_from_never_copies_a_malformed_tag(world: World, tag: str) -> None:
    world.write(DEV, world.read(DEV).replace("newTag: v1.0.0", f"newTag: '{tag}'", 1))
    world.commit_all("a hand edit with a malformed tag")
    before = Snapshot.take(world.work)
    with pytest.raises(ConfigError, match="holds a malformed reference for wealist/board-api"):
        promote(
            world.work, PromotionRequest(env="prod", source_env="dev", delivery="direct", force=True), quiet
        )
    assert Snapshot.take(world.work) == before


def test_validate_reports_malformed_tags_and_digests(world: World) -> None:
    world.write(DEV, world.read(DEV).replace("newTag: v1.0.0", "newTag: v1.0.0\n    digest: sha256:zzz", 1))
    findings = [str(f) for f in validate(world.work).findings]
    assert any("digest 'sha256:zzz' is not sha256: and 64 lowercase hex digits" in f for f in findings), (
        findings
    )


def test_rollback_to_the_tag_an_environment_started_from(world: World) -> None:
    promote(world.work, PromotionRequest(env="dev", tag="v1.1.0"), quiet)
    promote(world.work, PromotionRequest(env="dev", tag="v1.2.0"), quiet)
    result = rollback(world.work, PromotionRequest(env="dev"), "v1.0.0", quiet)  # what dev started with
    assert result.commit is not None
    assert world.read(DEV).count("newTag: v1.0.0") == 2


def test_the_render_cache_knows_its_renderer_by_more_than_its_path(world: World, tmp_path: Path) -> None:
    from wealist.config import load_config
    from wealist.render import Renderer
    from wealist.verify import _cache_key

    binary = tmp_path / "kubectl"
    shutil.copy2(kubectl_versions()[0], binary)
    renderer = Renderer((str(binary), "kustomize"))
    env = load_config(world.work).env("dev")
    before = _cache_key(renderer, env, "0" * 40)
    os.utime(binary, ns=(0, binary.stat().st_mtime_ns + 10**9))  # upgraded in place
    assert _cache_key(renderer, env, "0" * 40) != before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe not utf-8", "is not UTF-8 text"),
        (b"kind: [unclosed", "is not valid YAML"),
        (b"- just\n- a list\n", "holds a document that is not an object"),
        (
            b"apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: 7\n",
            "holds a document that is not an object",
        ),
    ],
)
def test_validate_always_reports_even_on_broken_argocd_files(
    world: World, content: bytes, message: str
) -> None:
    (world.work / "argocd/apps/broken.yaml").write_bytes(content)
    proc = subprocess.run(
        [WEALIST, "validate", "--format", "json"], cwd=world.work, capture_output=True, text=True
    )
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)  # always a report, always valid JSON
    assert any(
        f["subject"] == "argocd/apps/broken.yaml" and message in f["message"] for f in data["findings"]
    )


def test_validate_reports_unreadable_crds(world: World, tmp_path: Path) -> None:
    crds = tmp_path / "crds"
    crds.mkdir()
    (crds / "bad.yaml").write_text("kind: CustomResourceDefinition\nspec: {}\n")
    proc = subprocess.run(
        [WEALIST, "validate", "--format", "json", "--crds", str(crds)],
        cwd=world.work,
        capture_output=True,
        text=True,
    )
    data = json.loads(proc.stdout)
    assert any(f["subject"] == "CRD schemas" and "cannot be read" in f["message"] for f in data["findings"])
    git(world.work, "status")  # the repository is untouched


# -- trailers prove nothing by themselves -------------------------------------------------------


def forged(world: World, message_env: str, tag: str) -> str:
    return (
        f"sneak {tag}\n\nWealist-Env: {message_env}\n"
        f"Wealist-Image: board-api=k3d-wealist-registry:5000/wealist/board-api:{tag}\n"
        "Wealist-Previous: board-api=k3d-wealist-registry:5000/wealist/board-api:v1.0.0\n"
    )


def test_an_empty_commit_with_forged_trailers_is_no_promotion(world: World) -> None:
    git(world.work, "commit", "-q", "--allow-empty", "-m", forged(world, "dev", "v6.6.6"))
    before = Snapshot.take(world.work)
    with pytest.raises(RefusedError, match=r"order guard: board-api v6\.6\.6 has not run in dev"):
        promote(world.work, PromotionRequest(env="prod", tag="v6.6.6", delivery="direct"), quiet)
    assert Snapshot.take(world.work) == before


def test_trailers_that_disagree_with_the_diff_are_no_promotion(world: World) -> None:
    world.write(DEV, world.read(DEV).replace("newTag: v1.0.0", "newTag: v1.4.0", 1))
    git(world.work, "commit", "-qam", forged(world, "dev", "v6.6.6"))
    with pytest.raises(RefusedError, match=r"board-api v6\.6\.6 has not run in dev"):
        promote(world.work, PromotionRequest(env="prod", tag="v6.6.6", delivery="direct"), quiet)
    history = json.loads(
        subprocess.run(
            [WEALIST, "history", "--format", "json"], cwd=world.work, capture_output=True, text=True
        ).stdout
    )
    assert history[0]["manual"] is True and history[0]["envs"] == ["dev"]


def test_a_dev_edit_labelled_prod_stays_in_devs_history(world: World) -> None:
    world.write(DEV, world.read(DEV).replace("newTag: v1.0.0", "newTag: v1.5.0", 1))
    git(world.work, "commit", "-qam", forged(world, "prod", "v1.5.0"))
    run = [WEALIST, "history", "--format", "json", "--env"]
    dev = json.loads(subprocess.run([*run, "dev"], cwd=world.work, capture_output=True, text=True).stdout)
    prod = json.loads(subprocess.run([*run, "prod"], cwd=world.work, capture_output=True, text=True).stdout)
    assert dev[0]["manual"] is True and dev[0]["subject"] == "sneak v1.5.0"
    assert all(entry.get("subject") != "sneak v1.5.0" for entry in prod)


# -- the YAML editor ---------------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["2024-01-01", "2024-1-1", "1e3_", "0.5e1_0", "1_000"])
def test_tags_that_yaml_or_go_would_read_as_something_else_are_quoted(tag: str) -> None:
    from ruamel.yaml import YAML

    from wealist.images import ImageRef
    from wealist.kustomization import read_images, set_images

    source = "images:\n  - name: wealist/board-api\n    newTag: v1\n"
    result = set_images(source, {"wealist/board-api": ImageRef(tag)})
    assert result == f'images:\n  - name: wealist/board-api\n    newTag: "{tag}"\n'
    assert YAML(typ="safe").load(result)["images"][0]["newTag"] == tag  # a string, not a date
    assert read_images(result)["wealist/board-api"].ref == ImageRef(tag)


def test_an_inserted_line_keeps_the_files_line_endings() -> None:
    from wealist.images import ImageRef
    from wealist.kustomization import set_images

    source = "images:\r\n  - name: wealist/board-api\r\n    newTag: v1\r\n"
    digest = "sha256:" + "a" * 64
    result = set_images(source, {"wealist/board-api": ImageRef("v2", digest)})
    assert result == f"images:\r\n  - name: wealist/board-api\r\n    newTag: v2\r\n    digest: {digest}\r\n"


def test_symbolic_links_anywhere_in_the_tree_break_nothing(world: World) -> None:
    (world.work / "docs").mkdir(exist_ok=True)
    os.symlink("/etc/hostname", world.work / "docs" / "absolute")
    os.symlink("../../outside", world.work / "docs" / "outside")
    world.commit_all("links as people commit them")
    dry = promote(world.work, PromotionRequest(env="dev", tag="v2.0.0", dry_run=True), quiet)
    assert "board-api:v2.0.0" in dry.diff
    done = promote(world.work, PromotionRequest(env="dev", tag="v2.0.0"), quiet)
    assert done.commit == world.head()
    diff = subprocess.run(
        [WEALIST, "diff", "--env", "dev", "--base", "HEAD~1"], cwd=world.work, capture_output=True, text=True
    )
    assert diff.returncode == 0 and "board-api:v2.0.0" in diff.stdout, diff.stderr
    report = validate(world.work)  # the CI gate reads the tree too
    assert report.ok, [str(f) for f in report.findings]
    # The copy that later promotions render from keeps the links as git stores them.
    assert os.readlink(world.work / ".git" / "wealist" / "render" / "docs" / "absolute") == "/etc/hostname"
