#!/usr/bin/env bash
# `make profile`: where one request's user-space CPU goes, counted by callgrind (instruction
# counts repeat whatever else the machine does; wall-clock rates on a shared machine do not).
# Serves the bare hyper example (GET), the origin's cached GET and its batched POST (PostgreSQL,
# as in production) under valgrind, one at a time; `loadtest` sends WARMUP requests, the counts
# are zeroed, it sends REQUESTS more, and the counts are dumped. Prints instructions per request
# and writes each server's per-function split to artifacts/profile/<name>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/tools.sh
. scripts/lib/postgres.sh
ensure_apt valgrind valgrind
requests=${REQUESTS:-5000}
warmup=${WARMUP:-1000}
connections=${CONNECTIONS:-64}

cargo build --profile profiling --locked -p counter-origin -p loadtest --bins --example bare-hyper \
  || die "cargo build --profile profiling failed"
bin=target/profiling
start_test_postgres
out=${PROFILE_OUT:-artifacts/profile}
rm -rf "$out" && mkdir -p "$out"

# profile NAME SCENARIO URL COMMAND… — COMMAND serves URL under callgrind, with server_env set.
profile() {
  local name=$1 scenario=$2 url=$3 pid
  shift 3
  env "${server_env[@]}" valgrind --tool=callgrind --callgrind-out-file="$out/$name.callgrind" "$@" \
    >"$out/$name.stdout" 2>"$out/$name.stderr" &
  pid=$!
  for _ in $(seq 1 300); do
    curl -sf -o /dev/null "$url/readyz" 2>/dev/null || curl -sf -o /dev/null "$url/" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || die "$name exited at start-up (see $out/$name.stderr)"
    sleep 0.2
  done
  drive() {
    "$bin/loadtest" run "$url" -s "$scenario" -c "$connections" -n "$1" -d 10m -w 0s --quiet \
      >>"$out/$name.loadtest" 2>&1 || die "$name: loadtest failed (see $out/$name.loadtest)"
  }
  drive "$warmup"
  callgrind_control -z "$pid" >/dev/null
  drive "$requests"
  callgrind_control -d "$pid" >/dev/null
  kill -TERM "$pid"; wait "$pid" || true
  # Part 1 is the dump just asked for (from the zeroing on); the bare file is the exit's remainder.
  python3 scripts/lib/callgrind_split.py "$out/$name.callgrind.1" 60 "$requests" >"$out/$name.txt"
  printf '%-22s %s\n' "$name" "$(head -1 "$out/$name.txt")" | tee -a "$out/summary.txt"
}

port() { free_port; }
server_env=()
bare_port=$(port)
profile bare-get read "http://127.0.0.1:$bare_port" "$bin/examples/bare-hyper" "127.0.0.1:$bare_port"
db="counter_profile_$$"
"$(pg_bin_dir)/psql" "$TEST_DATABASE_URL" -qc "CREATE DATABASE $db" || die "cannot create database $db"
origin_port=$(port)
server_env=(LISTEN_ADDR="127.0.0.1:$origin_port" METRICS_ADDR="127.0.0.1:$(port)"
  DATABASE_URL="${TEST_DATABASE_URL%/*}/$db?sslmode=disable" LOG_LEVEL=warn)
profile origin-cached-get read "http://127.0.0.1:$origin_port" "$bin/counter-origin"
profile origin-post write "http://127.0.0.1:$origin_port" "$bin/counter-origin"
echo "per-function split (self instructions per request): $out/<name>.txt"
