"""Argo CD: the documents under argocd/ against the CRDs, the projects and ApplicationSets."""

from __future__ import annotations

from pathlib import Path

from ..config import Config, Environment
from ..render import Object
from .facts import CRDS_ENV, ENV_LABEL, FLAVOUR_LABEL, STATELESS
from .report import Report
from .schemas import load_crd_schemas


def check_argocd(
    root: Path, cfg: Config, crds: Path | None, report: Report, kinds: dict[str, set[tuple[str, str]]]
) -> None:
    from ruamel.yaml import YAML

    documents: list[tuple[str, Object]] = []
    for path in sorted((root / "argocd").rglob("*.yaml")):
        for doc in YAML(typ="safe").load_all(path.read_text(encoding="utf-8")):
            if doc and doc.get("apiVersion", "").startswith("argoproj.io/"):
                documents.append((str(path.relative_to(root)), doc))
    report.argocd_documents = len(documents)
    if crds is None:
        report.skipped.append(f"argocd schema: no CRD directory (--crds DIR or {CRDS_ENV})")
    else:
        schemas = load_crd_schemas(crds)
        for source, doc in documents:
            schema = schemas.get(doc.get("kind", ""))
            if schema is None:
                report.add("argocd", source, f"no CRD schema for {doc.get('kind')} in {crds}")
                continue
            import jsonschema

            for error in jsonschema.Draft7Validator(schema).iter_errors(doc):
                at = "/".join(str(p) for p in error.absolute_path)
                report.add(
                    "argocd",
                    f"{source} {doc['kind']}/{doc['metadata']['name']}",
                    f"{error.message} at /{at}",
                )
    check_argocd_semantics(cfg, documents, report, kinds)


def check_argocd_semantics(
    cfg: Config,
    documents: list[tuple[str, Object]],
    report: Report,
    kinds: dict[str, set[tuple[str, str]]],
) -> None:
    """The fleet as Argo CD will run it: projects out of the root's reach, one ApplicationSet per
    environment selecting clusters by label, each project exactly the environment's namespaces."""
    projects = {d["metadata"]["name"]: (src, d) for src, d in documents if d.get("kind") == "AppProject"}
    roots = [d for _, d in documents if d.get("kind") == "Application"]
    appsets = [d for _, d in documents if d.get("kind") == "ApplicationSet"]
    for root_app in roots:
        subject = f"Application/{root_app['metadata']['name']}"
        path = str(((root_app.get("spec") or {}).get("source") or {}).get("path", ""))
        for project_source, project in projects.values():
            if path and (project_source + "/").startswith(path.rstrip("/") + "/"):
                report.add(
                    "argocd",
                    f"AppProject/{project['metadata']['name']}",
                    f"is under {path}, which {subject} syncs: a commit there could widen what any "
                    "project allows; apply projects with the bootstrap instead",
                )
        root_project = projects.get(str((root_app.get("spec") or {}).get("project")))
        if root_project is not None:
            allowed = whitelist(root_project[1])
            if ("argoproj.io", "AppProject") in allowed or ("*", "*") in allowed:
                report.add(
                    "argocd",
                    f"AppProject/{root_project[1]['metadata']['name']}",
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
    appset = next(
        (
            a
            for a in appsets
            if ((((a.get("spec") or {}).get("template") or {}).get("spec") or {}).get("source") or {}).get(
                "path"
            )
            == str(env.overlay)
        ),
        None,
    )
    if appset is None:
        report.add("argocd", f"ApplicationSet for {env.overlay}", "missing", env.name)
        return
    subject = f"ApplicationSet/{appset['metadata']['name']}"
    spec = appset.get("spec") or {}
    template = (spec.get("template") or {}).get("spec") or {}
    # Clusters are chosen by their labels; an environment never lands on a cluster unlabelled for it.
    selectors = [((g.get("clusters") or {}).get("selector") or {}) for g in spec.get("generators") or []]
    if not selectors or not all(
        (sel.get("matchLabels") or {}).get(ENV_LABEL) == env.name for sel in selectors
    ):
        report.add(
            "argocd",
            subject,
            f"every generator must be a clusters generator selecting {ENV_LABEL}: {env.name}",
            env.name,
        )
    flavours = {
        value
        for sel in selectors
        for expr in sel.get("matchExpressions") or []
        if expr.get("key") == FLAVOUR_LABEL and expr.get("operator") == "In"
        for value in expr.get("values") or []
    }
    for cluster in cfg.clusters:
        if cluster.environment == env.name and cluster.flavour not in flavours:
            report.add(
                "argocd",
                subject,
                f"cluster {cluster.name} ({cluster.flavour}) is not selected: flavours {sorted(flavours)}",
                env.name,
            )
    if not (spec.get("syncPolicy") or {}).get("preserveResourcesOnDeletion"):
        report.add(
            "argocd",
            subject,
            "without syncPolicy.preserveResourcesOnDeletion, removing a cluster's label deletes everything "
            "it ran, data included",
            env.name,
        )
    revision = (template.get("source") or {}).get("targetRevision")
    if revision != (env.deploy_branch or "main"):
        report.add(
            "argocd",
            subject,
            f"follows {revision!r}, but promotion.yaml deploys {env.name} from {env.deploy_branch or 'main'}",
            env.name,
        )
    components = ((template.get("source") or {}).get("kustomize") or {}).get("components") or []
    if not any("components/clusters/" in str(c) for c in components):
        report.add("argocd", subject, "does not add the cluster's flavour component", env.name)
    project_name = str(template.get("project", ""))
    if project_name not in projects:
        report.add("argocd", subject, f"project {project_name!r} is not defined under argocd/", env.name)
    else:
        project = projects[project_name][1]
        pspec = project.get("spec") or {}
        destinations = {d.get("namespace") for d in pspec.get("destinations") or []}
        expected = env.all_namespaces
        if destinations != expected:
            report.add(
                "argocd",
                f"AppProject/{project_name}",
                f"destinations {sorted(str(d) for d in destinations)} are not exactly {env.name}'s",
                env.name,
            )
        repos = pspec.get("sourceRepos") or []
        if len(repos) != 1 or "*" in repos[0]:
            report.add(
                "argocd", f"AppProject/{project_name}", "sourceRepos must name exactly this repository"
            )
        # Argo CD refuses to sync a kind the project does not list: the sync fails at that object.
        for group, kind in sorted(kinds - whitelist(project)):
            report.add(
                "argocd",
                f"AppProject/{project_name}",
                f"does not permit {kind} ({group or 'core'}), which {env.name} renders: Argo CD would refuse "
                "to sync it",
                env.name,
            )
    automated = ((template.get("syncPolicy") or {}).get("automated")) or {}
    if not (automated.get("prune") and automated.get("selfHeal")):
        report.add("argocd", subject, "automated sync needs prune and selfHeal", env.name)
    if not ((template.get("syncPolicy") or {}).get("retry") or {}).get("backoff"):
        report.add("argocd", subject, "no retry with backoff", env.name)
    if "namespace" in ((template.get("source") or {}).get("kustomize") or {}):
        report.add(
            "argocd",
            subject,
            "sets source.kustomize.namespace: it moves every object into one namespace",
            env.name,
        )
    if ("autoscaling", "HorizontalPodAutoscaler") in kinds:
        ignored = {
            d.get("name")
            for d in template.get("ignoreDifferences") or []
            if d.get("kind") == "Deployment" and "/spec/replicas" in (d.get("jsonPointers") or [])
        }
        for component in STATELESS:
            if component not in ignored:
                report.add(
                    "argocd",
                    subject,
                    f"does not ignore spec.replicas of {component} (its HPA scales it)",
                    env.name,
                )
