"""``wealist validate``: the manifests' invariants (README, "wealist validate"), checked on the
rendered environments.

The tests run these same checks (and break copies of the repository to see them fail), so what
the command reports and what CI enforces cannot drift apart. Each check adds findings to a Report
instead of stopping at the first, so one run shows everything that is wrong.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .config import Config, Environment, load_config
from .errors import RenderError
from .images import split_reference
from .render import Object, containers, find_renderer, parse_objects

KUBERNETES_VERSION = "1.33.0"  # the schemas objects are checked against; k3d runs k3s v1.33
CRDS_ENV = "WEALIST_CRDS"

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod")
STATELESS = ("board-api", "frontend")
WAVE = "argocd.argoproj.io/sync-wave"
ENV_LABEL = "wealist.io/environment"  # on Argo CD cluster Secrets: which environment a cluster runs
FLAVOUR_LABEL = "wealist.io/flavour"  # and with which components/clusters/<flavour>
SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
# Kinds whose Argo CD health may lag for reasons outside the sync (an HPA is Degraded until metrics
# exist, an Ingress Progressing until its controller publishes an address, a claim of a
# WaitForFirstConsumer class Pending until a pod uses it): a wave waits for them, the last does not.
LAGGING_KINDS = ("HorizontalPodAutoscaler", "Ingress", "PersistentVolumeClaim")
STARTUP_BUDGET = 600  # seconds a database's startup probe must allow for crash recovery


@dataclass(frozen=True)
class Finding:
    check: str
    subject: str
    message: str
    env: str | None = None

    def __str__(self) -> str:
        where = f"[{self.env}] " if self.env else ""
        return f"{where}{self.check}: {self.subject}: {self.message}"


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    objects: dict[str, int] = field(default_factory=dict)  # env -> rendered objects checked
    argocd_documents: int = 0
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, check: str, subject: str, message: str, env: str | None = None) -> None:
        self.findings.append(Finding(check, subject, message, env))

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "objects": self.objects,
            "argocd_documents": self.argocd_documents,
            "skipped": self.skipped,
            "findings": [
                {"env": f.env, "check": f.check, "subject": f.subject, "message": f.message}
                for f in self.findings
            ],
        }


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


def validate(root: Path, crds: Path | None = None) -> Report:
    """Render every environment × flavour of the fleet and check every invariant; one report."""
    from contextlib import ExitStack

    from .gitrepo import GitRepo
    from .render import with_components

    repo_root = GitRepo(root).root
    cfg = load_config(repo_root)
    report = Report()
    renderer = find_renderer()
    plan = targets(cfg)
    with ExitStack() as stack:
        paths = []
        for target in plan:
            component = PurePosixPath("components", "clusters", target.flavour) if target.flavour else None
            if component is not None and not (repo_root / component).is_dir():
                report.add("clusters", str(component), "the fleet uses this flavour, but it does not exist")
                paths.append(repo_root / target.env.overlay)
                continue
            paths.append(
                stack.enter_context(with_components(repo_root, target.env.overlay, [component]))
                if component
                else repo_root / target.env.overlay
            )
        results = renderer.build_each(paths)

    rendered: dict[str, list[Object]] = {}
    for target, text in zip(plan, results, strict=True):
        if isinstance(text, RenderError):
            report.add("render", str(target.env.overlay), text.message, target.label)
            continue
        objects = parse_objects(text)
        rendered[target.label] = objects
        report.objects[target.label] = len(objects)
        check_environment(cfg, target.env, objects, report, target.label)
        if target.flavour:
            check_flavour(target.flavour, objects, report, target.label)
    check_image_tags_in_sources(repo_root, cfg, report)
    check_promotion_config(repo_root, cfg, report)
    by_env = {t.env.name: rendered[t.label] for t in plan if t.label in rendered}
    check_sealing(repo_root, cfg, by_env, report)
    crd_dir = crds or (Path(os.environ[CRDS_ENV]) if os.environ.get(CRDS_ENV) else None)
    kinds = {env: {(_group(o), str(o.get("kind"))) for o in objects} for env, objects in by_env.items()}
    check_argocd(repo_root, cfg, crd_dir, report, kinds)
    return report


def _group(obj: Object) -> str:
    api_version = str(obj.get("apiVersion", ""))
    return api_version.split("/", 1)[0] if "/" in api_version else ""


# -- one environment ---------------------------------------------------------------------------


def _name(obj: Object) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind')}/{ns + '/' if ns else ''}{meta.get('name')}"


def _find(objects: list[Object], kind: str, name: str, namespace: str | None = None) -> Object | None:
    for obj in objects:
        meta = obj.get("metadata") or {}
        if (
            obj.get("kind") == kind
            and meta.get("name") == name
            and (namespace is None or meta.get("namespace") == namespace)
        ):
            return obj
    return None


def _pod_spec(obj: Object) -> dict[str, Any]:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    if obj.get("kind") == "Pod":
        return spec
    return ((spec.get("template") or {}).get("spec")) or {}


def _pod_labels(obj: Object) -> dict[str, str]:
    from .rehearse import pod_labels

    return pod_labels(obj)


def check_environment(
    cfg: Config, env: Environment, objects: list[Object], report: Report, label: str | None = None
) -> None:
    def add(check: str, subject: str, message: str) -> None:
        report.add(check, subject, message, label or env.name)

    _check_schemas(objects, add)
    _check_namespaces(env, objects, add)
    _check_postgres(env, objects, add)
    _check_board_api(env, objects, add)
    _check_frontend(env, objects, add)
    for obj in objects:
        if obj.get("kind") in WORKLOADS:
            _check_workload(cfg, obj, add)
    _check_references(objects, add)
    _check_service_names(objects, add)
    _check_scaling(env, cfg, objects, add)
    _check_secrets(env, objects, add)
    _check_network_policies(env, objects, add)
    _check_sync_waves(env, objects, add)
    _check_lagging_waves(objects, add)
    _check_data_kept(objects, add)
    for obj in objects:
        if obj.get("kind") in WORKLOADS:
            _check_startable(obj, add)


def _check_schemas(objects: list[Object], add: Any) -> None:
    for obj in objects:
        if obj.get("kind") == "SealedSecret":
            _check_sealed_secret_shape(obj, add)
            continue
        validator = _schema_validator(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        if validator is None:
            add(
                "schema",
                _name(obj),
                f"no schema for {obj.get('apiVersion')} {obj.get('kind')} in Kubernetes {KUBERNETES_VERSION}",
            )
            continue
        error = next(iter(validator.iter_errors(obj)), None)
        if error is not None:
            path = "/".join(str(p) for p in error.absolute_path)
            add("schema", _name(obj), error.message + (f" at {path}" if path else ""))


@functools.cache
def _definitions() -> Any:
    return _schema_file("_definitions.json")


@functools.cache
def _schema_validator(api_version: str, kind: str) -> Any:
    """kubernetes-validate's strict schema for one kind, compiled once per run.

    kubernetes_validate.validate() re-reads its 2 MB definitions file for every object (5 ms each);
    these are the same files and the same validator class, loaded once.
    """
    import jsonschema
    from referencing import Registry, Resource

    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = _schema_file(f"{kind.lower()}-{group_version}.json")
    except FileNotFoundError:
        return None
    registry = Resource.from_contents(schema) @ (Resource.from_contents(_definitions()) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _schema_file(name: str) -> Any:
    import json
    from importlib import resources

    minor = ".".join(KUBERNETES_VERSION.split(".")[:2])
    folder = resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{minor}.0-local-strict"
    return json.loads((folder / name).read_text(encoding="utf-8"))


def _check_sealed_secret_shape(obj: Object, add: Any) -> None:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    template_meta = ((spec.get("template") or {}).get("metadata")) or {}
    if obj.get("apiVersion") != "bitnami.com/v1alpha1":
        add("schema", _name(obj), "SealedSecret must be bitnami.com/v1alpha1")
    if not isinstance(spec.get("encryptedData"), dict) or not spec["encryptedData"]:
        add("schema", _name(obj), "SealedSecret has no spec.encryptedData")
    for key in ("name", "namespace"):
        if template_meta.get(key) not in (None, meta.get(key)):
            add(
                "schema",
                _name(obj),
                f"spec.template.metadata.{key} differs from metadata.{key}: it would not unseal",
            )


def _check_namespaces(env: Environment, objects: list[Object], add: Any) -> None:
    expected = env.all_namespaces
    namespaces: dict[str, Object] = {
        str((o.get("metadata") or {}).get("name")): o for o in objects if o.get("kind") == "Namespace"
    }
    for ns in sorted(expected - namespaces.keys()):
        add("namespaces", f"Namespace/{ns}", "missing from the rendered environment")
    for ns in sorted(namespaces.keys() - expected):
        add("namespaces", f"Namespace/{ns}", f"unexpected namespace (expected {', '.join(sorted(expected))})")
    for name, obj in namespaces.items():
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if labels.get("pod-security.kubernetes.io/enforce") != "restricted":
            add(
                "namespaces",
                f"Namespace/{name}",
                "not labelled pod-security.kubernetes.io/enforce: restricted",
            )
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if "Prune=false" not in str(annotations.get("argocd.argoproj.io/sync-options", "")):
            add(
                "namespaces",
                f"Namespace/{name}",
                "not annotated argocd.argoproj.io/sync-options: Prune=false",
            )
    for obj in objects:
        if obj.get("kind") == "Namespace":
            continue
        meta = obj.get("metadata") or {}
        obj_ns = meta.get("namespace")
        if obj_ns not in expected:
            add("namespaces", _name(obj), f"is in namespace {obj_ns!r}, not one of the environment's")
            continue
        component = (meta.get("labels") or {}).get("app.kubernetes.io/name")
        if component in dict(env.namespaces) and obj_ns != env.namespace(component):
            add("namespaces", _name(obj), f"belongs to {component} but is in {obj_ns}")


def _env_value(container: dict[str, Any], name: str) -> dict[str, Any] | None:
    for item in container.get("env") or []:
        if item.get("name") == name:
            return dict(item)
    return None


def _workload(
    objects: list[Object], kind: str, component: str, env: Environment, add: Any
) -> tuple[Object, dict[str, Any]] | None:
    """A component's workload (named after the component, in its namespace) and its main container
    (named likewise); reports what is missing."""
    ns = env.namespace(component)
    obj = _find(objects, kind, component, ns)
    if obj is None:
        add(component, f"{kind}/{ns}/{component}", "missing")
        return None
    main = next((c for c in _pod_spec(obj).get("containers") or [] if c.get("name") == component), None)
    if main is None:
        add(component, _name(obj), f"has no container named {component}")
        return None
    return obj, main


def _check_postgres(env: Environment, objects: list[Object], add: Any) -> None:
    found = _workload(objects, "StatefulSet", "postgres", env, add)
    if found is None:
        return
    sts, main = found
    ns, subject, spec = env.namespace("postgres"), _name(sts), sts.get("spec") or {}
    image = str(main.get("image", ""))
    if not re.fullmatch(r"postgres:16-alpine(@sha256:[0-9a-f]{64})?|postgres@sha256:[0-9a-f]{64}", image):
        add("postgres", subject, f"image {image} is not postgres:16-alpine (or a digest of it)")
    headless = _find(objects, "Service", spec.get("serviceName", ""), ns)
    if headless is None or (headless.get("spec") or {}).get("clusterIP") != "None":
        add("postgres", subject, f"serviceName {spec.get('serviceName')!r} is not a headless Service in {ns}")
    templates = spec.get("volumeClaimTemplates") or []
    if not templates:
        add("postgres", subject, "has no volumeClaimTemplates")
    mounts = {m.get("name"): m.get("mountPath") for m in main.get("volumeMounts") or []}
    data_mount = next(
        (mounts[t["metadata"]["name"]] for t in templates if t["metadata"]["name"] in mounts), None
    )
    pgdata = (_env_value(main, "PGDATA") or {}).get("value")
    if data_mount is None:
        add("postgres", subject, "the data volume claim is not mounted")
    elif not pgdata or not str(pgdata).startswith(str(data_mount).rstrip("/") + "/"):
        add("postgres", subject, f"PGDATA {pgdata!r} must be a subdirectory of the volume mount {data_mount}")
    if (_env_value(main, "POSTGRES_DB") or {}).get("value") != "wealist":
        add("postgres", subject, "POSTGRES_DB is not wealist")
    for var in ("POSTGRES_USER", "POSTGRES_PASSWORD"):
        if "secretKeyRef" not in ((_env_value(main, var) or {}).get("valueFrom") or {}):
            add("postgres", subject, f"{var} does not come from a Secret")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = " ".join(((main.get(probe) or {}).get("exec") or {}).get("command") or [])
        if "pg_isready" not in command:
            add("postgres", subject, f"{probe} does not run pg_isready")
    startup = main.get("startupProbe") or {}
    budget = int(startup.get("periodSeconds", 10)) * int(startup.get("failureThreshold", 3))
    if startup and budget < STARTUP_BUDGET:
        add(
            "postgres",
            subject,
            f"startupProbe allows {budget} s: crash recovery may need longer (at least {STARTUP_BUDGET} s), "
            "and a restart starts it over",
        )
    pre_stop = " ".join(
        ((((main.get("lifecycle") or {}).get("preStop") or {}).get("exec")) or {}).get("command") or []
    )
    if "-m fast" not in pre_stop:
        add(
            "postgres",
            subject,
            "no preStop fast shutdown (pg_ctl stop -m fast): SIGTERM waits for every client",
        )
    if (
        int(sts.get("spec", {}).get("template", {}).get("spec", {}).get("terminationGracePeriodSeconds", 30))
        < 60
    ):
        add("postgres", subject, "terminationGracePeriodSeconds below 60: too short to checkpoint")
    client = _find(objects, "Service", "postgres-service", ns)
    if client is None or 5432 not in [p.get("port") for p in (client.get("spec") or {}).get("ports") or []]:
        add("postgres", f"Service/{ns}/postgres-service", "missing, or not on port 5432")


def _check_board_api(env: Environment, objects: list[Object], add: Any) -> None:
    found = _workload(objects, "Deployment", "board-api", env, add)
    if found is None:
        return
    deploy, main = found
    ns, subject, pod = env.namespace("board-api"), _name(deploy), _pod_spec(deploy)
    if 8000 not in [p.get("containerPort") for p in main.get("ports") or []]:
        add("board-api", subject, "does not listen on container port 8000")
    service = _find(objects, "Service", "board-api-service", ns)
    if service is None:
        add("board-api", f"Service/{ns}/board-api-service", "missing")
    # Where it connects: host, port and database visible (env or ConfigMap), credentials from a Secret.
    resolved = {name: _resolve_env(objects, ns, main, name) for name in ("DB_HOST", "DB_PORT", "DB_NAME")}
    expected = {
        "DB_HOST": f"postgres-service.{env.namespace('postgres')}.svc.cluster.local",
        "DB_PORT": "5432",
        "DB_NAME": "wealist",
    }
    for name, want in expected.items():
        if resolved[name] != want:
            add("board-api", subject, f"{name} is {resolved[name]!r}, expected {want!r}")
    for name in ("DB_USER", "DB_PASSWORD"):
        if "secretKeyRef" not in ((_env_value(main, name) or {}).get("valueFrom") or {}):
            add("board-api", subject, f"{name} does not come from a Secret")
    for cm in (
        o
        for o in objects
        if o.get("kind") == "ConfigMap" and (o.get("metadata") or {}).get("namespace") == ns
    ):
        for key in cm.get("data") or {}:
            if re.search(r"PASSWORD|SECRET|TOKEN", key, re.IGNORECASE):
                add("board-api", _name(cm), f"ConfigMap key {key} looks like a credential: use a Secret")
    url = (_env_value(main, "DATABASE_URL") or {}).get("value", "")
    if url and not all(f"$({v})" in url for v in ("DB_HOST", "DB_PORT", "DB_NAME")):
        add("board-api", subject, "DATABASE_URL must be composed from $(DB_HOST), $(DB_PORT) and $(DB_NAME)")
    if not main.get("startupProbe"):
        add("board-api", subject, "no startupProbe: a slow start would be killed by the liveness probe")
    waits = [
        c
        for c in pod.get("initContainers") or []
        if "pg_isready" in " ".join(c.get("command") or []) + " ".join(c.get("args") or [])
    ]
    if not waits:
        add("board-api", subject, "no init container waits for the database (pg_isready)")


def _resolve_env(objects: list[Object], ns: str, container: dict[str, Any], name: str) -> str | None:
    item = _env_value(container, name)
    if item is None:
        return None
    if "value" in item:
        return str(item["value"])
    ref = (item.get("valueFrom") or {}).get("configMapKeyRef")
    if ref:
        cm = _find(objects, "ConfigMap", ref.get("name", ""), ns)
        value = ((cm or {}).get("data") or {}).get(ref.get("key", ""))
        return None if value is None else str(value)
    return None


def _check_frontend(env: Environment, objects: list[Object], add: Any) -> None:
    found = _workload(objects, "Deployment", "frontend", env, add)
    if found is None:
        return
    deploy, _ = found
    ns = env.namespace("frontend")
    if _find(objects, "Service", "frontend-service", ns) is None:
        add("frontend", f"Service/{ns}/frontend-service", "missing")
    for container in _pod_spec(deploy).get("containers") or []:
        for port in container.get("ports") or []:
            if int(port.get("containerPort", 0)) <= 1024:
                add("frontend", _name(deploy), f"listens on privileged port {port.get('containerPort')}")


def _check_workload(cfg: Config, obj: Object, add: Any) -> None:
    subject = _name(obj)
    pod = _pod_spec(obj)
    pod_sc = pod.get("securityContext") or {}
    if pod.get("automountServiceAccountToken") is not False:
        add("policy", subject, "automountServiceAccountToken is not false")
    app_images = {c.image for c in cfg.components}
    init_names = {c.get("name") for c in pod.get("initContainers") or []}
    for container in containers(obj):
        where = f"{subject} container {container.get('name')}"
        image = str(container.get("image", ""))
        name, ref = split_reference(image)
        if ref is None and "@sha256:" not in image:
            add("policy", where, f"image {image} has no tag or digest")
        elif ref is not None and ref.tag == "latest":
            add("policy", where, f"image {image} uses latest")
        if name in app_images and ref is None:
            add("policy", where, f"app image {image} has no tag from the overlay's images:")
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            for res in ("cpu", "memory"):
                if res not in (resources.get(kind) or {}):
                    add("policy", where, f"no {kind}.{res}")
        # Init containers and the containers of Jobs run to completion: no probes.
        if container.get("name") not in init_names and obj.get("kind") not in ("Job", "CronJob"):
            for probe in ("readinessProbe", "livenessProbe"):
                if not container.get(probe):
                    add("policy", where, f"no {probe}")
        sc = container.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            add("policy", where, "allowPrivilegeEscalation is not false")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            add("policy", where, "capabilities do not drop ALL")
        if set((sc.get("capabilities") or {}).get("add") or []) - {"NET_BIND_SERVICE"}:
            add("policy", where, "adds capabilities that PSS restricted forbids")
        if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
            add("policy", where, "runAsNonRoot is not set")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            add("policy", where, "runs as uid 0")
        if sc.get("privileged"):
            add("policy", where, "is privileged")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            add("policy", where, "seccompProfile is not RuntimeDefault or Localhost")
        if sc.get("readOnlyRootFilesystem") is not True:
            add("policy", where, "root filesystem is not read-only")


SERVICE_DNS = re.compile(
    r"\b([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc\.cluster\.local\b"
)


def _check_service_names(objects: list[Object], add: Any) -> None:
    """Every `<service>.<namespace>.svc.cluster.local` written in a ConfigMap or a container's env
    must name a Service the environment renders: the namespace transformer never rewrites strings,
    so a copied overlay keeps pointing at the old environment unless this catches it."""
    services = {
        ((o.get("metadata") or {}).get("name"), (o.get("metadata") or {}).get("namespace"))
        for o in objects
        if o.get("kind") == "Service"
    }
    places: list[tuple[str, str]] = []
    for obj in objects:
        if obj.get("kind") == "ConfigMap":
            places += [(_name(obj), str(v)) for v in (obj.get("data") or {}).values()]
        if obj.get("kind") in WORKLOADS:
            places += [
                (_name(obj), str(e.get("value", ""))) for c in containers(obj) for e in c.get("env") or []
            ]
    for subject, value in places:
        for match in SERVICE_DNS.finditer(value):
            if (match.group(1), match.group(3)) not in services:
                add("references", subject, f"{match.group(0)} names no Service of this environment")


def _check_references(objects: list[Object], add: Any) -> None:
    by_ns: dict[tuple[str, str, str], Object] = {}
    for obj in objects:
        meta = obj.get("metadata") or {}
        by_ns[(obj.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))] = obj

    def secret_keys(ns: str, name: str) -> set[str] | None:
        secret = by_ns.get(("Secret", ns, name))
        if secret is not None:
            return set((secret.get("data") or {}).keys()) | set((secret.get("stringData") or {}).keys())
        sealed = by_ns.get(("SealedSecret", ns, name))
        if sealed is not None:
            return set(((sealed.get("spec") or {}).get("encryptedData") or {}).keys())
        return None

    def configmap_keys(ns: str, name: str) -> set[str] | None:
        cm = by_ns.get(("ConfigMap", ns, name))
        return None if cm is None else set((cm.get("data") or {}).keys())

    for obj in objects:
        if obj.get("kind") not in WORKLOADS:
            continue
        ns = (obj.get("metadata") or {}).get("namespace", "")
        pod = _pod_spec(obj)
        for container in containers(obj):
            where = f"{_name(obj)} container {container.get('name')}"
            refs = []
            for item in container.get("env") or []:
                value_from = item.get("valueFrom") or {}
                if "secretKeyRef" in value_from:
                    refs.append(("Secret", value_from["secretKeyRef"], secret_keys))
                if "configMapKeyRef" in value_from:
                    refs.append(("ConfigMap", value_from["configMapKeyRef"], configmap_keys))
            for kind, ref, lookup in refs:
                keys = lookup(ns, ref.get("name", ""))
                if keys is None:
                    if not ref.get("optional"):
                        add("references", where, f"{kind} {ref.get('name')} does not exist in {ns}")
                elif ref.get("key") not in keys:
                    add("references", where, f"{kind} {ref.get('name')} has no key {ref.get('key')}")
            for source in container.get("envFrom") or []:
                for kind, key, lookup in (
                    ("Secret", "secretRef", secret_keys),
                    ("ConfigMap", "configMapRef", configmap_keys),
                ):
                    if key in source and lookup(ns, source[key].get("name", "")) is None:
                        add("references", where, f"{kind} {source[key].get('name')} does not exist in {ns}")
        for volume in pod.get("volumes") or []:
            if "secret" in volume and secret_keys(ns, volume["secret"].get("secretName", "")) is None:
                add(
                    "references",
                    _name(obj),
                    f"volume Secret {volume['secret'].get('secretName')} does not exist",
                )
            if "configMap" in volume and configmap_keys(ns, volume["configMap"].get("name", "")) is None:
                add(
                    "references",
                    _name(obj),
                    f"volume ConfigMap {volume['configMap'].get('name')} does not exist",
                )

    for svc in (o for o in objects if o.get("kind") == "Service"):
        _check_service(svc, objects, add)
    for ingress in (o for o in objects if o.get("kind") == "Ingress"):
        ns = (ingress.get("metadata") or {}).get("namespace", "")
        for rule in (ingress.get("spec") or {}).get("rules") or []:
            for path in ((rule.get("http") or {}).get("paths")) or []:
                backend = (path.get("backend") or {}).get("service") or {}
                target = by_ns.get(("Service", ns, backend.get("name", "")))
                if target is None:
                    add("references", _name(ingress), f"backend Service {backend.get('name')} is not in {ns}")
                    continue
                port = backend.get("port") or {}
                ports = (target.get("spec") or {}).get("ports") or []
                if not any(
                    p.get("name") == port.get("name")
                    if "name" in port
                    else p.get("port") == port.get("number")
                    for p in ports
                ):
                    add("references", _name(ingress), f"Service {backend.get('name')} has no port {port}")


def _check_service(svc: Object, objects: list[Object], add: Any) -> None:
    ns = (svc.get("metadata") or {}).get("namespace", "")
    selector = (svc.get("spec") or {}).get("selector") or {}
    if not selector:
        return
    targets = [
        o
        for o in objects
        if o.get("kind") in WORKLOADS
        and (o.get("metadata") or {}).get("namespace") == ns
        and selector.items() <= _pod_labels(o).items()
    ]
    if not targets:
        add("references", _name(svc), f"selector {selector} matches no workload in {ns}")
        return
    container_ports = [
        p for t in targets for c in _pod_spec(t).get("containers") or [] for p in c.get("ports") or []
    ]
    for port in (svc.get("spec") or {}).get("ports") or []:
        target = port.get("targetPort", port.get("port"))
        if isinstance(target, str):
            ok = any(p.get("name") == target for p in container_ports)
        else:
            ok = any(p.get("containerPort") == target for p in container_ports)
        if not ok:
            add("references", _name(svc), f"targetPort {target} is no container port of the selected pods")


def _check_scaling(env: Environment, cfg: Config, objects: list[Object], add: Any) -> None:
    for component in STATELESS:
        ns = env.namespace(component)
        deploy = _find(objects, "Deployment", component, ns)
        if deploy is None:
            continue
        replicas = (deploy.get("spec") or {}).get("replicas", 1)
        hpa = next(
            (
                o
                for o in objects
                if o.get("kind") == "HorizontalPodAutoscaler"
                and (o.get("metadata") or {}).get("namespace") == ns
                and ((o.get("spec") or {}).get("scaleTargetRef") or {}).get("name") == component
            ),
            None,
        )
        pdb = next(
            (
                o
                for o in objects
                if o.get("kind") == "PodDisruptionBudget"
                and (o.get("metadata") or {}).get("namespace") == ns
                and (((o.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}).items()
                <= _pod_labels(deploy).items()
            ),
            None,
        )
        if env.name == cfg.environments[0].name:
            if replicas != 1:
                add("replicas", _name(deploy), f"{env.name} runs {replicas} replicas, expected 1")
        elif env.name == "prod":
            if replicas < 2:
                add("replicas", _name(deploy), f"prod runs {replicas} replicas, expected at least 2")
            if hpa is None:
                add("replicas", _name(deploy), "prod has no HorizontalPodAutoscaler for it")
            elif ((hpa.get("spec") or {}).get("minReplicas") or 1) < 2:
                add("replicas", _name(hpa), "minReplicas below 2")
            if pdb is None:
                add("replicas", _name(deploy), "prod has no PodDisruptionBudget for it")


DEV_ONLY = re.compile(r"dev|insecure|local|example", re.IGNORECASE)


def _check_secrets(env: Environment, objects: list[Object], add: Any) -> None:
    import base64

    for obj in objects:
        if obj.get("kind") != "Secret":
            continue
        if env.name == "prod":
            add("secrets", _name(obj), "prod holds a plaintext Secret: seal it with wealist seal")
            continue
        for key, value in ((obj.get("data") or {}) | (obj.get("stringData") or {})).items():
            plain = (
                base64.b64decode(value).decode(errors="replace")
                if key in (obj.get("data") or {})
                else str(value)
            )
            if "PASSWORD" in key.upper() and not DEV_ONLY.search(plain):
                add("secrets", _name(obj), f"{key} does not look like a dev-only value")


def _policies(objects: list[Object], ns: str) -> list[Object]:
    return [
        o
        for o in objects
        if o.get("kind") == "NetworkPolicy" and (o.get("metadata") or {}).get("namespace") == ns
    ]


def _selects(policy: Object, labels: dict[str, str]) -> bool:
    selector = (policy.get("spec") or {}).get("podSelector") or {}
    return (selector.get("matchLabels") or {}).items() <= labels.items() and not selector.get(
        "matchExpressions"
    )


def _peer_allows(peer: dict[str, Any], namespace: str, labels: dict[str, str] | None) -> bool:
    """Whether one `from`/`to` entry admits pods with ``labels`` in ``namespace`` (both selectors AND)."""
    if "ipBlock" in peer:
        return False
    ns_sel = peer.get("namespaceSelector")
    if ns_sel is None:
        return False  # same namespace only; the flows checked here all cross namespaces
    ns_labels = ns_sel.get("matchLabels") or {}
    if ns_labels and ns_labels.get("kubernetes.io/metadata.name") != namespace:
        return False
    pod_sel = peer.get("podSelector")
    if pod_sel is None or labels is None:
        return True
    return (pod_sel.get("matchLabels") or {}).items() <= labels.items()


def _allowed(
    policies: list[Object],
    direction: str,
    pod_labels: dict[str, str],
    peer_ns: str,
    peer_labels: dict[str, str] | None,
    port: int,
) -> bool:
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in policies:
        spec = policy.get("spec") or {}
        if direction not in (spec.get("policyTypes") or ["Ingress"]) or not _selects(policy, pod_labels):
            continue
        for rule in spec.get(key) or []:
            ports = rule.get("ports") or []
            port_ok = not ports or any(p.get("port") in (port, None) for p in ports)
            peers = rule.get(peers_key)
            peer_ok = not peers or any(_peer_allows(p, peer_ns, peer_labels) for p in peers)
            if port_ok and peer_ok:
                return True
    return False


def _restricts(policies: list[Object], direction: str, pod_labels: dict[str, str]) -> bool:
    return any(
        direction in ((p.get("spec") or {}).get("policyTypes") or ["Ingress"]) and _selects(p, pod_labels)
        for p in policies
    )


def _check_network_policies(env: Environment, objects: list[Object], add: Any) -> None:
    namespaces = sorted(env.all_namespaces)
    for ns in namespaces:
        deny = [
            p
            for p in _policies(objects, ns)
            if (p.get("spec") or {}).get("podSelector") in ({}, None)
            and "Ingress" in ((p.get("spec") or {}).get("policyTypes") or [])
            and not (p.get("spec") or {}).get("ingress")
        ]
        if not deny:
            add("network", f"Namespace/{ns}", "no default-deny ingress NetworkPolicy")
    api_ns, db_ns = env.namespace("board-api"), env.namespace("postgres")
    api = _find(objects, "Deployment", "board-api", api_ns)
    db = _find(objects, "StatefulSet", "postgres", db_ns)
    if api is None or db is None:
        return
    api_labels, db_labels = _pod_labels(api), _pod_labels(db)
    db_port = next(
        (p.get("containerPort") for c in _pod_spec(db).get("containers") or [] for p in c.get("ports") or []),
        5432,
    )
    if not _allowed(_policies(objects, db_ns), "Ingress", db_labels, api_ns, api_labels, db_port):
        add(
            "network",
            f"Namespace/{db_ns}",
            f"no NetworkPolicy lets board-api ({api_ns}) reach postgres on {db_port}",
        )
    api_policies = _policies(objects, api_ns)
    if _restricts(api_policies, "Egress", api_labels) and not _allowed(
        api_policies, "Egress", api_labels, db_ns, db_labels, db_port
    ):
        add(
            "network",
            f"Namespace/{api_ns}",
            f"egress is restricted but board-api may not reach {db_ns}:{db_port}",
        )
    for ns in namespaces:
        for workload in (
            o
            for o in objects
            if o.get("kind") in WORKLOADS and (o.get("metadata") or {}).get("namespace") == ns
        ):
            labels = _pod_labels(workload)
            policies = _policies(objects, ns)
            if _restricts(policies, "Egress", labels) and not _allowed(
                policies, "Egress", labels, "kube-system", None, 53
            ):
                add(
                    "network",
                    _name(workload),
                    "egress is restricted but DNS (kube-system, port 53) is not allowed",
                )
    for component in ("board-api", "frontend"):
        ns = env.namespace(component)
        deploy = _find(objects, "Deployment", component, ns)
        if deploy is None:
            continue
        labels = _pod_labels(deploy)
        port = next(
            (
                p.get("containerPort")
                for c in _pod_spec(deploy).get("containers") or []
                for p in c.get("ports") or []
            ),
            0,
        )
        # The ingress data path: a controller's pods in another namespace, or a load balancer's
        # address range (an ALB sending straight to pod IPs).
        admitted = any(
            "ipBlock" in peer
            or (bool(peer_ns) and peer_ns not in namespaces and _peer_allows(peer, peer_ns, None))
            for policy in _policies(objects, ns)
            if _selects(policy, labels)
            for rule in (policy.get("spec") or {}).get("ingress") or []
            if any(p.get("port") == port for p in rule.get("ports") or [])
            for peer in rule.get("from") or []
            for peer_ns in [
                ((peer.get("namespaceSelector") or {}).get("matchLabels") or {}).get(
                    "kubernetes.io/metadata.name", ""
                )
            ]
        )
        if not admitted:
            add("network", _name(deploy), f"no NetworkPolicy admits the ingress controller on port {port}")


def _wave(obj: Object) -> int:
    return int(((obj.get("metadata") or {}).get("annotations") or {}).get(WAVE, "0"))


def _check_sync_waves(env: Environment, objects: list[Object], add: Any) -> None:
    """namespaces < secrets and config < postgres < board-api < frontend."""

    def wave_of(kind: str, name: str, component: str) -> int | None:
        obj = _find(objects, kind, name, env.namespace(component))
        return None if obj is None else _wave(obj)

    ns_waves = [_wave(o) for o in objects if o.get("kind") == "Namespace"]
    config_waves = [_wave(o) for o in objects if o.get("kind") in ("Secret", "SealedSecret", "ConfigMap")]
    order = [
        ("Namespaces", max(ns_waves, default=None)),
        ("Secrets and ConfigMaps", max(config_waves, default=None)),
        ("postgres", wave_of("StatefulSet", "postgres", "postgres")),
        ("board-api", wave_of("Deployment", "board-api", "board-api")),
        ("frontend", wave_of("Deployment", "frontend", "frontend")),
    ]
    present = [(what, wave) for what, wave in order if wave is not None]
    for (first, a), (second, b) in itertools.pairwise(present):
        if not a < b:
            add("sync-waves", env.name, f"{first} (wave {a}) must sync before {second} (wave {b})")


def _check_lagging_waves(objects: list[Object], add: Any) -> None:
    """Objects whose health may lag sit in the last wave, so they never hold back a workload."""
    others = [_wave(o) for o in objects if o.get("kind") not in LAGGING_KINDS]
    last = max(others, default=0)
    for obj in objects:
        if obj.get("kind") in LAGGING_KINDS and _wave(obj) < last:
            add(
                "sync-waves",
                _name(obj),
                f"in wave {_wave(obj)}, before wave {last}: its health may lag (no metrics, no load "
                "balancer, no consumer yet) and Argo CD would wait on it; move it to the last wave",
            )


def _check_data_kept(objects: list[Object], add: Any) -> None:
    """What holds data survives deleting the Application: Prune=false,Delete=false on the
    StatefulSet with volume claims, on every standalone claim and on their namespaces."""
    holders = [
        o
        for o in objects
        if o.get("kind") == "PersistentVolumeClaim"
        or (o.get("kind") == "StatefulSet" and (o.get("spec") or {}).get("volumeClaimTemplates"))
    ]
    namespaces = {(o.get("metadata") or {}).get("namespace") for o in holders}
    holders += [
        o
        for o in objects
        if o.get("kind") == "Namespace" and (o.get("metadata") or {}).get("name") in namespaces
    ]
    for obj in holders:
        options = str(((obj.get("metadata") or {}).get("annotations") or {}).get(SYNC_OPTIONS, ""))
        missing = [o for o in ("Prune=false", "Delete=false") if o not in options]
        if missing:
            add(
                "data",
                _name(obj),
                f"holds data but lacks {SYNC_OPTIONS}: {','.join(missing)} (deleting the Application "
                "would delete it, and the volumes with it)",
            )
        policy = ((obj.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {}).get(
            "whenDeleted"
        )
        if policy == "Delete":
            add("data", _name(obj), "persistentVolumeClaimRetentionPolicy.whenDeleted: Delete drops the data")


# What a cloud cluster needs from a flavour, besides what every render is checked for. GKE and
# EKS offer node-local DNS (NodeLocal DNSCache answers on 169.254.20.10; GKE's Cloud DNS on the
# metadata server, 169.254.169.254): with it, pods never reach a kube-dns pod, so a DNS rule that
# admits only kube-dns pods blocks every lookup.
FLAVOUR_DNS = {"eks": ("169.254.20.10",), "gke": ("169.254.20.10", "169.254.169.254")}
LOCAL_STORAGE = ("local-path",)  # k3d's provisioner: a node's disk, gone with the node
LOCAL_FLAVOURS = ("k3d",)


def check_flavour(flavour: str, objects: list[Object], report: Report, label: str) -> None:
    """What the cluster's flavour must set: storage and ingress classes, the ingress data path, DNS."""

    def add(subject: str, message: str) -> None:
        report.add("clusters", subject, message, label)

    for obj in objects:
        spec = obj.get("spec") or {}
        claims = (
            [t.get("spec") or {} for t in spec.get("volumeClaimTemplates") or []]
            if obj.get("kind") == "StatefulSet"
            else [spec]
            if obj.get("kind") == "PersistentVolumeClaim"
            else []
        )
        for claim in claims:
            storage_class = claim.get("storageClassName")
            if storage_class is None:
                add(_name(obj), f"no storageClassName: the {flavour} flavour must name its storage class")
            elif storage_class in LOCAL_STORAGE and flavour not in LOCAL_FLAVOURS:
                add(
                    _name(obj),
                    f"storage class {storage_class} on {flavour}: a node-local volume that does not exist "
                    "there (and would vanish with its node)",
                )
        if obj.get("kind") == "Ingress" and not spec.get("ingressClassName"):
            add(_name(obj), f"no ingressClassName: the {flavour} flavour must name its ingress class")
    for address in FLAVOUR_DNS.get(flavour, ()):
        for ns in sorted(
            {
                str((o.get("metadata") or {}).get("namespace"))
                for o in objects
                if o.get("kind") == "NetworkPolicy"
            }
        ):
            if not _dns_allowed_to(_policies(objects, ns), address):
                add(
                    f"Namespace/{ns}",
                    f"DNS egress does not allow {address}/32 on port 53: on {flavour} with node-local DNS "
                    "every lookup would be blocked",
                )


def _dns_allowed_to(policies: list[Object], address: str) -> bool:
    import ipaddress

    for policy in policies:
        for rule in (policy.get("spec") or {}).get("egress") or []:
            if not any(p.get("port") in (53, None) for p in rule.get("ports") or [{}]):
                continue
            for peer in rule.get("to") or []:
                cidr = (peer.get("ipBlock") or {}).get("cidr")
                if cidr and ipaddress.ip_address(address) in ipaddress.ip_network(cidr, strict=False):
                    return True
    return False


def check_sealing(root: Path, cfg: Config, rendered: dict[str, list[Object]], report: Report) -> None:
    """Every cluster opens the SealedSecrets of the environment it runs: each carries the
    fingerprint of the key it was sealed for, and that must be the key of the cluster's certificate."""
    from .errors import WealistError
    from .seal import SEALED_FOR, fingerprint, load_public_key

    for cluster in cfg.clusters:
        sealed = [o for o in rendered.get(cluster.environment, []) if o.get("kind") == "SealedSecret"]
        if not sealed:
            continue
        if cluster.sealing_cert is None:
            report.add(
                "secrets",
                f"cluster {cluster.name}",
                f"runs {cluster.environment}, whose Secrets are sealed, but has no sealing-cert",
                cluster.environment,
            )
            continue
        try:
            key = fingerprint(load_public_key(root / cluster.sealing_cert))
        except WealistError as exc:
            report.add("secrets", f"cluster {cluster.name}", exc.message, cluster.environment)
            continue
        for obj in sealed:
            sealed_for = ((obj.get("metadata") or {}).get("annotations") or {}).get(SEALED_FOR)
            if sealed_for is None:
                report.add(
                    "secrets",
                    _name(obj),
                    f"records no {SEALED_FOR}: re-seal it with wealist seal --cluster {cluster.name}",
                    cluster.environment,
                )
            elif sealed_for != key:
                report.add(
                    "secrets",
                    _name(obj),
                    f"was sealed for key {sealed_for[:19]}…, but cluster {cluster.name} runs "
                    f"{cluster.environment} with key {key[:19]}…: it would not open there (re-seal, or give "
                    "the cluster the same key)",
                    cluster.environment,
                )


URL_USERINFO = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(?P<userinfo>[^/@\s]*)@")
VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def _check_startable(obj: Object, add: Any) -> None:
    """What static reading can tell of a command that would never work (the rehearsal runs them)."""
    for container in containers(obj):
        where = f"{_name(obj)} container {container.get('name')}"
        env = {item.get("name"): item for item in container.get("env") or []}
        secret_vars = {name for name, item in env.items() if "secretKeyRef" in (item.get("valueFrom") or {})}
        for name, item in env.items():
            for match in URL_USERINFO.finditer(str(item.get("value", ""))):
                leaked = [v for v in VAR_REF.findall(match["userinfo"]) if v in secret_vars]
                if leaked:
                    add(
                        "credentials",
                        where,
                        f"{name} puts {', '.join(leaked)} (from a Secret) into a URL unencoded: a password "
                        "with @ : / # % breaks it; pass credentials as PGUSER/PGPASSWORD",
                    )
        if "PGUSER" in env:
            continue
        for text in _commands(container):
            if re.search(r"\bpg_isready\b", text) and not re.search(r"(?:^|\s)(?:-U|--username)\b", text):
                add(
                    "startable",
                    where,
                    "runs pg_isready without a user name (-U or PGUSER): for a uid without a passwd "
                    "entry it exits 3 (no attempt) without asking the server, forever",
                )
                break


def _commands(container: dict[str, Any]) -> list[str]:
    """Every command line the container runs: its own, its probes', its lifecycle hooks'."""
    texts = [" ".join(str(p) for p in [*(container.get("command") or []), *(container.get("args") or [])])]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        texts.append(" ".join(((container.get(probe) or {}).get("exec") or {}).get("command") or []))
    for hook in ("postStart", "preStop"):
        handler = ((container.get("lifecycle") or {}).get(hook) or {}).get("exec") or {}
        texts.append(" ".join(handler.get("command") or []))
    return [t for t in texts if t]


# -- the sources -------------------------------------------------------------------------------


def check_image_tags_in_sources(root: Path, cfg: Config, report: Report) -> None:
    """App image tags appear only in `images:` of overlays/<env>/kustomization.yaml."""
    allowed = {root / env.kustomization for env in cfg.environments}
    pattern = re.compile("|".join(re.escape(c.image) + r"[:@][A-Za-z0-9_]" for c in cfg.components))
    for path in _yaml_files(root):
        if path in allowed:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if pattern.search(line.split("#", 1)[0]):
                report.add(
                    "images",
                    f"{path.relative_to(root)}:{number}",
                    "names an app image tag outside the overlays' images:",
                )
    for env in cfg.environments:
        for path in (root / env.overlay).rglob("*.y*ml"):
            if path != root / env.kustomization and "newTag" in path.read_text(encoding="utf-8"):
                report.add(
                    "images",
                    str(path.relative_to(root)),
                    "sets newTag: tags belong in the aggregate kustomization",
                    env.name,
                )


def check_promotion_config(root: Path, cfg: Config, report: Report) -> None:
    """Every component of promotion.yaml has a tagged images: entry in every environment's overlay
    (or wealist-promote could not promote it there)."""
    from .errors import ConfigError
    from .kustomization import read_images

    for env in cfg.environments:
        try:
            images = read_images(
                (root / env.kustomization).read_text(encoding="utf-8"), str(env.kustomization)
            )
        except (OSError, ConfigError) as exc:
            report.add("promotion.yaml", str(env.kustomization), str(getattr(exc, "message", exc)), env.name)
            continue
        for comp in cfg.components:
            entry = images.get(comp.image)
            if entry is None or entry.ref is None:
                report.add(
                    "promotion.yaml",
                    str(env.kustomization),
                    f"no tagged images: entry for {comp.image}",
                    env.name,
                )
            elif not _qualified(entry.rendered_name):
                report.add(
                    "images",
                    str(env.kustomization),
                    f"{entry.rendered_name} names no registry, so it resolves to Docker Hub (where anyone "
                    "may publish it): set newName to the registry the cluster pulls from",
                    env.name,
                )


def _qualified(name: str) -> bool:
    """Whether an image name starts with a registry host (a dot, a port, or localhost)."""
    first, sep, _ = name.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


def _yaml_files(root: Path) -> Iterable[Path]:
    for directory in ("base", "overlays", "argocd"):
        yield from sorted((root / directory).rglob("*.y*ml"))


# -- Argo CD -----------------------------------------------------------------------------------


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
    _check_argocd_semantics(cfg, documents, report, kinds)


def load_crd_schemas(directory: Path) -> dict[str, dict[str, Any]]:
    """kind -> the CRD's openAPIV3Schema, made strict: undeclared keys are errors (a `selfHeel`
    typo would pass Argo CD's own schema) unless the schema preserves unknown fields."""
    from ruamel.yaml import YAML

    schemas = {}
    for path in sorted(directory.glob("*.y*ml")):
        for doc in YAML(typ="safe").load_all(path.read_text(encoding="utf-8")):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            kind = doc["spec"]["names"]["kind"]
            version = next(v for v in doc["spec"]["versions"] if v.get("storage", True))
            schemas[kind] = _strict(version["schema"]["openAPIV3Schema"], top=True)
    if not schemas:
        from .errors import ConfigError

        raise ConfigError(f"no CustomResourceDefinition in {directory}")
    return schemas


def _strict(schema: Any, top: bool = False) -> Any:
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    if top:
        # The CRD schema leaves metadata open; check the fields we write.
        result.setdefault("properties", {})["metadata"] = {"type": "object"}
    return result


def _check_argocd_semantics(
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
            allowed = _whitelist(root_project[1])
            if ("argoproj.io", "AppProject") in allowed or ("*", "*") in allowed:
                report.add(
                    "argocd",
                    f"AppProject/{root_project[1]['metadata']['name']}",
                    f"lets {subject} manage AppProjects: a commit could grant itself any destination",
                )
    for env in cfg.environments:
        _check_environment_appset(cfg, env, appsets, projects, report, kinds.get(env.name, set()))


def _whitelist(project: Object) -> set[tuple[str, str]]:
    spec = project.get("spec") or {}
    return {
        (str(w.get("group", "")), str(w.get("kind", "")))
        for key in ("clusterResourceWhitelist", "namespaceResourceWhitelist")
        for w in spec.get(key) or []
    }


def _check_environment_appset(
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
        for group, kind in sorted(kinds - _whitelist(project)):
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
