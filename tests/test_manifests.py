"""The manifests themselves: rendered with the real renderer (oldest and newest Kustomize too) and
held to every SPEC §3 invariant by the same checks `wealist validate` runs."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from conftest import ROOT, SCHEMAS, World, kubectl_versions
from wealist.config import load_config
from wealist.kustomization import read_images
from wealist.render import RENDERER_ENV, Renderer, find_renderer, parse_objects
from wealist.validate import Report, validate

ENVS = ("dev", "prod")
CRDS = SCHEMAS / "argocd"
needs_crds = pytest.mark.skipif(not CRDS.is_dir(), reason=f"Argo CD CRD schemas not found at {CRDS}")


def render(env: str, root: Path = ROOT) -> list[dict]:
    return parse_objects(find_renderer().build(root / "overlays" / env))


@pytest.fixture(scope="module")
def report() -> Report:
    return validate(ROOT, CRDS if CRDS.is_dir() else None)


def test_every_invariant_holds(report: Report) -> None:
    assert [str(f) for f in report.findings] == []
    assert report.objects == {"dev×k3d": 31, "prod×gke": 35, "prod×eks": 35}


@needs_crds
def test_argocd_documents_were_schema_checked(report: Report) -> None:
    assert report.argocd_documents == 6
    assert report.skipped == []


def render_targets(renderer: Renderer, root: Path = ROOT) -> dict[str, str]:
    """Every environment × flavour of the fleet, rendered as Argo CD renders it."""
    from wealist.render import with_components
    from wealist.validate import targets

    texts = {}
    for target in targets(load_config(root)):
        if target.flavour is None:
            texts[target.label] = renderer.build(root / target.env.overlay)
            continue
        component = PurePosixPath("components", "clusters", target.flavour)
        with with_components(root, target.env.overlay, [component]) as overlay:
            texts[target.label] = renderer.build(overlay)
    return texts


@pytest.mark.parametrize("kubectl", kubectl_versions(), ids=lambda p: p.name)
def test_oldest_and_newest_kustomize_render_identically(kubectl: Path) -> None:
    default = find_renderer()
    other = Renderer((str(kubectl), "kustomize"))
    for env in ENVS:
        assert other.build(ROOT / "overlays" / env) == default.build(ROOT / "overlays" / env)
    theirs, ours = render_targets(other), render_targets(default)
    assert set(ours) == {"dev×k3d", "prod×gke", "prod×eks"}
    assert theirs == ours


PINS = ROOT / "tests" / "rendered.sha256"


def test_renders_are_pinned() -> None:
    """What every environment (bare, and as each cluster flavour gets it) renders, pinned by hash:
    a refactor of the manifests must not change it. After an intended change, re-pin with
    WEALIST_UPDATE_PINS=1 ./tools/test.sh -k pinned, and review the rendered diff."""
    import hashlib

    renderer = find_renderer()
    texts = {env: renderer.build(ROOT / "overlays" / env) for env in ENVS} | render_targets(renderer)
    current = "".join(
        f"{hashlib.sha256(t.encode()).hexdigest()}  {label}\n" for label, t in sorted(texts.items())
    )
    if os.environ.get("WEALIST_UPDATE_PINS"):
        PINS.write_text(current)
    assert current == PINS.read_text()


def test_renderer_override_and_absence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(RENDERER_ENV, str(kubectl_versions()[0]))
    assert find_renderer().argv[1:] == ("kustomize",)
    monkeypatch.delenv(RENDERER_ENV)
    monkeypatch.setenv("PATH", str(tmp_path))
    from wealist.errors import RenderError

    with pytest.raises(RenderError, match=r"neither kustomize .* nor kubectl"):
        find_renderer()


@pytest.mark.parametrize("env", ENVS)
def test_three_namespaces_each_component_in_its_own(env: str) -> None:
    objects = render(env)
    namespaces = sorted(o["metadata"]["name"] for o in objects if o["kind"] == "Namespace")
    assert namespaces == sorted([f"board-api-{env}", f"front-{env}", f"postgresql-{env}"])
    placement = {
        (o["kind"], o["metadata"]["name"]): o["metadata"]["namespace"]
        for o in objects
        if o["kind"] != "Namespace"
    }
    assert placement[("StatefulSet", "postgres")] == f"postgresql-{env}"
    assert placement[("Deployment", "board-api")] == f"board-api-{env}"
    assert placement[("Deployment", "frontend")] == f"front-{env}"


def test_prod_has_no_plaintext_credential() -> None:
    rendered = find_renderer().build(ROOT / "overlays" / "prod")
    objects = parse_objects(rendered)
    assert [o for o in objects if o["kind"] == "Secret"] == []
    sealed = {
        (o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects if o["kind"] == "SealedSecret"
    }
    assert sealed == {
        ("postgresql-prod", "postgres-credentials"),
        ("postgresql-prod", "board-api-db"),
        ("board-api-prod", "board-api-db"),
    }
    assert "PASSWORD=" not in rendered and "dev-only" not in rendered


def test_dev_secrets_are_generated_and_visibly_dev_only() -> None:
    secrets = [o for o in render("dev") if o["kind"] == "Secret"]
    # postgres-credentials, and board-api's login in both namespaces that need it
    assert sorted(s["metadata"]["namespace"] for s in secrets) == [
        "board-api-dev",
        "postgresql-dev",
        "postgresql-dev",
    ]
    for secret in secrets:
        password = next(v for k, v in secret["data"].items() if "PASSWORD" in k)
        assert base64.b64decode(password).decode().startswith("dev-only")


def test_app_tags_live_only_in_the_aggregate_kustomizations() -> None:
    hits = subprocess.run(
        [
            "git",
            "grep",
            "-n",
            "-E",
            r"wealist/(board-api|frontend)[:@]|newTag:",
            "--",
            "base",
            "overlays",
            "argocd",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    assert {h.split(":", 1)[0] for h in hits} <= {
        "overlays/dev/kustomization.yaml",
        "overlays/prod/kustomization.yaml",
    }


def test_checkov_passes_with_every_skip_explained(tmp_path: Path) -> None:
    checkov = shutil.which("checkov") or str(Path(sys.executable).parent / "checkov")
    for label, text in render_targets(find_renderer()).items():
        rendered = tmp_path / f"{label}.yaml"
        rendered.write_text(text)
        proc = subprocess.run(
            [checkov, "-f", str(rendered), "--framework", "kubernetes", "--output", "json"],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
        )
        data = json.loads(proc.stdout)
        summary = data["summary"]
        assert summary["failed"] == 0, [
            c["check_id"] + " " + c["resource"] for c in data["results"]["failed_checks"]
        ]
        assert summary["passed"] > 200
        for skipped in data["results"]["skipped_checks"]:
            assert len(skipped["check_result"].get("suppress_comment", "")) > 20, skipped["check_id"]


@pytest.mark.parametrize("component", ["board-api", "frontend"])
def test_prod_scales_and_argocd_ignores_the_replica_drift(component: str) -> None:
    prod = render("prod")
    kinds = {(o["kind"], o["metadata"]["name"]) for o in prod}
    assert ("HorizontalPodAutoscaler", component) in kinds and ("PodDisruptionBudget", component) in kinds
    deploy = next(o for o in prod if o["kind"] == "Deployment" and o["metadata"]["name"] == component)
    assert deploy["spec"]["replicas"] >= 2
    dev = next(o for o in render("dev") if o["kind"] == "Deployment" and o["metadata"]["name"] == component)
    assert dev["spec"]["replicas"] == 1


# -- breaking a copy on purpose: the checks must notice ------------------------------------------


def _edit(world: World, path: str, old: str, new: str) -> None:
    text = world.read(path)
    assert old in text, f"{old!r} not in {path}"
    world.write(path, text.replace(old, new, 1))


BREAKAGES = [
    (
        "base/board-api/deployment.yaml",
        "name: board-api-db\n                  key: DB_PASSWORD",
        "name: board-api-secret\n                  key: DB_PASSWORD",
        "Secret board-api-secret does not exist",
    ),
    ("base/board-api/deployment.yaml", "key: DB_PASSWORD", "key: PASSWORD", "has no key PASSWORD"),
    ("overlays/dev/kustomization.yaml", "newTag: v1.0.0", "newTag: latest", "uses latest"),
    (
        "base/frontend/deployment.yaml",
        "          readinessProbe:",
        "          x-readinessProbe:",
        "no readinessProbe",
    ),
    (
        "base/postgres/statefulset.yaml",
        "value: /var/lib/postgresql/data/pgdata",
        "value: /var/lib/postgresql/data",
        "PGDATA '/var/lib/postgresql/data' must be a subdirectory",
    ),
    (
        "overlays/dev/board-api/kustomization.yaml",
        "postgres-service.postgresql-dev",
        "postgres-service.postgresql-prod",
        "DB_HOST is 'postgres-service.postgresql-prod.svc.cluster.local'",
    ),
    (
        "overlays/dev/postgres/kustomization.yaml",
        "value: board-api-dev",
        "value: board-api-prod",
        "no NetworkPolicy lets board-api",
    ),
    ("base/frontend/namespace/namespace.yaml", "enforce: restricted", "enforce: baseline", "not labelled"),
    (
        "base/frontend/service.yaml",
        "targetPort: http",
        "targetPort: web",
        "targetPort web is no container port",
    ),
    (
        "base/board-api/deployment.yaml",
        'sync-wave: "1"',
        'sync-wave: "5"',
        "board-api (wave 5) must sync before",
    ),
    ("overlays/dev/kustomization.yaml", "resources:", "namespace: wealist\nresources:", "render"),
    (
        "argocd/apps/applicationset-prod.yaml",
        "          name: frontend\n",
        "          name: front\n",
        "does not ignore spec.replicas",
    ),
    (
        "base/frontend/deployment.yaml",
        "readOnlyRootFilesystem: true",
        "readOnlyRootFilesystem: false",
        "not read-only",
    ),
    (
        "base/board-api/deployment.yaml",
        "image: wealist/board-api ",
        "image: wealist/board-api:v0.9 ",
        "outside the overlays",
    ),
    (
        "base/postgres/statefulset.yaml",
        "terminationGracePeriodSeconds: 120",
        "terminationGracePeriodSeconds: 30",
        "terminationGracePeriodSeconds below 60",
    ),
    (
        "overlays/prod/kustomization.yaml",
        "  - name: wealist/frontend\n    newName: ghcr.io/wealist/frontend\n    newTag: v1.0.0\n",
        "",
        "promotion.yaml: overlays/prod/kustomization.yaml: no tagged images: entry for wealist/frontend",
    ),
    (
        "overlays/dev/board-api/kustomization.yaml",
        "DB_HOST=postgres-service.postgresql-dev",
        "DB_HOST=postgres.postgresql-dev",
        "postgres.postgresql-dev.svc.cluster.local names no Service of this environment",
    ),
    (
        "base/frontend/deployment.yaml",
        "  revisionHistoryLimit: 5",
        "  revisionHistoryLimt: 5",
        "schema: Deployment/front-dev/frontend: Additional properties are not allowed ('revisionHistoryLimt'",
    ),
    # What would keep the first deploy from starting, as far as reading can tell (the rehearsal runs it).
    (
        "base/board-api/deployment.yaml",
        ' -U "$DB_USER" -t 2',
        " -t 2",
        "container wait-for-postgres: runs pg_isready without a user name",
    ),
    (
        "base/board-api/deployment.yaml",
        "value: postgresql://$(DB_HOST):$(DB_PORT)/$(DB_NAME)",
        "value: postgresql://$(DB_USER):$(DB_PASSWORD)@$(DB_HOST):$(DB_PORT)/$(DB_NAME)",
        "DATABASE_URL puts DB_USER, DB_PASSWORD (from a Secret) into a URL unencoded",
    ),
    (
        "overlays/dev/kustomization.yaml",
        "    newName: k3d-wealist-registry:5000/wealist/frontend\n",
        "",
        "wealist/frontend names no registry, so it resolves to Docker Hub",
    ),
    (
        "overlays/prod/board-api/hpa.yaml",
        'sync-wave: "3"',
        'sync-wave: "1"',
        "HorizontalPodAutoscaler/board-api-prod/board-api: in wave 1, before wave 3: its health may lag",
    ),
    (
        "base/frontend/namespace/ingress.yaml",
        'sync-wave: "3"',
        'sync-wave: "2"',
        "Ingress/front-dev/frontend: in wave 2, before wave 3",
    ),
    (
        "base/postgres/statefulset.yaml",
        "sync-options: Prune=false,Delete=false",
        "sync-options: Prune=false",
        "postgres: holds data but lacks argocd.argoproj.io/sync-options: Delete=false",
    ),
    (
        "base/postgres/namespace/namespace.yaml",
        "sync-options: Prune=false,Delete=false",
        "sync-options: Delete=false",
        "Namespace/postgresql-dev: holds data but lacks argocd.argoproj.io/sync-options: Prune=false",
    ),
    (
        "base/postgres/statefulset.yaml",
        "failureThreshold: 180",
        "failureThreshold: 12",
        "startupProbe allows 120 s: crash recovery may need longer",
    ),
    (
        "base/board-api/deployment.yaml",
        "          startupProbe:\n            httpGet:\n              path: /health\n"
        "              port: http\n            periodSeconds: 2\n            timeoutSeconds: 2\n"
        "            failureThreshold: 30\n",
        "",
        "board-api: Deployment/board-api-dev/board-api: no startupProbe",
    ),
    (
        "argocd/bootstrap/project-wealist-dev.yaml",
        "    - group: batch\n      kind: CronJob\n",
        "",
        "AppProject/wealist-dev: does not permit CronJob (batch)",
    ),
]


@pytest.mark.parametrize(("path", "old", "new", "finding"), BREAKAGES, ids=[b[3][:40] for b in BREAKAGES])
def test_a_broken_copy_fails_validation(world: World, path: str, old: str, new: str, finding: str) -> None:
    _edit(world, path, old, new)
    report = validate(world.work, None)
    assert not report.ok
    assert any(finding in str(f) for f in report.findings), [str(f) for f in report.findings]


@needs_crds
def test_an_argocd_typo_fails_the_strict_schema(world: World) -> None:
    _edit(world, "argocd/apps/applicationset-dev.yaml", "selfHeal: true", "selfHeel: true")
    report = validate(world.work, CRDS)
    assert any("'selfHeel' was unexpected" in str(f) for f in report.findings), [
        str(f) for f in report.findings
    ]


def test_a_plaintext_prod_secret_fails(world: World) -> None:
    _edit(
        world,
        "overlays/prod/board-api/kustomization.yaml",
        "configMapGenerator:",
        "secretGenerator:\n  - name: leaked\n    literals: [PASSWORD=hunter2]\nconfigMapGenerator:",
    )
    report = validate(world.work, None)
    assert any("prod holds a plaintext Secret" in str(f) for f in report.findings)


def test_promotion_config_matches_the_overlays() -> None:
    cfg = load_config(ROOT)
    assert [e.name for e in cfg.environments] == list(ENVS)
    for env in cfg.environments:
        images = read_images((ROOT / env.kustomization).read_text())
        assert set(images) == {c.image for c in cfg.components}


@pytest.mark.parametrize(
    "obj",
    [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"portz": []}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {"replicas": "two"},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "n"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        },
    ],
)
def test_cached_schema_validator_agrees_with_kubernetes_validate(obj: dict) -> None:
    import kubernetes_validate

    from wealist.validate.facts import KUBERNETES_VERSION
    from wealist.validate.schemas import schema_validator

    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        theirs = None
    except kubernetes_validate.ValidationError as exc:
        theirs = exc.message
    ours = next(iter(schema_validator(obj["apiVersion"], obj["kind"]).iter_errors(obj)), None)
    assert (ours.message if ours else None) == theirs


def _variants(obj: dict) -> list[dict]:
    """``obj`` and copies of it broken the ways a shape could hide: a value outside an enum, a
    string where a number belongs, an unknown key, a number where a string belongs."""
    import copy

    broken = []
    for path, value in (
        (("spec", "template", "spec", "containers", 0, "imagePullPolicy"), "Sometimes"),
        (("spec", "template", "spec", "containers", 0, "terminationMessagePolicy"), "Whenever"),
        (("spec", "replicas"), "two"),
        (("spec", "template", "spec", "restartPolicy"), "Sometimes"),
        (("spec", "selfHeel"), True),
        (("metadata", "name"), 7),
    ):
        variant = copy.deepcopy(obj)
        node = variant
        try:
            for key in path[:-1]:
                node = node[key]
        except (KeyError, IndexError, TypeError):
            continue
        node[path[-1]] = value
        broken.append(variant)
    return [obj, *broken]


@pytest.mark.parametrize("env", ENVS)
def test_validating_by_shape_agrees_with_validating_each_object(env: str) -> None:
    """validate judges objects by shape (strings outside every enum made one placeholder) and
    validates a shape once: for every rendered object and broken copies of it, the verdict and the
    reported message are the ones validating the object itself gives."""
    from wealist.validate.schemas import _shape_passes, check_schemas, schema_validator

    objects = [o for o in render(env) if o.get("kind") != "SealedSecret"]
    checked = 0
    for obj in objects:
        for variant in _variants(obj):
            validator = schema_validator(variant["apiVersion"], variant["kind"])
            error = next(iter(validator.iter_errors(variant)), None)
            assert _shape_passes(variant["apiVersion"], variant["kind"], variant) == (error is None)
            report = Report()
            check_schemas([variant], report.add)
            found = [f.message for f in report.findings]
            assert len(found) == (0 if error is None else 1)
            assert error is None or found[0].startswith(error.message)
            checked += 1
    assert checked > 3 * len(objects)  # the broken copies were made


def test_shapes_prove_nothing_where_a_schema_constrains_strings() -> None:
    """Shapes stand in for objects only while no schema tells strings apart beyond enums: a
    property *named* pattern is no constraint, a pattern keyword is."""
    from wealist.validate.schemas import _schema_enums

    named = {"properties": {"pattern": {"type": "string"}, "policy": {"enum": ["Always", "Never"]}}}
    assert _schema_enums(named) == frozenset({"Always", "Never"})
    for keyword, value in (("pattern", "^a"), ("minLength", 2), ("maxLength", 3), ("const", "x")):
        constrained = {"properties": {"name": {"items": {"type": "string", keyword: value}}}}
        assert _schema_enums(constrained) is None
