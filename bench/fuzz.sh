#!/usr/bin/env bash
# A long fuzzing run (issue 10): the same tests CI runs with a few examples per operation, with many more.
#   tests/test_fuzz_proxy.py        schemathesis against the proxy's /openapi.json, every operation, positive and
#                                   negative requests, master key and a virtual key (CI: 25 per operation and mode)
#   tests/test_fuzz_translators.py  hypothesis properties of validate_create / validate_passthrough and the four
#                                   translators against their strict fakes' validators (CI: 200 per property)
# Examples are derandomized: the same count always sends the same requests. A failure prints the request
# (schemathesis: a curl line) that reproduces it.
# Usage: bench/fuzz.sh [pytest args]      Env: EXAMPLES (default 500), PYTHON (default /tmp/rg-venv/bin/python)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
RESPGATE_FUZZ_EXAMPLES=${EXAMPLES:-500} exec "${PYTHON:-/tmp/rg-venv/bin/python}" -m pytest -q \
    tests/test_fuzz_proxy.py tests/test_fuzz_translators.py "$@"
