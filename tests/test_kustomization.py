"""The YAML editor: only the scalars that must change, every other byte as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from wealist.errors import ConfigError
from wealist.files import write_if_changed
from wealist.images import ImageRef
from wealist.kustomization import read_images, set_images

DIGEST = "sha256:" + "ab" * 32

SOURCE = """\
# top comment
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization

resources:   # the components
  - board-api
images:
    # indented more than usual, on purpose
    - name: wealist/board-api
      newTag: 'v1.0'   # single-quoted, with a comment
    - name: wealist/frontend
      newName: registry.example:5000/wealist/frontend
      newTag: "1.10"
      digest: sha256:0000000000000000000000000000000000000000000000000000000000000000
    - name: wealist/other
      newTag: v9
"""


def test_changes_only_the_tag_scalar_keeping_quotes_and_comments() -> None:
    result = set_images(SOURCE, {"wealist/board-api": ImageRef("v1.1")})
    assert result == SOURCE.replace("newTag: 'v1.0'   #", "newTag: 'v1.1'   #")


def test_plain_tag_drops_a_stale_digest_line() -> None:
    result = set_images(SOURCE, {"wealist/frontend": ImageRef("2.0")})
    expected = SOURCE.replace('newTag: "1.10"', 'newTag: "2.0"').replace(
        "      digest: sha256:0000000000000000000000000000000000000000000000000000000000000000\n", ""
    )
    assert result == expected


def test_digest_is_replaced_or_inserted_below_the_tag() -> None:
    replaced = set_images(SOURCE, {"wealist/frontend": ImageRef("2.0", DIGEST)})
    assert replaced == SOURCE.replace('newTag: "1.10"', 'newTag: "2.0"').replace("0" * 64, "ab" * 32)
    inserted = set_images(SOURCE, {"wealist/other": ImageRef("v10", DIGEST)})
    assert inserted == SOURCE.replace("      newTag: v9\n", f"      newTag: v10\n      digest: {DIGEST}\n")


def test_missing_new_tag_is_inserted_under_the_name() -> None:
    source = "images:\n  - name: wealist/board-api\n    newName: mirror/board-api\n"
    result = set_images(source, {"wealist/board-api": ImageRef("v2", DIGEST)})
    assert result == (
        "images:\n  - name: wealist/board-api\n    newTag: v2\n"
        f"    digest: {DIGEST}\n    newName: mirror/board-api\n"
    )


@pytest.mark.parametrize(
    ("tag", "written"),
    [
        ("1.10", '"1.10"'),
        ("1", '"1"'),
        ("010", '"010"'),
        ("1e3", '"1e3"'),
        ("1_000", '"1_000"'),
        ("true", '"true"'),
        ("yes", '"yes"'),
        ("on", '"on"'),
        ("Off", '"Off"'),
        ("null", '"null"'),
        ("1:30", '"1:30"'),
        ("v1.10", "v1.10"),
        ("1.2.3", "1.2.3"),
        ("1.2.3-rc.1", "1.2.3-rc.1"),
        ("_x", "_x"),
    ],
)
def test_tags_that_yaml_would_not_read_as_strings_are_quoted(tag: str, written: str) -> None:
    from ruamel.yaml import YAML

    source = "images:\n  - name: a\n    newTag: v1\n"
    result = set_images(source, {"a": ImageRef(tag)})
    assert result == f"images:\n  - name: a\n    newTag: {written}\n"
    # Read back as the same string under YAML 1.2 (ruamel) and YAML 1.1 rules.
    assert YAML(typ="safe", pure=True).load(result)["images"][0]["newTag"] == tag
    legacy = YAML(typ="safe", pure=True)
    legacy.version = (1, 1)
    assert legacy.load(result)["images"][0]["newTag"] == tag


def test_several_images_in_one_edit() -> None:
    result = set_images(SOURCE, {"wealist/board-api": ImageRef("v3"), "wealist/other": ImageRef("v3")})
    assert result == SOURCE.replace("'v1.0'", "'v3'").replace("newTag: v9", "newTag: v3")


def test_read_images_reports_tag_digest_and_new_name() -> None:
    images = read_images(SOURCE)
    assert images["wealist/frontend"].ref == ImageRef("1.10", "sha256:" + "0" * 64)
    assert images["wealist/frontend"].rendered_name == "registry.example:5000/wealist/frontend"
    assert images["wealist/board-api"].rendered_name == "wealist/board-api"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("images:\n  - {name: a, newTag: v1}\n", "flow style"),
        ("images:\n  - name: b\n    newTag: v1\n", "no images: entry for a"),
        ("images: [1, 2]\n", "list of mappings"),
        ("images:\n  - name: a\n   newTag: [\n", "not valid YAML"),
    ],
)
def test_refuses_what_it_cannot_edit_safely(source: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        set_images(source, {"a": ImageRef("v2")})


def test_write_if_changed_is_atomic_and_skips_identical_content(tmp_path: Path) -> None:
    path = tmp_path / "kustomization.yaml"
    path.write_text("a: 1\n")
    path.chmod(0o640)
    inode = path.stat().st_ino
    assert write_if_changed(path, "a: 1\n") is False
    assert path.stat().st_ino == inode  # untouched
    assert write_if_changed(path, "a: 2\n") is True
    assert path.read_text() == "a: 2\n"
    assert path.stat().st_ino != inode  # replaced by rename, never written in place
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kustomization.yaml"]
