"""``wealist validate``: the manifests' invariants (README, "wealist validate"), checked on
the rendered environments, one render per environment x cluster flavour of the fleet.

The tests run these same checks (and break copies of the repository to see them fail), so what
the command reports and what CI enforces cannot drift apart. Each check adds findings to a Report
instead of stopping at the first, so one run shows everything that is wrong."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..config import Config, Environment, load_config
from ..errors import ConfigError, RenderError
from ..render import Object, find_renderer, parse_objects
from ..validatecache import enabled as cache_enabled
from ..validatecache import load_render, render_key, store_render
from .argocd import check_argocd
from .facts import CRDS_ENV, K3D_CONFIG, K3D_SCHEMA, WORKLOADS
from .fleet import check_flavour, check_sealing
from .network import check_network_policies
from .objects import group_of
from .report import Report
from .schemas import check_schemas, load_crd_schemas
from .sources import (
    check_freezes,
    check_image_tags_in_sources,
    check_local_cluster,
    check_promotion_config,
)
from .waves import check_data_kept, check_lagging_waves, check_sync_waves
from .workloads import (
    check_board_api,
    check_frontend,
    check_namespaces,
    check_postgres,
    check_references,
    check_scaling,
    check_secrets,
    check_service_names,
    check_startable,
    check_workload,
)

__all__ = ["Report", "Target", "check_environment", "load_crd_schemas", "targets", "validate"]


@dataclass(frozen=True)
class Target:
    """One render to check: an environment, as a cluster flavour of the fleet gets it (or bare,
    for an environment no cluster runs)."""

    env: Environment
    flavour: str | None

    @property
    def label(self) -> str:
        return f"{self.env.name}×{self.flavour}" if self.flavour else self.env.name


def targets(cfg: Config) -> list[Target]:
    """Every environment × flavour the fleet uses; an environment no cluster runs, bare."""
    found: list[Target] = []
    for env in cfg.environments:
        flavours = list(dict.fromkeys(c.flavour for c in cfg.clusters if c.environment == env.name))
        found += [Target(env, f) for f in flavours] or [Target(env, None)]
    return found


def validate(root: Path, crds: Path | None = None, strict: bool = False) -> Report:
    """Render every environment × flavour of the fleet and check every invariant; one report.

    The renders start first; what needs no render (sources, promotion.yaml, freezes, the pinned
    schemas, which may be fetched) is checked while they run, and each environment is checked as
    soon as its render is ready, while the next ones render. Findings keep one order regardless.
    Long because it owns the renders' temporary trees (one ExitStack) and sequences every check."""
    from ..gitrepo import GitRepo

    repo_root = GitRepo(root).root
    report = Report()
    try:
        cfg = load_config(repo_root)
    except ConfigError as exc:  # a finding like any other: CI still gets its report
        report.add("config", "promotion.yaml", exc.message)
        return report
    plan = targets(cfg)
    crd_dir = crds or (Path(os.environ[CRDS_ENV]) if os.environ.get(CRDS_ENV) else None)
    rendered: dict[str, list[Object]] = {}
    with ExitStack() as stack:
        renders = _start_renders(repo_root, plan, report, stack)
        sources, schemas = Report(), Report()
        check_image_tags_in_sources(repo_root, cfg, sources)
        check_promotion_config(repo_root, cfg, sources)
        check_freezes(repo_root, cfg, sources)
        # Only the schemas something here needs: none are fetched for a repository without argocd/
        # documents or a k3d config.
        wanted = tuple(
            prefix
            for prefix, needed in (
                ("argocd/", crd_dir is None and any((repo_root / "argocd").rglob("*.yaml"))),
                ("k3d/", (repo_root / K3D_CONFIG).is_file()),
            )
            if needed
        )
        fetched = _pinned_schemas(schemas, wanted)
        check_local_cluster(repo_root, fetched.get(K3D_SCHEMA), schemas)
        for target, text in zip(plan, renders, strict=True):
            if isinstance(text, RenderError):
                report.add("render", str(target.env.overlay), text.message, target.label)
                continue
            objects = parse_objects(text)
            rendered[target.label] = objects
            report.objects[target.label] = len(objects)
            check_environment(cfg, target.env, objects, report, target.label)
            if target.flavour:
                check_flavour(target.flavour, objects, report, target.label)
    report.extend(sources)
    by_env = {t.env.name: rendered[t.label] for t in plan if t.label in rendered}
    check_sealing(repo_root, cfg, by_env, report)
    report.extend(schemas)
    crd_files = [fetched[n] for n in sorted(fetched) if n.startswith("argocd/")] or None
    kinds = {env: {(group_of(o), str(o.get("kind"))) for o in objects} for env, objects in by_env.items()}
    check_argocd(repo_root, cfg, crd_dir or crd_files, report, kinds)
    if strict:
        for skipped in report.skipped:
            report.add("strict", "validate", f"skipped: {skipped}")
    return report


def _start_renders(
    repo_root: Path, plan: list[Target], report: Report, stack: ExitStack
) -> Iterator[str | RenderError]:
    """Start rendering every target that the cache under .git/wealist/validate/renders does not
    already hold (only the environments whose inputs changed render again); yields each target's
    text or error, in order, as it becomes ready. The flavoured copies live as long as ``stack``."""
    from ..render import with_components

    renderer = find_renderer()
    keys = [
        render_key(repo_root, str(t.env.overlay), t.flavour, renderer.identity()) if cache_enabled() else None
        for t in plan
    ]
    cached = [load_render(repo_root, k) if k else None for k in keys]
    unrenderable: dict[int, RenderError] = {}  # targets whose render could not even be set up
    paths = []
    for index, (target, hit) in enumerate(zip(plan, cached, strict=True)):
        if hit is not None:
            continue
        component = PurePosixPath("components", "clusters", target.flavour) if target.flavour else None
        if component is not None and not (repo_root / component).is_dir():
            report.add("clusters", str(component), "the fleet uses this flavour, but it does not exist")
            paths.append(repo_root / target.env.overlay)
            continue
        try:
            paths.append(
                stack.enter_context(with_components(repo_root, target.env.overlay, [component]))
                if component
                else repo_root / target.env.overlay
            )
        except RenderError as exc:
            unrenderable[index] = exc
    fresh = renderer.build_each(paths)

    def in_order() -> Iterator[str | RenderError]:
        for index, (key, hit) in enumerate(zip(keys, cached, strict=True)):
            text = hit if hit is not None else unrenderable.get(index) or next(fresh)
            if key and hit is None and isinstance(text, str):
                store_render(repo_root, key, text)
            yield text

    return in_order()


def _pinned_schemas(report: Report, wanted: tuple[str, ...]) -> dict[str, Path]:
    """Argo CD's CRDs and k3d's schema at their pinned commits: from the cache, else fetched. A file
    that no longer hashes to its recorded sum is a finding; one that cannot be had, a skip."""
    from .pinned import fetch_all

    schemas = fetch_all(wanted)
    for changed in schemas.changed:
        report.add("schemas", "validate/schemas.sha256", changed)
    for missing in schemas.offline:
        report.skipped.append(f"schema check skipped (offline): {missing}")
    return schemas.files


def check_environment(
    cfg: Config, env: Environment, objects: list[Object], report: Report, label: str | None = None
) -> None:
    """Every invariant of one rendered environment."""

    def add(check: str, subject: str, message: str) -> None:
        report.add(check, subject, message, label or env.name)

    check_schemas(objects, add)
    check_namespaces(env, objects, add)
    check_postgres(env, objects, add)
    check_board_api(env, objects, add)
    check_frontend(env, objects, add)
    for obj in objects:
        if obj.get("kind") in WORKLOADS:
            check_workload(cfg, obj, add)
    check_references(objects, add)
    check_service_names(objects, add)
    check_scaling(env, cfg, objects, add)
    check_secrets(env, objects, add)
    check_network_policies(env, objects, add)
    check_sync_waves(env, objects, add)
    check_lagging_waves(objects, add)
    check_data_kept(objects, add)
    for obj in objects:
        if obj.get("kind") in WORKLOADS:
            check_startable(obj, add)
