"""Pull-request delivery against a real local HTTP server playing GitHub's API, on real repositories.

Each test also checks that the user's branch, index and files are exactly as they were: only the
promotion branch appears (locally and on origin).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import FakeGitHub, Snapshot, World, git
from conftest import promote_cli as cli
from wealist.plan import PromotionRequest
from wealist.promote import promote

BIN = Path(sys.executable).parent
PROD = "overlays/prod/kustomization.yaml"
TOKEN = "ghp_testtoken0123456789"


@pytest.fixture
def dev_released(world: World) -> World:
    """dev runs v1.1.0 on origin: the state a prod promotion starts from."""
    promote(world.work, PromotionRequest(env="dev", tag="v1.1.0", push=True), lambda _m: None)
    return world


def assert_user_state_untouched(world: World, before: Snapshot) -> None:
    after = Snapshot.take(world.work)
    assert (after.head, after.index, after.files) == (before.head, before.index, before.files)
    assert git(world.work, "symbolic-ref", "--short", "HEAD") == "main"
    new_refs = set(after.refs.splitlines()) - set(before.refs.splitlines())
    assert all("/promote/prod/" in ref for ref in new_refs), new_refs


def test_pull_request_is_opened_with_table_and_diff(dev_released: World, github: FakeGitHub) -> None:
    world = dev_released
    before = Snapshot.take(world.work)
    proc = cli(world, "--env", "prod", "--from", "dev", "-m", "release 1.1")
    assert proc.returncode == 0, proc.stderr
    assert "Pull request: https://github.com/wealist/wealist-gitops/pull/100" in proc.stdout
    assert TOKEN not in proc.stdout + proc.stderr

    methods = [(r.method, r.path.split("?")[0]) for r in github.requests]
    assert methods == [
        ("GET", "/repos/wealist/wealist-gitops/pulls"),
        ("POST", "/repos/wealist/wealist-gitops/pulls"),
        ("POST", "/repos/wealist/wealist-gitops/issues/100/labels"),
    ]
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in github.requests)
    assert all(r.headers["Accept"] == "application/vnd.github+json" for r in github.requests)
    created = github.requests[1].body
    assert created["title"] == "promote(prod): board-api v1.0.0 → v1.1.0, frontend v1.0.0 → v1.1.0"
    assert (created["head"], created["base"]) == ("promote/prod/v1.1.0", "main")
    assert (
        "| board-api | v1.0.0 | **v1.1.0** | `ghcr.io/wealist/board-api:v1.1.0` | running in dev now |"
        in created["body"]
    )
    assert (
        "```diff\n" in created["body"]
        and "+      - image: ghcr.io/wealist/frontend:v1.1.0" in created["body"]
    )
    assert "> release 1.1" in created["body"]
    assert github.requests[2].body == {"labels": ["promotion", "env:prod"]}

    # The branch holds exactly one promotion commit on top of origin/main.
    assert git(world.origin, "rev-parse", "promote/prod/v1.1.0~1") == git(world.origin, "rev-parse", "main")
    assert "newTag: v1.1.0" in git(world.origin, "show", f"promote/prod/v1.1.0:{PROD}")
    assert_user_state_untouched(world, before)


def test_the_same_promotion_again_updates_the_open_pull_request(
    dev_released: World, github: FakeGitHub
) -> None:
    world = dev_released
    assert cli(world, "--env", "prod", "--from", "dev").returncode == 0
    github.requests.clear()
    proc = cli(world, "--env", "prod", "--from", "dev", "-m", "now with a reason")
    assert proc.returncode == 0, proc.stderr
    assert [(r.method, r.path.split("?")[0].rsplit("/", 1)[-1]) for r in github.requests][:2] == [
        ("GET", "pulls"),
        ("PATCH", "100"),
    ]
    assert "updated the open pull request #100" in proc.stderr
    assert len(github.pulls) == 1
    assert "> now with a reason" in github.pulls["promote/prod/v1.1.0"]["body"]


def test_a_different_promotion_of_the_same_tag_gets_its_own_branch(
    dev_released: World, github: FakeGitHub
) -> None:
    world = dev_released
    assert cli(world, "--env", "prod", "--tag", "v1.1.0", "--component", "frontend").returncode == 0
    proc = cli(world, "--env", "prod", "--tag", "v1.1.0")
    assert proc.returncode == 0, proc.stderr
    assert set(github.pulls) == {"promote/prod/v1.1.0", "promote/prod/v1.1.0-2"}


@pytest.mark.parametrize(
    ("status", "fragment"),
    [
        (401, "answered 401: GITHUB_TOKEN was not accepted"),
        (403, "answered 403: GITHUB_TOKEN may not do this"),
        (404, "answered 404: repository not found"),
        (422, "answered 422: GitHub refused the pull request (simulated 422: simulated detail)"),
    ],
)
def test_forge_errors_are_one_line_and_keep_the_pushed_branch(
    dev_released: World, github: FakeGitHub, status: int, fragment: str
) -> None:
    world = dev_released
    github.fail["POST /repos/wealist/wealist-gitops/pulls"] = status
    before = Snapshot.take(world.work)
    proc = cli(world, "--env", "prod", "--from", "dev")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ") and fragment in lines[-1]
    assert "Branch promote/prod/v1.1.0 is pushed and kept" in lines[-1]
    assert "compare/main...promote/prod/v1.1.0" in lines[-1]
    assert TOKEN not in proc.stderr
    assert git(world.origin, "rev-parse", "--verify", "-q", "promote/prod/v1.1.0")
    assert_user_state_untouched(world, before)


def test_forge_timeout(dev_released: World, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> None:
    from wealist import forge
    from wealist.errors import ForgeError

    monkeypatch.setattr(forge, "TIMEOUT_SECONDS", 0.3)
    github.delay = 1.0
    with pytest.raises(
        ForgeError, match=r"did not answer within 0s. Branch promote/prod/v1.1.0 is pushed and kept"
    ):
        promote(dev_released.work, PromotionRequest(env="prod", source_env="dev"), lambda _m: None)


def test_a_server_trickling_its_answer_is_cut_off_at_the_call_deadline(
    dev_released: World, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from wealist import forge
    from wealist.errors import ForgeError

    monkeypatch.setattr(forge, "CALL_DEADLINE_SECONDS", 1.0)
    github.trickle = 0.2  # each read gets a byte well within the per-read timeout
    started = time.monotonic()
    with pytest.raises(ForgeError) as caught:
        promote(dev_released.work, PromotionRequest(env="prod", source_env="dev"), lambda _m: None)
    assert time.monotonic() - started < 15  # the promotion itself takes a few seconds here
    assert caught.value.message.startswith(
        "GitHub API POST /repos/wealist/wealist-gitops/pulls did not finish answering within 1s (it "
        "may have taken effect: look before retrying). Branch promote/prod/v1.1.0 is pushed and kept"
    )


@pytest.mark.parametrize(
    ("route", "answer", "said"),
    [
        (
            ("POST", "/repos/wealist/wealist-gitops/pulls"),
            (201, None),
            "POST /repos/wealist/wealist-gitops/pulls answered without a usable 'number'",
        ),
        (("POST", "/repos/wealist/wealist-gitops/pulls"), (201, {}), "without a usable 'number'"),
        (
            ("POST", "/repos/wealist/wealist-gitops/pulls"),
            (201, {"number": "x"}),
            "without a usable 'number'",
        ),
        (
            ("POST", "/repos/wealist/wealist-gitops/pulls"),
            (201, {"number": 7}),
            "without a usable 'html_url'",
        ),
        (
            ("GET", "/repos/wealist/wealist-gitops/pulls?head=wealist%3Apromote%2Fprod%2Fv1.1.0&state=open"),
            (200, {"message": "odd"}),
            "GET /repos/wealist/wealist-gitops/pulls answered something that is not a list",
        ),
    ],
)
def test_odd_forge_answers_are_one_line_and_keep_the_pushed_branch(
    dev_released: World, github: FakeGitHub, route: tuple[str, str], answer: tuple[int, object], said: str
) -> None:
    github.routes[route] = answer
    proc = cli(dev_released, "--env", "prod", "--from", "dev")
    assert proc.returncode == 1
    [line] = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert said in line and "unexpected" not in line
    assert "Branch promote/prod/v1.1.0 is pushed and kept: open the pull request at" in line


def test_forge_unreachable(dev_released: World) -> None:
    proc = cli(
        dev_released,
        "--env",
        "prod",
        "--from",
        "dev",
        env={"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": "http://127.0.0.1:9"},
    )
    assert proc.returncode == 1
    assert "Error: cannot reach http://127.0.0.1:9" in proc.stderr
    assert git(dev_released.origin, "rev-parse", "--verify", "-q", "promote/prod/v1.1.0")


def test_without_a_token_the_branch_is_pushed_and_the_compare_url_printed(dev_released: World) -> None:
    world = dev_released
    before = Snapshot.take(world.work)
    proc = cli(world, "--env", "prod", "--from", "dev")
    assert proc.returncode == 0, proc.stderr
    assert (
        "Open a pull request: https://github.com/wealist/wealist-gitops/compare/main...promote/prod/v1.1.0"
        "?expand=1"
    ) in proc.stdout
    assert "GITHUB_TOKEN is not set" in proc.stderr
    assert_user_state_untouched(world, before)


def test_push_rejected_is_reported_and_the_commit_kept_locally(
    dev_released: World, github: FakeGitHub
) -> None:
    world = dev_released
    hook = world.origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'promotion branches are frozen' >&2\nexit 1\n")
    hook.chmod(0o755)
    before = Snapshot.take(world.work)
    proc = cli(world, "--env", "prod", "--from", "dev")
    assert proc.returncode == 1
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(
        "Error: origin refused the push to promote/prod/v1.1.0: pre-receive hook declined; "
        "promotion branches are frozen."
    )
    assert "kept on local branch promote/prod/v1.1.0" in line
    assert github.requests == []
    assert git(world.work, "rev-parse", "--verify", "-q", "promote/prod/v1.1.0")
    assert_user_state_untouched(world, before)


def test_local_unpushed_commits_do_not_ride_along(dev_released: World, github: FakeGitHub) -> None:
    world = dev_released
    world.write("notes.md", "local only\n")
    world.commit_all("local work, not pushed")
    assert cli(world, "--env", "prod", "--from", "dev").returncode == 0
    assert git(world.origin, "rev-parse", "promote/prod/v1.1.0~1") == git(world.origin, "rev-parse", "main")
    assert git(world.origin, "show", "--name-only", "--format=", "promote/prod/v1.1.0") == PROD


def test_long_diffs_are_truncated_to_githubs_body_limit() -> None:
    from wealist.config import Environment
    from wealist.delivery import pull_request_body
    from wealist.forge import BODY_LIMIT
    from wealist.images import ImageRef
    from wealist.plan import Base, Change, Plan

    plan = Plan(
        env=Environment("prod", "pull-request"),
        delivery="pull-request",
        base=Base("a" * 40),
        changes=(
            Change("board-api", "wealist/board-api", "wealist/board-api", ImageRef("v1"), ImageRef("v2")),
        ),
        unchanged=(),
        source_env=None,
        forced=(),
        reason=None,
        rollback_of=None,
        new_text="",
        old_text="",
    )
    diff = "".join(f"+line {i}\n" for i in range(20_000))
    body = pull_request_body(plan, diff)
    assert len(body) <= BODY_LIMIT
    assert "The diff is truncated" in body and "wealist diff --env prod" in body
    assert body.count("```") == 2


# -- the token goes nowhere else --------------------------------------------------------------------


def test_a_redirect_to_another_host_never_gets_the_token(
    dev_released: World, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import FakeGitHub as Server

    elsewhere = Server()
    try:
        base = "/repos/wealist/wealist-gitops"
        github.routes[("GET", f"{base}/pulls?head=wealist%3Apromote%2Fprod%2Fv1.1.0&state=open")] = (302, {})
        github.redirect = elsewhere.url  # type: ignore[attr-defined]
        before = Snapshot.take(dev_released.work)
        proc = cli(dev_released, "--env", "prod", "--from", "dev")
        assert proc.returncode == 1
        assert (
            "redirecting to http://127.0.0.1:" in proc.stderr
            and "not following it with the token" in proc.stderr
        )
        assert all("Authorization" not in r.headers for r in elsewhere.requests)
        assert_user_state_untouched(dev_released, before)
    finally:
        elsewhere.close()


@pytest.mark.parametrize("token", [TOKEN + "\n", " " + TOKEN + "\r\n"])
def test_a_token_with_surrounding_whitespace_is_trimmed(
    dev_released: World, github: FakeGitHub, token: str
) -> None:
    proc = cli(dev_released, "--env", "prod", "--from", "dev", env={"GITHUB_TOKEN": token})
    assert proc.returncode == 0, proc.stderr
    assert github.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_a_token_with_a_control_character_inside_is_refused_unshown(
    dev_released: World, github: FakeGitHub
) -> None:
    bad = TOKEN[:10] + "\n" + TOKEN[10:]
    proc = cli(dev_released, "--env", "prod", "--from", "dev", env={"GITHUB_TOKEN": bad})
    assert proc.returncode == 1
    assert "GITHUB_TOKEN contains whitespace or control characters" in proc.stderr
    for part in (TOKEN[:10], TOKEN[10:], repr(bad)[1:-1]):
        assert part not in proc.stdout + proc.stderr


def test_an_answer_that_is_not_json_is_one_line(dev_released: World, github: FakeGitHub) -> None:
    github.raw = b"<html>maintenance</html>"  # type: ignore[attr-defined]
    proc = cli(dev_released, "--env", "prod", "--from", "dev")
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "Error: GitHub API GET /repos/wealist/wealist-gitops/pulls answered something that is not JSON"
    )
    assert "Branch promote/prod/v1.1.0 is pushed and kept" in last


def test_result_lines_are_masked_too(dev_released: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A compare URL built from a GITHUB_SERVER_URL that carries credentials is printed masked,
    in text and in JSON."""
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    server = {"GITHUB_SERVER_URL": "https://user:s3cret@github.example"}
    text = cli(dev_released, "--env", "prod", "--from", "dev", env=server)
    assert text.returncode == 0, text.stderr
    assert "s3cret" not in text.stdout and "https://***@github.example/" in text.stdout
