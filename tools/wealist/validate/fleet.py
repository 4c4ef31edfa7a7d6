"""The fleet: what each cluster flavour must set, and whose key opens each environment's secrets."""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..render import Object, name_of
from .facts import FLAVOUR_DNS, LOCAL_FLAVOURS, LOCAL_STORAGE
from .network import dns_allowed_to, policies_in
from .report import Report


def check_flavour(flavour: str, objects: list[Object], report: Report, label: str) -> None:
    """What the cluster's flavour must set: storage and ingress classes, the ingress data path, DNS.

    Long because it is a checklist of what a flavour must set."""

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
                add(name_of(obj), f"no storageClassName: the {flavour} flavour must name its storage class")
            elif storage_class in LOCAL_STORAGE and flavour not in LOCAL_FLAVOURS:
                add(
                    name_of(obj),
                    f"storage class {storage_class} on {flavour}: a node-local volume that does not exist "
                    "there (and would vanish with its node)",
                )
        if obj.get("kind") == "Ingress" and not spec.get("ingressClassName"):
            add(name_of(obj), f"no ingressClassName: the {flavour} flavour must name its ingress class")
    for address in FLAVOUR_DNS.get(flavour, ()):
        for ns in sorted(
            {
                str((o.get("metadata") or {}).get("namespace"))
                for o in objects
                if o.get("kind") == "NetworkPolicy"
            }
        ):
            if not dns_allowed_to(policies_in(objects, ns), address):
                add(
                    f"Namespace/{ns}",
                    f"DNS egress does not allow {address}/32 on port 53: on {flavour} with node-local DNS "
                    "every lookup would be blocked",
                )


def check_sealing(root: Path, cfg: Config, rendered: dict[str, list[Object]], report: Report) -> None:
    """Every cluster opens the SealedSecrets of the environment it runs: each carries the
    fingerprint of the key it was sealed for, and that must be the key of the cluster's certificate.

    Long because every way a cluster can fail to open a secret gets its own finding."""
    from ..errors import WealistError
    from ..seal import SEALED_FOR, fingerprint, load_public_key

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
                    name_of(obj),
                    f"records no {SEALED_FOR}: re-seal it with wealist seal --cluster {cluster.name}",
                    cluster.environment,
                )
            elif sealed_for != key:
                report.add(
                    "secrets",
                    name_of(obj),
                    f"was sealed for key {sealed_for[:19]}…, but cluster {cluster.name} runs "
                    f"{cluster.environment} with key {key[:19]}…: it would not open there (re-seal, or give "
                    "the cluster the same key)",
                    cluster.environment,
                )
