"""The rehearsal: every environment starts for real against a real PostgreSQL, and each defect the
first deploy would have hit makes it fail, with a message that says what Kubernetes would do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ROOT, World
from wealist.rehearse import HOSTILE_PASSWORD, RESTORE_COMMAND, Report, rehearse_objects, unavailable
from wealist.render import find_renderer, parse_objects

REASON = unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"cannot rehearse here: {REASON}")

# What a rehearsal of a healthy environment must have done, in this order.
EXPECTED_STEPS = [
    "postgres-0/postgres: start",
    "postgres-0/postgres: readinessProbe",
    "postgres-0/postgres: livenessProbe",
    "board-api-0/wait-for-postgres (init container)",
    "board-api-0/board-api: DATABASE_URL",
    "board-api-0/board-api: least privilege",
    "postgres-backup-job/backup",
    "postgres-backup-job/backup: retention",
    "postgres-0/postgres: fresh server for the restore",
    "restore",
    "postgres-0/postgres: restart on its volume",
    "postgres-0/postgres: stop (preStop hook)",
    "postgres-0/postgres: livenessProbe while recovering",
    "postgres-0/postgres: readinessProbe while recovering",
    "postgres-0/postgres: livenessProbe with no server",
]


def rehearse(root: Path, env: str, timeout: float = 20.0) -> Report:
    objects = parse_objects(find_renderer().build(root / "overlays" / env))
    return rehearse_objects(env, objects, timeout, lambda _message: None)


def failure(report: Report, name: str) -> str:
    """The detail of the failed step ``name``; fails the test if that step did not fail."""
    failed = {s.name: s.detail for s in report.failures}
    assert name in failed, f"{name} did not fail; failures: {failed}"
    return failed[name]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_every_environment_starts_and_survives_backup_restore_and_recovery(env: str) -> None:
    report = rehearse(ROOT, env)
    assert [(s.name, s.detail) for s in report.failures] == []
    assert [s.name for s in report.steps] == EXPECTED_STEPS
    by_name = {s.name: s.detail for s in report.steps}
    assert by_name["restore"].endswith("3 rows, the same")
    assert (
        by_name["board-api-0/board-api: least privilege"] == "no superuser; may not create roles or databases"
    )
    # Only the database's own Services are mapped, by their cluster DNS names.
    assert (
        f"cluster DNS mapped to the database pod: postgres-headless.postgresql-{env}.svc.cluster.local, "
        in (" ".join(report.skipped))
    )
    # The generated passwords never reach the report.
    assert HOSTILE_PASSWORD not in json.dumps(report.as_json())


def _edit(world: World, path: str, old: str, new: str) -> None:
    text = world.read(path)
    assert old in text, f"{old!r} not in {path}"
    world.write(path, text.replace(old, new, 1))


def test_pg_isready_without_a_user_never_ends_the_wait(world: World) -> None:
    _edit(world, "base/board-api/deployment.yaml", ' -U "$DB_USER" -t 2', " -t 2")
    report = rehearse(world.work, "dev", timeout=4)
    detail = failure(report, "board-api-0/wait-for-postgres (init container)")
    assert detail.startswith("did not finish within 4 s; Kubernetes would wait forever")
    assert "no attempt" in detail


def test_a_password_inside_the_url_breaks_libpq(world: World) -> None:
    _edit(
        world,
        "base/board-api/deployment.yaml",
        "value: postgresql://$(DB_HOST):$(DB_PORT)/$(DB_NAME)",
        "value: postgresql://$(DB_USER):$(DB_PASSWORD)@$(DB_HOST):$(DB_PORT)/$(DB_NAME)",
    )
    report = rehearse(world.work, "dev", timeout=4)
    assert failure(report, "board-api-0/board-api: DATABASE_URL").startswith("libpq cannot use it: ")


def test_a_liveness_probe_that_treats_recovery_as_death_is_caught(world: World) -> None:
    _edit(world, "base/postgres/statefulset.yaml", "-p 5432; test $? -le 1", "-p 5432")
    report = rehearse(world.work, "dev", timeout=4)
    detail = failure(report, "postgres-0/postgres: livenessProbe while recovering")
    assert "the kubelet would restart the recovery again and again (exit 1" in detail


def test_pgdata_at_the_volume_root_fails_like_on_a_cloud_volume(world: World) -> None:
    # The rehearsal's claims carry lost+found at their root, as cloud block volumes do.
    _edit(
        world,
        "base/postgres/statefulset.yaml",
        "value: /var/lib/postgresql/data/pgdata",
        "value: /var/lib/postgresql/data",
    )
    report = rehearse(world.work, "dev", timeout=4)
    assert "It contains a lost+found directory" in failure(report, "postgres-0/postgres: start")


def test_without_the_init_script_the_app_role_does_not_exist(world: World) -> None:
    world.write("base/postgres/initdb/10-app-role.sh", "#!/bin/sh\nexit 0\n")
    report = rehearse(world.work, "dev", timeout=4)
    detail = failure(report, "board-api-0/board-api: DATABASE_URL")
    assert 'password authentication failed for user "wealist_app"' in detail


def test_a_dns_name_that_is_no_rendered_service_does_not_resolve(world: World) -> None:
    _edit(
        world, "overlays/dev/board-api/kustomization.yaml", "DB_HOST=postgres-service.", "DB_HOST=postgres."
    )
    report = rehearse(world.work, "dev", timeout=4)
    assert "did not finish within 4 s" in failure(report, "board-api-0/wait-for-postgres (init container)")
    assert "could not translate host name" in failure(report, "board-api-0/board-api: DATABASE_URL")


def test_the_readme_restore_procedure_is_the_rehearsed_one() -> None:
    assert RESTORE_COMMAND in (ROOT / "README.md").read_text()


def test_cli_reports_json_and_exit_codes(world: World) -> None:
    import subprocess
    import sys

    wealist = str(Path(sys.executable).parent / "wealist")
    proc = subprocess.run(
        [wealist, "rehearse", "--env", "dev", "--format", "json"],
        cwd=world.work,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["ok"] is True and data["env"] == "dev"
    assert [s["name"] for s in data["steps"]] == EXPECTED_STEPS
    _edit(world, "base/board-api/deployment.yaml", ' -U "$DB_USER" -t 2', " -t 2")
    proc = subprocess.run(
        [wealist, "rehearse", "--env", "dev", "--timeout", "3"],
        cwd=world.work,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == "Error: 1 step(s) failed: dev would not start as rendered"
    assert "FAIL board-api-0/wait-for-postgres (init container): did not finish within 3 s" in proc.stdout
    proc = subprocess.run(
        [wealist, "rehearse", "--env", "qa"], cwd=world.work, capture_output=True, text=True
    )
    assert (proc.returncode, proc.stderr.strip()) == (
        2,
        "Error: unknown environment 'qa' (promotion.yaml has: dev, prod)",
    )


BEFORE_THE_FIX = "b79a293de699"  # the commit that added the rehearsal, with the manifests it found broken


def test_the_manifests_before_the_fix_fail_the_rehearsal(tmp_path: Path) -> None:
    """The first deploy's defects, found by the rehearsal on the manifests as they were."""
    import subprocess

    probe = subprocess.run(["git", "cat-file", "-e", f"{BEFORE_THE_FIX}^{{commit}}"], cwd=ROOT, check=False)
    if probe.returncode != 0:
        pytest.skip(f"commit {BEFORE_THE_FIX} is not in this clone (shallow?)")
    archive = subprocess.run(
        ["git", "archive", "--format=tar", BEFORE_THE_FIX, "base", "overlays"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tmp_path)], input=archive, check=True)
    report = rehearse(tmp_path, "dev", timeout=3)
    assert "no attempt" in failure(report, "board-api-0/wait-for-postgres (init container)")
    assert "invalid percent-encoded token" in failure(report, "board-api-0/board-api: DATABASE_URL")
    assert "restart the recovery again and again" in failure(
        report, "postgres-0/postgres: livenessProbe while recovering"
    )
