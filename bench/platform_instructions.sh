#!/usr/bin/env bash
# What the platform costs (issue 8), counted in instructions rather than seconds: each set-up of
# platform_run.sh runs under callgrind, takes WARM requests, has its counters zeroed, takes N more at
# concurrency 32 (bench/fixed_load.py), and prints instructions per request and the share of `master`'s.
# Instruction counts do not move with a noisy neighbour as requests per second do (those drift ±5% here
# between runs, as wide as the 10% target); they still move a little with how requests batch (±3%).
# Slow: each start under valgrind takes about a minute. Same canned upstream as run.sh (bench/setup.sh).
# Usage: platform_instructions.sh [setup...]   Env: N (2000), WARM (500), RESPGATE_VENV, BENCH_DIR, PORT (4210)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
run_dir=${BENCH_DIR:-/tmp/respgate-bench}
port=${PORT:-4210}
n=${N:-2000}
warm=${WARM:-500}
master=sk-bench-master
base=http://127.0.0.1:$port
python=${RESPGATE_VENV:+$RESPGATE_VENV/bin/}python
respgate_bin=$(command -v "${RESPGATE_VENV:+$RESPGATE_VENV/bin/}respgate") \
  || { echo "no respgate executable (set RESPGATE_VENV)" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
curl -sf -o /dev/null --max-time 5 -X POST -d '{}' http://127.0.0.1:18080/v1/responses \
  || { echo "the canned upstream is not up: run bench/setup.sh first" >&2; exit 1; }
mkdir -p "$run_dir"
# shellcheck source=platform_configs.sh
. "$here/platform_configs.sh"

# shellcheck source=gateway.sh
. "$here/gateway.sh"

instructions() {  # callgrind output -- the total of its events (one event, Ir)
  awk '/^summary:/ { print $2 }' "$1"
}

printf '%-16s %14s %8s\n' setup "instr/req" "vs base"
base_count=""
for setup in ${*:-$platform_setups}; do
  config=$(write_config "$setup")
  rm -f "$run_dir"/platform-bench.*db* "$run_dir"/callgrind-"$setup".*
  out="$run_dir/callgrind-$setup.out"
  (cd "$run_dir" && exec valgrind --tool=callgrind --callgrind-out-file="$out" "$python" "$respgate_bin" serve \
     --config "$config" --host 127.0.0.1 --port "$port" --workers 1) >"$run_dir/callgrind-$setup.log" 2>&1 &
  gateway_pid=$!
  await_gateway "$run_dir/callgrind-$setup.log" "$master" 1
  key=$(key_for "$setup" "$base")
  "$python" "$here/fixed_load.py" "$base/v1/responses" "$key" "$warm" 32
  callgrind_control -z "$gateway_pid" >/dev/null 2>&1
  "$python" "$here/fixed_load.py" "$base/v1/responses" "$key" "$n" 32
  callgrind_control -d "$gateway_pid" >/dev/null 2>&1
  count=$(( $(instructions "$out.1") / n ))
  stop_gateway
  [ -n "$base_count" ] || base_count=$count
  printf '%-16s %14s %8s\n' "$setup" "$count" "$(awk -v a="$base_count" -v b="$count" 'BEGIN { printf "%.0f%%", 100 * a / b }')"
done
