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

step wealist status
step wealist-promote --env dev --tag v1.1.0 -m "board filters" --push
step wealist-promote --env prod --from dev --dry-run
step wealist-promote --env prod --from dev
echo
echo "(a reviewer merges the pull request; Argo CD then syncs prod)"
git fetch -q origin
git merge -q --ff-only origin/promote/prod/v1.1.0
git push -q origin HEAD:main
step wealist status
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
