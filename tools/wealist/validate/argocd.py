"""Argo CD: the documents under argocd/ against the CRDs, the projects and ApplicationSets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import Config, Environment
from ..errors import WealistError
from ..render import Object
from .facts import ENV_LABEL, FLAVOUR_LABEL, STATELESS
from .report import Report
from .schemas import load_crd_schemas


def check_argocd(
    root: Path,
    cfg: Config,
    crds: Path | list[Path] | None,
    report: Report,
    kinds: dict[str, set[tuple[str, str]]],
) -> None:
    """The documents under argocd/: against the CRD schemas (when there are any), then their meaning."""
    documents = _read_documents(root, report)
    report.argocd_documents = len(documents)
    if crds is not None:
        _check_against_crds(documents, crds, report)
    check_argocd_semantics(cfg, documents, report, kinds)


def _read_documents(root: Path, report: Report) -> list[tuple[str, Object]]:
    """Every Argo CD object under argocd/, with its file. A file that cannot be read is a finding,
    never a crash: CI must always get a report."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    from ..yamlerrors import describe_yaml_error, too_deep

    documents: list[tuple[str, Object]] = []
    for path in sorted((root / "argocd").rglob("*.yaml")):
        source = str(path.relative_to(root))
        try:
            text = path.read_text(encoding="utf-8")
            deep = too_deep(text)
            if deep:
                report.add("argocd", source, deep)
                continue
            docs = list(YAML(typ="safe").load_all(text))
        except UnicodeDecodeError:
            report.add("argocd", source, "is not UTF-8 text")
            continue
        except YAMLError as exc:
            report.add("argocd", source, f"is not valid YAML: {describe_yaml_error(exc)}")
            continue
        for doc in (d for d in docs if d is not None):
            argo = isinstance(doc, dict) and str(doc.get("apiVersion", "")).startswith("argoproj.io/")
            if not isinstance(doc, dict) or (argo and not isinstance(doc.get("metadata"), dict)):
                report.add(
                    "argocd", source, "holds a document that is not an object (a mapping with metadata)"
                )
            elif argo:
                documents.append((source, doc))
    return documents


def _check_against_crds(documents: list[tuple[str, Object]], crds: Path | list[Path], report: Report) -> None:
    import jsonschema
    from ruamel.yaml.error import YAMLError

    try:
        schemas = load_crd_schemas(crds)
    except (WealistError, YAMLError, UnicodeDecodeError, AttributeError, KeyError, TypeError) as exc:
        report.add("argocd", "CRD schemas", f"cannot be read: {getattr(exc, 'message', exc)!s}")
        return
    for source, doc in documents:
        schema = schemas.get(doc.get("kind", ""))
        if schema is None:
            report.add("argocd", source, f"no CRD schema for {doc.get('kind')}")
            continue
        for error in jsonschema.Draft7Validator(schema).iter_errors(doc):
            at = "/".join(str(p) for p in error.absolute_path)
            subject = f"{source} {doc.get('kind')}/{doc['metadata'].get('name')}"
            report.add("argocd", subject, f"{error.message} at /{at}")


def check_argocd_semantics(
    cfg: Config,
    documents: list[tuple[str, Object]],
    report: Report,
    kinds: dict[str, set[tuple[str, str]]],
) -> None:
    """The fleet as Argo CD will run it: projects out of the root's reach, one ApplicationSet per
    environment selecting clusters by label, each project exactly the environment's namespaces."""
    projects = {d["metadata"].get("name"): (src, d) for src, d in documents if d.get("kind") == "AppProject"}
    roots = [d for _, d in documents if d.get("kind") == "Application"]
    appsets = [d for _, d in documents if d.get("kind") == "ApplicationSet"]
    for root_app in roots:
        subject = f"Application/{root_app['metadata'].get('name')}"
        path = str(((root_app.get("spec") or {}).get("source") or {}).get("path", ""))
        for project_source, project in projects.values():
            if path and (project_source + "/").startswith(path.rstrip("/") + "/"):
                report.add(
                    "argocd",
                    f"AppProject/{project['metadata'].get('name')}",
                    f"is under {path}, which {subject} syncs: a commit there could widen what any "
                    "project allows; apply projects with the bootstrap instead",
                )
        root_project = projects.get(str((root_app.get("spec") or {}).get("project")))
        if root_project is not None:
            allowed = whitelist(root_project[1])
            if ("argoproj.io", "AppProject") in allowed or ("*", "*") in allowed:
                report.add(
                    "argocd",
                    f"AppProject/{root_project[1]['metadata'].get('name')}",
                    f"lets {subject} manage AppProjects: a commit could grant itself any destination",
                )
    for env in cfg.environments:
        check_environment_appset(cfg, env, appsets, projects, report, kinds.get(env.name, set()))


def whitelist(project: Object) -> set[tuple[str, str]]:
    spec = project.get("spec") or {}
    return {
        (str(w.get("group", "")), str(w.get("kind", "")))
        for key in ("clusterResourceWhitelist", "namespaceResourceWhitelist")
        for w in spec.get(key) or []
    }


def check_environment_appset(
    cfg: Config,
    env: Environment,
    appsets: list[Object],
    projects: dict[str, tuple[str, Object]],
    report: Report,
    kinds: set[tuple[str, str]],
) -> None:
    """The environment's ApplicationSet: who gets it, from which ref, in which project, how it syncs."""
    appset = next(
        (a for a in appsets if _template(a).get("source", {}).get("path") == str(env.overlay)), None
    )
    if appset is None:
        report.add("argocd", f"ApplicationSet for {env.overlay}", "missing", env.name)
        return
    subject = f"ApplicationSet/{appset['metadata'].get('name')}"

    def add(message: str, where: str = subject) -> None:
        report.add("argocd", where, message, env.name)

    _check_selection(cfg, env, appset, add)
    # The health gate and --wait ask Argo CD for the Applications by this name (config.applications).
    name = str(((appset.get("spec") or {}).get("template") or {}).get("metadata", {}).get("name", ""))
    if name.replace(" ", "") != f"wealist-{env.name}-{{{{.name}}}}":
        add(f"names its Applications {name!r}; wealist asks Argo CD for 'wealist-{env.name}-{{{{ .name }}}}'")
    template = _template(appset)
    revision = (template.get("source") or {}).get("targetRevision")
    if revision != (env.deploy_branch or "main"):
        add(f"follows {revision!r}, but promotion.yaml deploys {env.name} from {env.deploy_branch or 'main'}")
    components = ((template.get("source") or {}).get("kustomize") or {}).get("components") or []
    if not any("components/clusters/" in str(c) for c in components):
        add("does not add the cluster's flavour component")
    project_name = str(template.get("project", ""))
    if project_name not in projects:
        add(f"project {project_name!r} is not defined under argocd/")
    else:
        _check_project(env, projects[project_name][1], kinds, lambda m: add(m, f"AppProject/{project_name}"))
    _check_sync(template, kinds, add)


def _template(appset: Object) -> dict[str, Any]:
    return ((appset.get("spec") or {}).get("template") or {}).get("spec") or {}


def _check_selection(cfg: Config, env: Environment, appset: Object, add: Callable[[str], None]) -> None:
    """Clusters are chosen by their labels: an environment never lands on a cluster unlabelled for
    it, every cluster of the fleet that runs it is selected, and dropping a label deletes nothing."""
    spec = appset.get("spec") or {}
    selectors = [((g.get("clusters") or {}).get("selector") or {}) for g in spec.get("generators") or []]
    if not selectors or not all(
        (sel.get("matchLabels") or {}).get(ENV_LABEL) == env.name for sel in selectors
    ):
        add(f"every generator must be a clusters generator selecting {ENV_LABEL}: {env.name}")
    flavours = {
        value
        for sel in selectors
        for expr in sel.get("matchExpressions") or []
        if expr.get("key") == FLAVOUR_LABEL and expr.get("operator") == "In"
        for value in expr.get("values") or []
    }
    for cluster in cfg.clusters:
        if cluster.environment == env.name and cluster.flavour not in flavours:
            add(f"cluster {cluster.name} ({cluster.flavour}) is not selected: flavours {sorted(flavours)}")
    if not (spec.get("syncPolicy") or {}).get("preserveResourcesOnDeletion"):
        add(
            "without syncPolicy.preserveResourcesOnDeletion, removing a cluster's label deletes everything "
            "it ran, data included"
        )


def _check_project(
    env: Environment, project: Object, kinds: set[tuple[str, str]], add: Callable[[str], None]
) -> None:
    """Exactly the environment's namespaces, this repository, and every kind it renders."""
    spec = project.get("spec") or {}
    destinations = {d.get("namespace") for d in spec.get("destinations") or []}
    if destinations != env.all_namespaces:
        add(f"destinations {sorted(str(d) for d in destinations)} are not exactly {env.name}'s")
    repos = spec.get("sourceRepos") or []
    if len(repos) != 1 or "*" in repos[0]:
        add("sourceRepos must name exactly this repository")
    # Argo CD refuses to sync a kind the project does not list: the sync fails at that object.
    for group, kind in sorted(kinds - whitelist(project)):
        add(f"does not permit {kind} ({group or 'core'}), which {env.name} renders: its sync would fail")


def _check_sync(template: dict[str, Any], kinds: set[tuple[str, str]], add: Callable[[str], None]) -> None:
    automated = ((template.get("syncPolicy") or {}).get("automated")) or {}
    if not (automated.get("prune") and automated.get("selfHeal")):
        add("automated sync needs prune and selfHeal")
    if not ((template.get("syncPolicy") or {}).get("retry") or {}).get("backoff"):
        add("no retry with backoff")
    if "namespace" in ((template.get("source") or {}).get("kustomize") or {}):
        add("sets source.kustomize.namespace: it moves every object into one namespace")
    if ("autoscaling", "HorizontalPodAutoscaler") in kinds:
        ignored = {
            d.get("name")
            for d in template.get("ignoreDifferences") or []
            if d.get("kind") == "Deployment" and "/spec/replicas" in (d.get("jsonPointers") or [])
        }
        for component in STATELESS:
            if component not in ignored:
                add(f"does not ignore spec.replicas of {component} (its HPA scales it)")
