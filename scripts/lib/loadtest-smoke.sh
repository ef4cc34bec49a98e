#!/usr/bin/env bash
# The load-test smoke's runs against the origin at $ORIGIN_URL, results under $1. Run by
# scripts/test-loadtest.sh through `testkit with-origin`, which starts and stops the origin.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/tools.sh
out=$1
base=${ORIGIN_URL:?run through scripts/test-loadtest.sh}

smoke() {
  local name=$1; shift
  echo "--- loadtest smoke: $name" >&2
  target/debug/loadtest run "$base" --quiet --warmup 1s --duration 3s \
    --targets loadtest/targets/smoke.toml --out "$out/$name" "$@" \
    || { tail -n 20 "$out/origin.log" >&2; die "load-test smoke '$name' failed (report: $out/$name/report.html)"; }
}
smoke read-open-loop --scenario read --rate 500 --connections 16
# Closed loop: as many concurrent POSTs as 32 connections can send, so batches form.
smoke write-closed-loop --scenario write --connections 32
smoke mixed-open-loop --scenario mixed --write-ratio 0.3 --rate 500 --connections 16

# The regression gate on real output: a run compared with itself is no regression.
target/debug/loadtest compare "$out/read-open-loop/result.json" "$out/read-open-loop/result.json" >/dev/null \
  || die "loadtest compare found a regression between a run and itself"
python3 - "$out" <<'PY' || die "a result.json is not the documented schema (loadtest/README.md)"
import json, sys
for name in ("read-open-loop", "write-closed-loop", "mixed-open-loop"):
    r = json.load(open(f"{sys.argv[1]}/{name}/result.json"))
    assert r["schema_version"] == 1 and r["verdict"] == "pass" and r["targets_file"], name
    assert r["total"]["status_codes"] and "p95" in r["total"]["latency_ms"], name
    if name != "read-open-loop":
        assert r["writes"]["outcome"] == "ok", (name, r["writes"])
PY
