"""Sealed Secrets, sealed locally: what ``kubeseal`` produces, without kubeseal or a cluster.

Wire format of the sealed-secrets controller (pkg/crypto): for every value a fresh 32-byte AES
session key encrypts the value with AES-256-GCM under an all-zero nonce (safe: each key is used
once); the session key is encrypted with RSA-OAEP(SHA-256) under the controller's public key, with
the scope's label as the OAEP label. Output: 2-byte big-endian length of the RSA ciphertext, the
RSA ciphertext, the AES-GCM ciphertext and tag; base64 in ``encryptedData``.

The label binds a value to where it may be decrypted: ``namespace/name`` (strict, the default),
``namespace`` (namespace-wide) or empty (cluster-wide).
"""

from __future__ import annotations

import base64
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UsageError, WealistError

SCOPES = ("strict", "namespace-wide", "cluster-wide")
# Which controller key a SealedSecret was sealed for: the sha256 of the certificate's public key.
# Only the controller holding that key opens it; validate compares it with each cluster's.
SEALED_FOR = "wealist.io/sealed-for"
SCOPE_ANNOTATIONS = {
    "namespace-wide": "sealedsecrets.bitnami.com/namespace-wide",
    "cluster-wide": "sealedsecrets.bitnami.com/cluster-wide",
}


@dataclass(frozen=True)
class SealRequest:
    """What to seal: the Secret's namespace and name, its values, the scope."""

    namespace: str
    name: str
    data: dict[str, bytes]  # never printed
    scope: str = "strict"


def scope_label(namespace: str, name: str, scope: str) -> bytes:
    """The OAEP label that binds a value to where it may be decrypted."""
    if scope == "strict":
        return f"{namespace}/{name}".encode()
    if scope == "namespace-wide":
        return namespace.encode()
    if scope == "cluster-wide":
        return b""
    raise UsageError(f"unknown scope {scope!r} (one of {', '.join(SCOPES)})")


def load_public_key(cert_path: Path) -> Any:
    """The RSA public key of a controller's certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        pem = cert_path.read_bytes()
    except OSError as exc:
        raise WealistError(f"cannot read the certificate {cert_path}: {exc.strerror}") from None
    try:
        key = x509.load_pem_x509_certificate(pem).public_key()
    except ValueError:
        raise WealistError(
            f"{cert_path} is not a PEM certificate (kubeseal --fetch-cert gives one)"
        ) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise WealistError(f"{cert_path} does not hold an RSA key: sealed-secrets controllers use RSA")
    return key


def fingerprint(public_key: Any) -> str:
    """``sha256:<hex>`` of the public key (SubjectPublicKeyInfo, DER): stable across re-issued
    certificates of the same key, which is what decides whether a controller can open a value."""
    import hashlib

    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def encrypt(public_key: Any, plaintext: bytes, label: bytes) -> bytes:
    """One value in the controller's wire format (see the module docstring)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    session_key = os.urandom(32)
    wrapped = public_key.encrypt(
        session_key,
        padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=label),
    )
    sealed = AESGCM(session_key).encrypt(bytes(12), plaintext, None)
    return struct.pack(">H", len(wrapped)) + wrapped + sealed


def seal(cert_path: Path, request: SealRequest) -> dict[str, Any]:
    """A bitnami.com/v1alpha1 SealedSecret for ``request`` (the values appear only encrypted)."""
    if not request.data:
        raise UsageError("nothing to seal: give --from-literal KEY=VALUE or --from-file KEY=PATH")
    public_key = load_public_key(cert_path)
    label = scope_label(request.namespace, request.name, request.scope)
    annotations = {
        # Credentials sync before the workloads that read them (postgres is wave 0).
        "argocd.argoproj.io/sync-wave": "-1",
    }
    if request.scope in SCOPE_ANNOTATIONS:
        annotations[SCOPE_ANNOTATIONS[request.scope]] = "true"
    outer = {**annotations, SEALED_FOR: fingerprint(public_key)}
    return {
        "apiVersion": "bitnami.com/v1alpha1",
        "kind": "SealedSecret",
        "metadata": {"name": request.name, "namespace": request.namespace, "annotations": outer},
        "spec": {
            "encryptedData": {
                key: base64.b64encode(encrypt(public_key, value, label)).decode()
                for key, value in sorted(request.data.items())
            },
            "template": {
                "metadata": {
                    "name": request.name,
                    "namespace": request.namespace,
                    "annotations": dict(annotations),
                },
                "type": "Opaque",
            },
        },
    }


def cluster_cert(root: Path, cluster_name: str) -> Path:
    """The certificate promotion.yaml names for a cluster of the fleet."""
    from .config import load_config
    from .gitrepo import GitRepo

    repo_root = GitRepo(root).root
    cluster = load_config(repo_root).cluster(cluster_name)
    if cluster.sealing_cert is None:
        raise UsageError(f"cluster {cluster.name} names no sealing-cert in promotion.yaml")
    return repo_root / cluster.sealing_cert


def parse_pairs(literals: tuple[str, ...], files: tuple[str, ...]) -> dict[str, bytes]:
    """KEY=VALUE and KEY=PATH pairs; a duplicate or malformed key is a usage error."""
    data: dict[str, bytes] = {}
    for source, pairs in (("--from-literal", literals), ("--from-file", files)):
        for number, pair in enumerate(pairs, 1):
            key, sep, value = pair.partition("=")
            # Never echo the argument: without its "=", all of it may be the value.
            if not sep or not key or not all(ch.isalnum() or ch in "-._" for ch in key):
                shown = "not shown: it may be a value"
                raise UsageError(f"{source} #{number} is not KEY=VALUE with KEY of [A-Za-z0-9-._] ({shown})")
            if key in data:
                raise UsageError(f"key {key!r} given twice")
            if source == "--from-file":
                try:
                    data[key] = Path(value).read_bytes()
                except OSError as exc:
                    raise UsageError(f"--from-file {key}: cannot read {value}: {exc.strerror}") from None
            else:
                data[key] = value.encode()
    return data


def to_yaml(obj: dict[str, Any], header: str | None = None) -> str:
    """The SealedSecret as YAML, one ciphertext per line."""
    import io

    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.width = 4096  # keep each ciphertext on one line
    out = io.StringIO()
    if header:
        out.write("".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()))
    yaml.dump(obj, out)
    return out.getvalue()
