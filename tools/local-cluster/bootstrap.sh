#!/usr/bin/env bash
# Bring weAlist's dev environment up on a laptop: a k3d cluster with its registry, Argo CD, the
# sealed-secrets controller, the projects, this cluster registered as a dev cluster (k3d flavour),
# and the root application. Never prod: prod's ApplicationSet selects only eks and gke clusters,
# and prod's SealedSecrets open only with the prod clusters' key.
# Needs: docker (or another engine k3d supports), k3d >= 5.6, kubectl >= 1.27. Idempotent.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cluster=wealist
argocd_version=${ARGOCD_VERSION:-v3.4.0}                 # bundles Kustomize 5.8
sealed_secrets_version=${SEALED_SECRETS_VERSION:-0.37.0}   # 0.36+ carries security fixes

for tool in docker k3d kubectl; do
  command -v "$tool" >/dev/null || { echo "Error: $tool is not installed" >&2; exit 1; }
done

if k3d cluster get "$cluster" >/dev/null 2>&1; then
  echo "cluster $cluster exists; starting it"
  k3d cluster start "$cluster"
else
  k3d cluster create --config "$here/k3d.yaml"
fi
kubectl config use-context "k3d-$cluster" >/dev/null

echo "installing Argo CD $argocd_version"
kubectl create namespace argocd --dry-run=client -o yaml | kubectl apply -f -
# Server-side apply: the ApplicationSet CRD is too large for a client-side apply annotation.
kubectl apply -n argocd --server-side --force-conflicts \
  -f "https://raw.githubusercontent.com/argoproj/argo-cd/${argocd_version}/manifests/install.yaml"

echo "installing the sealed-secrets controller $sealed_secrets_version"
kubectl apply \
  -f "https://github.com/bitnami-labs/sealed-secrets/releases/download/v${sealed_secrets_version}/controller.yaml"

kubectl -n argocd rollout status deployment/argocd-repo-server --timeout=300s
kubectl -n argocd rollout status statefulset/argocd-application-controller --timeout=300s
kubectl -n kube-system rollout status deployment/sealed-secrets-controller --timeout=300s

echo "registering this cluster as dev (k3d flavour) and applying the projects and the root application"
kubectl apply -f "$here/in-cluster-secret.yaml"
kubectl apply -k "$repo/argocd/bootstrap"

cat <<MSG

weAlist dev is syncing. Watch it:  kubectl -n argocd get applications -w
Argo CD UI:                        kubectl -n argocd port-forward svc/argocd-server 8081:443
  admin password:                  kubectl -n argocd get secret argocd-initial-admin-secret -o jsonpath='{.data.password}' | base64 -d
dev:                               http://dev.wealist.localhost:8080/
images:                            docker push localhost:5001/wealist/<component>:<tag>, then wealist-promote --env dev --tag <tag> --push
MSG
