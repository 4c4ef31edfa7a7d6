"""The one renderer: ``kustomize build``, or ``kubectl kustomize`` where kustomize is absent."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import RenderError

# Points at a specific kustomize or kubectl binary (the tests use it to render with the oldest and
# newest Kustomize on the machine).
RENDERER_ENV = "WEALIST_KUSTOMIZE"

Object = dict[str, Any]


@dataclass(frozen=True)
class Renderer:
    """The kustomize (or kubectl kustomize) command line that renders a directory."""

    argv: tuple[str, ...]

    def identity(self) -> str:
        """The command line and its binary's size and modification time: an upgrade in place is
        another renderer, so caches keyed by this never serve another version's output."""
        stat = Path(self.argv[0]).stat()
        return "\0".join([*self.argv, str(stat.st_size), str(stat.st_mtime_ns)])

    def build(self, path: Path) -> str:
        """Render one kustomization directory; the renderer's own message on failure."""
        return self.start(path).result()

    def start(self, path: Path) -> RenderJob:
        """Start rendering ``path`` in the background (the caller works meanwhile)."""
        return RenderJob(self, path)

    def build_each(self, paths: Iterable[Path]) -> list[str | RenderError]:
        """Render several directories at once, one process per core; each result is the rendered
        text or that directory's error (validate reports every failing environment)."""

        def attempt(path: Path) -> str | RenderError:
            try:
                return self.build(path)
            except RenderError as exc:
                return exc

        paths = list(paths)
        if len(paths) < 2:
            return [attempt(p) for p in paths]
        with ThreadPoolExecutor(max_workers=min(len(paths), os.cpu_count() or 1)) as pool:
            return list(pool.map(attempt, paths))

    def build_many(self, paths: Iterable[Path]) -> list[str]:
        """Render several directories at once; the first failure is raised."""
        results = self.build_each(paths)
        for result in results:
            if isinstance(result, RenderError):
                raise result
        return [r for r in results if isinstance(r, str)]


class RenderJob:
    """One kustomize process. Its output goes to unlinked temporary files, not pipes: nobody reads
    while it runs, and a full pipe would stall it."""

    def __init__(self, renderer: Renderer, path: Path) -> None:
        self.path = path
        # Both outlive this call: result() or cancel() closes them.
        self._out = tempfile.TemporaryFile()  # noqa: SIM115
        self._err = tempfile.TemporaryFile()  # noqa: SIM115
        self._proc = subprocess.Popen([*renderer.argv, str(path)], stdout=self._out, stderr=self._err)

    def result(self) -> str:
        """The rendered text, once the process ends; RenderError with its own message if it failed."""
        code = self._proc.wait()
        self._out.seek(0)
        self._err.seek(0)
        out, err = self._out.read(), self._err.read()
        self._out.close()
        self._err.close()
        if code != 0:
            lines = err.decode(errors="replace").strip().split("\n")
            message = " ".join(lines[-3:]) or f"exit {code}"
            raise RenderError(f"kustomize build {self.path} failed: {message}")
        return out.decode()

    def cancel(self) -> None:
        """Stop the process if it still runs (its result is not wanted any more)."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._out.close()
        self._err.close()


def find_renderer() -> Renderer:
    """WEALIST_KUSTOMIZE, else kustomize, else kubectl kustomize; RenderError if none."""
    configured = os.environ.get(RENDERER_ENV)
    if configured:
        binary = shutil.which(configured)
        if binary is None:
            raise RenderError(f"{RENDERER_ENV}={configured} is not an executable")
        kubectl = Path(binary).name.startswith("kubectl")
        return Renderer((binary, "kustomize") if kubectl else (binary, "build"))
    kustomize_bin = shutil.which("kustomize")
    if kustomize_bin:
        return Renderer((kustomize_bin, "build"))
    kubectl_bin = shutil.which("kubectl")
    if kubectl_bin:
        return Renderer((kubectl_bin, "kustomize"))
    raise RenderError("neither kustomize (>= 5) nor kubectl (>= 1.27) is on PATH: install one of them")


# What a render may read: the overlays, what they build on, and the cluster flavours.
RENDER_INPUTS = ("base", "overlays", "components")


@contextlib.contextmanager
def with_components(root: Path, overlay: PurePosixPath, components: list[PurePosixPath]) -> Iterator[Path]:
    """A throwaway copy of what renders read, in which ``overlay`` also lists ``components``:
    what Argo CD does for an Application's ``spec.source.kustomize.components`` (it adds them to
    the kustomization at the source path). Yields the overlay directory of the copy."""
    with tempfile.TemporaryDirectory(prefix="wealist-flavour-") as tmp:
        for name in RENDER_INPUTS:
            if (root / name).is_dir():
                shutil.copytree(root / name, Path(tmp) / name, symlinks=True)
        kustomization = Path(tmp) / overlay / "kustomization.yaml"
        try:
            text = kustomization.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise RenderError(f"{overlay}/kustomization.yaml is not UTF-8 text") from None
        if any(line.startswith("components:") for line in text.splitlines()):
            raise RenderError(
                f"{overlay}/kustomization.yaml lists components itself: add the cluster's there"
            )
        relative = [os.path.relpath(Path(tmp) / c, Path(tmp) / overlay) for c in components]
        entries = "".join(f"  - {path}\n" for path in relative)
        kustomization.write_text(text.rstrip("\n") + "\ncomponents:\n" + entries, encoding="utf-8")
        yield Path(tmp) / overlay


def parse_objects(text: str) -> list[Object]:
    """The objects of a rendered multi-document stream."""
    from ruamel.yaml import YAML

    return [doc for doc in YAML(typ="safe").load_all(text) if doc]


def name_of(obj: Object) -> str:
    """``Kind/namespace/name`` (``Kind/name`` for a cluster-scoped object), for messages."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind')}/{ns + '/' if ns else ''}{meta.get('name')}"


def pod_spec(obj: Object) -> dict[str, Any]:
    """The pod spec of a workload (a Pod's own, a template's, or a CronJob's job template's)."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Pod":
        return spec
    if obj.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return (spec.get("template") or {}).get("spec") or {}


def pod_labels(obj: Object) -> dict[str, str]:
    """The labels a workload's pods get."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Pod":
        return (obj.get("metadata") or {}).get("labels") or {}
    if obj.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}


def containers(obj: Object) -> Iterator[dict[str, Any]]:
    """Every container and init container of a workload (Pod templates, CronJobs, bare Pods)."""
    spec = pod_spec(obj)
    for key in ("initContainers", "containers"):
        yield from spec.get(key) or []
