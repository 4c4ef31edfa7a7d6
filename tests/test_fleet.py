"""The Argo CD fleet: the ApplicationSets expanded for example clusters (the way Argo CD's cluster
generator does), the projects out of the root's reach, sealing per cluster key, cluster flavours,
and the deploy branch that only approved merges move."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from conftest import ROOT, SCHEMAS, FakeGitHub, World, git
from registrylab import self_signed_certificate
from wealist.errors import RefusedError
from wealist.validate import load_crd_schemas, validate

CRDS = SCHEMAS / "argocd"
needs_crds = pytest.mark.skipif(not CRDS.is_dir(), reason=f"Argo CD CRD schemas not found at {CRDS}")


# -- a small cluster generator, after Argo CD's documented behaviour ------------------------------
#
# For every cluster Secret (argocd.argoproj.io/secret-type: cluster) whose labels match the
# generator's selector, the template is rendered with the parameters name, nameNormalized, server,
# metadata.labels and metadata.annotations (Go templates; missingkey=error fails on an unknown key).


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not (selector.get("matchLabels") or {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        present = key in labels
        ok = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[op]
        if not ok:
            return False
    return True


TEMPLATE = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")


def render_template(value: Any, params: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: render_template(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [render_template(v, params) for v in value]
    if not isinstance(value, str):
        return value

    def lookup(path: str) -> Any:
        node: Any = params
        for part in path.lstrip(".").split("."):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(f"map has no entry for key {part!r}")  # missingkey=error
            node = node[part]
        return node

    def evaluate(match: re.Match[str]) -> str:
        expr = match.group(1)
        index = re.fullmatch(r'index\s+(\.[\w.]+)\s+"([^"]+)"', expr)
        if index:
            mapping = lookup(index.group(1))
            if index.group(2) not in mapping:
                raise KeyError(f"map has no entry for key {index.group(2)!r}")
            return str(mapping[index.group(2)])
        if re.fullmatch(r"\.[\w.]+", expr):
            return str(lookup(expr))
        raise AssertionError(f"template expression not supported by this expander: {expr}")

    return TEMPLATE.sub(evaluate, value)


def expand(appset: dict[str, Any], cluster_secrets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert appset["spec"]["goTemplate"] is True
    assert "missingkey=error" in appset["spec"]["goTemplateOptions"]
    applications = []
    for generator in appset["spec"]["generators"]:
        selector = generator["clusters"]["selector"]
        for secret in cluster_secrets:
            meta = secret["metadata"]
            labels = meta.get("labels") or {}
            if labels.get("argocd.argoproj.io/secret-type") != "cluster" or not selects(selector, labels):
                continue
            data = secret["stringData"]
            params = {
                "name": data["name"],
                "nameNormalized": re.sub(r"[^a-z0-9-.]", "-", data["name"].lower()),
                "server": data["server"],
                "metadata": {"labels": labels, "annotations": meta.get("annotations") or {}},
            }
            template = render_template(appset["spec"]["template"], params)
            applications.append(
                {
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "Application",
                    "metadata": {**template["metadata"], "namespace": appset["metadata"]["namespace"]},
                    "spec": template["spec"],
                }
            )
    return applications


def cluster_secret(name: str, server: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": f"cluster-{name}",
            "namespace": "argocd",
            "labels": {
                "argocd.argoproj.io/secret-type": "cluster",
                **{f"wealist.io/{k}": v for k, v in labels.items()},
            },
        },
        "stringData": {"name": name, "server": server},
    }


def load(path: str) -> Any:
    return YAML(typ="safe").load((ROOT / path).read_text())


LOCAL = load("tools/local-cluster/in-cluster-secret.yaml")  # what bootstrap.sh registers
EXAMPLES = [
    LOCAL,
    cluster_secret("gke-prod", "https://34.1.2.3", environment="prod", flavour="gke"),
    cluster_secret("eks-prod", "https://ABC.eks.amazonaws.com", environment="prod", flavour="eks"),
    # A second prod cluster on EKS is one more labelled Secret, nothing else.
    cluster_secret("eks-prod-2", "https://DEF.eks.amazonaws.com", environment="prod", flavour="eks"),
    cluster_secret("eks-dev", "https://GHI.eks.amazonaws.com", environment="dev", flavour="eks"),
    # A laptop labelled prod by mistake: k3d is no prod flavour, so it gets nothing.
    cluster_secret("laptop", "https://127.0.0.1:6550", environment="prod", flavour="k3d"),
    cluster_secret("unlabelled", "https://10.0.0.1"),  # registered for something else
    {**cluster_secret("not-a-cluster", "https://x", environment="dev", flavour="k3d"), "metadata": {
        "name": "repo", "labels": {"argocd.argoproj.io/secret-type": "repository",
                                   "wealist.io/environment": "dev", "wealist.io/flavour": "k3d"}}},
]  # fmt: skip


def fleet() -> list[dict[str, Any]]:
    return [
        app
        for env in ("dev", "prod")
        for app in expand(load(f"argocd/apps/applicationset-{env}.yaml"), EXAMPLES)
    ]


def test_the_applicationsets_yield_exactly_the_expected_applications() -> None:
    apps = {
        a["metadata"]["name"]: (
            a["spec"]["destination"]["server"],
            a["spec"]["project"],
            a["spec"]["source"]["path"],
            a["spec"]["source"]["targetRevision"],
            a["spec"]["source"]["kustomize"]["components"],
        )
        for a in fleet()
    }
    k3d, eks, gke = (["../../components/clusters/" + f] for f in ("k3d", "eks", "gke"))
    dev, prod = ("wealist-dev", "overlays/dev", "main"), ("wealist-prod", "overlays/prod", "deploy/prod")
    assert apps == {
        "wealist-dev-in-cluster": ("https://kubernetes.default.svc", *dev, k3d),
        "wealist-dev-eks-dev": ("https://GHI.eks.amazonaws.com", *dev, eks),
        "wealist-prod-gke-prod": ("https://34.1.2.3", *prod, gke),
        "wealist-prod-eks-prod": ("https://ABC.eks.amazonaws.com", *prod, eks),
        "wealist-prod-eks-prod-2": ("https://DEF.eks.amazonaws.com", *prod, eks),
    }  # fmt: skip
    for app in fleet():
        source = app["spec"]["source"]
        for component in source["kustomize"]["components"]:
            assert (ROOT / source["path"] / component / "kustomization.yaml").is_file()


@needs_crds
def test_every_expanded_application_is_valid_against_the_application_crd() -> None:
    schema = load_crd_schemas(CRDS)["Application"]
    for app in fleet():
        errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(app)]
        assert errors == [], app["metadata"]["name"]


def test_an_unknown_template_key_fails_like_missingkey_error() -> None:
    appset = load("argocd/apps/applicationset-dev.yaml")
    unlabelled_flavour = cluster_secret("odd", "https://odd", environment="dev")
    appset["spec"]["generators"][0]["clusters"]["selector"].pop("matchExpressions")
    with pytest.raises(KeyError, match=r"wealist\.io/flavour"):
        expand(appset, [unlabelled_flavour])


# -- validate: deliberate breakages of the fleet ------------------------------------------------


def _findings(world: World) -> list[str]:
    return [str(f) for f in validate(world.work, CRDS if CRDS.is_dir() else None).findings]


def test_prod_on_a_cluster_whose_key_did_not_seal_its_secrets(world: World, tmp_path: Path) -> None:
    _, pem = self_signed_certificate("eks-prod")
    (world.work / "clusters/eks-prod.pem").write_bytes(pem)
    findings = _findings(world)
    sealed = [f for f in findings if "it would not open there" in f]
    assert len(sealed) == 3 and all("but cluster eks-prod runs prod" in f for f in sealed), findings


def test_an_appproject_reachable_from_the_root_app(world: World) -> None:
    git(world.work, "mv", "argocd/bootstrap/project-wealist-prod.yaml", "argocd/apps/")
    findings = _findings(world)
    assert any(
        "AppProject/wealist-prod: is under argocd/apps, which Application/wealist-root syncs" in f
        for f in findings
    ), findings


def test_a_root_project_that_may_manage_appprojects(world: World) -> None:
    path = world.work / "argocd/bootstrap/project-platform.yaml"
    path.write_text(path.read_text() + "    - group: argoproj.io\n      kind: AppProject\n")
    findings = _findings(world)
    assert any("lets Application/wealist-root manage AppProjects" in f for f in findings), findings


def test_a_flavour_that_forgets_the_dns_rule(world: World) -> None:
    path = world.work / "components/clusters/gke/kustomization.yaml"
    text = path.read_text()
    forgotten = (
        "      - op: add\n        path: /spec/egress/0/to/-\n        value:\n"
        "          ipBlock:\n            cidr: 169.254.169.254/32\n"
    )
    assert forgotten in text
    path.write_text(text.replace(forgotten, ""))
    findings = _findings(world)
    assert any(
        f.startswith("[prod×gke] clusters: Namespace/") and "does not allow 169.254.169.254/32" in f
        for f in findings
    ), findings


def test_local_path_on_a_cloud_flavour(world: World) -> None:
    path = world.work / "components/clusters/eks/kustomization.yaml"
    path.write_text(path.read_text().replace("value: gp3", "value: local-path"))
    findings = _findings(world)
    expected = "[prod×eks] clusters: StatefulSet/postgresql-prod/postgres: storage class local-path on eks"
    assert any(expected in f for f in findings), findings


def test_a_fleet_cluster_that_no_applicationset_selects(world: World) -> None:
    path = world.work / "promotion.yaml"
    path.write_text(path.read_text().replace("    flavour: eks\n", "    flavour: k3d\n"))
    findings = _findings(world)
    assert any("cluster eks-prod (k3d) is not selected" in f for f in findings), findings


def test_an_applicationset_that_does_not_select_by_environment(world: World) -> None:
    path = world.work / "argocd/apps/applicationset-prod.yaml"
    path.write_text(path.read_text().replace("            wealist.io/environment: prod\n", ""))
    findings = _findings(world)
    assert any("must be a clusters generator selecting wealist.io/environment: prod" in f for f in findings)


def test_every_fleet_render_passes() -> None:
    report = validate(ROOT, CRDS if CRDS.is_dir() else None)
    assert report.findings == []
    assert set(report.objects) == {"dev×k3d", "prod×gke", "prod×eks"}


# -- prod changes only through review ------------------------------------------------------------


REPO = "/repos/wealist/wealist-gitops"


@pytest.fixture
def deploy_world(world: World) -> World:
    git(world.work, "push", "-q", "origin", "HEAD:refs/heads/deploy/prod")
    return world


def _merge(world: World, path: str = "overlays/prod/kustomization.yaml") -> str:
    file = world.work / path
    file.write_text(file.read_text() + "# reviewed change\n")
    sha = world.commit_all("a reviewed change")
    git(world.work, "push", "-q", "origin", "HEAD:main")
    return sha


def _pull(
    github: FakeGitHub, sha: str, reviews: list[tuple[str, str]], commits: list[str] | None = None
) -> None:
    github.routes[("GET", f"{REPO}/commits/{sha}/pulls")] = (
        200, [{"number": 7, "merged_at": "2026-11-25T10:00:00Z", "merge_commit_sha": sha}],
    )  # fmt: skip
    github.routes[("GET", f"{REPO}/pulls/7")] = (200, {"number": 7, "user": {"login": "alice"}})
    github.routes[("GET", f"{REPO}/pulls/7/reviews?per_page=100")] = (
        200, [{"user": {"login": user}, "state": state} for user, state in reviews],
    )  # fmt: skip
    github.routes[("GET", f"{REPO}/pulls/7/commits?per_page=250")] = (
        200,
        [{"sha": c} for c in commits or [sha]],
    )


def test_an_approved_merge_moves_the_deploy_branch(deploy_world: World, github: FakeGitHub) -> None:
    from wealist.deploy import advance

    sha = _merge(deploy_world)
    _pull(github, sha, [("bob", "APPROVED")])
    decision = advance(deploy_world.work, "prod", sha)
    assert (decision.moved, decision.pull_request, decision.reason) == (True, 7, "approved by bob")
    assert git(deploy_world.origin, "rev-parse", "deploy/prod") == sha
    assert all(r.headers["Authorization"] == "Bearer ghp_testtoken0123456789" for r in github.requests)


def test_a_direct_push_leaves_prod_where_it_is(deploy_world: World, github: FakeGitHub) -> None:
    from wealist.deploy import advance

    before = git(deploy_world.origin, "rev-parse", "deploy/prod")
    sha = _merge(deploy_world)
    github.routes[("GET", f"{REPO}/commits/{sha}/pulls")] = (200, [])
    decision = advance(deploy_world.work, "prod", sha)
    assert (decision.moved, decision.pull_request) == (False, None)
    assert git(deploy_world.origin, "rev-parse", "deploy/prod") == before


@pytest.mark.parametrize(
    ("reviews", "message"),
    [
        ([], "merged without an approval"),
        ([("alice", "APPROVED")], "merged without an approval"),  # the author's own approval
        ([("bob", "APPROVED"), ("carol", "CHANGES_REQUESTED")], "changes requested by carol"),
        ([("bob", "APPROVED"), ("bob", "DISMISSED")], "merged without an approval"),
    ],
)
def test_an_unapproved_merge_is_refused(
    deploy_world: World, github: FakeGitHub, reviews: list[tuple[str, str]], message: str
) -> None:
    from wealist.deploy import advance

    before = git(deploy_world.origin, "rev-parse", "deploy/prod")
    sha = _merge(deploy_world)
    _pull(github, sha, reviews)
    with pytest.raises(RefusedError, match=message):
        advance(deploy_world.work, "prod", sha)
    assert git(deploy_world.origin, "rev-parse", "deploy/prod") == before


def test_unreviewed_commits_riding_along_are_refused(deploy_world: World, github: FakeGitHub) -> None:
    from wealist.deploy import advance

    sneaked = _merge(deploy_world, "base/postgres/statefulset.yaml")  # pushed directly, never reviewed
    sha = _merge(deploy_world)
    _pull(github, sha, [("bob", "APPROVED")])
    with pytest.raises(
        RefusedError,
        match=rf"1 commit\(s\) since deploy/prod changed what prod renders without review \({sneaked[:10]}\)",
    ):
        advance(deploy_world.work, "prod", sha)


def test_the_rulesets_and_the_workflow_enforce_it() -> None:
    import json
    import shlex

    from wealist.cli import cli as wealist_cli

    deploy = json.loads((ROOT / ".github/rulesets/deploy-branches.json").read_text())
    assert deploy["conditions"]["ref_name"]["include"] == ["refs/heads/deploy/**"]
    assert {r["type"] for r in deploy["rules"]} == {"creation", "update", "deletion", "non_fast_forward"}
    assert [a["actor_type"] for a in deploy["bypass_actors"]] == ["Integration"]
    main = json.loads((ROOT / ".github/rulesets/main.json").read_text())
    assert {r["type"] for r in main["rules"]} == {"deletion", "non_fast_forward"}
    workflow = YAML(typ="safe").load((ROOT / ".github/workflows/prod-approved.yml").read_text())
    assert workflow.get(True, workflow.get("on"))["push"]["branches"] == ["main"]  # `on` may read as true
    job = workflow["jobs"]["deploy-approved"]
    assert job["environment"] == "prod-deploy"
    run = job["steps"][-1]["run"]
    argv = shlex.split(run.split("&&")[-1])
    command = wealist_cli.commands[argv[1]]
    assert {a for a in argv[2:] if a.startswith("--")} <= {o for p in command.params for o in p.opts}
