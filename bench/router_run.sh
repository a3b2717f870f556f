#!/usr/bin/env bash
# Throughput through a 3-deployment model group against a single deployment (issue 7), on the canned upstream
# that setup.sh serves (127.0.0.1:18080 JSON, :18090 SSE), measured like run.sh: one respgate worker pinned to
# CPU 1, wrk on CPU 0, store and master key on, native Responses passthrough (openai/gpt-4o).
# Four set-ups, each its own respgate start:
#   single        one deployment, no router_settings: the router is off (the gateway's plain path)
#   single+router the same deployment as a group of one, with the router engaged (num_retries: 2)
#   group3        three deployments in one group, simple-shuffle, in-memory router state
#   group3+redis  the same with router_settings naming Redis (127.0.0.1:6379): every decision reads it
# For each: rps and p50/p99 at c=1 and c=32 (non-stream), and streams/s at c=32 (stream).
# Usage: router_run.sh        Env: DUR (default 5), WARMUP (default 2), RESPGATE_VENV, BENCH_DIR, PORT (4100)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dur=${DUR:-5}
warmup=${WARMUP:-2}
run_dir=${BENCH_DIR:-/tmp/respgate-bench}
port=${PORT:-4100}
key=sk-bench
base=http://127.0.0.1:$port
load_cpu=0
gateway_cpu=1
respgate_bin=${RESPGATE_VENV:+$RESPGATE_VENV/bin/}respgate
command -v "$respgate_bin" >/dev/null || { echo "no respgate executable (set RESPGATE_VENV)" >&2; exit 1; }
curl -sf -o /dev/null --max-time 5 -X POST -d '{}' http://127.0.0.1:18080/v1/responses \
  || { echo "the canned upstream is not up: run bench/setup.sh first" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { load_cpu=0; gateway_cpu=0; }

deployment() {  # model_name port id
  printf '  - model_name: %s\n    litellm_params: {model: openai/gpt-4o, api_base: "http://127.0.0.1:%s/v1", api_key: sk-upstream}\n    model_info: {id: %s}\n' "$1" "$2" "$3"
}

write_config() {  # setup -- the config file for that set-up
  local file="$run_dir/router-$1.yaml" n
  {
    echo "model_list:"
    case $1 in
      single | single+router)
        deployment bench-one 18080 one; deployment bench-one-stream 18090 one-s ;;
      group3 | group3+redis)
        for n in 1 2 3; do deployment bench-one 18080 "g$n"; deployment bench-one-stream 18090 "gs$n"; done ;;
    esac
    case $1 in
      single) ;;
      single+router | group3) printf 'router_settings:\n  num_retries: 2\n' ;;
      group3+redis) printf 'router_settings:\n  num_retries: 2\n  redis_host: 127.0.0.1\n  redis_port: 6379\n  cache_kwargs: {namespace: respgate-bench-%s}\n' "$$" ;;
    esac
    printf 'general_settings:\n  master_key: %s\n  database_url: sqlite:///%s/router-bench.db\n' "$key" "$run_dir"
  } >"$file"
  echo "$file"
}

to_ms() {  # wrk latency ("812.00us", "1.20ms", "2.01s") -> milliseconds
  awk -v t="$1" 'BEGIN { v = t + 0; u = t; sub(/^[0-9.]+/, "", u)
    if (u == "us") v /= 1000; else if (u == "s") v *= 1000; printf "%.3f", v }'
}

wrk_run() {  # model connections seconds extra_json -- sets rps p50 p99 bad
  local out
  out=$(BENCH_KEY=$key BENCH_MODEL=$1 BENCH_EXTRA=$4 taskset -c "$load_cpu" \
        wrk -t1 -c"$2" -d"$3s" --timeout 10s --latency -s "$here/post-responses.lua" "$base/v1/responses")
  rps=$(echo "$out" | awk '/^Requests\/sec/ { printf "%.0f", $2 }')
  p50=$(to_ms "$(echo "$out" | awk '$1 == "50%" { print $2 }')")
  p99=$(to_ms "$(echo "$out" | awk '$1 == "99%" { print $2 }')")
  bad=$(echo "$out" | awk '/Non-2xx/ { n += $NF } /Socket errors/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 }
                           END { print n + 0 }')
}

# shellcheck source=gateway.sh
. "$here/gateway.sh"

printf '%-14s %9s %9s %9s %9s %9s %9s %12s %6s\n' setup "c1 rps" "c1 p50" "c1 p99" "c32 rps" "c32 p50" "c32 p99" \
  "streams/s" errors
for setup in single single+router group3 group3+redis; do
  config=$(write_config "$setup")
  rm -f "$run_dir"/router-bench.db*
  (cd "$run_dir" && exec taskset -c "$gateway_cpu" "$respgate_bin" serve --config "$config" --host 127.0.0.1 \
     --port "$port" --workers 1) >"$run_dir/router-$setup.log" 2>&1 &
  gateway_pid=$!
  await_gateway "$run_dir/router-$setup.log" "$key" 0.25
  wrk_run bench-one 32 "$warmup" ""
  wrk_run bench-one 1 "$dur" ""; c1="$rps $p50 $p99"; errors=$bad
  wrk_run bench-one 32 "$dur" ""; c32="$rps $p50 $p99"; errors=$((errors + bad))
  wrk_run bench-one-stream 32 "$dur" ',"stream":true'; streams=$rps; errors=$((errors + bad))
  # shellcheck disable=SC2086
  printf '%-14s %9s %9s %9s %9s %9s %9s %12s %6s\n' "$setup" $c1 $c32 "$streams" "$errors"
  stop_gateway
done
redis-cli --scan --pattern "respgate-bench-$$:*" 2>/dev/null | xargs -r redis-cli del >/dev/null 2>&1 || true
