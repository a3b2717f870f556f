# The gateway under test, for the bench scripts that start one at a time (sourced).
# Set gateway_pid after starting it; stop_gateway runs on exit. Needs: base (its URL).
gateway_pid=""

stop_gateway() {
  [ -n "$gateway_pid" ] || return 0
  kill -TERM "$gateway_pid" 2>/dev/null || true
  wait "$gateway_pid" 2>/dev/null || true
  gateway_pid=""
}
trap stop_gateway EXIT
trap 'exit 130' INT TERM

await_gateway() {  # log key poll_seconds -- until GET /v1/models answers; exits if the gateway died
  until curl -s -o /dev/null --max-time 5 -H "Authorization: Bearer $2" "$base/v1/models"; do
    kill -0 "$gateway_pid" 2>/dev/null || { echo "respgate exited; see $1" >&2; exit 1; }
    sleep "$3"
  done
}
