"""Fuzzing the tool's own inputs: whatever promotion.yaml, an overlay, argocd/ or the options hold,
every command ends in at most one ``Error:`` line (never ``Error: unexpected``, never a
traceback), with a documented exit code, and leaves the repository exactly as it was.

Cases are hand-picked shapes plus generated ones (truncations and byte flips of the real files,
from a fixed seed so a failure reproduces). WEALIST_FUZZ_CASES raises the generated count.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import ROOT, Snapshot, World, git

BIN = Path(sys.executable).parent
GENERATED = int(os.environ.get("WEALIST_FUZZ_CASES", "6"))
DEV = "overlays/dev/kustomization.yaml"
ARGOCD = "argocd/apps/applicationset-dev.yaml"

# What each command may exit with: 0 done, 1 failed or refused, 2 bad usage (README: exit codes).
COMMANDS: list[list[str]] = [
    ["wealist-promote", "--env", "dev", "--tag", "v9.9.9"],
    ["wealist-promote", "--env", "prod", "--from", "dev", "--dry-run", "--delivery", "direct"],
    ["wealist", "rollback", "--env", "dev", "--dry-run"],
    ["wealist", "status", "--format", "json"],
    ["wealist", "history", "--limit", "5"],
    ["wealist", "render", "--env", "dev"],
    ["wealist", "diff", "--env", "dev", "--base", "HEAD"],
    ["wealist", "validate", "--format", "json"],
]


def mutations(path: str, seed: int) -> list[tuple[str, Callable[[bytes], bytes]]]:
    """Generated damage to one file: truncated at random points, and random bytes flipped."""
    rng = random.Random(f"{path}:{seed}")
    cases: list[tuple[str, Callable[[bytes], bytes]]] = []
    for n in range(GENERATED):
        cut = rng.random()
        cases.append((f"truncated-{n}", lambda data, cut=cut: data[: int(len(data) * cut)]))
        flips = [(rng.random(), rng.randrange(256)) for _ in range(3)]

        def flip(data: bytes, flips: list[tuple[float, int]] = flips) -> bytes:
            out = bytearray(data)
            for where, byte in flips:
                out[int(where * (len(out) - 1))] = byte
            return bytes(out)

        cases.append((f"flipped-{n}", flip))
    return cases


HAND_PICKED: dict[str, list[tuple[str, Callable[[bytes], bytes]]]] = {
    "promotion.yaml": [
        ("empty", lambda _d: b""),
        ("not-utf8", lambda d: d + b"\xff\xfe\n"),
        ("a-list", lambda _d: b"- 1\n- 2\n"),
        ("a-scalar", lambda _d: b"just text\n"),
        ("bad-yaml", lambda d: d + b"  : [\n"),
        ("envs-not-a-list", lambda d: d.replace(b"environments:", b"environments: 3\nold-environments:")),
        ("env-name-number", lambda d: d.replace(b"- name: dev", b"- name: 42", 1)),
        ("delivery-unknown", lambda d: d.replace(b"delivery: direct", b"delivery: carrier-pigeon", 1)),
        ("components-list", lambda d: d.replace(b"components:", b"components: [1, 2]\nold-components:")),
        ("image-missing", lambda d: d.replace(b"image: wealist/frontend", b"imaje: wealist/frontend")),
        ("clusters-scalar", lambda d: d.replace(b"clusters:", b"clusters: nope\nold-clusters:")),
        ("alias-bomb", lambda d: d + b"x: &a [1,1,1,1,1,1,1,1,1,1]\ny: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"),
        # 100,000 levels: libyaml's composer (the C parser) overflowed the C stack on this and killed
        # the process, before any error could be reported.
        ("deep", lambda d: d + b"x: " + b"[" * 100_000 + b"]" * 100_000 + b"\n"),
        ("deep-block", lambda d: d + b"x:\n" + b"- " * 100_000 + b"a\n"),
    ],
    DEV: [
        ("empty", lambda _d: b""),
        ("not-utf8", lambda d: d + b"# \xff\n"),
        ("images-scalar", lambda d: d.replace(b"images:", b"images: 3\nold-images:")),
        ("images-of-strings", lambda d: d.replace(b"images:", b"images: [a, b]\nold-images:")),
        ("tag-a-list", lambda d: d.replace(b"newTag: v1.0.0", b"newTag: [v1]", 1)),
        ("bad-yaml", lambda d: d + b"\n  - : [\n"),
        ("deep", lambda d: d + b"x: " + b"{a: " * 100_000 + b"1" + b"}" * 100_000 + b"\n"),
    ],
    ARGOCD: [
        ("not-utf8", lambda d: d + b"# \xff\n"),
        ("a-list", lambda _d: b"- 1\n"),
        ("bad-yaml", lambda d: d + b"\n  : [\n"),
        ("two-docs-one-null", lambda d: d + b"\n---\n"),
        ("deep", lambda d: d + b"\n---\n" + b"[" * 100_000 + b"]" * 100_000 + b"\n"),
    ],
}


def cases() -> list[pytest.ParameterSet]:
    params = []
    for path, picked in HAND_PICKED.items():
        for name, mutate in [*picked, *mutations(path, 20261125)]:
            params.append(pytest.param(path, mutate, id=f"{path.split('/')[-1]}-{name}"))
    return params


def run(world: World, argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        cwd=world.work,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1", "GITHUB_TOKEN": ""},
        check=False,
        timeout=120,
    )


def assert_clean_failure(argv: list[str], proc: subprocess.CompletedProcess[str]) -> None:
    where = f"{' '.join(argv)} -> {proc.returncode}\n{proc.stderr}"
    assert proc.returncode in (0, 1, 2), where
    assert "Traceback" not in proc.stderr and "unexpected" not in proc.stderr, where
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    if proc.returncode == 0:
        assert errors == [], where
    else:
        assert len(errors) == 1 and proc.stderr.rstrip().endswith(errors[0]), where
    if "--format" in argv and "json" in argv and proc.stdout:
        json.loads(proc.stdout)  # a report that CI saves is always valid JSON
    if argv[-2:] == ["--format", "json"] and argv[1] == "validate":
        assert proc.stdout, where  # validate always writes its report, failing or not


@pytest.mark.parametrize(("path", "mutate"), cases())
def test_damaged_inputs_fail_cleanly_everywhere(
    world: World, path: str, mutate: Callable[[bytes], bytes]
) -> None:
    target = world.work / path
    target.write_bytes(mutate(target.read_bytes()))
    world.commit_all(f"damage {path}")
    before = Snapshot.take(world.work)
    for argv in COMMANDS:
        proc = run(world, argv)
        assert_clean_failure(argv, proc)
        if argv[0] == "wealist-promote" and "--dry-run" not in argv and proc.returncode == 0:
            git(world.work, "reset", "-q", "--hard", before.head)  # a promotion that worked: undo it
        assert Snapshot.take(world.work) == before, " ".join(argv)


SEAL = ["--namespace", "n", "--name", "s", "--from-literal", "K=V"]
BAD_OPTIONS: list[list[str]] = [
    ["wealist-promote", "--env", "nope", "--tag", "v1"],
    ["wealist-promote", "--env", "dev", "--tag", ""],
    ["wealist-promote", "--env", "dev", "--tag", "v1 2"],
    ["wealist-promote", "--env", "dev", "--tag", "a" * 200],
    ["wealist-promote", "--env", "dev", "--tag", "v1@sha256:zz"],
    ["wealist-promote", "--env", "dev", "--tag", "@sha256:" + "a" * 64],
    ["wealist-promote", "--env", "dev", "--tag", "v1", "--from", "prod"],
    ["wealist-promote", "--env", "dev"],
    ["wealist-promote", "--env", "dev", "--from", "dev"],
    ["wealist-promote", "--env", "dev", "--tag", "v1", "--component", "redis"],
    ["wealist-promote", "--env", "dev", "--tag", "v1", "--delivery", "fax"],
    ["wealist-promote", "--env", "dev", "--tag", "v1", "--repo", "/nonexistent/path"],
    ["wealist-promote", "--env", "dev", "--tag", "v1", "--repo", "/etc/hostname"],
    ["wealist-promote", "--env", "../../x", "--tag", "v1"],
    ["wealist-promote", "--env", "prod", "--tag", "v7.7.7"],  # the order guard
    ["wealist", "rollback", "--env", "dev", "--to", "v1 2"],
    ["wealist", "rollback", "--env", "dev", "--to", "v0.0.0-never"],
    ["wealist", "rollback", "--env", "dev"],  # nothing promoted yet
    ["wealist", "diff", "--env", "dev", "--base", "no-such-ref"],
    ["wealist", "diff", "--env", "dev", "--base", "--upload-pack=touch /tmp/x"],
    ["wealist", "render", "--env", "dev", "--cluster", "gke-prod"],
    ["wealist", "history", "--limit", "-1"],
    ["wealist", "history", "--env", "staging"],
    ["wealist", "validate", "--crds", "/nonexistent"],
    ["wealist", "seal", "--cert", "/nonexistent.pem", *SEAL],
    ["wealist", "seal", "--cert", "promotion.yaml", *SEAL],
    ["wealist", "no-such-command"],
]


@pytest.mark.parametrize("argv", BAD_OPTIONS, ids=lambda argv: " ".join(argv[1:])[:60])
def test_bad_options_fail_cleanly(world: World, argv: list[str]) -> None:
    before = Snapshot.take(world.work)
    proc = run(world, argv)
    assert proc.returncode in (1, 2), f"{argv}: {proc.returncode} {proc.stdout} {proc.stderr}"
    assert_clean_failure(argv, proc)
    assert Snapshot.take(world.work) == before
    assert not Path("/tmp/x").exists() or argv[-1] != "--upload-pack=touch /tmp/x"


def test_the_fuzz_runs_against_the_real_files() -> None:
    for path in HAND_PICKED:
        assert (ROOT / path).is_file(), path  # a renamed file would turn the fuzz into a no-op
