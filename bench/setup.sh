#!/usr/bin/env bash
# Prepares the side-by-side gateway benchmark, idempotently: installs wrk and nginx (apt), LiteLLM's proxy
# (the reference) in its own venv, writes the canned upstream's files into $BENCH_DIR and makes sure nginx
# serves them: instant JSON answers on 127.0.0.1:18080, streams on 127.0.0.1:18090 (SSE; Bedrock's binary
# event stream), for the OpenAI, Anthropic, Gemini and Bedrock APIs alike.
# Usage: setup.sh          -- install what is missing, (re)start the upstream; prints the LiteLLM venv last
#        setup.sh stop     -- stop the upstream this script started
# Env:   LITELLM_VENV (default /tmp/bench-litellm), BENCH_DIR (default /tmp/respgate-bench),
#        STREAM_DELTAS (text deltas per canned stream, default 100)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=${LITELLM_VENV:-/tmp/bench-litellm}
run_dir=${BENCH_DIR:-/tmp/respgate-bench}
litellm_version=1.100.5

nginx_ctl() {  # nginx with our prefix and config; extra args pass through (e.g. -s reload)
  nginx -p "$run_dir/" -c "$run_dir/upstream-nginx.conf" "$@"
}

our_nginx_running() {
  [ -s "$run_dir/nginx.pid" ] && kill -0 "$(cat "$run_dir/nginx.pid")" 2>/dev/null
}

answers() {  # url -- true when a POST gets a 2xx
  curl -sf -o /dev/null --max-time 5 -X POST -H 'Content-Type: application/json' -d '{}' "$1"
}

if [ "${1:-}" = stop ]; then
  if our_nginx_running; then nginx_ctl -s stop 2>/dev/null && echo "canned upstream stopped"; fi
  exit 0
fi

# 1. tools: wrk (load), nginx (upstream), taskset/curl/ps (run.sh)
missing=""
for tool in wrk nginx taskset curl ps python3; do
  command -v "$tool" >/dev/null || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  echo "installing:$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light util-linux curl procps python3 >/dev/null \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx util-linux curl procps python3 >/dev/null
fi

# 2. the reference: LiteLLM's proxy, pinned, in a venv of its own
if ! [ -x "$venv/bin/litellm" ]; then
  echo "installing litellm[proxy]==$litellm_version into $venv (takes a few minutes)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "litellm[proxy]==$litellm_version"
fi

# 3. the canned upstream: config and stream bodies live in $run_dir; the repository stays read-only
mkdir -p "$run_dir"
cp "$here/upstream-nginx.conf" "$run_dir/upstream-nginx.conf"
BENCH_DIR=$run_dir python3 "$here/gen-stream-conf.py" "${STREAM_DELTAS:-100}"
if our_nginx_running; then
  nginx_ctl -s reload 2>/dev/null && sleep 0.5
elif answers http://127.0.0.1:18080/v1/responses; then
  echo "note: something else already answers on 127.0.0.1:18080; leaving it alone" >&2
else
  nginx_ctl  # daemonizes; stop with `setup.sh stop`
  sleep 0.5
fi
answers http://127.0.0.1:18080/v1/responses || { echo "upstream :18080 does not answer" >&2; exit 1; }
answers http://127.0.0.1:18090/v1/responses || { echo "upstream :18090 does not answer" >&2; exit 1; }
echo "canned upstream up on 127.0.0.1:18080 (JSON) and 127.0.0.1:18090 (SSE)"
echo "$venv"
