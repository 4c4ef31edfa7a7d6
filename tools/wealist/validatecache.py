"""validate's result cache: a re-run on an unchanged tree (what the pre-commit hook does on every
commit that does not touch the manifests) answers from ``.git/wealist/validate/`` instead of
rendering and checking again.

The key is the content of every file a render or a check may read (promotion.yaml, base/,
overlays/, components/, clusters/, argocd/, the k3d config, the --crds directory), the tool's
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

INPUT_DIRS = ("base", "overlays", "components", "clusters", "argocd")
INPUT_FILES = ("promotion.yaml", "tools/local-cluster/k3d.yaml")
KEEP = 8  # reports kept; older ones are removed
# A kustomization entry that is a URL or a remote git repository: not an input we can hash.
_REMOTE = re.compile(r"^\s*-\s*(?:https?://|git@|ssh://|github\.com/)", re.MULTILINE)


def find_root(path: Path) -> Path | None:
    """The work tree's top level that contains ``path`` (where ``.git`` is), without git."""
    for candidate in [path.resolve(), *path.resolve().parents]:
        if (candidate / ".git").exists():
            return candidate
    return None


def git_dir(root: Path) -> Path | None:
    dot_git = root / ".git"
    if dot_git.is_dir():
        return dot_git
    if dot_git.is_file():  # a worktree or submodule: "gitdir: <path>"
        target = dot_git.read_text(encoding="utf-8").removeprefix("gitdir:").strip()
        return (root / target).resolve()
    return None


def key(root: Path, crds: Path | None, strict: bool, renderer: tuple[str, ...]) -> str | None:
    """The cache key of a validate run, or None when the run must not be cached."""
    digest = hashlib.sha256()
    binary = Path(renderer[0])
    stat = binary.stat()
    schemas = (resources.files("wealist") / "validate" / "schemas.sha256").read_bytes()
    # The tool's version, and its code as installed (an editable install changes without a new
    # version): a changed check must never be answered by an old report.
    package = Path(__file__).parent
    code = "".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns};" for p in sorted(package.rglob("*.py")))
    version = metadata.version("wealist") + hashlib.sha256(code.encode()).hexdigest()
    digest.update(f"{version}\0{renderer}\0{stat.st_size}\0{stat.st_mtime_ns}\0{strict}\0".encode() + schemas)
    files = [root / f for f in INPUT_FILES if (root / f).is_file()]
    for directory in INPUT_DIRS:
        files += sorted(p for p in (root / directory).rglob("*") if p.is_file())
    if crds is not None:
        files += sorted(p for p in crds.rglob("*") if p.is_file())
    for file in files:
        data = file.read_bytes()
        if file.name == "kustomization.yaml" and (
            _REMOTE.search(data.decode(errors="replace")) or _escapes(root, file)
        ):
            return None
        digest.update(str(file).encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


def _escapes(root: Path, kustomization: Path) -> bool:
    """Whether an entry of a kustomization names a path outside the repository."""
    for match in re.finditer(
        r"^\s*-\s*(\.\.[^\s#]*)", kustomization.read_text(encoding="utf-8"), re.MULTILINE
    ):
        target = (kustomization.parent / match.group(1)).resolve()
        if root.resolve() not in (target, *target.parents):
            return True
    return False


def render_key(root: Path, overlay: str, flavour: str | None, renderer: tuple[str, ...]) -> str | None:
    """The key of one environment's render (bare, or with a flavour): what it can read (base,
    components and its own overlay), the renderer's identity; None when it reaches outside."""
    digest = hashlib.sha256()
    stat = Path(renderer[0]).stat()
    digest.update(f"{renderer}\0{stat.st_size}\0{stat.st_mtime_ns}\0{overlay}\0{flavour}\0".encode())
    files = []
    for directory in ("base", "components", overlay):
        files += sorted(p for p in (root / directory).rglob("*") if p.is_file())
    for file in files:
        data = file.read_bytes()
        if file.name == "kustomization.yaml" and (
            _REMOTE.search(data.decode(errors="replace")) or _escapes(root, file)
        ):
            return None
        digest.update(str(file.relative_to(root)).encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


def load_render(root: Path, render_key_: str) -> str | None:
    directory = _directory(root)
    try:
        return (
            None
            if directory is None
            else (directory / "renders" / f"{render_key_}.yaml").read_text(encoding="utf-8")
        )
    except OSError:
        return None


def store_render(root: Path, render_key_: str, text: str) -> None:
    from .files import write_if_changed

    directory = _directory(root)
    if directory is None:
        return
    renders = directory / "renders"
    renders.mkdir(parents=True, exist_ok=True)
    write_if_changed(renders / f"{render_key_}.yaml", text)
    entries = sorted(renders.glob("*.yaml"), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in entries[KEEP * 4 :]:
        stale.unlink(missing_ok=True)


def load(root: Path, cache_key: str) -> dict[str, Any] | None:
    directory = _directory(root)
    if directory is None:
        return None
    try:
        data: dict[str, Any] = json.loads((directory / f"{cache_key}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data


def store(root: Path, cache_key: str, report: dict[str, Any]) -> None:
    """Keep a report that skipped nothing; drop the oldest beyond KEEP."""
    from .files import write_if_changed

    directory = _directory(root)
    if directory is None or report.get("skipped"):
        return
    directory.mkdir(parents=True, exist_ok=True)
    write_if_changed(directory / f"{cache_key}.json", json.dumps(report))
    entries = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in entries[KEEP:]:
        stale.unlink(missing_ok=True)


def _directory(root: Path) -> Path | None:
    found = git_dir(root)
    return None if found is None else found / "wealist" / "validate"


def enabled() -> bool:
    """WEALIST_NO_CACHE=1 turns the cache off (to time or debug validate itself)."""
    return not os.environ.get("WEALIST_NO_CACHE")
