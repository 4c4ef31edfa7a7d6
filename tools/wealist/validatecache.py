"""validate's result cache: a re-run on an unchanged tree (what the pre-commit hook does on every
commit that does not touch the manifests) answers from ``.git/wealist/validate/`` instead of
rendering and checking again.

The key is the content of every file a render or a check may read (promotion.yaml, base/,
overlays/, components/, clusters/, argocd/, freezes/, the k3d config, the --crds directory), the tool's
version, the renderer's identity (its path, size and modification time, so an upgrade is a miss)
and the recorded schema sums. A repository whose kustomizations reach outside it (a remote or a
path above the root) is never cached, nor is a report that skipped checks (the network may be back
next time). Kept light: nothing here imports the validators, so a hit costs a hash of the inputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from importlib import metadata, resources
from pathlib import Path
from typing import Any

INPUT_DIRS = ("base", "overlays", "components", "clusters", "argocd", "freezes")
INPUT_FILES = ("promotion.yaml", "tools/local-cluster/k3d.yaml")
KEEP = 8  # reports kept; older ones are removed
# A kustomization entry that is a URL or a remote git repository: not an input we can hash.
_REMOTE = re.compile(r"^\s*-\s*(?:https?://|git@|ssh://|github\.com/)", re.MULTILINE)


def key(root: Path, crds: Path | None, strict: bool, renderer: str) -> str | None:
    """The cache key of a validate run (``renderer``: its identity), or None when the run must
    not be cached."""
    digest = hashlib.sha256()
    schemas = (resources.files("wealist") / "validate" / "schemas.sha256").read_bytes()
    # The tool's version, and its code as installed (an editable install changes without a new
    # version): a changed check must never be answered by an old report.
    package = Path(__file__).parent
    code = "".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns};" for p in sorted(package.rglob("*.py")))
    version = metadata.version("wealist") + hashlib.sha256(code.encode()).hexdigest()
    digest.update(f"{version}\0{renderer}\0{strict}\0".encode() + schemas)
    files = [root / f for f in INPUT_FILES if (root / f).is_file()]
    files += _files(root, INPUT_DIRS)
    if crds is not None:
        files += sorted(p for p in crds.rglob("*") if p.is_file())
    return digest.hexdigest() if _hash_inputs(digest, root, files) else None


def render_key(root: Path, overlay: str, flavour: str | None, renderer: str) -> str | None:
    """The key of one environment's render (bare, or with a flavour): what it can read (base,
    components and its own overlay), the renderer's identity; None when it reaches outside."""
    digest = hashlib.sha256()
    digest.update(f"{renderer}\0{overlay}\0{flavour}\0".encode())
    files = _files(root, ("base", "components", overlay))
    return digest.hexdigest() if _hash_inputs(digest, root, files) else None


def _files(root: Path, directories: tuple[str, ...]) -> list[Path]:
    return [p for d in directories for p in sorted((root / d).rglob("*")) if p.is_file()]


def _hash_inputs(digest: Any, root: Path, files: list[Path]) -> bool:
    """Add each file's name and content to ``digest``; False when a kustomization reaches outside
    the repository (a remote, a path above the root): such a render is never cached."""
    for file in files:
        data = file.read_bytes()
        if file.name == "kustomization.yaml":
            text = data.decode(errors="replace")  # a bad byte is the render's to report, not ours
            if _REMOTE.search(text) or _escapes(root, file, text):
                return False
        digest.update(str(file).encode() + b"\0" + hashlib.sha256(data).digest())
    return True


def _escapes(root: Path, kustomization: Path, text: str) -> bool:
    """Whether an entry of a kustomization (``text``) names a path outside the repository."""
    for match in re.finditer(r"^\s*-\s*(\.\.[^\s#]*)", text, re.MULTILINE):
        target = (kustomization.parent / match.group(1)).resolve()
        if root.resolve() not in (target, *target.parents):
            return True
    return False


def load_render(root: Path, render_key_: str) -> str | None:
    return _read(root, f"renders/{render_key_}.yaml")


def store_render(root: Path, render_key_: str, text: str) -> None:
    _keep(root, "renders", f"{render_key_}.yaml", text, KEEP * 4)


def load(root: Path, cache_key: str) -> dict[str, Any] | None:
    text = _read(root, f"{cache_key}.json")
    try:
        return None if text is None else dict(json.loads(text))
    except ValueError:
        return None


def store(root: Path, cache_key: str, report: dict[str, Any]) -> None:
    """Keep a report that skipped nothing (the network may be back next time)."""
    if not report.get("skipped"):
        _keep(root, ".", f"{cache_key}.json", json.dumps(report), KEEP)


def _read(root: Path, name: str) -> str | None:
    directory = _directory(root)
    try:
        return None if directory is None else (directory / name).read_text(encoding="utf-8")
    except OSError:
        return None


def _keep(root: Path, subdirectory: str, name: str, text: str, keep: int) -> None:
    """Write one cache entry; drop the oldest of its kind beyond ``keep``."""
    from .files import write_if_changed

    directory = _directory(root)
    if directory is None:
        return
    where = directory / subdirectory
    where.mkdir(parents=True, exist_ok=True)
    write_if_changed(where / name, text)
    entries = sorted(where.glob(f"*{Path(name).suffix}"), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in entries[keep:]:
        stale.unlink(missing_ok=True)


def _directory(root: Path) -> Path | None:
    from .gitrepo import find_work_tree

    found = find_work_tree(root)
    return None if found is None else found[1] / "wealist" / "validate"


def enabled() -> bool:
    """WEALIST_NO_CACHE=1 turns the cache off (to time or debug validate itself)."""
    return not os.environ.get("WEALIST_NO_CACHE")
