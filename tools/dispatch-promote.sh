#!/usr/bin/env bash
# The promote workflow's step (.github/workflows/promote.yml): one wealist-promote run built from
# the dispatch's inputs. They arrive in the environment, never interpolated into shell text, and
# wealist-promote checks each one (environment and component names, the tag grammar) before anything
# changes. The tests run this very script against a scratch repository.
#   PROMOTE_ENV (required), PROMOTE_TAG or PROMOTE_FROM, PROMOTE_COMPONENTS (space-separated),
#   PROMOTE_WAIT (true|false), PROMOTE_TIMEOUT (default 15m), PROMOTE_REQUESTER (for the commit body)
set -euo pipefail
: "${PROMOTE_ENV:?PROMOTE_ENV (the environment to promote) is required}"
args=(--env "$PROMOTE_ENV" --push)
if [ -n "${PROMOTE_TAG:-}" ]; then args+=(--tag "$PROMOTE_TAG"); fi
if [ -n "${PROMOTE_FROM:-}" ]; then args+=(--from "$PROMOTE_FROM"); fi
read -r -a components <<<"${PROMOTE_COMPONENTS:-}"
for component in "${components[@]}"; do args+=(--component "$component"); done
if [ "${PROMOTE_WAIT:-false}" = true ]; then args+=(--wait --timeout "${PROMOTE_TIMEOUT:-15m}"); fi
args+=(-m "Requested by ${PROMOTE_REQUESTER:-automation} through the promote workflow.")
exec "${WEALIST_PROMOTE:-wealist-promote}" "${args[@]}"
