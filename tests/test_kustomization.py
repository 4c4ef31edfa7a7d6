"""The YAML editor: only the scalars that must change, every other byte as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT
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
        ("images:\n  - name: a\n    newTag: &t v1\n  - name: b\n    newTag: *t\n", "anchor or alias"),
        ("images:\n  - name: b\n    newTag: &t v1\n  - name: a\n    newTag: *t\n", "anchor or alias"),
        ("images:\n  - name: a\n    newTag: *nowhere\n", "not valid YAML: found undefined alias"),
        (
            "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}' if i else 'x'] * 10)}]\n" for i in range(7))
            + "images:\n  - name: a\n    newTag: v1\n",
            "aliases expand to more than 100000 nodes",
        ),
        pytest.param("a: " + "[" * 1500 + "]" * 1500 + "\nimages: []\n", "nests too deep", id="deep"),
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


# Forms from the test suites of kustomize, Argo CD Image Updater and Flux image automation that the
# editor got wrong before (hardening pass): each edit is asserted on the whole file.
@pytest.mark.parametrize(
    ("before", "ref", "after"),
    [
        (  # `kustomize edit set image` writes digest first; a tag-only promotion removes it
            f"images:\n- digest: {DIGEST}\n  name: a\n  newTag: v1\n- name: b\n  newTag: v1\n",
            ImageRef("v2"),
            "images:\n- name: a\n  newTag: v2\n- name: b\n  newTag: v1\n",
        ),
        (  # ... and a pinned promotion replaces it in place
            f"images:\n- digest: {DIGEST}\n  name: a\n  newTag: v1\n",
            ImageRef("v2", "sha256:" + "cd" * 32),
            f"images:\n- digest: sha256:{'cd' * 32}\n  name: a\n  newTag: v2\n",
        ),
        (  # an empty newTag: gets its value after the colon, the comment kept
            "images:\n  - name: a\n    newTag:  # set by CI\n",
            ImageRef("v2"),
            "images:\n  - name: a\n    newTag: v2  # set by CI\n",
        ),
        (  # a tab before a comment is valid for kustomize's Go YAML: kept as it is
            "---\t# header\nimages:\n  - name: a\n    newTag: v1\t# pinned by hand\n",
            ImageRef("v2"),
            "---\t# header\nimages:\n  - name: a\n    newTag: v2\t# pinned by hand\n",
        ),
    ],
)
def test_forms_other_tools_write(before: str, ref: ImageRef, after: str) -> None:
    assert set_images(before, {"a": ref}) == after
    assert read_images(after)["a"].ref == ref


def test_digest_first_followed_by_a_comment_is_refused_not_mangled() -> None:
    source = f"images:\n- digest: {DIGEST}\n  # why\n  name: a\n  newTag: v1\n"
    with pytest.raises(ConfigError, match="starts with digest: and is not followed by its next key"):
        set_images(source, {"a": ImageRef("v2")})


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("x: " + "[" * 201 + "]" * 201 + "\n", id="flow"),
        pytest.param("x: '" + "]" * 500 + "'\ny: " + "[" * 201 + "]" * 201 + "\n", id="quoted-closers"),
        pytest.param("- " * 201 + "a\n", id="compact-sequences"),
        pytest.param(" " * 201 + "a: 1\n", id="indented"),
    ],
)
def test_nesting_past_the_limit_is_refused_before_any_parser_sees_it(text: str) -> None:
    from wealist.yamlerrors import too_deep

    assert too_deep(text) is not None
    with pytest.raises(ConfigError, match="nests too deeply to read"):
        read_images(text, "k.yaml")


def test_no_yaml_file_of_the_repository_comes_near_the_nesting_limit() -> None:
    from wealist.yamlerrors import too_deep

    files = [p for p in ROOT.rglob("*.y*ml") if ".venv" not in p.parts and ".git" not in p.parts]
    assert len(files) > 20
    assert [str(p) for p in files if too_deep(p.read_text(encoding="utf-8"))] == []
