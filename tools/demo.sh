#!/usr/bin/env bash
# The main job, on a scratch world: a bare "origin" made from this repository and a clone of it in a
# temporary directory. Promotes dev, previews and opens the prod promotion (a pull-request branch;
# without GITHUB_TOKEN the compare URL is printed), merges it as a reviewer would, then shows status,
# history and a rollback plan. Nothing outside the temporary directory changes.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/venv.sh
source "$here/venv.sh"
unset GITHUB_TOKEN   # the demo never talks to a real forge

scratch=$(mktemp -d "${TMPDIR:-/tmp}/wealist-demo.XXXXXX")
git clone -q --bare "$repo" "$scratch/origin.git"
git clone -q "$scratch/origin.git" "$scratch/gitops"
cd "$scratch/gitops"
git config user.name >/dev/null || git config user.name "weAlist demo"
git config user.email >/dev/null || git config user.email "demo@wealist.invalid"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
refused() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@" || printf '(refused: exit %s)\n' "$?"; }

# Every promotion asks the registry first. With Debian's docker-registry installed, the demo runs
# one on 127.0.0.1 holding the demo's images and points both registries (k3d's and prod's) at it.
if command -v docker-registry >/dev/null; then
  python "$here/registrylab.py" serve "$scratch/registry" >"$scratch/registry.address" 2>"$scratch/registry.log" &
  registry_pid=$!
  trap 'kill "$registry_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 200); do [ -s "$scratch/registry.address" ] && break; sleep 0.1; done
  address=$(cat "$scratch/registry.address")
  sed -i "s|    address: localhost:5001|    address: $address|" promotion.yaml
  sed -i "/^registries:/a\\  ghcr.io:  # demo only: prod's registry, played by the local one\n    address: $address\n    plain-http: true" promotion.yaml
  git commit -qam "demo: the registries are the local one at $address" && git push -q
  printf '(a registry runs at %s with board-api and frontend v1.0.0 and v1.1.0)\n' "$address"
else
  export WEALIST_NO_VERIFY_IMAGE=1
  printf '(docker-registry is not installed: images are not verified, and the commits say so;\n'
  printf ' apt-get install docker-registry to see the registry check)\n'
fi

step wealist status
refused wealist-promote --env dev --tag v1.2 -m "a typo: there is no v1.2"
step wealist-promote --env dev --tag v1.1.0 -m "board filters" --push
step wealist-promote --env prod --from dev --dry-run
step wealist-promote --env prod --from dev
echo
echo "(a reviewer merges the pull request; Argo CD then syncs prod)"
git fetch -q origin
git merge -q --ff-only origin/promote/prod/v1.1.0
git push -q origin HEAD:main
step wealist status
if [ -z "${WEALIST_NO_VERIFY_IMAGE:-}" ]; then step wealist status --registry; fi
step wealist history
step wealist rollback --env prod --dry-run
# The rehearsal starts dev for real against this machine's PostgreSQL (root only).
if reason=$(python -c 'from wealist.rehearse import unavailable; print(unavailable() or "")') && [ -z "$reason" ]; then
  step wealist rehearse --env dev
else
  printf '\n(wealist rehearse skipped: %s)\n' "$reason"
fi
# WEALIST_CRDS=<dir of Argo CD CRDs> makes validate check argocd/ against them too.
step wealist validate
printf '\nThe scratch world is in %s (origin.git and gitops/); delete it when done.\n' "$scratch"
