#!/usr/bin/env bash
# One command from a fresh clone to a running proxy on 127.0.0.1:4000: installs into .venv, then
# `respgate serve` (no --config: the built-in example with the mock/* models, plus OpenAI/Azure
# when OPENAI_API_KEY / AZURE_API_KEY are set). Extra arguments go to `respgate serve`.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup-venv.sh"
exec "${RESPGATE_VENV:-$root/.venv}/bin/respgate" serve "$@"
