"""The Argo CD health gate: promoting to prod needs dev's Application to run the reference now,
proved by its status (a stand-in of Argo CD's API whose every answer validates against Argo CD's
own OpenAPI document)."""

from __future__ import annotations

import pytest

from conftest import FakeArgoCD, Snapshot, World, application, git
from wealist.errors import RefusedError
from wealist.plan import PromotionRequest
from wealist.promote import promote

APP = "wealist-dev-in-cluster"  # the ApplicationSet's name for dev on the in-cluster cluster
LIVE = [
    "k3d-wealist-registry:5000/wealist/board-api:v1.1.0",
    "k3d-wealist-registry:5000/wealist/frontend:v1.1.0",
    "postgres:16-alpine",
]


def quiet(_message: str) -> None:
    pass


@pytest.fixture
def gated(world: World, argocd: FakeArgoCD) -> World:
    """dev runs v1.1.0 (committed); promotion.yaml names the stand-in Argo CD."""
    world.write("promotion.yaml", world.read("promotion.yaml") + f"argocd:\n  server: {argocd.url}\n")
    world.commit_all("ask Argo CD")
    promote(world.work, PromotionRequest(env="dev", tag="v1.1.0"), quiet)
    return world


def to_prod(world: World, **options: object) -> object:
    request = PromotionRequest(env="prod", source_env="dev", delivery="direct", **options)  # type: ignore[arg-type]
    return promote(world.work, request, quiet)


def test_without_argocd_the_plan_says_git_history_alone(world: World) -> None:
    promote(world.work, PromotionRequest(env="dev", tag="v1.1.0"), quiet)
    result = to_prod(world, dry_run=True)
    assert result.plan.gate == "git history only: promotion.yaml names no Argo CD to ask"  # type: ignore[attr-defined]


def test_a_healthy_application_running_the_promotion_lets_it_through(
    gated: World, argocd: FakeArgoCD
) -> None:
    dev_promotion = gated.head()
    argocd.apps[APP] = [application(APP, dev_promotion, LIVE)]
    result = to_prod(gated)
    assert result.commit == gated.head()  # type: ignore[attr-defined]
    evidence = [c.evidence for c in result.plan.changes]  # type: ignore[attr-defined]
    assert all(f"Argo CD: {APP} Healthy at {dev_promotion[:10]}" in e for e in evidence), evidence
    assert argocd.requests[0] == (f"/api/v1/applications/{APP}", "Bearer argocd-test-token-0123456789")


def test_argocd_is_asked_while_the_render_and_the_git_checks_run(
    gated: World, argocd: FakeArgoCD, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate's questions wait on the network, so they leave as soon as the draft renders: by
    the time the checkout's own checks run, Argo CD has been asked; the answer is used once."""
    import time

    import wealist.promote

    argocd.apps[APP] = [application(APP, gated.head(), LIVE)]
    seen: list[int] = []
    real_clean = wealist.promote.check_clean

    def clean(*args: object) -> None:
        deadline = time.monotonic() + 10
        while not argocd.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append(len(argocd.requests))
        real_clean(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(wealist.promote, "check_clean", clean)
    result = to_prod(gated)
    assert result.commit == gated.head()  # type: ignore[attr-defined]
    assert seen == [1]
    assert [path for path, _ in argocd.requests] == [f"/api/v1/applications/{APP}"]


def test_a_stale_status_is_refreshed_then_trusted(gated: World, argocd: FakeArgoCD) -> None:
    # The last sync finished after the status was reconciled: it may describe the state before.
    before = gated.head()
    old = application(
        APP, git(gated.work, "rev-parse", "HEAD~1"), LIVE[2:], reconciled="2025-12-31T23:00:00Z"
    )
    argocd.apps[APP] = [old, application(APP, before, LIVE)]
    to_prod(gated)
    assert [path for path, _ in argocd.requests] == [
        f"/api/v1/applications/{APP}",
        f"/api/v1/applications/{APP}?refresh=normal",
    ]


@pytest.mark.parametrize(
    ("state", "said"),
    [
        ({"operation": True, "phase": "Running", "finished": None}, "an operation is in flight (Running)"),
        (
            {
                "health": "Degraded",
                "resources": (("Deployment", "board-api", "Degraded", "CrashLoopBackOff"),),
            },
            "health Degraded: Deployment/board-api: Degraded (CrashLoopBackOff)",
        ),
        ({"health": "Progressing"}, "health Progressing"),
        (
            {"conditions": (("ComparisonError", "rpc error: repository not accessible"),)},
            "ComparisonError: rpc error: repository not accessible",
        ),
        (
            {"images": LIVE[1:]},
            "k3d-wealist-registry:5000/wealist/board-api:v1.1.0 is not among its live images",
        ),
        ({"healthy_since": "2999-01-01T00:00:00Z"}, "Healthy only since 2999-01-01"),
        ({"revision": "previous"}, "which does not contain the promotion"),
    ],
)
def test_what_does_not_prove_it_runs_is_refused(
    gated: World, argocd: FakeArgoCD, state: dict, said: str
) -> None:
    revision = git(gated.work, "rev-parse", "HEAD~1") if state.pop("revision", None) else gated.head()
    images = state.pop("images", LIVE)
    argocd.apps[APP] = [application(APP, revision, images, **state)]
    before = Snapshot.take(gated.work)
    with pytest.raises(RefusedError) as caught:
        to_prod(gated)
    assert f"{APP}: " in caught.value.message and said in caught.value.message
    assert caught.value.message.endswith("Promote to dev first, or pass --force")
    assert Snapshot.take(gated.work) == before


def test_force_overrides_the_gate_and_the_commit_records_it(gated: World, argocd: FakeArgoCD) -> None:
    argocd.apps[APP] = [application(APP, gated.head(), LIVE, health="Degraded")]
    to_prod(gated, force=True)
    assert f"Wealist-Forced: {APP}: health Degraded" in git(gated.work, "log", "-1", "--format=%B")


def test_without_a_token_the_gate_refuses_in_one_line(
    gated: World, argocd: FakeArgoCD, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ARGOCD_AUTH_TOKEN")
    with pytest.raises(RefusedError, match="ARGOCD_AUTH_TOKEN is not set"):
        to_prod(gated)
    monkeypatch.setenv("ARGOCD_AUTH_TOKEN", "wrong-token-0123")
    with pytest.raises(RefusedError, match="answered 401: ARGOCD_AUTH_TOKEN was not accepted"):
        to_prod(gated)


def test_status_live_shows_argocd_beside_git_with_drift(gated: World, argocd: FakeArgoCD) -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    # dev's git says v1.1.0; the cluster still runs v1.0.0 of board-api.
    live = ["k3d-wealist-registry:5000/wealist/board-api:v1.0.0", LIVE[1]]
    argocd.apps[APP] = [application(APP, git(gated.work, "rev-parse", "HEAD~1"), live)]
    for name in ("wealist-prod-gke-prod", "wealist-prod-eks-prod"):
        argocd.apps[name] = [
            application(
                name, gated.head(), ["ghcr.io/wealist/board-api:v1.0.0", "ghcr.io/wealist/frontend:v1.0.0"]
            )
        ]
    wealist = str(Path(sys.executable).parent / "wealist")
    proc = subprocess.run(
        [wealist, "status", "--live", "--format", "json"], cwd=gated.work, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    apps = {a["application"]: a for a in json.loads(proc.stdout)["live"]}
    assert apps[APP]["drift"] == ["board-api"]
    assert (
        apps["wealist-prod-gke-prod"]["drift"] == [] and apps["wealist-prod-eks-prod"]["health"] == "Healthy"
    )
    text = subprocess.run(
        [wealist, "status", "--live"], cwd=gated.work, capture_output=True, text=True
    ).stdout
    assert (
        f"argocd: dev {APP}: Synced, Healthy, at " in text and "DRIFT: board-api not live as git says" in text
    )


def test_out_of_sync_for_another_reason_does_not_block(gated: World, argocd: FakeArgoCD) -> None:
    # sync.status can stay OutOfSync for reasons unrelated to the promotion (an ignored field, a
    # resource someone edited): the synced revision, health and live images are what count.
    document = application(APP, gated.head(), LIVE)
    document["status"]["sync"]["status"] = "OutOfSync"
    argocd.apps[APP] = [document]
    assert to_prod(gated).commit is not None  # type: ignore[attr-defined]


def test_a_missing_application_is_refused(gated: World, argocd: FakeArgoCD) -> None:
    with pytest.raises(RefusedError, match=f"applications/{APP} answered 404: no such application"):
        to_prod(gated)


def test_validate_checks_the_application_names_the_gate_asks_for(world: World) -> None:
    from wealist.validate import validate

    path = "argocd/apps/applicationset-dev.yaml"
    world.write(path, world.read(path).replace("name: 'wealist-dev-{{ .name }}'", "name: 'dev-{{ .name }}'"))
    findings = [str(f) for f in validate(world.work).findings]
    assert any("names its Applications 'dev-{{ .name }}'; wealist asks Argo CD for" in f for f in findings), (
        findings
    )
