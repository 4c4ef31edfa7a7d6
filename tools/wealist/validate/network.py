"""NetworkPolicies, evaluated: which flows the rendered policies admit."""

from __future__ import annotations

from typing import Any

from ..config import Environment
from ..render import Object, name_of, pod_labels, pod_spec
from .facts import WORKLOADS
from .objects import find_object


def policies_in(objects: list[Object], ns: str) -> list[Object]:
    return [
        o
        for o in objects
        if o.get("kind") == "NetworkPolicy" and (o.get("metadata") or {}).get("namespace") == ns
    ]


def selects(policy: Object, labels: dict[str, str]) -> bool:
    selector = (policy.get("spec") or {}).get("podSelector") or {}
    return (selector.get("matchLabels") or {}).items() <= labels.items() and not selector.get(
        "matchExpressions"
    )


def peer_allows(peer: dict[str, Any], namespace: str, labels: dict[str, str] | None) -> bool:
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


def allowed(
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
        if direction not in (spec.get("policyTypes") or ["Ingress"]) or not selects(policy, pod_labels):
            continue
        for rule in spec.get(key) or []:
            ports = rule.get("ports") or []
            port_ok = not ports or any(p.get("port") in (port, None) for p in ports)
            peers = rule.get(peers_key)
            peer_ok = not peers or any(peer_allows(p, peer_ns, peer_labels) for p in peers)
            if port_ok and peer_ok:
                return True
    return False


def restricts(policies: list[Object], direction: str, pod_labels: dict[str, str]) -> bool:
    return any(
        direction in ((p.get("spec") or {}).get("policyTypes") or ["Ingress"]) and selects(p, pod_labels)
        for p in policies
    )


def check_network_policies(env: Environment, objects: list[Object], add: Any) -> None:
    """Default deny in every namespace, and the flows weAlist needs admitted: board-api to
    postgres, DNS from every workload, the ingress data path to the two apps."""
    for ns in sorted(env.all_namespaces):
        if not any(_denies_all_ingress(p) for p in policies_in(objects, ns)):
            add("network", f"Namespace/{ns}", "no default-deny ingress NetworkPolicy")
    _check_database_flow(env, objects, add)
    _check_dns(env, objects, add)
    for component in ("board-api", "frontend"):
        deploy = find_object(objects, "Deployment", component, env.namespace(component))
        if deploy is not None:
            port = _first_port(deploy, 0)
            if not _ingress_path_admitted(env, objects, deploy, port):
                add(
                    "network",
                    name_of(deploy),
                    f"no NetworkPolicy admits the ingress controller on port {port}",
                )


def _denies_all_ingress(policy: Object) -> bool:
    spec = policy.get("spec") or {}
    return (
        spec.get("podSelector") in ({}, None)
        and "Ingress" in (spec.get("policyTypes") or [])
        and not spec.get("ingress")
    )


def _first_port(workload: Object, default: int) -> int:
    ports = (
        p.get("containerPort")
        for c in pod_spec(workload).get("containers") or []
        for p in c.get("ports") or []
    )
    return int(next(ports, default))


def _check_database_flow(env: Environment, objects: list[Object], add: Any) -> None:
    api_ns, db_ns = env.namespace("board-api"), env.namespace("postgres")
    api = find_object(objects, "Deployment", "board-api", api_ns)
    db = find_object(objects, "StatefulSet", "postgres", db_ns)
    if api is None or db is None:
        return
    api_labels, db_labels, db_port = pod_labels(api), pod_labels(db), _first_port(db, 5432)
    if not allowed(policies_in(objects, db_ns), "Ingress", db_labels, api_ns, api_labels, db_port):
        add(
            "network",
            f"Namespace/{db_ns}",
            f"no NetworkPolicy lets board-api ({api_ns}) reach postgres on {db_port}",
        )
    api_policies = policies_in(objects, api_ns)
    if restricts(api_policies, "Egress", api_labels) and not allowed(
        api_policies, "Egress", api_labels, db_ns, db_labels, db_port
    ):
        add(
            "network",
            f"Namespace/{api_ns}",
            f"egress is restricted but board-api may not reach {db_ns}:{db_port}",
        )


def _check_dns(env: Environment, objects: list[Object], add: Any) -> None:
    for workload in (o for o in objects if o.get("kind") in WORKLOADS):
        ns = str((workload.get("metadata") or {}).get("namespace"))
        if ns not in env.all_namespaces:
            continue
        labels, policies = pod_labels(workload), policies_in(objects, ns)
        if restricts(policies, "Egress", labels) and not allowed(
            policies, "Egress", labels, "kube-system", None, 53
        ):
            add(
                "network",
                name_of(workload),
                "egress is restricted but DNS (kube-system, port 53) is not allowed",
            )


def _ingress_path_admitted(env: Environment, objects: list[Object], deploy: Object, port: int) -> bool:
    """The ingress data path: a controller's pods in another namespace, or a load balancer's
    address range (an ALB sending straight to pod IPs)."""
    labels = pod_labels(deploy)
    ns = str((deploy.get("metadata") or {}).get("namespace"))
    for policy in policies_in(objects, ns):
        if not selects(policy, labels):
            continue
        for rule in (policy.get("spec") or {}).get("ingress") or []:
            if not any(p.get("port") == port for p in rule.get("ports") or []):
                continue
            for peer in rule.get("from") or []:
                peer_ns = ((peer.get("namespaceSelector") or {}).get("matchLabels") or {}).get(
                    "kubernetes.io/metadata.name", ""
                )
                outside = bool(peer_ns) and peer_ns not in env.all_namespaces
                if "ipBlock" in peer or (outside and peer_allows(peer, peer_ns, None)):
                    return True
    return False


def dns_allowed_to(policies: list[Object], address: str) -> bool:
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
