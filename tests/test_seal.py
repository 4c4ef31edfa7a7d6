"""wealist seal: what it seals opens with the controller's private key, and only where it is bound.

The decryption here is written independently from the sealed-secrets controller's description
(it is what the controller does), so a mistake in the sealing code cannot hide in a shared helper.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from ruamel.yaml import YAML

from conftest import ROOT
from registrylab import self_signed_certificate
from wealist.errors import UsageError, WealistError
from wealist.seal import SealRequest, parse_pairs, seal

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def controller_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[rsa.RSAPrivateKey, Path]:
    """A key pair like the controller's (RSA 4096, self-signed); the key lives only in this test."""
    key, pem = self_signed_certificate("sealed-secret", key_size=4096)
    path = tmp_path_factory.mktemp("cert") / "cert.pem"
    path.write_bytes(pem)
    return key, path  # type: ignore[return-value]


def unseal(key: rsa.RSAPrivateKey, value: str, label: bytes) -> bytes:
    data = base64.b64decode(value)
    size = int.from_bytes(data[:2], "big")
    session = key.decrypt(
        data[2 : 2 + size],
        padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=label),
    )
    return AESGCM(session).decrypt(bytes(12), data[2 + size :], None)


def test_strict_scope_round_trip(controller_key: tuple[rsa.RSAPrivateKey, Path]) -> None:
    key, cert = controller_key
    obj = seal(cert, SealRequest("board-api-prod", "board-api-db", {"DB_PASSWORD": b"s3cr\xc3\xa9t"}))
    assert obj["apiVersion"] == "bitnami.com/v1alpha1" and obj["kind"] == "SealedSecret"
    assert obj["metadata"]["name"] == obj["spec"]["template"]["metadata"]["name"] == "board-api-db"
    value = obj["spec"]["encryptedData"]["DB_PASSWORD"]
    assert unseal(key, value, b"board-api-prod/board-api-db") == b"s3cr\xc3\xa9t"


@pytest.mark.parametrize(
    "label", [b"board-api-dev/board-api-db", b"board-api-prod/other", b"board-api-prod", b""]
)
def test_strict_scope_does_not_open_elsewhere(
    controller_key: tuple[rsa.RSAPrivateKey, Path], label: bytes
) -> None:
    key, cert = controller_key
    value = seal(cert, SealRequest("board-api-prod", "board-api-db", {"K": b"v"}))["spec"]["encryptedData"][
        "K"
    ]
    with pytest.raises(ValueError):
        unseal(key, value, label)


@pytest.mark.parametrize(
    ("scope", "label", "annotation"),
    [
        ("namespace-wide", b"ns", "sealedsecrets.bitnami.com/namespace-wide"),
        ("cluster-wide", b"", "sealedsecrets.bitnami.com/cluster-wide"),
    ],
)
def test_wider_scopes(
    controller_key: tuple[rsa.RSAPrivateKey, Path], scope: str, label: bytes, annotation: str
) -> None:
    key, cert = controller_key
    obj = seal(cert, SealRequest("ns", "name", {"K": b"v"}, scope))
    assert obj["metadata"]["annotations"][annotation] == "true"
    assert unseal(key, obj["spec"]["encryptedData"]["K"], label) == b"v"


def test_every_sealing_is_fresh(controller_key: tuple[rsa.RSAPrivateKey, Path]) -> None:
    _, cert = controller_key
    first = seal(cert, SealRequest("ns", "n", {"K": b"v"}))["spec"]["encryptedData"]["K"]
    second = seal(cert, SealRequest("ns", "n", {"K": b"v"}))["spec"]["encryptedData"]["K"]
    assert first != second


def test_cli_never_echoes_the_value(controller_key: tuple[rsa.RSAPrivateKey, Path], tmp_path: Path) -> None:
    key, cert = controller_key
    secret_file = tmp_path / "token"
    secret_file.write_bytes(b"file-value-123")
    out = tmp_path / "sealed.yaml"
    proc = subprocess.run(
        [
            str(BIN / "wealist"),
            "seal",
            "--cert",
            str(cert),
            "--namespace",
            "ns",
            "--name",
            "creds",
            "--from-literal",
            "PASSWORD=literal-value-456",
            "--from-file",
            f"TOKEN={secret_file}",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    text = out.read_text()
    for plain in ("literal-value-456", "file-value-123"):
        assert plain not in proc.stdout + proc.stderr + text
    doc = YAML(typ="safe").load(text)
    assert unseal(key, doc["spec"]["encryptedData"]["PASSWORD"], b"ns/creds") == b"literal-value-456"
    assert unseal(key, doc["spec"]["encryptedData"]["TOKEN"], b"ns/creds") == b"file-value-123"
    assert "creds" in proc.stderr and "PASSWORD" in proc.stderr


@pytest.mark.parametrize(
    ("literals", "files", "message"),
    [
        ((), (), "nothing to seal"),
        (("NOEQUALS",), (), "KEY=VALUE"),
        (("A=1", "A=2"), (), "given twice"),
        (("bad key=1",), (), "KEY=VALUE"),
        ((), ("K=/nonexistent",), "cannot read"),
    ],
)
def test_bad_input_is_a_usage_error(
    controller_key: tuple[rsa.RSAPrivateKey, Path],
    literals: tuple[str, ...],
    files: tuple[str, ...],
    message: str,
) -> None:
    _, cert = controller_key
    with pytest.raises(UsageError, match=message):
        seal(cert, SealRequest("ns", "n", parse_pairs(literals, files)))


def test_not_a_certificate(tmp_path: Path) -> None:
    bogus = tmp_path / "x.pem"
    bogus.write_text("hello")
    with pytest.raises(WealistError, match="not a PEM certificate"):
        seal(bogus, SealRequest("ns", "n", {"K": b"v"}))


def test_committed_prod_secrets_are_sealed_for_the_committed_certificate() -> None:
    """They were made by wealist seal --cluster gke-prod (its key not kept), and say so."""
    from wealist.seal import SEALED_FOR, fingerprint

    cert = x509.load_pem_x509_certificate((ROOT / "clusters/gke-prod.pem").read_bytes())
    size = cert.public_key().key_size // 8
    for path in (ROOT / "overlays/prod").rglob("sealedsecret-*.yaml"):
        doc = YAML(typ="safe").load(path.read_text())
        for value in doc["spec"]["encryptedData"].values():
            raw = base64.b64decode(value)
            assert int.from_bytes(raw[:2], "big") == size  # the RSA part matches the certificate's key
        assert doc["metadata"]["annotations"][SEALED_FOR] == fingerprint(cert.public_key())
    assert not any("PRIVATE KEY" in p.read_text(errors="ignore") for p in ROOT.rglob("*.pem"))
    assert os.environ.get("HOME")  # hermetic fixture active


@pytest.mark.parametrize("argument", ["PW:s3cr3t-value", "s3cr3t-value", "bad key=s3cr3t-value"])
def test_a_malformed_literal_is_never_echoed(argument: str) -> None:
    """Without its "=", all of an argument may be the secret: the error names its position only."""
    with pytest.raises(UsageError) as info:
        parse_pairs(("GOOD=1", argument), ())
    assert "s3cr3t" not in info.value.message
    assert info.value.message.startswith("--from-literal #2 is not KEY=VALUE")
