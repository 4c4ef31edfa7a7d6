#!/usr/bin/env bash
# Bring weAlist up on a laptop: a k3d cluster, Argo CD, the sealed-secrets controller, and the root
# application, after which Argo CD syncs dev and prod from the repository by itself.
# Needs: docker (or another engine k3d supports), k3d >= 5.6, kubectl >= 1.27. Idempotent.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cluster=wealist
argocd_version=${ARGOCD_VERSION:-v3.4.0}                 # bundles Kustomize 5.8
sealed_secrets_version=${SEALED_SECRETS_VERSION:-0.32.2}

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

echo "applying the root application"
kubectl apply -k "$repo/argocd/bootstrap"

# This cluster's controller generated its own key: prod's SealedSecrets in git were sealed for
# another one. Save its certificate and say how to re-seal for it.
cert="${TMPDIR:-/tmp}/wealist-$cluster-sealed-secrets.pem"
kubectl -n kube-system get secret -l sealedsecrets.bitnami.com/sealed-secrets-key=active \
  -o jsonpath='{.items[0].data.tls\.crt}' | base64 -d >"$cert"

cat <<MSG

weAlist is syncing. Watch it:   kubectl -n argocd get applications -w
Argo CD UI:                     kubectl -n argocd port-forward svc/argocd-server 8081:443
  admin password:               kubectl -n argocd get secret argocd-initial-admin-secret -o jsonpath='{.data.password}' | base64 -d
dev:                            http://dev.wealist.localhost:8080/
prod:                           http://wealist.localhost:8080/  (its Secrets open only after re-sealing:)
  wealist seal --cert $cert --namespace postgresql-prod --name postgres-credentials \\
    --from-literal POSTGRES_USER=wealist --from-literal POSTGRES_PASSWORD=... \\
    --output overlays/prod/postgres/sealedsecret-postgres-credentials.yaml
  (and board-api-db in board-api-prod the same way, same password), then commit and push.
MSG
