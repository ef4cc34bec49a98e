"""A real origin and a real Prometheus on loopback, for the end-to-end test of the dashboard and the rules.

Both are ordinary child processes with their files in a temporary directory (never a system service), bound
to loopback ports, and stopped when the test ends. Readiness is awaited by polling, with deadlines.
"""

from __future__ import annotations

import collections
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

POLL_SECONDS = 0.1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, check, timeout: float):
    """Poll `check()` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (OSError, http.client.HTTPException, ValueError) as error:
            last_error = error
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"{what} not within {timeout:.0f} s" + (f" (last error: {last_error})" if last_error else ""))


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


class Origin:
    """`counter-origin` with the embedded store; the kernel picks its ports, read from the start-up log line."""

    def __init__(self, binary: Path, workdir: Path, env: dict[str, str] | None = None, await_ready: bool = True):
        self.output: list[str] = []
        started = threading.Event()
        self.addresses: dict[str, str] = {}
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LISTEN_ADDR": "127.0.0.1:0",
            "METRICS_ADDR": "127.0.0.1:0",
            "DATA_DIR": str(workdir / "data"),
            "LOG_LEVEL": "info",
            "ACCESS_LOG_EVERY": "0",
            "DRAIN_PERIOD_MS": "0",
            **(env or {}),
        }
        self.process = subprocess.Popen([str(binary)], env=environment, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)

        def read() -> None:
            for line in self.process.stdout:
                self.output.append(line)
                if not started.is_set() and "counter origin started" in line:
                    fields = json.loads(line)
                    self.addresses.update(addr=fields["addr"], metrics_addr=fields["metrics_addr"])
                    started.set()

        threading.Thread(target=read, daemon=True).start()
        if not started.wait(timeout=30):
            self.stop()
            raise RuntimeError("counter-origin did not start:\n" + "".join(self.output[-20:]))
        self.addr = self.addresses["addr"]
        self.metrics_addr = self.addresses["metrics_addr"]
        if await_ready:
            wait_for("origin /readyz 200", lambda: self.status("GET", "/readyz") == 200, timeout=30)

    def status(self, method: str, path: str) -> int:
        host, port = self.addr.rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    def stop(self) -> None:
        stop_process(self.process)


def run_load(origin: Origin, seconds: float, workers: int = 8, mix: list[tuple[str, str]] | None = None
             ) -> collections.Counter:
    """Bounded mixed traffic: reads, increments, the page, probes and an unknown path, from `workers` threads
    on keep-alive connections for `seconds`. Returns the count of each status code answered."""
    host, port = origin.addr.rsplit(":", 1)
    mix = mix or [("GET", "/api/counter"), ("POST", "/api/counter"), ("GET", "/api/counter"), ("POST", "/api/counter"),
                  ("GET", "/"), ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/no-such-page"),
                  ("OPTIONS", "/api/counter")]
    statuses: collections.Counter = collections.Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(offset: int) -> None:
        counts: collections.Counter = collections.Counter()
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        i = offset
        while time.monotonic() < deadline:
            method, path = mix[i % len(mix)]
            i += 1
            connection.request(method, path, body=b"" if method == "POST" else None)
            response = connection.getresponse()
            response.read()
            counts[response.status] += 1
            if response.getheader("connection", "").lower() == "close":
                connection.close()
                connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.close()
        with lock:
            statuses.update(counts)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


class Prometheus:
    """The Debian `prometheus` binary with a temporary configuration and TSDB, on a free loopback port."""

    def __init__(self, binary: str, workdir: Path, config: dict, rule_groups: list[dict]):
        self.workdir = workdir
        (workdir / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups}, sort_keys=False))
        config = {**config, "rule_files": [str(workdir / "rules.yaml")]}
        (workdir / "prometheus.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        self.port = free_port()
        self.log = (workdir / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [binary, f"--config.file={workdir / 'prometheus.yaml'}", f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h"],
            stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_for("Prometheus /-/ready", self.ready, timeout=30)
        except TimeoutError:
            self.stop()
            raise RuntimeError("Prometheus did not become ready:\n" + self.log_text()[-3000:]) from None

    def reload(self, config: dict, rule_groups: list[dict]) -> None:
        """Rewrites the configuration and rules and reloads them (SIGHUP), waiting until every target is known."""
        (self.workdir / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups}, sort_keys=False))
        config = {**config, "rule_files": [str(self.workdir / "rules.yaml")]}
        (self.workdir / "prometheus.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        self.process.send_signal(signal.SIGHUP)
        wanted = {t for job in config["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
        wait_for("the reloaded targets", lambda: wanted <= {
            t["discoveredLabels"]["__address__"] for t in self.api("targets")["activeTargets"]}, timeout=30)

    def log_text(self) -> str:
        self.log.flush()
        return (self.workdir / "prometheus.log").read_text()

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"Prometheus exited ({self.process.returncode}):\n{self.log_text()[-3000:]}")
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as response:
            return response.status == 200

    def api(self, path: str, **params) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise ValueError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """An instant query; the result as a list of samples (a scalar becomes one sample)."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        """A range query, as Grafana sends for a time series panel: a matrix of [time, value] per series."""
        return self.api("query_range", query=expr, start=start, end=end, step=step)["result"]

    def stop(self) -> None:
        stop_process(self.process)
        self.log.close()


class KubernetesExporters:
    """What kube-state-metrics and the kubelet's cAdvisor publish about one origin pod, served over HTTP on a free
    loopback port for Prometheus to scrape (with honor_labels, as their ServiceMonitors keep the pod's labels).
    Counters advance with time so rates exist. (The dashboard's deployment annotation reads the origin's own
    counter_build_info, not kube-state-metrics.)"""

    def __init__(self, namespace: str, pod: str | list[str]):
        import http.server

        started = time.monotonic()
        pods = [pod] if isinstance(pod, str) else pod
        hpa = f'namespace="{namespace}",horizontalpodautoscaler="counter-origin"'

        def exposition() -> str:
            elapsed = time.monotonic() - started
            per_pod = []
            for labels in (f'namespace="{namespace}",pod="{name}",container="origin"' for name in pods):
                per_pod += [
                    f"container_cpu_usage_seconds_total{{{labels}}} {0.35 * elapsed:.3f}",
                    f"container_cpu_cfs_periods_total{{{labels}}} {10 * elapsed:.0f}",
                    f"container_cpu_cfs_throttled_periods_total{{{labels}}} {0.4 * elapsed:.0f}",
                    f"container_memory_working_set_bytes{{{labels}}} 41943040",
                    f'kube_pod_container_resource_requests{{{labels},resource="cpu",unit="core"}} 0.25',
                    f'kube_pod_container_resource_limits{{{labels},resource="cpu",unit="core"}} 1',
                    f'kube_pod_container_resource_requests{{{labels},resource="memory",unit="byte"}} 134217728',
                    f'kube_pod_container_resource_limits{{{labels},resource="memory",unit="byte"}} 268435456',
                    f"kube_pod_container_status_restarts_total{{{labels}}} 0",
                ]
            return "\n".join(per_pod + [
                f'kube_deployment_spec_replicas{{namespace="{namespace}",deployment="counter-origin"}} {len(pods)}',
                f"kube_horizontalpodautoscaler_status_current_replicas{{{hpa}}} {len(pods)}",
                f"kube_horizontalpodautoscaler_status_desired_replicas{{{hpa}}} {len(pods)}",
                f"kube_horizontalpodautoscaler_spec_min_replicas{{{hpa}}} 2",
                f"kube_horizontalpodautoscaler_spec_max_replicas{{{hpa}}} 10",
                "",
            ])

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                body = exposition().encode()
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.addr = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
