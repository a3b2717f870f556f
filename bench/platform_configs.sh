# The platform benchmarks' set-ups (sourced by platform_run.sh and platform_instructions.sh).
# Needs: run_dir, master (the master key). Set-ups:
#   master           the master key; spend logs off (general_settings.disable_spend_logs), no metrics
#   master+spend     the master key; spend logs on (the default)
#   vkey+spend+prom  a virtual key (rpm/tpm limits set, far above the load), spend logs on,
#                    `litellm_settings.callbacks: [prometheus]`
#   +redis           the same with router_settings naming Redis: the key's limits are counted there
platform_setups="master master+spend vkey+spend+prom +redis"

write_config() {  # setup -- the config file for that set-up
  local file="$run_dir/platform-$1.yaml"
  {
    cat <<YAML
model_list:
  - model_name: bench-native
    litellm_params: {model: openai/gpt-4o, api_base: "http://127.0.0.1:18080/v1", api_key: sk-upstream}
    model_info: {input_cost_per_token: 0.0000025, output_cost_per_token: 0.00001}
  - model_name: bench-native-stream
    litellm_params: {model: openai/gpt-4o, api_base: "http://127.0.0.1:18090/v1", api_key: sk-upstream}
    model_info: {input_cost_per_token: 0.0000025, output_cost_per_token: 0.00001}
general_settings:
  master_key: $master
  database_url: sqlite:///$run_dir/platform-bench.db
YAML
    case $1 in
      master) echo "  disable_spend_logs: true" ;;
      vkey+spend+prom | +redis) printf 'litellm_settings:\n  callbacks: [prometheus]\n' ;;
    esac
    [ "$1" = +redis ] && printf 'router_settings:\n  redis_host: 127.0.0.1\n  redis_port: 6379\n'
    true
  } >"$file"
  echo "$file"
}

key_for() {  # setup base_url -- the key the set-up's requests carry (a new virtual key, or the master key)
  case $1 in
    vkey+spend+prom | +redis)
      curl -sf -H "Authorization: Bearer $master" -H 'Content-Type: application/json' \
        -d '{"models": ["bench-native", "bench-native-stream"], "rpm_limit": 10000000, "tpm_limit": 1000000000}' \
        "$2/key/generate" | python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])' ;;
    *) echo "$master" ;;
  esac
}
