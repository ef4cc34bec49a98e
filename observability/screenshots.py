"""Renders the dashboard's panels from a real Prometheus scraping real origins, into PNGs for the docs.

No Grafana is installable offline here, so this draws each chosen panel's own PromQL (from the dashboard JSON,
variables substituted as Grafana would) with matplotlib: stats coloured by the panel's thresholds, time series
as lines. Two origins (embedded store) run under mixed load while Prometheus scrapes them every second with the
PrometheusRule's groups loaded (evaluated every second; `for` shortened to 10 s so a page can fire within the
run). Then one pod fails: it is stopped (its scrape target goes down, counter_ready disappears) and its
replacement sheds most increments (a one-slot write queue) — 503s that burn the availability budget.

usage: python observability/screenshots.py OUT_DIR        (COUNTER_ORIGIN_BIN names the origin binary)
needs: prometheus (Debian package), matplotlib (with Pillow), pyyaml, promql-parser
"""

from __future__ import annotations

import math
import os
from datetime import datetime, timezone
import sys
import tempfile
import threading
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import live  # noqa: E402
import queries  # noqa: E402

PHASE_SECONDS = 45
STATS = [35, 2, 3, 5, 36, 6]
SERIES = [7, 8, 10, 12, 13, 20, 22, 18, 41]
VARIABLES = {"__rate_interval": "10s", "__interval": "1s", "__range": "2m", "namespace": "counter", "pod": ".*"}
COLORS = {"green": "#2e7d32", "red": "#c62828", "orange": "#ef6c00", "yellow": "#f9a825", "blue": "#1565c0"}


def scrape(job: str, target: str, pod: str) -> dict:
    return {"job_name": job, "honor_labels": True, "metrics_path": "/metrics",
            "static_configs": [{"targets": [target], "labels": {"namespace": "counter", "pod": pod,
                                                                 "endpoint": "metrics"}}]}


def color_for(panel: dict, value: float, name: str) -> str:
    defaults = panel["fieldConfig"]["defaults"]
    steps = defaults["thresholds"]["steps"]
    for override in panel["fieldConfig"].get("overrides", []):
        if override["matcher"]["options"] == name:
            for prop in override["properties"]:
                if prop["id"] == "color":
                    return COLORS.get(prop["value"]["fixedColor"], prop["value"]["fixedColor"])
                if prop["id"] == "thresholds":
                    steps = prop["value"]["steps"]
    color = steps[0]["color"]
    for step in steps[1:]:
        if not math.isnan(value) and value >= step["value"]:
            color = step["color"]
    return COLORS.get(color, color)


def fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "No data"
    if unit == "percentunit":
        return f"{100 * value:.2f} %"
    if unit == "reqps":
        return f"{value:.0f} req/s"
    return f"{value:.0f}"


def render(prometheus: live.Prometheus, dashboard: dict, start: float, end: float, title: str, path: Path) -> None:
    panels = {p["id"]: p for p in queries.dashboard_panels(dashboard)}
    fig = plt.figure(figsize=(16, 13), dpi=72)
    fig.suptitle(title, fontsize=14, x=0.01, ha="left")
    grid = fig.add_gridspec(4, 6, height_ratios=[0.55, 1, 1, 1], hspace=0.6, wspace=0.45)
    for i, pid in enumerate(STATS):
        panel = panels[pid]
        ax = fig.add_subplot(grid[0, i])
        ax.set_xticks([]), ax.set_yticks([])
        lines = []
        for target in panel["targets"]:
            samples = prometheus.query(queries.substitute(target["expr"], VARIABLES))
            value = float(samples[0]["value"][1]) if samples else float("nan")
            lines.append((target["legendFormat"], value))
        main_color = color_for(panel, lines[0][1], lines[0][0])
        ax.set_facecolor(main_color)
        text = "\n".join(f"{name}: {fmt(v, panel['fieldConfig']['defaults']['unit'])}" if len(lines) > 1
                         else fmt(v, panel["fieldConfig"]["defaults"]["unit"]) for name, v in lines)
        ax.text(0.5, 0.45, text, ha="center", va="center", color="white", fontsize=12 if len(lines) > 1 else 18,
                weight="bold", transform=ax.transAxes)
        ax.set_title(panel["title"], fontsize=10)
    for i, pid in enumerate(SERIES):
        panel = panels[pid]
        ax = fig.add_subplot(grid[1 + i // 3, 2 * (i % 3):2 * (i % 3) + 2])
        for target in panel["targets"]:
            expr = queries.substitute(target["expr"], VARIABLES)
            for series in prometheus.query_range(expr, start, end, 1):
                times = [datetime.fromtimestamp(float(t), tz=timezone.utc) for t, _ in series["values"]]
                values = [float(v) for _, v in series["values"]]
                label = target["legendFormat"]
                for key, value in series["metric"].items():
                    label = label.replace("{{" + key + "}}", value)
                ax.plot(times, values, label=label or "value", linewidth=1.2)
        for step in panel["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]:
            if panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] != "off":
                ax.axhline(step["value"], color=COLORS.get(step["color"], step["color"]), linestyle="--",
                           linewidth=0.8)
        ax.set_title(panel["title"], fontsize=10)
        ax.xaxis.set_major_locator(mdates.SecondLocator(bysecond=[0, 30]))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
        ax.tick_params(labelsize=7)
        unit = panel["fieldConfig"]["defaults"]["unit"]
        if unit == "s":
            ax.set_yscale("log")
            ax.set_ylabel("seconds", fontsize=7)
        elif pid == 20:  # a one-slot queue next to a 4096 capacity
            ax.set_yscale("symlog", linthresh=1)
        elif unit != "none":
            ax.set_ylabel(unit, fontsize=7)
        ax.legend(fontsize=6, loc="upper left")
    fig.savefig(path, dpi=72, bbox_inches="tight")
    plt.close(fig)
    # A 64-colour palette keeps the committed PNGs small (~50 KB) without visible loss on these charts.
    from PIL import Image

    Image.open(path).convert("RGB").quantize(colors=64).save(path, optimize=True)


def main(out: Path) -> None:
    binary = Path(os.environ["COUNTER_ORIGIN_BIN"])
    dashboard = queries.load_dashboard()
    groups = [{**group, "interval": "1s",
               "rules": [{**rule, "for": "10s"} if "for" in rule else rule for rule in group["rules"]]}
              for group in queries.load_rule_groups()]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "a").mkdir(), (work / "b").mkdir(), (work / "c").mkdir()
        a = live.Origin(binary, work / "a")
        b = live.Origin(binary, work / "b")
        c = live.Origin(binary, work / "c", env={"WRITE_QUEUE_CAPACITY": "1"})
        kubernetes = live.KubernetesExporters("counter", ["counter-origin-a", "counter-origin-b"])
        config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
                  "scrape_configs": [scrape("counter-origin", a.metrics_addr, "counter-origin-a"),
                                     {**scrape("counter-origin", b.metrics_addr, "counter-origin-b"),
                                      "job_name": "counter-origin-b"},
                                     {"job_name": "kubernetes", "honor_labels": True,
                                      "static_configs": [{"targets": [kubernetes.addr]}]}]}
        # The same job label for both pods, as the ServiceMonitor gives them.
        config["scrape_configs"][1]["relabel_configs"] = [{"target_label": "job", "replacement": "counter-origin"}]
        prometheus = live.Prometheus("prometheus", work, config, groups)
        try:
            live.wait_for("both origins scraped",
                          lambda: len(prometheus.query('up{job="counter-origin"} == 1')) == 2, timeout=30)
            start = time.time()
            api = [("GET", "/api/counter"), ("POST", "/api/counter"), ("GET", "/api/counter"), ("GET", "/")]
            load = [threading.Thread(target=live.run_load, args=(o, PHASE_SECONDS), kwargs={"workers": 4, "mix": api})
                    for o in (a, b)]
            for thread in load:
                thread.start()
            for thread in load:
                thread.join()
            time.sleep(2)
            render(prometheus, dashboard, start, time.time(), "Counter Service — two origins under load",
                   out / "dashboard-load.png")
            # Pod b fails: its process is gone; its replacement (c, scraped as pod b) sheds most increments.
            b.stop()
            config["scrape_configs"][1]["static_configs"][0]["targets"] = [c.metrics_addr]
            prometheus.reload(config, groups)
            load = [threading.Thread(target=live.run_load, args=(o, PHASE_SECONDS),
                                     kwargs={"workers": 8, "mix": [("POST", "/api/counter"), ("GET", "/api/counter")]})
                    for o in (a, c)]
            time.sleep(8)  # the gap in pod b's series before its replacement takes traffic
            for thread in load:
                thread.start()
            for thread in load:
                thread.join()
            time.sleep(2)
            render(prometheus, dashboard, start, time.time(),
                   "Counter Service — pod b failed; its replacement sheds increments (503)",
                   out / "dashboard-failing-pod.png")
        finally:
            prometheus.stop()
            kubernetes.stop()
            for origin in (a, b, c):
                origin.stop()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
