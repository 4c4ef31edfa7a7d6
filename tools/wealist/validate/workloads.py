"""The workloads: namespaces, postgres, board-api, frontend, every container's policy, references
between objects, scaling, secrets, and what reading can tell of a command that could never work."""

from __future__ import annotations

import re
from typing import Any

from ..config import Config, Environment
from ..images import split_reference
from ..render import Object, containers, name_of, pod_labels, pod_spec
from .facts import DEV_ONLY, STARTUP_BUDGET, STATELESS, WORKLOADS
from .objects import env_value, find_object, resolve_env


def check_namespaces(env: Environment, objects: list[Object], add: Any) -> None:
    """Exactly the environment's namespaces, restricted and never pruned, each object in its own."""
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
            add("namespaces", name_of(obj), f"is in namespace {obj_ns!r}, not one of the environment's")
            continue
        component = (meta.get("labels") or {}).get("app.kubernetes.io/name")
        if component in dict(env.namespaces) and obj_ns != env.namespace(component):
            add("namespaces", name_of(obj), f"belongs to {component} but is in {obj_ns}")


def _workload(
    objects: list[Object], kind: str, component: str, env: Environment, add: Any
) -> tuple[Object, dict[str, Any]] | None:
    """A component's workload (named after the component, in its namespace) and its main container
    (named likewise); reports what is missing."""
    ns = env.namespace(component)
    obj = find_object(objects, kind, component, ns)
    if obj is None:
        add(component, f"{kind}/{ns}/{component}", "missing")
        return None
    main = next((c for c in pod_spec(obj).get("containers") or [] if c.get("name") == component), None)
    if main is None:
        add(component, name_of(obj), f"has no container named {component}")
        return None
    return obj, main


def check_postgres(env: Environment, objects: list[Object], add: Any) -> None:
    """Long because it is a checklist of the database's invariants, one finding each."""
    found = _workload(objects, "StatefulSet", "postgres", env, add)
    if found is None:
        return
    sts, main = found
    ns, subject, spec = env.namespace("postgres"), name_of(sts), sts.get("spec") or {}
    image = str(main.get("image", ""))
    if not re.fullmatch(r"postgres:16-alpine(@sha256:[0-9a-f]{64})?|postgres@sha256:[0-9a-f]{64}", image):
        add("postgres", subject, f"image {image} is not postgres:16-alpine (or a digest of it)")
    headless = find_object(objects, "Service", spec.get("serviceName", ""), ns)
    if headless is None or (headless.get("spec") or {}).get("clusterIP") != "None":
        add("postgres", subject, f"serviceName {spec.get('serviceName')!r} is not a headless Service in {ns}")
    templates = spec.get("volumeClaimTemplates") or []
    if not templates:
        add("postgres", subject, "has no volumeClaimTemplates")
    mounts = {m.get("name"): m.get("mountPath") for m in main.get("volumeMounts") or []}
    data_mount = next(
        (mounts[t["metadata"]["name"]] for t in templates if t["metadata"]["name"] in mounts), None
    )
    pgdata = (env_value(main, "PGDATA") or {}).get("value")
    if data_mount is None:
        add("postgres", subject, "the data volume claim is not mounted")
    elif not pgdata or not str(pgdata).startswith(str(data_mount).rstrip("/") + "/"):
        add("postgres", subject, f"PGDATA {pgdata!r} must be a subdirectory of the volume mount {data_mount}")
    if (env_value(main, "POSTGRES_DB") or {}).get("value") != "wealist":
        add("postgres", subject, "POSTGRES_DB is not wealist")
    for var in ("POSTGRES_USER", "POSTGRES_PASSWORD"):
        if "secretKeyRef" not in ((env_value(main, var) or {}).get("valueFrom") or {}):
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
    client = find_object(objects, "Service", "postgres-service", ns)
    if client is None or 5432 not in [p.get("port") for p in (client.get("spec") or {}).get("ports") or []]:
        add("postgres", f"Service/{ns}/postgres-service", "missing, or not on port 5432")


def check_board_api(env: Environment, objects: list[Object], add: Any) -> None:
    """Long because it is a checklist of the API's invariants, one finding each."""
    found = _workload(objects, "Deployment", "board-api", env, add)
    if found is None:
        return
    deploy, main = found
    ns, subject, pod = env.namespace("board-api"), name_of(deploy), pod_spec(deploy)
    if 8000 not in [p.get("containerPort") for p in main.get("ports") or []]:
        add("board-api", subject, "does not listen on container port 8000")
    service = find_object(objects, "Service", "board-api-service", ns)
    if service is None:
        add("board-api", f"Service/{ns}/board-api-service", "missing")
    # Where it connects: host, port and database visible (env or ConfigMap), credentials from a Secret.
    resolved = {name: resolve_env(objects, ns, main, name) for name in ("DB_HOST", "DB_PORT", "DB_NAME")}
    expected = {
        "DB_HOST": f"postgres-service.{env.namespace('postgres')}.svc.cluster.local",
        "DB_PORT": "5432",
        "DB_NAME": "wealist",
    }
    for name, want in expected.items():
        if resolved[name] != want:
            add("board-api", subject, f"{name} is {resolved[name]!r}, expected {want!r}")
    for name in ("DB_USER", "DB_PASSWORD"):
        if "secretKeyRef" not in ((env_value(main, name) or {}).get("valueFrom") or {}):
            add("board-api", subject, f"{name} does not come from a Secret")
    for cm in (
        o
        for o in objects
        if o.get("kind") == "ConfigMap" and (o.get("metadata") or {}).get("namespace") == ns
    ):
        for key in cm.get("data") or {}:
            if re.search(r"PASSWORD|SECRET|TOKEN", key, re.IGNORECASE):
                add("board-api", name_of(cm), f"ConfigMap key {key} looks like a credential: use a Secret")
    url = (env_value(main, "DATABASE_URL") or {}).get("value", "")
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


def check_frontend(env: Environment, objects: list[Object], add: Any) -> None:
    """The front end: its Service, and no privileged port."""
    found = _workload(objects, "Deployment", "frontend", env, add)
    if found is None:
        return
    deploy, _ = found
    ns = env.namespace("frontend")
    if find_object(objects, "Service", "frontend-service", ns) is None:
        add("frontend", f"Service/{ns}/frontend-service", "missing")
    for container in pod_spec(deploy).get("containers") or []:
        for port in container.get("ports") or []:
            if int(port.get("containerPort", 0)) <= 1024:
                add("frontend", name_of(deploy), f"listens on privileged port {port.get('containerPort')}")


def check_workload(cfg: Config, obj: Object, add: Any) -> None:
    """Long because it is the container policy checklist (PSS restricted and ours), one finding each."""
    subject = name_of(obj)
    pod = pod_spec(obj)
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


def check_service_names(objects: list[Object], add: Any) -> None:
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
            places += [(name_of(obj), str(v)) for v in (obj.get("data") or {}).values()]
        if obj.get("kind") in WORKLOADS:
            places += [
                (name_of(obj), str(e.get("value", ""))) for c in containers(obj) for e in c.get("env") or []
            ]
    for subject, value in places:
        for match in SERVICE_DNS.finditer(value):
            if (match.group(1), match.group(3)) not in services:
                add("references", subject, f"{match.group(0)} names no Service of this environment")


class _Index:
    """The rendered objects by (kind, namespace, name), and the keys their data holds."""

    def __init__(self, objects: list[Object]) -> None:
        self.objects = {
            (
                o.get("kind", ""),
                (o.get("metadata") or {}).get("namespace", ""),
                (o.get("metadata") or {}).get("name", ""),
            ): o
            for o in objects
        }

    def keys(self, kind: str, ns: str, name: str) -> set[str] | None:
        """The keys of a Secret (or SealedSecret) or ConfigMap; None when it does not exist."""
        if kind == "ConfigMap":
            cm = self.objects.get(("ConfigMap", ns, name))
            return None if cm is None else set((cm.get("data") or {}).keys())
        secret = self.objects.get(("Secret", ns, name))
        if secret is not None:
            return set((secret.get("data") or {}).keys()) | set((secret.get("stringData") or {}).keys())
        sealed = self.objects.get(("SealedSecret", ns, name))
        return None if sealed is None else set(((sealed.get("spec") or {}).get("encryptedData") or {}).keys())


def check_references(objects: list[Object], add: Any) -> None:
    """Every Secret, ConfigMap, Service and port that one object names exists as named."""
    index = _Index(objects)
    for obj in objects:
        if obj.get("kind") in WORKLOADS:
            _check_workload_references(obj, index, add)
    for svc in (o for o in objects if o.get("kind") == "Service"):
        _check_service(svc, objects, add)
    for ingress in (o for o in objects if o.get("kind") == "Ingress"):
        _check_ingress(ingress, index, add)


def _check_workload_references(obj: Object, index: _Index, add: Any) -> None:
    ns = (obj.get("metadata") or {}).get("namespace", "")
    for container in containers(obj):
        where = f"{name_of(obj)} container {container.get('name')}"
        for item in container.get("env") or []:
            value_from = item.get("valueFrom") or {}
            for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                ref = value_from.get(key)
                if ref is None:
                    continue
                keys = index.keys(kind, ns, ref.get("name", ""))
                if keys is None and not ref.get("optional"):
                    add("references", where, f"{kind} {ref.get('name')} does not exist in {ns}")
                elif keys is not None and ref.get("key") not in keys:
                    add("references", where, f"{kind} {ref.get('name')} has no key {ref.get('key')}")
        for source in container.get("envFrom") or []:
            for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                if key in source and index.keys(kind, ns, source[key].get("name", "")) is None:
                    add("references", where, f"{kind} {source[key].get('name')} does not exist in {ns}")
    for volume in pod_spec(obj).get("volumes") or []:
        for kind, key, field in (("Secret", "secret", "secretName"), ("ConfigMap", "configMap", "name")):
            if key in volume and index.keys(kind, ns, volume[key].get(field, "")) is None:
                add("references", name_of(obj), f"volume {kind} {volume[key].get(field)} does not exist")


def _check_ingress(ingress: Object, index: _Index, add: Any) -> None:
    ns = (ingress.get("metadata") or {}).get("namespace", "")
    for rule in (ingress.get("spec") or {}).get("rules") or []:
        for path in ((rule.get("http") or {}).get("paths")) or []:
            backend = (path.get("backend") or {}).get("service") or {}
            target = index.objects.get(("Service", ns, backend.get("name", "")))
            if target is None:
                add("references", name_of(ingress), f"backend Service {backend.get('name')} is not in {ns}")
                continue
            port = backend.get("port") or {}
            ports = (target.get("spec") or {}).get("ports") or []
            if not any(
                p.get("name") == port.get("name") if "name" in port else p.get("port") == port.get("number")
                for p in ports
            ):
                add("references", name_of(ingress), f"Service {backend.get('name')} has no port {port}")


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
        and selector.items() <= pod_labels(o).items()
    ]
    if not targets:
        add("references", name_of(svc), f"selector {selector} matches no workload in {ns}")
        return
    container_ports = [
        p for t in targets for c in pod_spec(t).get("containers") or [] for p in c.get("ports") or []
    ]
    for port in (svc.get("spec") or {}).get("ports") or []:
        target = port.get("targetPort", port.get("port"))
        if isinstance(target, str):
            ok = any(p.get("name") == target for p in container_ports)
        else:
            ok = any(p.get("containerPort") == target for p in container_ports)
        if not ok:
            add("references", name_of(svc), f"targetPort {target} is no container port of the selected pods")


def check_scaling(env: Environment, cfg: Config, objects: list[Object], add: Any) -> None:
    """Replicas per environment; in an autoscaled one, an HPA (min 2) and a PDB per app."""
    for component in STATELESS:
        ns = env.namespace(component)
        deploy = find_object(objects, "Deployment", component, ns)
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
                <= pod_labels(deploy).items()
            ),
            None,
        )
        if env.name == cfg.environments[0].name:
            if replicas != 1:
                add("replicas", name_of(deploy), f"{env.name} runs {replicas} replicas, expected 1")
        elif env.name == "prod":
            if replicas < 2:
                add("replicas", name_of(deploy), f"prod runs {replicas} replicas, expected at least 2")
            if hpa is None:
                add("replicas", name_of(deploy), "prod has no HorizontalPodAutoscaler for it")
            elif ((hpa.get("spec") or {}).get("minReplicas") or 1) < 2:
                add("replicas", name_of(hpa), "minReplicas below 2")
            if pdb is None:
                add("replicas", name_of(deploy), "prod has no PodDisruptionBudget for it")


def check_secrets(env: Environment, objects: list[Object], add: Any) -> None:
    """No plaintext Secret in prod; dev's passwords visibly dev-only."""
    import base64

    for obj in objects:
        if obj.get("kind") != "Secret":
            continue
        if env.name == "prod":
            add("secrets", name_of(obj), "prod holds a plaintext Secret: seal it with wealist seal")
            continue
        for key, value in ((obj.get("data") or {}) | (obj.get("stringData") or {})).items():
            plain = (
                base64.b64decode(value).decode(errors="replace")
                if key in (obj.get("data") or {})
                else str(value)
            )
            if "PASSWORD" in key.upper() and not DEV_ONLY.search(plain):
                add("secrets", name_of(obj), f"{key} does not look like a dev-only value")


URL_USERINFO = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(?P<userinfo>[^/@\s]*)@")

VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def check_startable(obj: Object, add: Any) -> None:
    """What static reading can tell of a command that would never work (the rehearsal runs them)."""
    for container in containers(obj):
        where = f"{name_of(obj)} container {container.get('name')}"
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
        for text in commands_of(container):
            if re.search(r"\bpg_isready\b", text) and not re.search(r"(?:^|\s)(?:-U|--username)\b", text):
                add(
                    "startable",
                    where,
                    "runs pg_isready without a user name (-U or PGUSER): for a uid without a passwd "
                    "entry it exits 3 (no attempt) without asking the server, forever",
                )
                break


def commands_of(container: dict[str, Any]) -> list[str]:
    """Every command line the container runs: its own, its probes', its lifecycle hooks'."""
    texts = [" ".join(str(p) for p in [*(container.get("command") or []), *(container.get("args") or [])])]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        texts.append(" ".join(((container.get(probe) or {}).get("exec") or {}).get("command") or []))
    for hook in ("postStart", "preStop"):
        handler = ((container.get("lifecycle") or {}).get(hook) or {}).get("exec") or {}
        texts.append(" ".join(handler.get("command") or []))
    return [t for t in texts if t]
