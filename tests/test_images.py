from __future__ import annotations

import pytest

from wealist.errors import UsageError
from wealist.images import ImageRef, parse_ref, split_reference

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("v1.2", ImageRef("v1.2")),
        ("1.2.3-rc.1_build", ImageRef("1.2.3-rc.1_build")),
        ("_x", ImageRef("_x")),
        ("a" * 128, ImageRef("a" * 128)),
        (f"v1@{DIGEST}", ImageRef("v1", DIGEST)),
    ],
)
def test_valid_references(value: str, expected: ImageRef) -> None:
    assert parse_ref(value) == expected
    assert str(parse_ref(value)) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "-v1",
        ".v1",
        "a" * 129,
        "v1;rm -rf /",
        "v1 v2",
        "$(id)",
        "v1@sha256:abc",
        "v1@md5:" + "0" * 32,
        "v1/x",
    ],
)
def test_malformed_references_are_usage_errors(value: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_ref(value)
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("reference", "name", "ref"),
    [
        ("wealist/board-api:v1", "wealist/board-api", ImageRef("v1")),
        (f"reg:5000/wealist/x:v1@{DIGEST}", "reg:5000/wealist/x", ImageRef("v1", DIGEST)),
        ("reg:5000/wealist/x", "reg:5000/wealist/x", None),
        ("postgres", "postgres", None),
    ],
)
def test_split_reference(reference: str, name: str, ref: ImageRef | None) -> None:
    assert split_reference(reference) == (name, ref)
