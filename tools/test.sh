#!/usr/bin/env bash
# The test command: lint, types, then the whole suite in parallel (real git, real kustomize).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/venv.sh
source "$here/venv.sh" test
cd "$repo"
ruff check tools tests
ruff format --check tools tests
mypy
pytest -n auto -p no:cacheprovider "$@"
