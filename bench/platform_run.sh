#!/usr/bin/env bash
# What the platform costs (issue 8): throughput with virtual-key auth, spend logging and Prometheus metrics on,
# against the master key alone, on the canned upstream that setup.sh serves (127.0.0.1:18080 JSON, :18090 SSE).
# Measured like run.sh: one respgate worker pinned to CPU 1, wrk on CPU 0, store on, native passthrough.
# Set-ups, each its own respgate start:
#   master           the master key; spend logs off (general_settings.disable_spend_logs), no metrics
#   master+spend     the master key; spend logs on (the default)
#   vkey+spend+prom  a virtual key from /key/generate (rpm/tpm limits set, far above the load), spend logs
#                    on, `litellm_settings.callbacks: [prometheus]`
#   +redis           the same with router_settings naming Redis: the key's limits are counted there
# For each: rps and p50/p99 at c=1 and c=32 (non-stream), streams/s at c=32, and the gateway's CPU time per
# request at c=32 (user + system over all its threads, from /proc: steadier than rps on a shared machine);
# the last column is the c=32 rps as a share of `master`'s (the target: at least 90%). The set-ups run in
# turn ROUNDS times (a machine's drift hits them all alike); each figure is the median over the rounds.
# Usage: platform_run.sh   Env: DUR (default 5), WARMUP (default 2), ROUNDS (default 3), RESPGATE_VENV,
#                               BENCH_DIR, PORT (4200), SETUPS (default: all of platform_configs.sh's)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dur=${DUR:-5}
warmup=${WARMUP:-2}
rounds=${ROUNDS:-3}
run_dir=${BENCH_DIR:-/tmp/respgate-bench}
port=${PORT:-4200}
master=sk-bench-master
base=http://127.0.0.1:$port
load_cpu=0
gateway_cpu=1
respgate_bin=${RESPGATE_VENV:+$RESPGATE_VENV/bin/}respgate
command -v "$respgate_bin" >/dev/null || { echo "no respgate executable (set RESPGATE_VENV)" >&2; exit 1; }
curl -sf -o /dev/null --max-time 5 -X POST -d '{}' http://127.0.0.1:18080/v1/responses \
  || { echo "the canned upstream is not up: run bench/setup.sh first" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { load_cpu=0; gateway_cpu=0; }
mkdir -p "$run_dir"
# shellcheck source=platform_configs.sh
. "$here/platform_configs.sh"

to_ms() {  # wrk latency ("812.00us", "1.20ms", "2.01s") -> milliseconds
  awk -v t="$1" 'BEGIN { v = t + 0; u = t; sub(/^[0-9.]+/, "", u)
    if (u == "us") v /= 1000; else if (u == "s") v *= 1000; printf "%.3f", v }'
}

wrk_run() {  # key model connections seconds extra_json -- sets rps p50 p99 bad
  local out
  out=$(BENCH_KEY=$1 BENCH_MODEL=$2 BENCH_EXTRA=$5 taskset -c "$load_cpu" \
        wrk -t1 -c"$3" -d"$4s" --timeout 10s --latency -s "$here/post-responses.lua" "$base/v1/responses")
  rps=$(echo "$out" | awk '/^Requests\/sec/ { printf "%.0f", $2 }')
  p50=$(to_ms "$(echo "$out" | awk '$1 == "50%" { print $2 }')")
  p99=$(to_ms "$(echo "$out" | awk '$1 == "99%" { print $2 }')")
  bad=$(echo "$out" | awk '/Non-2xx/ { n += $NF } /Socket errors/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 }
                           END { print n + 0 }')
}

# shellcheck source=gateway.sh
. "$here/gateway.sh"

cpu_ticks() {  # pid -- user + system clock ticks of the process, all threads
  awk '{ print $14 + $15 }' "/proc/$1/stat"
}

median() {  # numbers... -- their median
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

setups=${SETUPS:-$platform_setups}
ticks_per_s=$(getconf CLK_TCK)
declare -A results  # "setup field" -> the round's values, space-separated
for round in $(seq "$rounds"); do
  for setup in $setups; do
    config=$(write_config "$setup")
    rm -f "$run_dir"/platform-bench.*db*  # the responses and the spend log (platform-bench.spend.db)
    (cd "$run_dir" && exec taskset -c "$gateway_cpu" "$respgate_bin" serve --config "$config" --host 127.0.0.1 \
       --port "$port" --workers 1) >"$run_dir/platform-$setup.log" 2>&1 &
    gateway_pid=$!
    await_gateway "$run_dir/platform-$setup.log" "$master" 0.25
    key=$(key_for "$setup" "$base")
    wrk_run "$key" bench-native 32 "$warmup" ""
    wrk_run "$key" bench-native 1 "$dur" ""
    results["$setup c1"]+=" $rps"; results["$setup c1p50"]+=" $p50"; results["$setup c1p99"]+=" $p99"
    errors=$bad
    before=$(cpu_ticks "$gateway_pid")
    wrk_run "$key" bench-native 32 "$dur" ""
    after=$(cpu_ticks "$gateway_pid")
    results["$setup c32"]+=" $rps"; results["$setup c32p50"]+=" $p50"; results["$setup c32p99"]+=" $p99"
    results["$setup cpu"]+=" $(awk -v t=$((after - before)) -v hz="$ticks_per_s" -v r="$rps" -v d="$dur" \
                                'BEGIN { printf "%.0f", 1e6 * t / hz / (r * d) }')"
    errors=$((errors + bad))
    wrk_run "$key" bench-native-stream 32 "$dur" ',"stream":true'
    results["$setup streams"]+=" $rps"; results["$setup errors"]+=" $((errors + bad))"
    stop_gateway
  done
  echo "round $round of $rounds done" >&2
done

printf '%-16s %8s %8s %8s %8s %8s %8s %10s %8s %6s %8s\n' setup "c1 rps" "c1 p50" "c1 p99" "c32 rps" "c32 p50" \
  "c32 p99" "streams/s" "cpu us" errors "vs base"
base_rps=""
for setup in $setups; do
  row=()
  for field in c1 c1p50 c1p99 c32 c32p50 c32p99 streams cpu; do
    # shellcheck disable=SC2086
    row+=("$(median ${results["$setup $field"]})")
  done
  # shellcheck disable=SC2086
  errors=$(printf '%s\n' ${results["$setup errors"]} | awk '{ n += $1 } END { print n + 0 }')
  [ -n "$base_rps" ] || base_rps=${row[3]}
  share=$(awk -v a="${row[3]}" -v b="$base_rps" 'BEGIN { printf "%.0f%%", 100 * a / b }')
  printf '%-16s %8s %8s %8s %8s %8s %8s %10s %8s %6s %8s\n' "$setup" "${row[@]}" "$errors" "$share"
done
