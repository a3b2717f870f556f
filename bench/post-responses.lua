-- wrk script: POST /v1/responses as a client would. Env: BENCH_MODEL (default bench-native), BENCH_KEY
-- (default sk-bench), BENCH_EXTRA (raw JSON appended to the body, e.g. ,"stream":true).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_KEY") or "sk-bench")
wrk.body = '{"model":"' .. (os.getenv("BENCH_MODEL") or "bench-native") .. '","input":"Tell me a three sentence bedtime story about a unicorn.","max_output_tokens":100' .. (os.getenv("BENCH_EXTRA") or "") .. '}'
