#!/usr/bin/env bash
# Creates (or reuses) the project's virtualenv in .venv and installs respgate with its test tools.
# Sourced by serve.sh and test.sh; re-running it is cheap when nothing changed.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${RESPGATE_VENV:-$root/.venv}
py=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
fi
stamp="$venv/.respgate-installed"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  "$venv/bin/python" -m pip install -q -e "$root[test]"
  touch "$stamp"
fi
