#!/usr/bin/env bash
# Load-test smoke (CI): the harness against a freshly started origin on a throwaway PostgreSQL,
# a few seconds per scenario with the loose targets of loadtest/targets/smoke.toml. It proves on
# every change that the origin serves reads and writes under concurrent load with no errors and
# no write-correctness violation (distinct values, no gaps), that the harness still works
# (its result files, `compare`, the report on a phone), and that `loadtest bench` runs every
# section end to end (a tiny run; `make bench` judges the claims).
# The crate's unit and integration tests run in the rust suite (`cargo test --workspace`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/tools.sh
. scripts/lib/postgres.sh
command -v cargo >/dev/null 2>&1 || die "cargo is required (rustup toolchain)"
command -v python3 >/dev/null 2>&1 || die "python3 is required (result schema check)"

# Debug builds (speed is `make bench`'s job), the same build the rust suite makes.
build_workspace
start_test_postgres

out=artifacts/loadtest-smoke
rm -rf "$out" && mkdir -p "$out"
# testkit starts the origin on free loopback ports, waits until /readyz answers 200, runs the
# smoke with ORIGIN_URL set, then stops the origin and fails on an unclean exit or a panic.
target/debug/testkit with-origin --origin target/debug/counter-origin --log-dir "$out" \
  --env "DATABASE_URL=$TEST_DATABASE_URL" --env DRAIN_PERIOD_MS=0 \
  -- scripts/lib/loadtest-smoke.sh "$out" \
  || die "load-test smoke failed (origin log: $out/origin.log)"

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
  # shellcheck disable=SC2054 # the comma is --window-size's own (500,2600), not a separator
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

# `loadtest bench` end to end, tiny and on debug builds: every section (side by side with wrk,
# the open loops, idle UPDATEs through the latency proxy, the round trips, several origins on one
# row) measures something, with no failed request and no write-correctness violation. The
# claims' verdicts are `make bench`'s business, so exit 1 (a claim missed) is fine here; exit 2
# (the bench could not run) is not.
ensure_apt wrk wrk
bench_out=artifacts/bench-smoke
rm -rf "$bench_out" && mkdir -p "$bench_out"
status=0
target/debug/loadtest bench --origin target/debug/counter-origin \
  --bare target/debug/examples/bare-hyper --wrk "$(command -v wrk)" \
  --database-url "$TEST_DATABASE_URL" --out "$bench_out" \
  --rounds 1 --step 1s --warmup 200ms --connections 16 --threads 1 \
  --open-rate 300 --open-duration 1s --open-connections 16 --capacity-connections 32 \
  --db-rtt-ms 0,1 --origins 1,2 >"$bench_out/run.log" 2>&1 || status=$?
[ "$status" -le 1 ] || { tail -20 "$bench_out/run.log" >&2; die "loadtest bench could not run (exit $status; log: $bench_out/run.log)"; }
python3 scripts/lib/check_bench.py "$bench_out" 0,1 1,2 || die "loadtest bench smoke (log: $bench_out/run.log)"
