#!/usr/bin/env bash
# Creates .venv with the package and its test dependencies; reruns only when pyproject changes.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.installed
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
  exit 0
fi
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c "import ensurepip" 2>/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  else
    echo "python3-venv is missing: sudo apt-get install -y python3-venv" >&2
    exit 1
  fi
fi
python3 -m venv .venv
echo "installing Python dependencies into .venv" >&2
if ! { .venv/bin/pip install --disable-pip-version-check -U pip &&
       .venv/bin/pip install --disable-pip-version-check -e '.[test]'; } >.venv/pip.log 2>&1; then
  cat .venv/pip.log >&2
  exit 1
fi
touch "$stamp"
