"""Fixtures in one place: hermetic git, and real repositories (a bare origin and clones) in tmp_path.

The template world (a copy of this repository's manifests committed to a bare origin, and a clone)
is built once per session and copied for each test, so every test gets its own real repositories
for the price of a directory copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from registrylab import LoopbackServer, send_json

if TYPE_CHECKING:
    from registrylab import RealRegistry

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT.parent / "shared" / "schemas"
WORLD_FILES = ("promotion.yaml", "base", "overlays", "components", "clusters", "argocd", ".gitignore")
# The copies of upstream schemas beside the repository (Argo CD's CRDs and API, k3d's config):
# where they are missing, the tests that stand them in for upstream skip and say so.
needs_schemas = pytest.mark.skipif(
    not SCHEMAS.is_dir(), reason=f"the schema copies that stand in for upstream are not at {SCHEMAS}"
)
KUBECTL_DIR = Path(os.path.realpath(shutil.which("kubectl") or "/nonexistent")).parent


@pytest.fixture(scope="session", autouse=True)
def hermetic_git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No user or system git configuration; a fixed identity; default branch main."""
    home = tmp_path_factory.mktemp("home")
    config = home / ".gitconfig"
    config.write_text(
        "[user]\n\tname = Test Promoter\n\temail = promoter@example.com\n"
        "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n[advice]\n\tdetachedHead = false\n"
    )
    saved = dict(os.environ)
    for key in list(os.environ):
        if key.startswith(("GIT_", "GITHUB_", "WEALIST_")) or key in ("NO_COLOR", "XDG_CACHE_HOME"):
            del os.environ[key]
    mirror = SchemaMirror()
    os.environ.update(
        {
            "HOME": str(home),
            "GIT_CONFIG_GLOBAL": str(config),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            # validate's pinned schemas come from a local mirror (the copies beside the repository),
            # never from the network, into a cache of this session's own.
            "WEALIST_SCHEMA_MIRROR": mirror.url,
            "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("cache")),
            # Promotions here name images no registry holds: only the registry tests (which run a
            # real one) ask; the others promote as --no-verify-image does, recorded in the commit.
            "WEALIST_NO_VERIFY_IMAGE": "1",
            "DOCKER_CONFIG": str(tmp_path_factory.mktemp("docker")),  # never the machine's logins
        }
    )
    yield
    mirror.close()
    os.environ.clear()
    os.environ.update(saved)


class SchemaMirror:
    """A local stand-in for raw.githubusercontent.com that serves the pinned schema files from the
    copies in ../shared/schemas (404 when they are absent). ``changed`` serves altered bytes for a
    name; ``hits`` counts what was fetched."""

    def __init__(self) -> None:
        import http.server

        from wealist.validate.pinned import UPSTREAM, pinned

        self.files = {entry.url.removeprefix(UPSTREAM): SCHEMAS / entry.name for entry in pinned()}
        self.changed: set[str] = set()
        self.hits: list[str] = []
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                mirror.hits.append(self.path)
                path = mirror.files.get(self.path)
                if path is None or not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes() + (b"\n# changed upstream\n" if path.name in mirror.changed else b"")
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = LoopbackServer(Handler)
        self.url = self.server.url

    def close(self) -> None:
        self.server.close()


def git(cwd: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


def killed_midway(argv: list[str], cwd: Path, after: float) -> None:
    """Run ``argv`` in its own process group and SIGKILL the whole group ``after`` seconds in: the
    tool and any git or kustomize child it is running, as a crash or `kill -9` would."""
    proc = subprocess.Popen(
        argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    time.sleep(after)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def promote_cli(
    world: World, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real ``wealist-promote`` in the world's clone, as a user runs it (no stdin, no colour)."""
    import sys

    return subprocess.run(
        [str(Path(sys.executable).parent / "wealist-promote"), *args],
        cwd=world.work,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        check=False,
        timeout=120,
    )


@dataclass
class World:
    """A bare origin and a clone of it (the user's work tree)."""

    origin: Path
    work: Path

    def clone(self, name: str) -> Path:
        path = self.origin.parent / name
        git(self.origin.parent, "clone", "-q", str(self.origin), str(path))
        return path

    def head(self, path: Path | None = None) -> str:
        return git(path or self.work, "rev-parse", "HEAD")

    def read(self, relative: str, path: Path | None = None) -> str:
        return ((path or self.work) / relative).read_text()

    def write(self, relative: str, text: str, path: Path | None = None) -> None:
        ((path or self.work) / relative).write_text(text)

    def commit_all(self, message: str, path: Path | None = None) -> str:
        git(path or self.work, "add", "-A")
        git(path or self.work, "commit", "-qm", message)
        return self.head(path)


@pytest.fixture(scope="session")
def world_template(tmp_path_factory: pytest.TempPathFactory, hermetic_git: None) -> Path:
    base = tmp_path_factory.mktemp("template")
    seed = base / "seed"
    seed.mkdir()
    for name in WORLD_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, seed / name)
        else:
            shutil.copy2(source, seed / name)
    git(seed, "init", "-q")
    git(seed, "add", "-A")
    git(seed, "commit", "-qm", "weAlist GitOps repository")
    git(base, "clone", "-q", "--bare", str(seed), str(base / "origin.git"))
    git(base, "clone", "-q", str(base / "origin.git"), str(base / "work"))
    shutil.rmtree(seed)
    return base


@pytest.fixture
def world(world_template: Path, tmp_path: Path) -> World:
    shutil.copytree(world_template / "origin.git", tmp_path / "origin.git", symlinks=True)
    shutil.copytree(world_template / "work", tmp_path / "work", symlinks=True)
    # The clone's remote URL points at the template's origin: repoint it at this test's copy.
    git(tmp_path / "work", "remote", "set-url", "origin", str(tmp_path / "origin.git"))
    return World(origin=tmp_path / "origin.git", work=tmp_path / "work")


@dataclass(frozen=True)
class Snapshot:
    """Everything a refusal must leave alone: HEAD, every ref, the index, every work-tree byte."""

    head: str
    refs: str
    index: str
    files: dict[str, str]

    @classmethod
    def take(cls, path: Path) -> Snapshot:
        files = {}
        for file in sorted(path.rglob("*")):
            if file.is_file() and ".git" not in file.relative_to(path).parts:
                files[str(file.relative_to(path))] = hashlib.sha256(file.read_bytes()).hexdigest()
        return cls(
            head=git(path, "rev-parse", "HEAD"),
            refs=git(path, "for-each-ref", "--format=%(refname) %(objectname)"),
            index=git(path, "ls-files", "--stage"),
            files=files,
        )


def kubectl_versions() -> list[Path]:
    """The oldest and newest kubectl builds beside the real binary (Kustomize v5.0 and the newest)."""
    builds = sorted(KUBECTL_DIR.glob("kubectl.1.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
    return [builds[0], builds[-1]] if len(builds) >= 2 else builds


# -- a local stand-in for GitHub's REST API --------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: dict | list | None


class FakeGitHub:
    """Plays the few pull-request endpoints on 127.0.0.1 and records every request it receives.

    ``fail`` maps "METHOD /path-prefix" to a status code to answer instead; ``delay`` stalls every
    answer and ``trickle`` sends bodies a byte at a time (to test time-outs). Open pull requests are
    kept per head branch, so a second promotion
    of the same branch finds and updates the first.
    """

    def __init__(self) -> None:
        import http.server

        self.requests: list[Received] = []
        self.fail: dict[str, int] = {}
        self.delay = 0.0
        self.routes: dict[tuple[str, str], tuple[int, object]] = {}  # exact answers, checked first
        self.redirect: str | None = None  # where a 3xx answer points (Location)
        self.raw: bytes | None = None  # an answer that is not JSON, for every request
        self.trickle = 0.0  # send the body one byte per this many seconds
        self.pulls: dict[str, dict] = {}
        self.comments: list[dict] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _handle(self) -> None:
                import json
                import time

                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                fake.requests.append(Received(self.command, self.path, dict(self.headers), body))
                if fake.delay:
                    time.sleep(fake.delay)
                status, payload = fake.answer(self.command, self.path, body)
                data = fake.raw if fake.raw is not None else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    if 300 <= status < 400 and fake.redirect:
                        self.send_header("Location", fake.redirect + self.path)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if fake.trickle:
                        for byte in data:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(fake.trickle)
                    else:
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PATCH = _handle

        self.server = LoopbackServer(Handler)
        self.url = self.server.url

    def answer(self, method: str, path: str, body: dict | None) -> tuple[int, object]:
        if (method, path) in self.routes:
            return self.routes[(method, path)]
        for key, status in self.fail.items():
            fail_method, prefix = key.split(" ", 1)
            if method == fail_method and path.startswith(prefix):
                return status, {"message": f"simulated {status}", "errors": [{"message": "simulated detail"}]}
        base = "/repos/wealist/wealist-gitops"
        if method == "GET" and path.startswith(f"{base}/pulls?"):
            from urllib.parse import parse_qs, urlparse

            head = parse_qs(urlparse(path).query)["head"][0].split(":", 1)[1]
            return 200, [self.pulls[head]] if head in self.pulls else []
        if method == "POST" and path == f"{base}/pulls":
            assert body is not None
            number = 100 + len(self.pulls)
            pull = {
                "number": number,
                "html_url": f"https://github.com/wealist/wealist-gitops/pull/{number}",
                **body,
            }
            self.pulls[body["head"]] = pull
            return 201, pull
        if method == "PATCH" and path.startswith(f"{base}/pulls/"):
            number = int(path.rsplit("/", 1)[1])
            pull = next(p for p in self.pulls.values() if p["number"] == number)
            pull.update(body or {})
            return 200, pull
        if method == "GET" and "/comments" in path and path.startswith(f"{base}/issues/"):
            return 200, self.comments
        if method == "POST" and path.startswith(f"{base}/issues/") and path.endswith("/comments"):
            assert body is not None
            comment = {
                "id": 900 + len(self.comments),
                "html_url": f"https://github.com/c/{len(self.comments)}",
                **body,
            }
            self.comments.append(comment)
            return 201, comment
        if method == "PATCH" and path.startswith(f"{base}/issues/comments/"):
            comment = next(c for c in self.comments if c["id"] == int(path.rsplit("/", 1)[1]))
            comment.update(body or {})
            return 200, comment
        if method == "POST" and path.startswith(f"{base}/issues/") and path.endswith("/labels"):
            return 200, [{"name": n} for n in (body or {}).get("labels", [])]
        return 404, {"message": "Not Found"}

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    monkeypatch.setenv("GITHUB_API_URL", fake.url)
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_testtoken0123456789")
    yield fake
    fake.close()


def count_renders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, every render of this process is recorded (its directory) in the list returned."""
    from wealist.render import Renderer, RenderJob

    built: list[str] = []
    real = Renderer.start

    def counting(self: Renderer, path: Path, alongside: bool = False) -> RenderJob:
        built.append(str(path))
        return real(self, path, alongside)

    monkeypatch.setattr(Renderer, "start", counting)
    return built


@pytest.fixture
def real_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], RealRegistry]]:
    """Starts the real docker-registry on 127.0.0.1 (anonymous, basic or token auth); skips with
    the reason where it is not installed."""
    from registrylab import RealRegistry, available

    reason = available()
    if reason:
        pytest.skip(reason)
    started: list[RealRegistry] = []

    def start(mode: str = "anonymous") -> RealRegistry:
        server = RealRegistry(tmp_path_factory.mktemp(f"registry-{mode}"), mode)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


ARGOCD_TOKEN = "argocd-test-token-0123456789"


def _strict(definitions: dict) -> dict:
    """Argo CD's swagger definitions, with unknown properties refused: a stand-in answer with a
    misspelt field would otherwise pass."""
    import copy

    strict = copy.deepcopy(definitions)
    for schema in strict.values():
        if isinstance(schema, dict) and "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    return strict


class FakeArgoCD:
    """Argo CD's REST API on 127.0.0.1, for what the tool asks: ``GET /api/v1/applications/NAME``.

    Every answer is validated against ``v1alpha1Application`` of Argo CD's own OpenAPI document
    (``../shared/schemas/argocd-api/swagger.json``) before it is sent; the token and the refresh
    parameter are checked and recorded. ``apps[name]`` is the sequence of states an application
    goes through: each plain GET answers the current one, each ``?refresh=normal`` moves to the next
    (Argo CD compares with git again), as a real server's status changes between calls."""

    def __init__(self) -> None:
        import http.server
        import json
        import urllib.parse

        import jsonschema

        swagger = json.loads((SCHEMAS / "argocd-api" / "swagger.json").read_text())
        definitions = _strict(swagger["definitions"])
        self.validator = jsonschema.Draft4Validator(
            {"definitions": definitions, "$ref": "#/definitions/v1alpha1Application"}
        )
        windows_schema = {
            "definitions": definitions,
            "$ref": "#/definitions/applicationApplicationSyncWindowsResponse",
        }
        self.windows_validator = jsonschema.Draft4Validator(windows_schema)
        self.apps: dict[str, list[dict]] = {}
        self.windows: dict[str, dict] = {}  # name -> syncwindows answer (default: may sync)
        self.step_every_get = False  # True: every GET moves on (a rollout in progress between polls)
        self.requests: list[tuple[str, str]] = []  # (path with query, Authorization)
        self.invalid: list[str] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                fake.requests.append((self.path, self.headers.get("Authorization", "")))
                if self.headers.get("Authorization") != f"Bearer {ARGOCD_TOKEN}":
                    return self._send(
                        401, {"error": "invalid session", "code": 16, "message": "invalid session"}
                    )
                name = urllib.parse.unquote(url.path.removeprefix("/api/v1/applications/"))
                if name.endswith("/syncwindows"):
                    answer = fake.windows.get(name.removesuffix("/syncwindows"), {"canSync": True})
                    errors = [e.message for e in fake.windows_validator.iter_errors(answer)]
                    fake.invalid.extend(errors)
                    return self._send(500 if errors else 200, answer)
                states = fake.apps.get(name)
                if not url.path.startswith("/api/v1/applications/") or not states:
                    return self._send(404, {"error": "not found", "code": 5, "message": f"{name} not found"})
                query = dict(urllib.parse.parse_qsl(url.query))
                if query and query != {"refresh": "normal"}:
                    return self._send(400, {"error": "bad query", "code": 3, "message": url.query})
                if fake.step_every_get:  # answer the current state, then move on
                    document = states.pop(0) if len(states) > 1 else states[0]
                else:  # a refresh makes Argo CD compare again: the next state
                    if query.get("refresh") == "normal" and len(states) > 1:
                        states.pop(0)
                    document = states[0]
                errors = [e.message for e in fake.validator.iter_errors(document)]
                if errors:
                    fake.invalid.extend(errors)
                    return self._send(500, {"error": "the stand-in's document is invalid", "code": 13})
                self._send(200, document)

            def _send(self, status: int, body: dict) -> None:
                send_json(self, status, body)

        self.server = LoopbackServer(Handler)
        self.url = self.server.url

    def close(self) -> None:
        self.server.close()


def application(
    name: str,
    revision: str,
    images: list[str],
    health: str = "Healthy",
    healthy_since: str = "2026-01-01T00:00:00Z",
    phase: str = "Succeeded",
    finished: str | None = "2026-01-01T00:00:00Z",
    reconciled: str = "2026-01-01T00:01:00Z",
    operation: bool = False,
    conditions: tuple[tuple[str, str], ...] = (),
    resources: tuple[tuple[str, str, str, str], ...] = (),  # kind, name, health, message
) -> dict:
    """A ``v1alpha1Application`` as Argo CD's API returns it (the fields the tool reads, and the
    spec around them)."""
    state: dict = {"phase": phase, "startedAt": "2026-01-01T00:00:00Z", "message": f"sync {phase.lower()}"}
    state["operation"] = {"sync": {"revision": revision}}
    if finished:
        state["finishedAt"] = finished
    document: dict = {
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {
            "project": "wealist-dev",
            "source": {
                "repoURL": "https://github.com/wealist/wealist-gitops.git",
                "path": "overlays/dev",
                "targetRevision": "main",
            },
            "destination": {"name": "in-cluster", "namespace": "board-api-dev"},
        },
        "status": {
            "sync": {"status": "Synced", "revision": revision},
            "health": {"status": health, "lastTransitionTime": healthy_since},
            "operationState": state,
            "reconciledAt": reconciled,
            "summary": {"images": images},
            "conditions": [{"type": t, "message": m} for t, m in conditions],
            "resources": [
                {"kind": k, "name": n, "namespace": "board-api-dev", "health": {"status": h, "message": msg}}
                for k, n, h, msg in resources
            ],
        },
    }
    if operation:
        document["operation"] = {"sync": {"revision": revision}, "initiatedBy": {"automated": True}}
    return document


@pytest.fixture
def argocd(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeArgoCD]:
    if not (SCHEMAS / "argocd-api" / "swagger.json").is_file():
        pytest.skip(f"Argo CD's API document (what the stand-in's answers must match) is not at {SCHEMAS}")
    fake = FakeArgoCD()
    monkeypatch.setenv("ARGOCD_AUTH_TOKEN", ARGOCD_TOKEN)
    yield fake
    fake.close()
    assert fake.invalid == [], fake.invalid  # every answer the stand-in gave was a valid Application
