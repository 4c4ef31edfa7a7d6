"""Registry-aware promotion against the real registry server (docker-registry, distribution 2.8)
on 127.0.0.1: images pushed through its HTTP API, anonymous, Basic and token auth. A fault proxy in
front of it (the registry's answers pass through unchanged) adds the 429 and 500 a busy registry
gives."""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Snapshot, World, git
from conftest import promote_cli as cli
from registrylab import DOCKER_V2, PASSWORD, USER, LoopbackServer, RealRegistry, free_port
from wealist.plan import PromotionRequest
from wealist.promote import promote, rollback
from wealist.registry import CannotVerify, ImageMissing, Registry, docker_credentials, split_image

BIN = Path(sys.executable).parent
DEV = "overlays/dev/kustomization.yaml"
PROD = "overlays/prod/kustomization.yaml"
Start = Callable[[str], RealRegistry]


def quiet(_message: str) -> None:
    pass


def point_at(world: World, address: str, plain_http: bool = True) -> None:
    """promotion.yaml: the cluster's registry names (k3d's, ghcr.io) reached at ``address``."""
    text = world.read("promotion.yaml")
    start = text.index("registries:")
    end = text.index("forge:")
    mapping = "".join(
        f"  {host}:\n    address: {address}\n    plain-http: {str(plain_http).lower()}\n"
        for host in ("k3d-wealist-registry:5000", "ghcr.io")
    )
    world.write("promotion.yaml", text[:start] + "registries:\n" + mapping + text[end:])
    world.commit_all("registries for the tests")


def login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: dict[str, object]) -> None:
    folder = tmp_path / "docker"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))


def basic_login(address: str, password: str = PASSWORD) -> dict[str, object]:
    return {"auths": {address: {"auth": base64.b64encode(f"{USER}:{password}".encode()).decode()}}}


@pytest.fixture
def checked(
    world: World, real_registry: Start, monkeypatch: pytest.MonkeyPatch
) -> tuple[World, RealRegistry]:
    """A world whose registries hold v1.0.0 and v1.1.0 of both images (frontend multi-arch)."""
    monkeypatch.delenv("WEALIST_NO_VERIFY_IMAGE")
    registry = real_registry("anonymous")
    for tag in ("v1.0.0", "v1.1.0"):
        registry.push_image("wealist/board-api", tag, media_type=DOCKER_V2)
        registry.push_index("wealist/frontend", tag)
    point_at(world, registry.address)
    return world, registry


def plain(registry: RealRegistry) -> Registry:
    from wealist.registry import Endpoint

    return Registry({registry.address: Endpoint(registry.address, plain_http=True)})


def test_names_resolve_as_docker_resolves_them() -> None:
    assert split_image("wealist/board-api") == ("registry-1.docker.io", "wealist/board-api")
    assert split_image("postgres") == ("registry-1.docker.io", "library/postgres")
    assert split_image("docker.io/library/postgres") == ("registry-1.docker.io", "library/postgres")
    assert split_image("ghcr.io/wealist/frontend") == ("ghcr.io", "wealist/frontend")
    assert split_image("localhost/x") == ("localhost", "x")
    assert split_image("k3d-wealist-registry:5000/wealist/x") == ("k3d-wealist-registry:5000", "wealist/x")


def test_an_existing_tag_passes_and_prod_pins_the_index_digest(checked: tuple[World, RealRegistry]) -> None:
    world, registry = checked
    promote(world.work, PromotionRequest(env="dev", tag="v1.1.0"), quiet)
    assert "digest:" not in world.read(DEV)  # dev pins tags
    result = promote(world.work, PromotionRequest(env="prod", source_env="dev", delivery="direct"), quiet)
    index = registry.push_index("wealist/frontend", "v1.1.0")[0]  # the same content: the same digest
    board = next(c for c in result.plan.changes if c.component == "board-api")
    front = next(c for c in result.plan.changes if c.component == "frontend")
    assert front.new.digest == index  # the index, never one platform's manifest
    assert board.new.digest is not None and board.registry == f"exists, digest {board.new.digest}"
    overlay = world.read(PROD)
    assert f"newTag: v1.1.0\n    digest: {index}\n" in overlay
    assert f"newTag: v1.1.0\n    digest: {board.new.digest}\n" in overlay
    assert git(world.work, "show", "--name-only", "--format=", "HEAD") == PROD
    assert "Wealist-Image-Unverified" not in git(world.work, "log", "-1", "--format=%B")


def test_a_missing_tag_is_refused_and_nothing_changes(checked: tuple[World, RealRegistry]) -> None:
    world, _ = checked
    before = Snapshot.take(world.work)
    proc = cli(world, "--env", "dev", "--tag", "v1.2")  # the typo for v1.2.0
    assert proc.returncode == 1
    assert proc.stderr == (
        "Error: k3d-wealist-registry:5000/wealist/board-api:v1.2 does not exist in "
        "k3d-wealist-registry:5000 (the registry answered 404)\n"
    )
    assert Snapshot.take(world.work) == before


def test_the_registry_is_asked_while_the_render_and_the_git_checks_run(
    checked: tuple[World, RealRegistry], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lookups wait on the network, so they start as soon as the draft renders: by the time
    the checkout's own checks run, the registry has been asked. Each reference is asked once,
    a missing one too (a registry that times out is not waited for twice)."""
    import threading

    import wealist.promote

    world, _ = checked
    asked = threading.Event()
    calls: list[tuple[str, str]] = []
    seen: list[bool] = []
    real_check, real_clean = Registry._check, wealist.promote.check_clean

    def check(self: Registry, image: str, reference: str) -> object:
        calls.append((image, reference))
        asked.set()
        return real_check(self, image, reference)

    def clean(*args: object) -> None:
        seen.append(asked.wait(timeout=10))
        real_clean(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(Registry, "_check", check)
    monkeypatch.setattr(wealist.promote, "check_clean", clean)
    promote(world.work, PromotionRequest(env="dev", tag="v1.1.0"), lambda _m: None)
    assert seen == [True]
    assert sorted(calls) == [
        ("k3d-wealist-registry:5000/wealist/board-api", "v1.1.0"),
        ("k3d-wealist-registry:5000/wealist/frontend", "v1.1.0"),
    ]
    calls.clear()
    with pytest.raises(ImageMissing):
        promote(world.work, PromotionRequest(env="dev", tag="v9.9.9", components=("board-api",)), print)
    assert calls == [("k3d-wealist-registry:5000/wealist/board-api", "v9.9.9")]


def test_the_dry_run_shows_what_the_registry_said(checked: tuple[World, RealRegistry]) -> None:
    world, _ = checked
    proc = cli(world, "--env", "dev", "--tag", "v1.1.0", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.strip().startswith(("board-api", "frontend"))]
    assert len(rows) == 2 and all("exists, digest sha256:" in row for row in rows), proc.stdout


def test_no_verify_image_is_recorded_and_shown(checked: tuple[World, RealRegistry]) -> None:
    world, _ = checked
    proc = cli(world, "--env", "dev", "--tag", "v9.9.9", "--no-verify-image")
    assert proc.returncode == 0, proc.stderr
    assert "Wealist-Image-Unverified: yes" in git(world.work, "log", "-1", "--format=%B")
    history = subprocess.run(
        [str(BIN / "wealist"), "history", "--env", "dev"], cwd=world.work, capture_output=True, text=True
    )
    assert "(image not verified)" in history.stdout


def test_a_moved_tag_is_refused_for_tag_at_digest(checked: tuple[World, RealRegistry]) -> None:
    world, registry = checked
    old = registry.push_image("wealist/board-api", "v2.0.0", salt="first build")
    registry.push_image("wealist/board-api", "v2.0.0", salt="rebuilt")  # the tag moves
    before = Snapshot.take(world.work)
    proc = cli(world, "--env", "dev", "--component", "board-api", "--tag", f"v2.0.0@{old}")
    assert proc.returncode == 1
    assert "the tag moved: k3d-wealist-registry:5000/wealist/board-api:v2.0.0 is sha256:" in proc.stderr
    assert f"not {old}" in proc.stderr
    assert Snapshot.take(world.work) == before


def test_rollback_restores_the_digest_that_ran_even_after_the_tag_moved(
    checked: tuple[World, RealRegistry],
) -> None:
    world, registry = checked
    registry.push_image("wealist/board-api", "v1.2.0", media_type=DOCKER_V2)
    registry.push_index("wealist/frontend", "v1.2.0")
    ran = {}
    for tag in ("v1.1.0", "v1.2.0"):
        promote(world.work, PromotionRequest(env="dev", tag=tag), quiet)
        done = promote(world.work, PromotionRequest(env="prod", source_env="dev", delivery="direct"), quiet)
        ran[tag] = {c.component: c.new for c in done.plan.changes}
    registry.push_image("wealist/board-api", "v1.1.0", salt="rebuilt", media_type=DOCKER_V2)  # it moves
    result = rollback(world.work, PromotionRequest(env="prod", delivery="direct"), None, quiet)
    assert {c.component: c.new for c in result.plan.changes} == ran["v1.1.0"]  # as it ran, digest and all
    assert f"digest: {ran['v1.1.0']['board-api'].digest}" in world.read(PROD)


@pytest.mark.parametrize("mode", ["basic", "token"])
def test_basic_and_bearer_logins_authenticate(
    world: World, real_registry: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.delenv("WEALIST_NO_VERIFY_IMAGE")
    registry = real_registry(mode)
    digest = registry.push_image("wealist/board-api", "v3.0.0")
    login(tmp_path, monkeypatch, basic_login(registry.address))
    check = plain(registry).check(f"{registry.address}/wealist/board-api", "v3.0.0")
    assert check.digest == digest
    if registry.tokens is not None:  # the token server saw the pull scope and the login
        assert registry.tokens.requests[-1]["scope"] == "repository:wealist/board-api:pull"
        assert registry.tokens.requests[-1]["authorization"].startswith("Basic ")


def test_an_identity_token_and_anonymous_pulls_get_bearer_tokens(
    world: World, real_registry: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registrylab import IDENTITY_TOKEN

    registry = real_registry("token")
    assert registry.tokens is not None
    private = registry.push_image("wealist/board-api", "v3.0.0")
    public = registry.push_image("public/base", "v1")
    client = plain(registry)
    assert client.check(f"{registry.address}/public/base", "v1").digest == public  # no login at all
    assert registry.tokens.requests[-1]["authorization"] == ""
    login(tmp_path, monkeypatch, {"auths": {registry.address: {"identitytoken": IDENTITY_TOKEN}}})
    assert client.check(f"{registry.address}/wealist/board-api", "v3.0.0").digest == private
    assert registry.tokens.requests[-1]["grant_type"] == "refresh_token"


def test_plain_http_is_spoken_only_to_registries_listed_so(world: World, real_registry: Start) -> None:
    registry = real_registry("anonymous")
    registry.push_image("wealist/board-api", "v3.0.0")
    from wealist.registry import Endpoint

    with pytest.raises(CannotVerify, match=rf"TLS with {registry.address} failed"):
        Registry({registry.address: Endpoint(registry.address)}).check(
            f"{registry.address}/wealist/board-api", "v3.0.0"
        )


def test_a_credential_helper_is_asked(
    world: World, real_registry: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = real_registry("basic")
    digest = registry.push_image("wealist/board-api", "v3.0.0")
    helpers = tmp_path / "bin"
    helpers.mkdir()
    helper = helpers / "docker-credential-wealist-test"
    helper.write_text(
        "#!/bin/sh\nread server\n"
        f'[ "$server" = "{registry.address}" ] || '
        '{ echo "credentials not found in native keychain"; exit 1; }\n'
        f"printf '%s' '{json.dumps({'ServerURL': registry.address, 'Username': USER, 'Secret': PASSWORD})}'\n"
    )
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{helpers}:{os.environ['PATH']}")
    login(tmp_path, monkeypatch, {"credHelpers": {registry.address: "wealist-test"}})
    assert docker_credentials(registry.address) is not None
    assert plain(registry).check(f"{registry.address}/wealist/board-api", "v3.0.0").digest == digest


def test_bad_credentials_are_refused_with_the_cause_and_never_shown(
    checked: tuple[World, RealRegistry],
    real_registry: Start,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world, _ = checked
    registry = real_registry("basic")
    registry.push_image("wealist/board-api", "v1.1.0")
    registry.push_image("wealist/frontend", "v1.1.0")
    point_at(world, registry.address)
    wrong = "not-the-password-0123"
    login(tmp_path, monkeypatch, basic_login(registry.address, wrong))
    before = Snapshot.take(world.work)
    proc = cli(world, "--env", "dev", "--tag", "v1.1.0")
    assert proc.returncode == 1
    assert "could not verify k3d-wealist-registry:5000/wealist/board-api:v1.1.0" in proc.stderr
    assert "HTTP 401 not authorised" in proc.stderr
    assert Snapshot.take(world.work) == before
    # With the right password it works, and the password shows up nowhere.
    login(tmp_path, monkeypatch, basic_login(registry.address))
    proc = cli(world, "--env", "dev", "--tag", "v1.1.0", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    encoded = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    for secret in (PASSWORD, wrong, encoded):
        assert secret not in proc.stdout + proc.stderr
        found = subprocess.run(["grep", "-rlF", secret, str(world.work / ".git")], capture_output=True)
        assert found.returncode == 1, found.stdout


class FaultProxy:
    """Forwards to the real registry; answers the statuses queued in ``faults`` first."""

    def __init__(self, upstream: str) -> None:
        self.faults: list[tuple[int, dict[str, str]]] = []
        self.seen = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                proxy.seen += 1
                if proxy.faults:
                    status, headers = proxy.faults.pop(0)
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection(upstream, timeout=10)
                conn.request(self.command, self.path, headers=dict(self.headers))
                response = conn.getresponse()
                body = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("content-length", "connection", "date", "server"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = _forward

        self.server = LoopbackServer(Handler)
        self.address = self.server.address

    def close(self) -> None:
        self.server.close()


def test_429_and_500_are_retried_within_the_deadline_then_refused(real_registry: Start) -> None:
    from wealist.registry import Endpoint

    registry = real_registry("anonymous")
    digest = registry.push_image("wealist/board-api", "v3.0.0")
    proxy = FaultProxy(registry.address)
    try:
        client = Registry({"r.test": Endpoint(proxy.address, plain_http=True)})
        proxy.faults = [(429, {"Retry-After": "0"}), (503, {})]
        assert client.check("r.test/wealist/board-api", "v3.0.0").digest == digest  # third try
        assert proxy.seen == 3
        proxy.faults = [(500, {})] * 10
        with pytest.raises(
            CannotVerify, match=r"could not verify r.test/wealist/board-api:v3.1.0 .*HTTP 500"
        ):
            client.check("r.test/wealist/board-api", "v3.1.0")
        proxy.faults = [(429, {"Retry-After": "3600"})]  # longer than the deadline: no waiting
        with pytest.raises(CannotVerify, match="HTTP 429 too many requests"):
            client.check("r.test/wealist/board-api", "v3.2.0")
    finally:
        proxy.close()


def test_connection_refused_is_could_not_verify() -> None:
    from wealist.registry import Endpoint

    port = free_port()
    with pytest.raises(CannotVerify, match=rf"cannot reach 127.0.0.1:{port}"):
        Registry({"r.test": Endpoint(f"127.0.0.1:{port}", plain_http=True)}).check("r.test/a", "v1")


def test_only_404_means_missing(real_registry: Start) -> None:
    from wealist.registry import Endpoint

    registry = real_registry("anonymous")
    with pytest.raises(ImageMissing):
        Registry({"r.test": Endpoint(registry.address, plain_http=True)}).check("r.test/wealist/none", "v1")


def test_status_registry_warns_about_moved_and_deleted_tags(checked: tuple[World, RealRegistry]) -> None:
    world, registry = checked
    promote(world.work, PromotionRequest(env="dev", tag="v1.1.0"), quiet)
    promote(world.work, PromotionRequest(env="prod", source_env="dev", delivery="direct"), quiet)
    registry.push_image("wealist/board-api", "v1.1.0", salt="rebuilt", media_type=DOCKER_V2)  # moves
    index = registry.push_index("wealist/frontend", "v1.1.0")[0]
    registry.delete("wealist/frontend", index)  # deleting a manifest removes its tags too
    proc = subprocess.run(
        [str(BIN / "wealist"), "status", "--registry", "--format", "json"],
        cwd=world.work,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    states = {(s["env"], s["component"]): s["state"] for s in json.loads(proc.stdout)["registry"]}
    assert states == {
        ("dev", "board-api"): "ok",  # dev follows the tag: it exists
        ("dev", "frontend"): "missing",
        ("prod", "board-api"): "moved",  # prod pinned the digest the tag had then
        ("prod", "frontend"): "missing",
    }
    text = subprocess.run(
        [str(BIN / "wealist"), "status", "--registry"], cwd=world.work, capture_output=True, text=True
    ).stdout
    assert "registry: prod board-api v1.1.0: moved: tag v1.1.0 is sha256:" in text


def test_a_redirect_is_not_followed_with_credentials(real_registry: Start) -> None:
    from wealist.registry import Endpoint

    registry = real_registry("anonymous")
    proxy = FaultProxy(registry.address)
    try:
        proxy.faults = [(307, {"Location": "http://elsewhere.test/v2/x/manifests/v1"})]
        with pytest.raises(CannotVerify, match=r"redirected to elsewhere\.test: not followed"):
            Registry({"r.test": Endpoint(proxy.address, plain_http=True)}).check("r.test/x", "v1")
    finally:
        proxy.close()


def test_docker_hub_logins_are_found_under_the_keys_docker_writes(tmp_path: Path) -> None:
    auth = base64.b64encode(b"hubuser:hubpass-0123").decode()
    (tmp_path / "config.json").write_text(
        json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": auth}}})
    )
    found = docker_credentials("registry-1.docker.io", tmp_path)
    assert found is not None and (found.username, found.secret) == ("hubuser", "hubpass-0123")
    assert docker_credentials("ghcr.io", tmp_path) is None
