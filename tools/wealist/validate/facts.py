"""weAlist's facts that are not configuration: the Kubernetes version checked against, the
annotations Argo CD reads, what a cloud cluster needs. (Configuration lives in promotion.yaml.)"""

from __future__ import annotations

import re

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

# What a cloud cluster needs from a flavour, besides what every render is checked for. GKE and
# EKS offer node-local DNS (NodeLocal DNSCache answers on 169.254.20.10; GKE's Cloud DNS on the
# metadata server, 169.254.169.254): with it, pods never reach a kube-dns pod, so a DNS rule that
# admits only kube-dns pods blocks every lookup.
FLAVOUR_DNS = {"eks": ("169.254.20.10",), "gke": ("169.254.20.10", "169.254.169.254")}

LOCAL_STORAGE = ("local-path",)  # k3d's provisioner: a node's disk, gone with the node

LOCAL_FLAVOURS = ("k3d",)

DEV_ONLY = re.compile(r"dev|insecure|local|example", re.IGNORECASE)
K3D_SCHEMA = "k3d/config-v1alpha5.schema.json"  # in validate/schemas.sha256
K3D_CONFIG = "tools/local-cluster/k3d.yaml"
