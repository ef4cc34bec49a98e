"""Checks a `loadtest bench` output directory from the load-test suite's tiny run: every section
measured something, nothing failed, every write was correct, and no figure is NaN. The claims'
verdicts are not judged (debug builds on a shared machine); that they are all there is.

Usage: python3 check_bench.py OUT_DIR ROUND_TRIPS ORIGINS   (e.g. artifacts/bench-smoke 0,1 1,2)
"""

import json
import math
import sys


def fail(message):
    sys.exit(f"bench smoke: {message}")


def main(out, round_trips, origins):
    round_trips = [float(r) for r in round_trips.split(",") if r]
    origins = [int(n) for n in origins.split(",") if n]
    with open(f"{out}/bench.json") as f:
        bench = json.load(f)
    with open(f"{out}/bench.md") as f:
        table = f.read()

    for word in ("NaN", "inf"):
        if word in table:
            fail(f"bench.md prints {word}")
    series = {s["name"]: s for s in bench["throughput"]}
    if len(series) != 7:
        fail(f"7 side-by-side measurements expected, got {sorted(series)}")
    for name, s in series.items():
        if not s["median"] > 0:
            fail(f"{name}: no throughput ({s['median']})")
        if s["cpu"] is None:
            fail(f"{name}: no CPU per request")
    servers = [(o["server"], o["scenario"]) for o in bench["open_loop"]]
    if servers != [("bare hyper", "read"), ("origin", "read"), ("origin", "write")]:
        fail(f"open loops: {servers}")
    for o in bench["open_loop"]:
        if o["ok"] == 0 or o["errors"] or o["unsent"]:
            fail(f"open loop {o['server']} {o['scenario']}: {o}")

    capacity = bench["capacity"]
    if [i["rtt_ms"] for i in capacity["idle"]] != round_trips:
        fail(f"idle UPDATEs through the proxy: {capacity['idle']}")
    for i in capacity["idle"]:
        # Through the proxy an UPDATE takes at least the round trip it adds.
        if not i["updates"]["mean_ms"] >= i["rtt_ms"]:
            fail(f"an idle UPDATE at {i['rtt_ms']} ms round trip took {i['updates']['mean_ms']} ms")
    rows = [(r["rtt_ms"], r["mode"]) for r in capacity["rtt"]]
    wanted = [(rtt, mode) for rtt in round_trips for mode in ("batched", "MAX_BATCH=1", "keyed")]
    if rows != wanted:
        fail(f"round-trip rows {rows}, expected {wanted}")
    rows = [(r["origins"], r["mode"]) for r in capacity["origins"]]
    wanted = [(n, mode) for n in origins for mode in ("batched", "MAX_BATCH=1")]
    if rows != wanted:
        fail(f"several-origins rows {rows}, expected {wanted}")
    for r in capacity["rtt"] + capacity["origins"]:
        closed = r["closed"]
        if not closed["increments_per_s"] > 0 or closed["failed"]:
            fail(f"a capacity run failed: {r}")
        if not (closed["statements_per_s"] or 0) > 0:
            fail(f"no statements counted: {r}")

    checked = bench["write_increments_checked"] + capacity["increments_checked"]
    violations = bench["correctness_violations"] + capacity["violations"]
    if violations:
        fail(f"write-correctness violations: {violations[:5]}")
    if checked == 0:
        fail("no increment was checked")
    names = [c["name"] for c in bench["claims"]]
    if len(names) < 12 or not all(isinstance(c["passed"], bool) for c in bench["claims"]):
        fail(f"claims: {names}")
    for c in bench["claims"]:
        if c["value"] is not None and not math.isfinite(c["value"]):
            fail(f"claim {c['name']}: {c['value']}")
    print(
        f"bench smoke: every section measured, {checked} increments checked, 0 violations, "
        f"{len(names)} claims judged ({sum(c['passed'] for c in bench['claims'])} met in debug builds)"
    )


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
