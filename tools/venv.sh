# shellcheck shell=bash
# Sourced by demo.sh and test.sh: a virtual environment in .venv with the package and the given extras.
# Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "Error: Python 3.11+ is needed ($python is $("$python" -V 2>&1))" >&2; exit 1; }
venv="$repo/.venv"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
extras=${1:-}
stamp="$venv/.installed${extras:+-$extras}"
if [ ! -f "$stamp" ] || [ "$repo/pyproject.toml" -nt "$stamp" ]; then
  echo "installing wealist${extras:+[$extras]} into .venv ..." >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$repo${extras:+[$extras]}" >&2
  touch "$stamp"
fi
# The package is installed editable, so its bytecode is cached only when Python may write it: with
# PYTHONDONTWRITEBYTECODE set (common in CI images) every command would compile about 40 modules
# from source again (some 30 ms each run). compileall writes them regardless, and only what changed.
"$venv/bin/python" -m compileall -q "$repo/tools/wealist" >/dev/null
if ! command -v kustomize >/dev/null && ! command -v kubectl >/dev/null; then
  echo "Error: kustomize >= 5 or kubectl >= 1.27 must be on PATH" >&2
  exit 1
fi
export PATH="$venv/bin:$PATH"
