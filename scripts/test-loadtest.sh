#!/usr/bin/env bash
# Load-test smoke (CI): the harness against a freshly started origin on a throwaway PostgreSQL,
# a few seconds per scenario with the loose targets of loadtest/targets/smoke.toml. It proves on
# every change that the origin serves reads and writes under concurrent load with no errors and
# no write-correctness violation (distinct values, no gaps), and that the harness still works
# (its result files, `compare`).
# The crate's unit and integration tests run in the rust suite (`cargo test --workspace`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/tools.sh
. scripts/lib/postgres.sh
command -v cargo >/dev/null 2>&1 || die "cargo is required (rustup toolchain)"
command -v python3 >/dev/null 2>&1 || die "python3 is required (free ports, readiness wait)"

# Debug builds: they share the rust suite's compiled dependencies; speed is `make bench`'s job.
cargo build --locked -p counter-origin --bin counter-origin -p loadtest
start_test_postgres

out=artifacts/loadtest-smoke
rm -rf "$out" && mkdir -p "$out"
port=$(free_port)
metrics_port=$(free_port)
base="http://127.0.0.1:$port"

# A subshell owns the origin, so its EXIT trap stops it without replacing PostgreSQL's.
(
  LISTEN_ADDR=127.0.0.1:$port METRICS_ADDR=127.0.0.1:$metrics_port DATABASE_URL=$TEST_DATABASE_URL \
    DRAIN_PERIOD_MS=0 target/debug/counter-origin >"$out/origin.log" 2>&1 &
  origin=$!
  trap 'kill "$origin" 2>/dev/null || true' EXIT

  python3 - "$base/readyz" <<'PY' || { cat "$out/origin.log" >&2; die "the origin did not become ready"; }
import sys, time, urllib.request
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit(1)
PY

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
)

# The report on a 360 px phone, light and dark: the page must not be wider than the screen (its
# tables and charts scroll inside their own boxes). Headless Chromium's window is at least 500 px
# wide, so the report is framed 360 px wide; the frame names its width in the title for the check
# and the screenshots (left 360 px) stay in $out for a look.
ensure_apt chromium chromium
cat >"$out/phone.html" <<'HTML'
<!doctype html><html><body style="margin:0;background:#888">
<iframe id="f" src="read-open-loop/report.html" style="width:360px;height:2600px;border:0;display:block"></iframe>
<script>f.onload = () => { document.title = "scrollWidth=" + f.contentDocument.documentElement.scrollWidth; };</script>
</body></html>
HTML
phone() {
  local scheme=$1; shift
  local flags=(--headless --no-sandbox --disable-gpu --disable-background-networking
    --disable-component-update --disable-sync --hide-scrollbars --allow-file-access-from-files
    --virtual-time-budget=10000 --window-size=500,2600 --user-data-dir="$(mktemp -d)")
  [ "$scheme" = dark ] && flags+=(--force-dark-mode --blink-settings=preferredColorScheme=0)
  chromium "${flags[@]}" "$@" "file://$PWD/$out/phone.html" 2>/dev/null
}
for scheme in light dark; do
  phone "$scheme" --screenshot="$PWD/$out/report-360-$scheme.png" >/dev/null \
    || die "chromium could not screenshot $out/phone.html"
  width=$(phone "$scheme" --dump-dom | grep -o 'scrollWidth=[0-9]*' | cut -d= -f2)
  [ -n "$width" ] || die "chromium did not measure $out/read-open-loop/report.html"
  [ "$width" -le 360 ] \
    || die "report.html is $width px wide on a 360 px screen ($scheme): it must fit (see $out/report-360-$scheme.png)"
done
echo "loadtest report fits 360 px (screenshots: $out/report-360-{light,dark}.png)" >&2
