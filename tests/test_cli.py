"""End to end: the real console scripts in subprocesses, on real repositories.

Every refusal prints exactly one ``Error:`` line on stderr, nothing on stdout, exits with SPEC's
code and leaves HEAD, refs, index and every work-tree byte as they were.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Snapshot, World, git

BIN = Path(sys.executable).parent
DEV = "overlays/dev/kustomization.yaml"


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, prog: str = "wealist-promote"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / prog), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=120,
    )


def assert_refused(proc: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    lines = proc.stderr.splitlines()
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert fragment in lines[0]
    assert proc.stdout == ""


def _stage(w: World) -> None:
    w.write("promotion.yaml", w.read("promotion.yaml") + "# x\n")
    git(w.work, "add", "promotion.yaml")


def _dirty(w: World) -> None:
    w.write(DEV, w.read(DEV) + "# x\n")


def _broken_render(w: World) -> None:
    w.write(
        "base/frontend/kustomization.yaml", w.read("base/frontend/kustomization.yaml") + "  - gone.yaml\n"
    )
    w.commit_all("break the frontend base")


REFUSALS = [
    (["--env", "qa", "--tag", "v1"], None, 2, "unknown environment 'qa'"),
    (["--env", "dev", "--tag", "v1", "--component", "redis"], None, 2, "unknown component 'redis'"),
    (["--env", "dev", "--tag", "v1;rm -rf ~"], None, 2, "malformed tag"),
    (["--env", "dev", "--tag", "$(touch pwned)"], None, 2, "malformed tag"),
    (["--env", "dev", "--tag", "a" * 129], None, 2, "malformed tag"),
    (["--env", "dev", "--tag=-v1"], None, 2, "malformed tag"),
    (["--env", "dev", "--tag="], None, 2, "malformed tag"),
    (["--env", "dev", "--tag", "v1", "--from", "prod"], None, 2, "exactly one of --tag"),
    (["--env", "dev"], None, 2, "exactly one of --tag"),
    (["--env", "prod", "--from", "prod"], None, 2, "is the environment being promoted"),
    (["--env", "dev", "--tag", "v1", "--delivery", "email"], None, 2, "Invalid value for '--delivery'"),
    (["--env", "dev", "--tag", "v1", "--repo", "/nonexistent/repo"], None, 2, "does not exist"),
    (["--env", "dev", "--tag", "v1"], _stage, 1, "staged changes exist"),
    (["--env", "dev", "--tag", "v1"], _dirty, 1, "has uncommitted changes"),
    (["--env", "dev", "--tag", "v1"], _broken_render, 1, "kustomize build"),
    (["--env", "prod", "--tag", "v9", "--delivery", "direct"], None, 1, "order guard"),
]


@pytest.mark.parametrize(
    ("args", "setup", "code", "fragment"), REFUSALS, ids=[r[3] + str(i) for i, r in enumerate(REFUSALS)]
)
def test_refusals_are_one_line_and_change_nothing(
    world: World, args: list[str], setup: object, code: int, fragment: str
) -> None:
    if setup:
        setup(world)  # type: ignore[operator]
    snap = Snapshot.take(world.work)
    assert_refused(cli(*args, cwd=world.work), code, fragment)
    assert Snapshot.take(world.work) == snap
    assert not (world.work / "pwned").exists()


def test_not_a_git_repository(tmp_path: Path) -> None:
    (tmp_path / "promotion.yaml").write_text("x: 1\n")
    assert_refused(cli("--env", "dev", "--tag", "v1", cwd=tmp_path), 1, "is not inside a git repository")


def test_no_git_identity(world: World, tmp_path: Path) -> None:
    # No name or email anywhere, and git told not to guess one from the host name.
    anonymous = tmp_path / "anonymous.gitconfig"
    anonymous.write_text("[user]\n\tuseConfigOnly = true\n")
    snap = Snapshot.take(world.work)
    env = {"GIT_CONFIG_GLOBAL": str(anonymous), "HOME": str(tmp_path)}
    assert_refused(cli("--env", "dev", "--tag", "v1", cwd=world.work, env=env), 1, "no git identity")
    assert Snapshot.take(world.work) == snap


def test_promote_prints_plan_diff_and_commit(world: World) -> None:
    proc = cli("--env", "dev", "--tag", "v1.1.0", cwd=world.work, env={"NO_COLOR": "1"})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("Plan: promote dev (direct) on ")
    assert "  board-api  v1.0.0  v1.1.0  first environment" in out
    assert (
        "-        image: k3d-wealist-registry:5000/wealist/board-api:v1.0.0\n"
        "+        image: k3d-wealist-registry:5000/wealist/board-api:v1.1.0"
    ) in out
    assert f"Committed {world.head()[:10]} on main: promote(dev): board-api v1.0.0 → v1.1.0" in out
    assert "\x1b[" not in out  # plain when piped


def test_nothing_to_do_exits_0_without_commit(world: World) -> None:
    head = world.head()
    proc = cli("--env", "dev", "--tag", "v1.0.0", cwd=world.work)
    assert proc.returncode == 0
    assert proc.stdout.startswith("Nothing to do: dev already runs")
    assert world.head() == head


def test_dry_run_json_is_machine_readable_and_changes_nothing(world: World) -> None:
    snap = Snapshot.take(world.work)
    proc = cli("--env", "dev", "--tag", "v1.1.0", "--dry-run", "--format", "json", cwd=world.work)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["dry_run"] is True and data["commit"] is None
    assert [(c["component"], c["from"], c["to"]) for c in data["changes"]] == [
        ("board-api", "v1.0.0", "v1.1.0"),
        ("frontend", "v1.0.0", "v1.1.0"),
    ]
    assert Snapshot.take(world.work) == snap


def test_wealist_umbrella_status_history_render_diff(world: World) -> None:
    assert cli("promote", "--env", "dev", "--tag", "v1.1.0", cwd=world.work, prog="wealist").returncode == 0
    status = cli("status", "--format", "json", cwd=world.work, prog="wealist")
    data = json.loads(status.stdout)
    assert data["environments"] == {
        "dev": {"board-api": "v1.1.0", "frontend": "v1.1.0"},
        "prod": {"board-api": "v1.0.0", "frontend": "v1.0.0"},
    }
    assert data["lags"] == [
        "prod differs from dev: board-api v1.0.0 (vs v1.1.0), frontend v1.0.0 (vs v1.1.0)"
    ]
    history = json.loads(cli("history", "--format", "json", cwd=world.work, prog="wealist").stdout)
    assert [(h["manual"], h.get("env"), h.get("images")) for h in history] == [
        (False, "dev", {"board-api": "v1.1.0", "frontend": "v1.1.0"}),
        (True, None, None),  # the commit that created the overlays
    ]
    assert history[1]["envs"] == ["dev", "prod"]
    rendered = cli("render", "--env", "dev", cwd=world.work, prog="wealist").stdout
    assert "image: k3d-wealist-registry:5000/wealist/frontend:v1.1.0" in rendered
    diff = cli("diff", "--env", "dev", "--base", "HEAD~1", cwd=world.work, prog="wealist").stdout
    assert "+        image: k3d-wealist-registry:5000/wealist/board-api:v1.1.0" in diff
    against = cli("diff", "--env", "prod", "--against", "dev", cwd=world.work, prog="wealist").stdout
    assert "+        image: ghcr.io/wealist/board-api:v1.1.0" in against


def test_a_configuration_error_is_one_line(world: World) -> None:
    (world.work / "promotion.yaml").write_text("environments: [")
    proc = cli("--env", "dev", "--tag", "v1", cwd=world.work)
    assert_refused(proc, 1, "promotion.yaml is not valid YAML")


@pytest.mark.parametrize(
    ("raised", "code", "line"),
    [
        (ValueError("boom"), 1, "Error: unexpected ValueError: boom (rerun with --debug for details)"),
        (KeyboardInterrupt(), 130, "Error: interrupted"),
    ],
)
def test_unexpected_errors_and_interrupts_are_one_line(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    raised: BaseException,
    code: int,
    line: str,
) -> None:
    import wealist.review
    from wealist import cli as cli_module
    from wealist import options

    def explode(*_args: object) -> str:
        raise raised

    monkeypatch.setattr(wealist.review, "render_env", explode)
    monkeypatch.setattr(options, "_debug", False)  # restored afterwards: --debug below sets it
    monkeypatch.setattr(sys, "argv", ["wealist", "render", "--env", "dev", "--repo", str(world.work)])
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main()
    assert exit_info.value.code == code
    assert capsys.readouterr().err.strip().splitlines()[-1] == line
    monkeypatch.setattr(
        sys, "argv", ["wealist", "render", "--env", "dev", "--debug", "--repo", str(world.work)]
    )
    if code == 1:
        with pytest.raises(ValueError, match="boom"):  # --debug: the traceback, not a line
            cli_module.main()


def test_help_is_fast_because_heavy_modules_load_lazily() -> None:
    heavy = "('git', 'ruamel.yaml', 'cryptography', 'kubernetes_validate')"
    code = f"import sys, wealist.cli; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_shell_completion_offers_environments_and_components(world: World) -> None:
    env = {
        "COMP_WORDS": "wealist-promote --env ",
        "COMP_CWORD": "2",
        "_WEALIST_PROMOTE_COMPLETE": "bash_complete",
    }
    assert cli(cwd=world.work, env=env).stdout.split() == ["plain,dev", "plain,prod"]
    env = {
        "COMP_WORDS": "wealist promote --component f",
        "COMP_CWORD": "3",
        "_WEALIST_COMPLETE": "bash_complete",
    }
    assert cli(cwd=world.work, env=env, prog="wealist").stdout.split() == ["plain,frontend"]
    script = cli(cwd=world.work, env={"_WEALIST_COMPLETE": "bash_source"}, prog="wealist").stdout
    assert "_wealist_completion" in script


def test_masking_hides_url_credentials_and_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from wealist.masking import mask

    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secretvalue123")
    text = "push to https://x-access-token:ghp_secretvalue123@github.com/w/r.git failed; ghp_secretvalue123"
    assert mask(text) == "push to https://***@github.com/w/r.git failed; ***"


def test_a_credential_in_the_remote_url_never_reaches_the_output(world: World) -> None:
    git(world.work, "remote", "set-url", "origin", "http://deploy:hunter2secret@127.0.0.1:9/wealist.git")
    proc = cli("--env", "dev", "--tag", "v1.1.0", "--push", cwd=world.work)
    assert proc.returncode == 1
    assert "hunter2secret" not in proc.stdout + proc.stderr
    assert proc.stderr.startswith("Error: ")


def test_unreadable_config_is_one_line(world: World) -> None:
    (world.work / "promotion.yaml").unlink()
    (world.work / "promotion.yaml").mkdir()
    assert_refused(cli("--env", "dev", "--tag", "v1", cwd=world.work), 1, "cannot read")
