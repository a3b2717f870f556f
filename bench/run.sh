#!/usr/bin/env bash
# Side-by-side benchmark of respgate and LiteLLM on the canned upstream that setup.sh serves.
# Each gateway runs with one worker pinned to CPU 1 (`taskset -c 1`); wrk and the stream client run on CPU 0.
# Per gateway: direct-upstream p50 (the baseline for "added p50"), non-stream rps/p50/p99 at c=1 and c=32,
# streaming time to first event (sequential streams) and events/s at c=32, RSS idle and right after load;
# the same for each native adapter's model (Anthropic, Gemini, Bedrock); for respgate also what a chained
# turn (previous_response_id, 20-item history) costs beside a plain one (chain_bench.py, then wrk at c=32).
# Figures go to $BENCH_DIR/results-<gateway>.txt; the script ends with one table, respgate beside LiteLLM.
# Usage: run.sh [respgate|litellm|both]        (default both; a single gateway reuses the other's last results)
# Env:   DUR (seconds per wrk run, default 10), STREAMS (sequential streams for TTFE, default 200),
#        WARMUP (seconds of load before measuring a model, default 2), RESPGATE_VENV (its bin/respgate is
#        started; default: `respgate` on PATH), LITELLM_VENV (default /tmp/bench-litellm),
#        BENCH_DIR (scratch files, default /tmp/respgate-bench), READY_TIMEOUT (seconds, default 180),
#        CHAIN_MODEL (the model chained turns go to, default bench-chat), CHAIN_HISTORY (items, default 20),
#        CHAIN_TURNS (measured turns of each kind, default 300)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
which_gateways=${1:-both}
dur=${DUR:-10}
streams=${STREAMS:-200}
warmup=${WARMUP:-2}
run_dir=${BENCH_DIR:-/tmp/respgate-bench}
litellm_venv=${LITELLM_VENV:-/tmp/bench-litellm}
ready_timeout=${READY_TIMEOUT:-180}
key=sk-bench
upstream=http://127.0.0.1:18080
upstream_stream=http://127.0.0.1:18090
load_cpu=0
gateway_cpu=1
not_built="n/a (not built)"
no_chain="n/a (needs a DB)"  # LiteLLM keeps responses for previous_response_id only in its database
providers="native chat anthropic gemini bedrock"  # bench-<p> (JSON) and bench-<p>-stream (SSE) for each
json_models="" stream_models=""
for p in $providers; do json_models="$json_models bench-$p"; stream_models="$stream_models bench-$p-stream"; done
models="$json_models $stream_models"
chain_model=${CHAIN_MODEL:-bench-chat}
chain_history=${CHAIN_HISTORY:-20}
chain_turns=${CHAIN_TURNS:-300}

case $which_gateways in
  respgate | litellm) gateways=$which_gateways ;;
  both) gateways="respgate litellm" ;;
  *) echo "usage: run.sh [respgate|litellm|both]" >&2; exit 2 ;;
esac
if [ "$(nproc)" -lt 2 ]; then
  echo "warning: fewer than 2 CPUs; gateway and load generator share CPU 0" >&2
  gateway_cpu=0
fi

# ---------------------------------------------------------------- results: key=value lines per gateway
results=""  # the file being written
record() { echo "$1=$2" >>"$results"; }
lookup() {  # file key -- the value, or "-" when absent
  [ -f "$1" ] && awk -F= -v k="$2" '$1 == k { v = substr($0, length(k) + 2) } END { print (v == "" ? "-" : v) }' "$1" \
    || echo "-"
}
short() {  # model -> result key prefix: bench-native -> native, bench-gemini-stream -> gemini_stream
  local p=${1#bench-}
  echo "${p//-/_}"
}

# ---------------------------------------------------------------- load generation
to_ms() {  # wrk latency ("812.00us", "1.20ms", "2.01s") -> milliseconds
  awk -v t="$1" 'BEGIN {
    v = t + 0; u = t; sub(/^[0-9.]+/, "", u)
    if (u == "us") v /= 1000; else if (u == "s") v *= 1000; else if (u == "m") v *= 60000
    printf "%.3f", v }'
}

wrk_run() {  # base_url model connections seconds extra_json -- sets wrk_rps wrk_p50 wrk_p99 wrk_bad
  local out
  out=$(BENCH_KEY=$key BENCH_MODEL=$2 BENCH_EXTRA=$5 taskset -c "$load_cpu" \
        wrk -t1 -c"$3" -d"$4s" --timeout 10s --latency -s "$here/post-responses.lua" "$1/v1/responses")
  wrk_rps=$(echo "$out" | awk '/^Requests\/sec/ { printf "%.1f", $2 }')
  wrk_p50=$(to_ms "$(echo "$out" | awk '$1 == "50%" { print $2 }')")
  wrk_p99=$(to_ms "$(echo "$out" | awk '$1 == "99%" { print $2 }')")
  wrk_bad=$(echo "$out" | awk '/Non-2xx/ { n += $NF } /Socket errors/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 }
                               END { print n + 0 }')
}

stream_client() {  # base_url model -- sets sc_ttfe_p50 sc_events sc_failed
  local out
  out=$(taskset -c "$load_cpu" python3 "$here/stream_client.py" "$1" "$2" --streams "$streams" --key "$key")
  sc_ttfe_p50=$(echo "$out" | awk -F= '$1 == "ttfe_p50_ms" { print $2 }')
  sc_events=$(echo "$out" | awk -F= '$1 == "events" { print $2 }')
  sc_failed=$(echo "$out" | awk -F= '$1 == "failed" { print $2 }')
}

# ---------------------------------------------------------------- the gateway's processes
gateway_pid=""

tree_pids() {  # pid -- the pid and all its descendants
  ps -e -o pid= -o ppid= | awk -v root="$1" '
    { parent[$1] = $2 }
    END { for (p in parent) {        # walk up from every process; keep those that reach root
            q = p
            for (i = 0; i < 64 && q > 1; i++) { if (q == root) { print p; break }; q = parent[q] } } }'
}

rss_mb() {  # pid -- VmRSS summed over its process tree, in MB
  local p
  for p in $(tree_pids "$1"); do awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true; done \
    | awk '{ kb += $1 } END { printf "%.0f", kb / 1024 }'
}

start_gateway() {  # name port
  local cmd
  case $1 in
    litellm)
      cmd=("$litellm_venv/bin/litellm" --config "$here/litellm-config.yaml" --host 127.0.0.1 --port "$2"
           --num_workers 1) ;;
    respgate)
      cmd=("$respgate_bin" serve --config "$here/respgate-config.yaml" --host 127.0.0.1 --port "$2" --workers 1) ;;
  esac
  if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$2/"; then
    echo "port $2 is already in use; stop whatever serves it first" >&2; exit 1
  fi
  # In $run_dir so that files a gateway writes (respgate's SQLite store) stay out of the repository.
  # LITELLM_LOCAL_MODEL_COST_MAP: LiteLLM would otherwise fetch its price list from the network at start-up.
  (cd "$run_dir" && LITELLM_LOCAL_MODEL_COST_MAP=True exec taskset -c "$gateway_cpu" "${cmd[@]}") \
    >"$run_dir/$1.log" 2>&1 &
  gateway_pid=$!
}

wait_ready() {  # name port -- any HTTP answer on /v1/models counts as up
  local deadline=$((SECONDS + ready_timeout))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H "Authorization: Bearer $key" \
             "http://127.0.0.1:$2/v1/models")" != 000 ]; do
    if ! kill -0 "$gateway_pid" 2>/dev/null; then
      echo "$1 exited during start-up; last lines of $run_dir/$1.log:" >&2; tail -20 "$run_dir/$1.log" >&2; exit 1
    fi
    [ "$SECONDS" -le "$deadline" ] || { echo "$1 not ready after ${ready_timeout}s" >&2; exit 1; }
    sleep 0.25
  done
}

stop_gateway() {
  [ -n "$gateway_pid" ] || return 0
  local pids waited=0
  pids=$(tree_pids "$gateway_pid")
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null || true
  while kill -0 "$gateway_pid" 2>/dev/null && [ "$waited" -lt 60 ]; do sleep 0.25; waited=$((waited + 1)); done
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
  wait "$gateway_pid" 2>/dev/null || true
  gateway_pid=""
}
trap stop_gateway EXIT
trap 'exit 130' INT TERM

probe() {  # base model -- true when the model's first request (streamed for *-stream) answers 2xx
  local extra="" code
  case $2 in *-stream) extra=',"stream":true' ;; esac
  code=$(curl -s -o "$run_dir/probe-$2.out" -w '%{http_code}' --max-time 60 -X POST "$1/v1/responses" \
         -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
         -d "{\"model\":\"$2\",\"input\":\"Say hi.\",\"max_output_tokens\":100$extra}" || true)
  case $code in 2??) return 0 ;; *) echo "  $2: HTTP $code on the first request -> $not_built" >&2; return 1 ;; esac
}

# ---------------------------------------------------------------- one gateway, every figure
bench_gateway() {  # name port
  local name=$1 base="http://127.0.0.1:$2" model p rss peak=0 upstream_p50
  results="$run_dir/results-$name.txt"
  : >"$results"
  record when "$(date '+%Y-%m-%d %H:%M:%S')"
  record dur "$dur"

  echo "== $name: direct upstream baseline"
  wrk_run "$upstream" bench-native 1 "$dur" ""
  upstream_p50=$wrk_p50
  record upstream.c1.p50 "$wrk_p50"
  stream_client "$upstream_stream" bench-native-stream
  record upstream.ttfe.p50 "$sc_ttfe_p50"

  if [ "$name" = respgate ] && [ -z "$respgate_bin" ]; then
    echo "== respgate: no respgate executable (set RESPGATE_VENV or put respgate on PATH) -> $not_built" >&2
    record missing "$not_built"
    return 0
  fi
  echo "== $name: starting on CPU $gateway_cpu (log: $run_dir/$name.log)"
  start_gateway "$name" "$2"
  wait_ready "$name" "$2"
  built=""
  for model in $models; do
    if probe "$base" "$model"; then built="$built $model"; fi
  done
  sleep 2
  record rss.idle "$(rss_mb "$gateway_pid")"

  for model in $json_models; do
    p=$(short "$model")
    case " $built " in *" $model "*) ;; *) record "$p.missing" "$not_built"; continue ;; esac
    echo "== $name: $model non-stream"
    wrk_run "$base" "$model" 32 "$warmup" ""
    wrk_run "$base" "$model" 1 "$dur" ""
    record "$p.c1.rps" "$wrk_rps"; record "$p.c1.p50" "$wrk_p50"; record "$p.c1.p99" "$wrk_p99"
    record "$p.c1.errors" "$wrk_bad"
    record "$p.c1.added_p50" "$(awk -v a="$wrk_p50" -v b="$upstream_p50" 'BEGIN { printf "%.3f", a - b }')"
    wrk_run "$base" "$model" 32 "$dur" ""
    rss=$(rss_mb "$gateway_pid"); [ "$rss" -gt "$peak" ] && peak=$rss
    record "$p.c32.rps" "$wrk_rps"; record "$p.c32.p50" "$wrk_p50"; record "$p.c32.p99" "$wrk_p99"
    record "$p.c32.errors" "$wrk_bad"
  done

  for model in $stream_models; do
    p=$(short "$model")
    case " $built " in *" $model "*) ;; *) record "$p.missing" "$not_built"; continue ;; esac
    echo "== $name: $model streaming"
    wrk_run "$base" "$model" 32 "$warmup" ',"stream":true'
    stream_client "$base" "$model"
    record "$p.ttfe.p50" "$sc_ttfe_p50"; record "$p.events_per_stream" "$sc_events"
    record "$p.ttfe.failed" "$sc_failed"
    wrk_run "$base" "$model" 32 "$dur" ',"stream":true'
    rss=$(rss_mb "$gateway_pid"); [ "$rss" -gt "$peak" ] && peak=$rss
    record "$p.c32.streams" "$wrk_rps"; record "$p.c32.errors" "$wrk_bad"
    record "$p.c32.events" "$(awk -v s="$wrk_rps" -v e="$sc_events" 'BEGIN { printf "%.0f", s * e }')"
  done
  record rss.load "$peak"
  bench_chain "$name" "$base"
  stop_gateway
}

chain_bench() {  # base_url model -- sets cb_* from chain_bench.py's key=value lines
  local out
  out=$(taskset -c "$load_cpu" python3 "$here/chain_bench.py" "$1" "$2" --history "$chain_history" \
        --turns "$chain_turns" --key "$key")
  cb_items=$(echo "$out" | awk -F= '$1 == "chain_items" { print $2 }')
  cb_plain=$(echo "$out" | awk -F= '$1 == "plain_p50_ms" { print $2 }')
  cb_chained=$(echo "$out" | awk -F= '$1 == "chained_p50_ms" { print $2 }')
  cb_added=$(echo "$out" | awk -F= '$1 == "chained_added_p50_ms" { print $2 }')
  cb_tip=$(echo "$out" | awk -F= '$1 == "tip" { print $2 }')
  cb_failed=$(echo "$out" | awk -F= '$1 == "failed" { print $2 }')
}

bench_chain() {  # name base -- chained turn vs plain turn (respgate only: LiteLLM needs a DB for it)
  if [ "$1" != respgate ]; then record chain.missing "$no_chain"; return 0; fi
  case " $built " in *" $chain_model "*) ;; *) record chain.missing "$not_built"; return 0 ;; esac
  echo "== $1: chained turns ($chain_model, $chain_history-item history)"
  if ! chain_bench "$2" "$chain_model" || [ -z "$cb_tip" ]; then record chain.missing "$not_built"; return 0; fi
  record chain.items "$cb_items"
  record chain.plain.p50 "$cb_plain"; record chain.plain.errors "${cb_failed:-0}"
  record chain.chained.p50 "$cb_chained"; record chain.chained.errors "${cb_failed:-0}"
  record chain.added_p50 "$cb_added"; record chain.errors "${cb_failed:-0}"
  # the same chained turn under load: every request continues the tip
  wrk_run "$2" "$chain_model" 32 "$dur" ",\"previous_response_id\":\"$cb_tip\""
  record chain.c32.rps "$wrk_rps"; record chain.c32.p50 "$wrk_p50"; record chain.c32.errors "$wrk_bad"
  wrk_run "$2" "$chain_model" 32 "$dur" ""
  record chain.plain_c32.rps "$wrk_rps"; record chain.plain_c32.p50 "$wrk_p50"; record chain.plain_c32.errors "$wrk_bad"
}

# ---------------------------------------------------------------- the table
value() {  # gateway key -- the figure, or why there is none
  local file="$run_dir/results-$1.txt" v why
  v=$(lookup "$file" "$2")
  if [ "$v" = - ]; then
    [ "$(lookup "$file" missing)" != - ] && { echo "$not_built"; return; }
    why=$(lookup "$file" "${2%%.*}.missing")
    [ "$why" != - ] && { echo "$why"; return; }
  fi
  [ "$v" != - ] && [ "$(lookup "$file" "${2%.*}.errors")" -gt 0 ] 2>/dev/null && v="$v*"
  echo "$v"
}

advantage() {  # respgate litellm higher|lower|none -- how many times better respgate is (>1 = better)
  awk -v r="${1%\*}" -v l="${2%\*}" -v dir="$3" 'BEGIN {
    if (dir == "none" || r !~ /^-?[0-9.]+$/ || l !~ /^-?[0-9.]+$/ || r <= 0 || l <= 0) { print "-"; exit }
    printf "%.1fx", (dir == "higher" ? r / l : l / r) }'
}

verdict() {  # value op limit -- "ok" or "MISS" against a target
  awk -v v="${1%\*}" -v op="$2" -v t="$3" 'BEGIN {
    if (v !~ /^-?[0-9.]+$/) { print "-"; exit }
    ok = (op == ">=" ? v >= t : v <= t); printf "%s %s%s", (ok ? "ok  " : "MISS"), op, t }'
}

row() {  # label key higher|lower|none (which way is better) [op limit]
  local r l
  r=$(value respgate "$2"); l=$(value litellm "$2")
  printf '%-38s %16s %16s %9s  %s\n' "$1" "$r" "$l" "$(advantage "$r" "$l" "$3")" \
    "$([ $# -ge 5 ] && verdict "$r" "$4" "$5")"
}

print_table() {
  echo
  printf '%-38s %16s %16s %9s  %s\n' "figure (DUR=${dur}s)" respgate litellm advantage "target (respgate)"
  row "upstream direct p50 c=1 (ms)" upstream.c1.p50 none
  row "upstream direct TTFE p50 (ms)" upstream.ttfe.p50 none
  for p in native chat; do
    row "$p: rps c=1" "$p.c1.rps" higher
    row "$p: p50 c=1 (ms)" "$p.c1.p50" lower
    if [ $p = native ]; then row "$p: added p50 c=1 (ms)" "$p.c1.added_p50" lower "<=" 0.6
    else row "$p: added p50 c=1 (ms)" "$p.c1.added_p50" lower; fi
    row "$p: p99 c=1 (ms)" "$p.c1.p99" lower
    if [ $p = native ]; then row "$p: rps c=32" "$p.c32.rps" higher ">=" 2500
    else row "$p: rps c=32" "$p.c32.rps" higher; fi
    row "$p: p50 c=32 (ms)" "$p.c32.p50" lower
    row "$p: p99 c=32 (ms)" "$p.c32.p99" lower
  done
  for p in native_stream chat_stream; do
    row "$p: TTFE p50 c=1 (ms)" "$p.ttfe.p50" lower
    row "$p: events per stream" "$p.events_per_stream" none
    row "$p: streams/s c=32" "$p.c32.streams" higher
    row "$p: events/s c=32" "$p.c32.events" higher
  done
  for p in anthropic gemini bedrock; do
    row "$p: rps c=1" "$p.c1.rps" higher
    row "$p: added p50 c=1 (ms)" "$p.c1.added_p50" lower
    row "$p: rps c=32" "$p.c32.rps" higher
    row "$p: p99 c=32 (ms)" "$p.c32.p99" lower
    row "${p}_stream: TTFE p50 c=1 (ms)" "${p}_stream.ttfe.p50" lower
    row "${p}_stream: events per stream" "${p}_stream.events_per_stream" none
    row "${p}_stream: events/s c=32" "${p}_stream.c32.events" higher
  done
  row "chain: history items" chain.items none
  row "chain: plain turn p50 c=1 (ms)" chain.plain.p50 none
  row "chain: chained turn p50 c=1 (ms)" chain.chained.p50 none
  row "chain: chained added p50 c=1 (ms)" chain.added_p50 none
  row "chain: plain turn rps c=32" chain.plain_c32.rps none
  row "chain: chained turn rps c=32" chain.c32.rps none
  row "RSS idle (MB)" rss.idle lower
  row "RSS after c=32 load (MB)" rss.load lower
  echo
  echo "advantage: times better for respgate (higher rps, lower ms/MB); * = that run saw non-2xx or socket errors"
  for g in respgate litellm; do
    if [ -f "$run_dir/results-$g.txt" ]; then
      echo "$g: measured $(lookup "$run_dir/results-$g.txt" when), DUR=$(lookup "$run_dir/results-$g.txt" dur)s"
    else
      echo "$g: no results yet (run.sh $g)"
    fi
  done
}

# ---------------------------------------------------------------- main
mkdir -p "$run_dir"
# /v1/messages too: an upstream set up before the native adapters' routes existed gets them (setup.sh reloads)
if ! curl -sf -o /dev/null --max-time 5 -X POST "$upstream/v1/responses" \
   || ! curl -sf -o /dev/null --max-time 5 -X POST "$upstream_stream/v1/responses" \
   || ! curl -sf -o /dev/null --max-time 5 -X POST "$upstream_stream/v1/messages"; then
  echo "canned upstream is down or out of date; running setup.sh" >&2
  "$here/setup.sh" >/dev/null
fi
respgate_bin=""
if [ -n "${RESPGATE_VENV:-}" ]; then
  [ -x "$RESPGATE_VENV/bin/respgate" ] && respgate_bin="$RESPGATE_VENV/bin/respgate"
else
  respgate_bin=$(command -v respgate || true)
fi
[ -x "$litellm_venv/bin/litellm" ] || { echo "no LiteLLM at $litellm_venv; run setup.sh" >&2; exit 1; }

for g in $gateways; do
  case $g in respgate) bench_gateway respgate 4100 ;; litellm) bench_gateway litellm 4000 ;; esac
done
print_table
