#!/usr/bin/env bash
# The test command: lint, types, then the whole suite in parallel (real git, real kustomize).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/venv.sh
source "$here/venv.sh" test
cd "$repo"
# The registry tests run the real registry server (Debian's docker-registry, with htpasswd for its
# Basic auth). Install them when this machine can (root + apt); otherwise those tests skip, saying why.
if ! command -v docker-registry >/dev/null || ! command -v htpasswd >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing docker-registry and apache2-utils (apt) for the registry tests ..." >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends docker-registry apache2-utils; } >/dev/null 2>&1 \
      || echo "note: could not install docker-registry: the registry tests will skip" >&2
  fi
fi
ruff check tools tests
ruff format --check tools tests
mypy
pytest -n auto -p no:cacheprovider "$@"
