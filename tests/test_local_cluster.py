"""The k3d config and bootstrap script: checked as far as a machine without a container engine can."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from conftest import ROOT, SCHEMAS

K3D = ROOT / "tools" / "local-cluster" / "k3d.yaml"
BOOTSTRAP = ROOT / "tools" / "local-cluster" / "bootstrap.sh"
SCHEMA = SCHEMAS / "k3d" / "config-v1alpha5.schema.json"


@pytest.mark.skipif(not SCHEMA.is_file(), reason=f"k3d schema not found at {SCHEMA}")
def test_k3d_config_validates_against_k3ds_schema() -> None:
    import jsonschema

    config = YAML(typ="safe").load(K3D.read_text())
    jsonschema.validate(config, json.loads(SCHEMA.read_text()))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**config, "agent": 2}, json.loads(SCHEMA.read_text()))  # typo'd key


def test_k3d_config_maps_the_ingress_and_creates_a_registry() -> None:
    config = YAML(typ="safe").load(K3D.read_text())
    assert (config["servers"], config["agents"]) == (1, 2)
    ports = {p["port"]: p["nodeFilters"] for p in config["ports"]}
    assert ports["8080:80"] == ["loadbalancer"]
    assert config["registries"]["create"]["hostPort"] == "5001"
    # dev's overlay names the registry as the nodes see it; containerd pulls it over HTTP.
    assert '"k3d-wealist-registry:5000":' in config["registries"]["config"]
    dev = (ROOT / "overlays/dev/kustomization.yaml").read_text()
    assert "newName: k3d-wealist-registry:5000/wealist/board-api" in dev
    assert config["metadata"]["name"] == "wealist"


def test_bootstrap_script_parses_and_applies_the_root_app() -> None:
    subprocess.run(["bash", "-n", str(BOOTSTRAP)], check=True)
    text = BOOTSTRAP.read_text()
    assert 'k3d cluster create --config "$here/k3d.yaml"' in text
    assert 'kubectl apply -k "$repo/argocd/bootstrap"' in text
    assert (ROOT / "argocd" / "bootstrap" / "root.yaml").is_file()
    # The local cluster registers itself as dev (k3d flavour); nothing in the script touches prod
    # (the old script advised re-sealing prod for the laptop's key, which would break real prod).
    assert 'kubectl apply -f "$here/in-cluster-secret.yaml"' in text
    secret = YAML(typ="safe").load((ROOT / "tools/local-cluster/in-cluster-secret.yaml").read_text())
    labels = secret["metadata"]["labels"]
    assert (labels["wealist.io/environment"], labels["wealist.io/flavour"]) == ("dev", "k3d")
    assert "wealist seal" not in text and "overlays/prod" not in text


def test_root_app_points_at_the_apps_directory() -> None:
    root = YAML(typ="safe").load((ROOT / "argocd" / "bootstrap" / "root.yaml").read_text())
    assert root["spec"]["source"]["path"] == "argocd/apps"
    assert Path(ROOT / "argocd" / "apps" / "kustomization.yaml").is_file()
