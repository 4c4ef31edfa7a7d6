"""The schemas validate checks against that are other projects' files (Argo CD's CRDs, k3d's config
schema): not copied into this repository, but fetched from their projects at pinned commits, refused
unless they hash to the sums recorded in ``schemas.sha256``, and kept in the user's cache directory,
so validate works offline once it has run online. A changed upstream file is an error, never a silent
update.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..files import write_bytes_if_changed

UPSTREAM = "https://raw.githubusercontent.com"
# A mirror of UPSTREAM (an artifact proxy, an air-gapped copy): its URL replaces UPSTREAM's.
MIRROR_ENV = "WEALIST_SCHEMA_MIRROR"
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Pinned:
    """One schema file: its name here (``argocd/…``, ``k3d/…``), where it comes from, its sha256."""

    name: str
    url: str
    sha256: str


@dataclass
class Schemas:
    """What could be had: verified files by name, files that came back changed, files not had."""

    files: dict[str, Path] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)
    offline: list[str] = field(default_factory=list)


def pinned() -> list[Pinned]:
    text = (resources.files("wealist") / "validate" / "schemas.sha256").read_text(encoding="utf-8")
    entries = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            sha256, name, url = line.split()
            entries.append(Pinned(name, url, sha256))
    return entries


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/wealist/schemas``, else ``~/.cache/wealist/schemas``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wealist" / "schemas"


def fetch_all(wanted: tuple[str, ...]) -> Schemas:
    """The pinned schemas whose names start with one of ``wanted``, from the cache
    (content-addressed: a file named by its sum) or fetched. After the first network failure the
    rest are not tried: offline is offline, and each try could wait out its timeout."""
    found = Schemas()
    unreachable = None
    for entry in pinned():
        if not entry.name.startswith(wanted):
            continue
        cached = cache_dir() / entry.sha256
        if cached.is_file() and _sha256(cached.read_bytes()) == entry.sha256:
            found.files[entry.name] = cached
            continue
        url = _mirrored(entry.url)
        if unreachable is not None:
            found.offline.append(f"{entry.name}: not cached, and not fetched (offline: see above)")
            continue
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
                data = response.read()
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            unreachable = f"cannot fetch {url} ({getattr(exc, 'reason', exc)})"
            found.offline.append(f"{entry.name}: not cached, and {unreachable}")
            continue
        got = _sha256(data)
        if got != entry.sha256:
            found.changed.append(
                f"{entry.name} from {url} has sha256 {got[:16]}…, the repository records "
                f"{entry.sha256[:16]}…: the upstream file changed; check it, then update schemas.sha256"
            )
            continue
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_if_changed(cached, data)
        found.files[entry.name] = cached
    return found


def _mirrored(url: str) -> str:
    mirror = os.environ.get(MIRROR_ENV)
    return mirror.rstrip("/") + url.removeprefix(UPSTREAM) if mirror and url.startswith(UPSTREAM) else url


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
