"""The image registry: does the reference a promotion is about to write exist, and which digest is
it? Spoken with the OCI distribution API, authenticated the way Docker clients do it.

Only a 404 (MANIFEST_UNKNOWN) proves that an image is missing. Every other failure (401/403 after
authenticating, 429, 5xx, TLS, network) means "could not verify", and the promotion is refused as
well: the check fails closed. A ``HEAD`` answers existence and digest without counting against
Docker Hub's pull limit; a ``GET`` is made only when a registry omits Docker-Content-Digest.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .background import in_background
from .errors import RefusedError
from .masking import hide

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
DOCKER_HUB = "registry-1.docker.io"
_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", DOCKER_HUB)
CALL_DEADLINE_SECONDS = 15.0  # per check, retries and token requests included
RETRIES = 3  # after a 429 or 5xx
MAX_RETRY_WAIT = 5.0
T = TypeVar("T")
R = TypeVar("R")
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class ImageMissing(RefusedError):
    """The registry says the image reference does not exist (404)."""


class CannotVerify(RefusedError):
    """The registry could not be asked, or would not say: the check fails closed."""


@dataclass(frozen=True)
class Endpoint:
    """How this machine reaches the registry an image names (promotion.yaml ``registries:``)."""

    address: str  # host[:port] to connect to
    plain_http: bool = False


@dataclass(frozen=True)
class ImageCheck:
    """What the registry said about one reference."""

    image: str  # the rendered name, as the cluster pulls it
    reference: str  # the tag or digest asked for
    digest: str  # what it resolves to now (the index digest for a multi-arch image)
    registry: str  # the host asked

    def describe(self) -> str:
        return f"exists, digest {self.digest}"


def split_image(name: str) -> tuple[str, str]:
    """(registry host, repository) as Docker resolves an image name: no host means Docker Hub,
    where a one-part name lives under ``library/``."""
    first, _, rest = name.partition("/")
    if rest and first in ("docker.io", "index.docker.io", DOCKER_HUB):
        name = rest
    elif rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return DOCKER_HUB, name if "/" in name else f"library/{name}"


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


class Registry:
    """Asks registries about image references; one client per run (tokens are reused)."""

    def __init__(self, endpoints: Mapping[str, Endpoint], docker_config: Path | None = None) -> None:
        self._endpoints = endpoints
        self._docker_config = docker_config
        self._tokens: dict[tuple[str, str], str] = {}  # (host, scope) -> Authorization value
        # (image, reference) -> what the registry said, or why it could not be asked: once per run.
        self._answers: dict[tuple[str, str], ImageCheck | Exception] = {}
        self._early: list[Callable[[], None]] = []

    def ask_early(self, wanted: list[tuple[str, str]]) -> None:
        """Start asking about ``wanted`` now, in the background: the answers wait on the network,
        so they arrive while the caller renders and reads git. ``check_many`` waits for them."""
        self._early.append(in_background(functools.partial(self._ask_all, wanted)))

    def check_many(self, wanted: list[tuple[str, str]]) -> dict[tuple[str, str], ImageCheck]:
        """``check`` for each distinct (image, reference), in parallel; the first refusal, in the
        order given, is raised (so the message does not depend on which answer came first)."""
        for wait in self._early:
            wait()
        self._ask_all(wanted)
        return {key: self.check(*key) for key in dict.fromkeys(wanted)}

    def _ask_all(self, wanted: list[tuple[str, str]]) -> None:
        distinct = [key for key in dict.fromkeys(wanted) if key not in self._answers]
        _in_parallel(self._learn, distinct)

    def _learn(self, key: tuple[str, str]) -> None:
        try:
            self._answers[key] = self._check(*key)
        except Exception as exc:  # raised by check(), in the caller's thread and order
            self._answers[key] = exc

    def check(self, image: str, reference: str) -> ImageCheck:
        """The digest ``image``:``reference`` (a tag or a digest) resolves to now; asked once per
        run (a failure too: a registry that timed out is not waited for twice)."""
        if (image, reference) not in self._answers:
            self._learn((image, reference))
        answer = self._answers[(image, reference)]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def _check(self, image: str, reference: str) -> ImageCheck:
        host, repository = split_image(image)
        endpoint = self._endpoints.get(host, Endpoint(host))
        path = f"/v2/{repository}/manifests/{reference}"
        scope = f"repository:{repository}:pull"
        deadline = time.monotonic() + CALL_DEADLINE_SECONDS
        where = f"{image}:{reference}" if not reference.startswith("sha256:") else f"{image}@{reference}"
        try:
            answer = self._ask(host, endpoint, "HEAD", path, scope, deadline)
        except CannotVerify as exc:
            raise CannotVerify(f"could not verify {where} in {host}: {exc.message}") from None
        if answer.status == 404:
            raise ImageMissing(f"{where} does not exist in {host} (the registry answered 404)")
        if answer.status != 200:
            raise CannotVerify(f"could not verify {where} in {host}: {_status_text(answer)}")
        digest = answer.headers.get("docker-content-digest")
        if not digest:  # some registries only send it on GET: hash the manifest itself
            body = self._ask(host, endpoint, "GET", path, scope, deadline)
            if body.status != 200:
                raise CannotVerify(f"could not verify {where} in {host}: {_status_text(body)}")
            digest = "sha256:" + hashlib.sha256(body.body).hexdigest()
        return ImageCheck(image, reference, digest, host)

    def _ask(
        self, host: str, endpoint: Endpoint, method: str, path: str, scope: str, deadline: float
    ) -> _Answer:
        """One request with authentication (answering the registry's challenge once) and retries
        for 429/5xx (honouring Retry-After), all within ``deadline``."""
        authorization = self._tokens.get((host, scope))
        challenged = False
        for attempt in range(RETRIES + 1):
            answer = _send(endpoint, method, path, authorization, deadline)
            if answer.status == 401 and not challenged:
                challenged = True
                authorization = self._authorize(
                    host, answer.headers.get("www-authenticate", ""), scope, deadline
                )
                self._tokens[(host, scope)] = authorization
                answer = _send(endpoint, method, path, authorization, deadline)
            if (answer.status != 429 and answer.status < 500) or attempt == RETRIES:
                return answer
            wait = _retry_after(answer.headers.get("retry-after"), attempt)
            if time.monotonic() + wait > deadline:
                return answer
            time.sleep(wait)
        raise AssertionError("unreachable")

    def _authorize(self, host: str, challenge: str, scope: str, deadline: float) -> str:
        """The Authorization value that answers ``challenge`` (Bearer token flow, or Basic)."""
        scheme, _, params = challenge.strip().partition(" ")
        # `docker login` was given the address this machine uses (localhost:5001 for k3d's).
        address = self._endpoints.get(host, Endpoint(host)).address
        credentials = docker_credentials(address, self._docker_config)
        if credentials is None and address != host:
            credentials = docker_credentials(host, self._docker_config)
        if scheme.lower() == "basic":
            if credentials is None or credentials.username is None:
                raise CannotVerify(f"it asks for a login and the Docker config has none for {address}")
            pair = f"{credentials.username}:{credentials.secret}".encode()
            return hide("Basic " + base64.b64encode(pair).decode())
        if scheme.lower() != "bearer":
            raise CannotVerify(
                f"{host} answered 401 without a challenge wealist can answer ({scheme or 'none'})"
            )
        fields = dict(_CHALLENGE.findall(params))
        realm = fields.get("realm")
        if not realm:
            raise CannotVerify(f"{host} answered 401 with a Bearer challenge that names no realm")
        token = _token(realm, fields.get("service"), fields.get("scope") or scope, credentials, deadline)
        return hide(f"Bearer {token}")


@dataclass(frozen=True)
class Credentials:
    """A login for one registry: username and password, or an identity (refresh) token."""

    username: str | None
    secret: str


def docker_credentials(host: str, config_dir: Path | None = None) -> Credentials | None:
    """The Docker client's login for ``host``: ``credHelpers``/``credsStore`` (through
    ``docker-credential-<helper> get``), else ``auths`` (``auth`` or ``identitytoken``), from
    ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``."""
    folder = config_dir or Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CannotVerify(f"cannot read the Docker config {folder / 'config.json'}: {exc}") from None
    keys = _HUB_KEYS if host == DOCKER_HUB else (host, f"https://{host}", f"http://{host}")
    helpers = config.get("credHelpers") or {}
    helper = next((helpers[k] for k in keys if k in helpers), None) or config.get("credsStore")
    if helper:
        found = _from_helper(str(helper), keys[0])
        if found is not None:
            return found
    auths = config.get("auths") or {}
    entry = next((auths[k] for k in auths if _auth_key(k) in keys or k in keys), None)
    if not isinstance(entry, dict):
        return None
    if entry.get("identitytoken"):
        return Credentials(None, hide(str(entry["identitytoken"])))
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(str(entry["auth"])).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise CannotVerify(f"the Docker config's auth for {host} is not base64 user:password") from None
        return Credentials(user, hide(password))
    return None


def _auth_key(key: str) -> str:
    """A key of ``auths`` as a host: Docker accepts URLs there (``https://host/v1/``)."""
    return urllib.parse.urlsplit(key).netloc or key if "://" in key else key


def _from_helper(helper: str, server: str) -> Credentials | None:
    import subprocess

    program = f"docker-credential-{helper}"
    try:
        proc = subprocess.run(
            [program, "get"], input=server, capture_output=True, text=True, timeout=10, check=False
        )
    except FileNotFoundError:
        raise CannotVerify(
            f"the Docker config names credential helper {helper}, but {program} is not on PATH"
        ) from None
    except subprocess.TimeoutExpired:
        raise CannotVerify(f"{program} get did not answer within 10s") from None
    if proc.returncode != 0:
        if "credentials not found" in (proc.stdout + proc.stderr).lower():
            return None
        raise CannotVerify(f"{program} get failed (exit {proc.returncode})")  # its output may hold secrets
    try:
        data = json.loads(proc.stdout)
        username, secret = str(data["Username"]), str(data["Secret"])
    except (ValueError, KeyError, TypeError):
        raise CannotVerify(f"{program} get answered something that is not its JSON") from None
    # Docker's convention: the user name "<token>" means the secret is an identity token.
    return Credentials(None if username == "<token>" else username, hide(secret))


def _token(
    realm: str, service: str | None, scope: str, credentials: Credentials | None, deadline: float
) -> str:
    """A registry token from the realm the challenge named: GET with Basic credentials (or
    anonymously), or POST with an identity token (OAuth2 refresh_token grant), as Docker does."""
    url = urllib.parse.urlsplit(realm)
    if url.scheme not in ("https", "http") or not url.netloc:
        raise CannotVerify(f"the registry's token realm {realm!r} is not an http(s) URL")
    endpoint = Endpoint(url.netloc, plain_http=url.scheme == "http")
    query = {k: v for k, v in (("service", service), ("scope", scope)) if v}
    if credentials is not None and credentials.username is None:
        form = {
            **query,
            "grant_type": "refresh_token",
            "refresh_token": credentials.secret,
            "client_id": "wealist",
        }
        answer = _send(
            endpoint, "POST", url.path or "/", None, deadline, urllib.parse.urlencode(form).encode()
        )
    else:
        path = f"{url.path or '/'}?{urllib.parse.urlencode(query)}"
        basic = None
        if credentials is not None:
            pair = f"{credentials.username}:{credentials.secret}".encode()
            basic = hide("Basic " + base64.b64encode(pair).decode())
        answer = _send(endpoint, "GET", path, basic, deadline)
    if answer.status != 200:
        raise CannotVerify(f"the token service {url.netloc} refused a token: {_status_text(answer)}")
    try:
        data = json.loads(answer.body)
        token = str(data.get("token") or data.get("access_token") or "")
    except (ValueError, AttributeError):
        token = ""
    if not token:
        raise CannotVerify(f"the token service {url.netloc} answered without a token")
    return hide(token)


def _send(
    endpoint: Endpoint,
    method: str,
    path: str,
    authorization: str | None,
    deadline: float,
    body: bytes | None = None,
) -> _Answer:
    """One HTTP exchange, no redirects followed (a redirect would carry the credentials to
    another host: it is reported instead), within what is left of ``deadline``.

    Long because each way the exchange can fail (TLS, timeout, network, protocol) is named."""
    import http.client  # imported here: with ssl, they cost more than the rest of a promotion's start
    import ssl

    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise CannotVerify(f"{endpoint.address} did not answer within {CALL_DEADLINE_SECONDS:.0f}s")
    conn: http.client.HTTPConnection
    if endpoint.plain_http:
        conn = http.client.HTTPConnection(endpoint.address, timeout=remaining)
    else:
        conn = http.client.HTTPSConnection(
            endpoint.address, timeout=remaining, context=ssl.create_default_context()
        )
    headers = {"Accept": ", ".join(MANIFEST_TYPES), "User-Agent": "wealist-promote"}
    if authorization:
        headers["Authorization"] = authorization
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read() if method != "HEAD" else b""
        answer = _Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    except ssl.SSLError as exc:
        raise CannotVerify(f"TLS with {endpoint.address} failed: {exc.reason or exc}") from None
    except TimeoutError:
        raise CannotVerify(f"{endpoint.address} did not answer within {CALL_DEADLINE_SECONDS:.0f}s") from None
    except OSError as exc:
        raise CannotVerify(f"cannot reach {endpoint.address}: {exc.strerror or exc}") from None
    except http.client.HTTPException as exc:
        raise CannotVerify(f"{endpoint.address} broke the HTTP exchange: {exc!r}") from None
    finally:
        conn.close()
    if 300 <= answer.status < 400:
        target = urllib.parse.urlsplit(answer.headers.get("location", ""))
        raise CannotVerify(
            f"{endpoint.address} redirected to {target.netloc or 'elsewhere'}: not followed (it would carry "
            "the credentials along)"
        )
    return answer


def _retry_after(value: str | None, attempt: int) -> float:
    """Seconds to wait before retrying: the server's Retry-After (seconds) as given, so a wait past
    the deadline is not made at all; else a capped exponential backoff."""
    try:
        return max(0.0, float(value)) if value is not None else min(0.25 * 2**attempt, MAX_RETRY_WAIT)
    except ValueError:
        return min(0.25 * 2**attempt, MAX_RETRY_WAIT)


def _status_text(answer: _Answer) -> str:
    """The status and the registry's own error code/message (distribution's JSON error body)."""
    reasons = {401: "not authorised", 403: "forbidden", 429: "too many requests"}
    detail = ""
    try:
        errors = json.loads(answer.body).get("errors") or []
        detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError):
        pass
    reason = reasons.get(answer.status, "server error" if answer.status >= 500 else "unexpected answer")
    if answer.headers.get("retry-after"):
        detail = "; ".join(d for d in (detail, f"retry after {answer.headers['retry-after']}s") if d)
    return f"HTTP {answer.status} {reason}" + (f" ({detail})" if detail else "")


@dataclass(frozen=True)
class RunningImage:
    """An image reference an environment's overlay holds now."""

    env: str
    component: str
    image: str  # rendered name
    tag: str
    digest: str | None  # pinned, if the overlay pins one


@dataclass(frozen=True)
class ImageState:
    """Whether what an environment runs is still in its registry as it was pinned."""

    running: RunningImage
    state: str  # ok | moved | missing | unknown
    detail: str

    def as_json(self) -> dict[str, str | None]:
        r = self.running
        return {
            "env": r.env,
            "component": r.component,
            "image": r.image,
            "tag": r.tag,
            "digest": r.digest,
            "state": self.state,
            "detail": self.detail,
        }


def image_states(registry: Registry, running: list[RunningImage]) -> list[ImageState]:
    """For each running reference: its tag still exists and still has the pinned digest (ok), the
    tag now names another digest (moved), the tag or the pinned digest is gone (missing), or the
    registry could not be asked (unknown). Asked in parallel."""

    def one(item: RunningImage) -> ImageState:
        try:
            now = registry.check(item.image, item.tag)
        except ImageMissing:
            return ImageState(item, "missing", f"tag {item.tag} is gone from {split_image(item.image)[0]}")
        except CannotVerify as exc:
            return ImageState(item, "unknown", exc.message)
        if item.digest is None or now.digest == item.digest:
            return ImageState(item, "ok", now.describe())
        try:
            registry.check(item.image, item.digest)
        except ImageMissing:
            return ImageState(
                item, "missing", f"the pinned digest {item.digest} is gone; the tag is {now.digest}"
            )
        except CannotVerify as exc:
            return ImageState(item, "unknown", exc.message)
        return ImageState(item, "moved", f"tag {item.tag} is {now.digest} now, pinned {item.digest}")

    return _in_parallel(one, running)


def _in_parallel(work: Callable[[T], R], items: list[T]) -> list[R]:
    """``work`` on every item, up to 8 at a time (the registry calls wait on the network); results
    in the order given, and the first failure in that order is raised."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(8, len(items)) or 1) as pool:
        return list(pool.map(work, items))
