"""A real registry on this machine, for the tests, the demo and the benchmark: Debian's
``docker-registry`` (distribution 2.8) on 127.0.0.1, anonymous, with htpasswd Basic auth, or with
token auth backed by a small token server that issues JWTs the way Docker Hub's does. Images are
pushed through the registry's own HTTP API (blob uploads, manifest PUTs): single-platform OCI and
Docker v2 manifests and a multi-arch index.

    python tools/registrylab.py serve DIR   # anonymous registry with the demo's images; prints
                                            # its address, serves until SIGTERM
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BINARY = "docker-registry"
USER, PASSWORD = "ci-bot", "p@ss:w0rd/with#specials"
IDENTITY_TOKEN = "identity-token-of-ci-bot-0123456789"  # what `docker login` keeps for OAuth2 realms
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def available() -> str | None:
    """Why the real registry cannot run here, or None."""
    if shutil.which(BINARY) is None:
        return "docker-registry is not installed (apt-get install docker-registry; tools/test.sh does it as root)"  # noqa: E501
    if shutil.which("htpasswd") is None:
        return "htpasswd is not installed (apt-get install apache2-utils)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def self_signed_certificate(common_name: str, key_size: int = 2048) -> tuple[object, bytes]:
    """A key pair like a sealed-secrets controller's: the private key (kept by the test only) and
    its self-signed certificate, PEM."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


class LoopbackServer:
    """An HTTP server on 127.0.0.1 (a free port) answering with ``handler`` in a daemon thread: the
    token server here, and the tests' stand-ins for the forge, Argo CD and the schema mirror."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self.url = f"http://{self.address}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def send_json(handler: http.server.BaseHTTPRequestHandler, status: int, body: object) -> None:
    """Answer ``body`` as JSON with ``status``."""
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    """Issues registry tokens (RS256 JWTs with the signing certificate in ``x5c``) to a client that
    logs in with USER/PASSWORD, or anonymously for pull of ``public/*``; records each request."""

    key: Any
    cert_der: bytes
    service: str
    issuer: str
    requests: list[dict[str, str]] = field(default_factory=list)

    def start(self) -> str:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                auth = self.headers.get("Authorization", "")
                server.requests.append({**query, "authorization": auth})
                user = None
                if auth.startswith("Basic "):
                    given = base64.b64decode(auth[6:]).decode()
                    if given != f"{USER}:{PASSWORD}":
                        self._answer(401, {"details": "bad credentials"})
                        return
                    user = USER
                self._answer(200, {"token": server.token(user, query.get("scope", ""))})

            def do_POST(self) -> None:  # OAuth2: an identity token exchanged for a registry token
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                server.requests.append({**form, "authorization": self.headers.get("Authorization", "")})
                if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != IDENTITY_TOKEN:
                    self._answer(401, {"details": "bad identity token"})
                    return
                self._answer(200, {"access_token": server.token(USER, form.get("scope", ""))})

            def _answer(self, status: int, body: dict[str, str]) -> None:
                send_json(self, status, body)

        self._http = LoopbackServer(Handler)
        return f"{self._http.url}/token"

    def token(self, user: str | None, scope: str) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        access = []
        for item in scope.split():
            kind, name, actions = item.split(":")
            allowed = actions.split(",") if user else ["pull"] if name.startswith("public/") else []
            access.append({"type": kind, "name": name, "actions": allowed})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self.cert_der).decode()]}
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": f"{now}-{len(self.requests)}",
            "access": access,
        }
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def close(self) -> None:
        self._http.close()


class RealRegistry:
    """A running ``docker-registry serve`` in ``mode`` (anonymous, basic or token)."""

    def __init__(self, workdir: Path, mode: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.mode = mode
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.tokens: TokenServer | None = None
        auth: dict[str, Any] = {}
        if mode == "basic":
            htpasswd = subprocess.run(
                ["htpasswd", "-Bbn", USER, PASSWORD], capture_output=True, text=True, check=True
            ).stdout
            (workdir / "htpasswd").write_text(htpasswd)
            auth = {"htpasswd": {"realm": "wealist-tests", "path": str(workdir / "htpasswd")}}
        elif mode == "token":
            from cryptography.hazmat.primitives import serialization

            key, pem = self_signed_certificate("wealist test token issuer")
            (workdir / "token.pem").write_bytes(pem)
            from cryptography import x509

            der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
            self.tokens = TokenServer(key, der, service="wealist-test-registry", issuer="wealist-test-issuer")
            realm = self.tokens.start()
            auth = {
                "token": {
                    "realm": realm,
                    "service": self.tokens.service,
                    "issuer": self.tokens.issuer,
                    "rootcertbundle": str(workdir / "token.pem"),
                }
            }
        config = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(workdir / "data")}, "delete": {"enabled": True}},
            "http": {"addr": self.address},
            **({"auth": auth} if auth else {}),
        }
        (workdir / "config.yml").write_text(json.dumps(config))  # JSON is YAML
        self._log = (workdir / "registry.log").open("w")
        self.process = subprocess.Popen(
            [BINARY, "serve", str(workdir / "config.yml")], stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"docker-registry did not start: {(workdir / 'registry.log').read_text()}")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._log.close()
        if self.tokens is not None:
            self.tokens.close()

    # -- pushing through the registry's HTTP API ---------------------------------------------------

    def _authorization(self, repository: str) -> str | None:
        if self.mode == "basic":
            return "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if self.mode == "token":
            assert self.tokens is not None
            return "Bearer " + self.tokens.token(USER, f"repository:{repository}:pull,push,delete")
        return None

    def _request(
        self, method: str, path: str, repository: str, body: bytes = b"", content_type: str | None = None
    ) -> tuple[int, dict[str, str]]:
        url = path if path.startswith("http") else f"http://{self.address}{path}"
        request = urllib.request.Request(url, data=body if method in ("POST", "PUT") else None, method=method)
        auth = self._authorization(repository)
        if auth:
            request.add_header("Authorization", auth)
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, dict(response.headers)
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read()[:300]!r}") from None

    def blob(self, repository: str, data: bytes) -> dict[str, object]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        _, headers = self._request("POST", f"/v2/{repository}/blobs/uploads/", repository)
        location = headers["Location"]
        if not location.startswith("http"):
            location = f"http://{self.address}{location}"
        separator = "&" if "?" in location else "?"
        self._request(
            "PUT", f"{location}{separator}digest={digest}", repository, data, "application/octet-stream"
        )
        return {"digest": digest, "size": len(data)}

    def manifest(self, repository: str, reference: str, document: dict[str, object], media_type: str) -> str:
        data = json.dumps(document).encode()
        self._request("PUT", f"/v2/{repository}/manifests/{reference}", repository, data, media_type)
        return "sha256:" + hashlib.sha256(data).hexdigest()

    def push_image(self, repository: str, tag: str, media_type: str = OCI_MANIFEST, salt: str = "") -> str:
        """A single-platform image; returns its manifest digest."""
        config_type = (
            "application/vnd.oci.image.config.v1+json"
            if media_type == OCI_MANIFEST
            else "application/vnd.docker.container.image.v1+json"
        )
        layer_type = (
            "application/vnd.oci.image.layer.v1.tar+gzip"
            if media_type == OCI_MANIFEST
            else "application/vnd.docker.image.rootfs.diff.tar.gzip"
        )
        config = self.blob(
            repository, json.dumps({"architecture": "amd64", "os": "linux", "salt": salt}).encode()
        )
        layer = self.blob(repository, f"layer of {repository}:{tag}{salt}".encode())
        document = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": config_type, **config},
            "layers": [{"mediaType": layer_type, **layer}],
        }
        return self.manifest(repository, tag, document, media_type)

    def push_index(self, repository: str, tag: str) -> tuple[str, list[str]]:
        """A multi-arch image (amd64 + arm64): (index digest, platform manifest digests)."""
        platforms = []
        for arch in ("amd64", "arm64"):
            digest = self.push_image(repository, f"{tag}-{arch}", salt=arch)
            platforms.append(digest)
        manifests = [
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": 400,
                "platform": {"architecture": arch, "os": "linux"},
            }
            for digest, arch in zip(platforms, ("amd64", "arm64"), strict=True)
        ]
        document = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        return self.manifest(repository, tag, document, OCI_INDEX), platforms

    def delete(self, repository: str, digest: str) -> None:
        self._request("DELETE", f"/v2/{repository}/manifests/{digest}", repository)


def serve(where: Path) -> None:
    """The demo's registry: anonymous, holding v1.0.0 and v1.1.0 of both app images (frontend
    multi-arch); prints its address and serves until SIGTERM."""
    import signal
    import sys

    where.mkdir(parents=True, exist_ok=True)
    registry = RealRegistry(where, "anonymous")
    try:
        for tag in ("v1.0.0", "v1.1.0"):
            registry.push_image("wealist/board-api", tag, media_type=DOCKER_V2)
            registry.push_index("wealist/frontend", tag)
        print(registry.address, flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        registry.process.wait()
    finally:
        registry.close()


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "serve":
        sys.exit("usage: registrylab.py serve DIR")
    serve(Path(sys.argv[2]))
