"""What Argo CD does with the objects: sync-wave order, waves nothing can hold back, data kept
when an Application is deleted."""

from __future__ import annotations

import itertools
from typing import Any

from ..config import Environment
from ..render import Object, name_of
from .facts import LAGGING_KINDS, SYNC_OPTIONS
from .objects import find_object, wave_of


def check_sync_waves(env: Environment, objects: list[Object], add: Any) -> None:
    """namespaces < secrets and config < postgres < board-api < frontend."""

    def workload_wave(kind: str, name: str, component: str) -> int | None:
        obj = find_object(objects, kind, name, env.namespace(component))
        return None if obj is None else wave_of(obj)

    ns_waves = [wave_of(o) for o in objects if o.get("kind") == "Namespace"]
    config_waves = [wave_of(o) for o in objects if o.get("kind") in ("Secret", "SealedSecret", "ConfigMap")]
    order = [
        ("Namespaces", max(ns_waves, default=None)),
        ("Secrets and ConfigMaps", max(config_waves, default=None)),
        ("postgres", workload_wave("StatefulSet", "postgres", "postgres")),
        ("board-api", workload_wave("Deployment", "board-api", "board-api")),
        ("frontend", workload_wave("Deployment", "frontend", "frontend")),
    ]
    present = [(what, wave) for what, wave in order if wave is not None]
    for (first, a), (second, b) in itertools.pairwise(present):
        if not a < b:
            add("sync-waves", env.name, f"{first} (wave {a}) must sync before {second} (wave {b})")


def check_lagging_waves(objects: list[Object], add: Any) -> None:
    """Objects whose health may lag sit in the last wave, so they never hold back a workload."""
    others = [wave_of(o) for o in objects if o.get("kind") not in LAGGING_KINDS]
    last = max(others, default=0)
    for obj in objects:
        if obj.get("kind") in LAGGING_KINDS and wave_of(obj) < last:
            add(
                "sync-waves",
                name_of(obj),
                f"in wave {wave_of(obj)}, before wave {last}: its health may lag (no metrics, no load "
                "balancer, no consumer yet) and Argo CD would wait on it; move it to the last wave",
            )


def check_data_kept(objects: list[Object], add: Any) -> None:
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
                name_of(obj),
                f"holds data but lacks {SYNC_OPTIONS}: {','.join(missing)} (deleting the Application "
                "would delete it, and the volumes with it)",
            )
        policy = ((obj.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {}).get(
            "whenDeleted"
        )
        if policy == "Delete":
            add(
                "data",
                name_of(obj),
                "persistentVolumeClaimRetentionPolicy.whenDeleted: Delete drops the data",
            )
