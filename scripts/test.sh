#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs into .venv, makes sure the local PostgreSQL and
# Redis are up (tests that need them must run, not skip), then lint, types, and pytest.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/setup-venv.sh"
venv=${RESPGATE_VENV:-$root/.venv}
if command -v pg_ctlcluster >/dev/null 2>&1 && ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
fi
if command -v redis-server >/dev/null 2>&1 && ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
fi
if [ ! -x "${RESPGATE_CHROMIUM:-/usr/bin/chromium}" ]; then  # the admin UI's browser tests (tests/test_ui.py)
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi
"$venv/bin/ruff" check src tests bench
"$venv/bin/mypy"
"$venv/bin/python" -m pytest -q "$@"
