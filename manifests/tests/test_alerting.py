"""Alerts reach someone (issue 12 #7, issue 19 #15): page and ticket severities go to the SNS alerts
topic, the Watchdog to a heartbeat topic whose silence pages, and only what nothing routes is silent.
The route tree is evaluated here the way Alertmanager does (first matching child, anchored regex
matchers) for every alert of manifests/base/prometheusrule.yaml and for the chart's own severities."""

from __future__ import annotations

import json
import re

import pytest
import yaml

import crd_schema
from conftest import MANIFESTS, REPO

VALUES = yaml.safe_load((MANIFESTS / "observability" / "kube-prometheus-stack-values.yaml").read_text())
RULES = yaml.safe_load((MANIFESTS / "base" / "prometheusrule.yaml").read_text())
SNS_ARN = re.compile(r"arn:aws:sns:(?P<region>[a-z]{2}(?:-[a-z]+)+-\d):\d{12}:[\w-]{1,256}")


def matches(matcher: dict, labels: dict) -> bool:
    value = labels.get(matcher["name"], "")
    kind = matcher.get("matchType", "=")
    if kind in ("=~", "!~"):
        hit = re.fullmatch(matcher["value"], value) is not None  # Alertmanager anchors its regexes
        return hit if kind == "=~" else not hit
    return (value == matcher["value"]) == (kind == "=")


def route(tree: dict, labels: dict) -> str:
    """The receiver Alertmanager picks in an AlertmanagerConfig route tree (children without `continue`)."""
    for child in tree.get("routes", []):
        if all(matches(m, labels) for m in child.get("matchers", [])):
            return route(child, labels) if child.get("routes") else child["receiver"]
    return tree["receiver"]


@pytest.fixture
def alerting(prod) -> dict:
    matches_ = [d for d in prod if d["kind"] == "AlertmanagerConfig" and d["metadata"]["name"] == "counter-alerting"]
    if len(matches_) != 1:
        pytest.fail("the prod overlay renders no AlertmanagerConfig counter-alerting: alerts reach no one")
    return matches_[0]


def receiver(config: dict, name: str) -> dict:
    (found,) = [r for r in config["spec"]["receivers"] if r["name"] == name]
    return found


def sns_topics(config: dict, name: str) -> list[str]:
    return [c["topicARN"] for c in receiver(config, name).get("snsConfigs", [])]


def test_alertmanager_selects_the_config_for_every_alert(alerting):
    spec = VALUES["alertmanager"]["alertmanagerSpec"]
    assert spec["alertmanagerConfigSelector"]["matchLabels"].items() <= alerting["metadata"]["labels"].items()
    assert spec["alertmanagerConfigNamespaceSelector"] == {}, "the config lives in the app's namespace"
    # OnNamespace (the default) would only route alerts labelled namespace="counter".
    assert spec["alertmanagerConfigMatcherStrategy"] == {"type": "None"}
    # Pod Identity (Terraform) binds sns:Publish to this name.
    assert VALUES["alertmanager"]["serviceAccount"]["name"] == "kube-prometheus-stack-alertmanager"


def test_the_values_alone_are_the_silent_default():
    config = VALUES["alertmanager"]["config"]
    assert config["route"]["receiver"] == "null"
    assert config["receivers"] == [{"name": "null"}], "a receiver in the values would page from any cluster"


@pytest.mark.parametrize("severity, expected", [
    ("page", "page"), ("critical", "page"), ("ticket", "ticket"), ("warning", "ticket"),
    ("info", "silent"), ("none", "silent"),
])
def test_severities_route_to_their_receiver(alerting, severity, expected):
    assert route(alerting["spec"]["route"], {"alertname": "Any", "severity": severity}) == expected


def test_every_counter_alert_pages_or_tickets(alerting):
    alerts = [r for group in RULES["spec"]["groups"] for r in group["rules"] if "alert" in r]
    assert alerts
    for rule in alerts:
        labels = {"alertname": rule["alert"], **rule.get("labels", {})}
        chosen = route(alerting["spec"]["route"], labels)
        assert chosen in ("page", "ticket"), f"{rule['alert']} (severity {labels.get('severity')}) goes to {chosen}"
        assert sns_topics(alerting, chosen), chosen


def test_page_and_ticket_publish_to_the_alerts_topic_signed_in_its_region(alerting):
    topics = set()
    for name in ("page", "ticket", "heartbeat"):
        (config,) = receiver(alerting, name)["snsConfigs"]
        arn = SNS_ARN.fullmatch(config["topicARN"])
        assert arn, f"{name}: {config['topicARN']} is not an SNS topic ARN"
        # SigV4 signs for the topic's region; no keys: the Pod Identity credentials.
        assert config["sigv4"] == {"region": arn["region"]}, name
        topics.add((name, config["topicARN"]))
    by_name = dict(topics)
    assert by_name["page"] == by_name["ticket"] != by_name["heartbeat"]
    assert receiver(alerting, "page")["snsConfigs"][0]["attributes"]["severity"] == "page"
    assert receiver(alerting, "ticket")["snsConfigs"][0]["attributes"]["severity"] == "ticket"
    assert set(receiver(alerting, "silent")) == {"name"}


def test_the_watchdog_feeds_the_external_heartbeat(alerting):
    tree = alerting["spec"]["route"]
    assert route(tree, {"alertname": "Watchdog", "severity": "none"}) == "heartbeat"
    (child,) = [r for r in tree["routes"] if r["receiver"] == "heartbeat"]
    # Terraform's alarm expects a message in every 300 s period (three empty periods page). Alertmanager
    # re-sends at the first groupInterval tick after repeatInterval, so the worst gap is their sum.
    assert duration_s(child["repeatInterval"]) + duration_s(child["groupInterval"]) <= 300
    assert receiver(alerting, "heartbeat")["snsConfigs"][0]["sendResolved"] is False


def duration_s(duration: str) -> int:
    return sum(int(n) * {"s": 1, "m": 60, "h": 3600}[u] for n, u in re.findall(r"(\d+)([smh])", duration))


def test_the_router_can_fail():
    tree = {"receiver": "silent", "routes": [
        {"receiver": "page", "matchers": [{"name": "severity", "matchType": "=~", "value": "page|critical"}]}]}
    assert route(tree, {"severity": "critical"}) == "page"
    assert route(tree, {"severity": "critical-ish"}) == "silent"  # anchored
    assert route(tree, {}) == "silent"


def test_child_routes_follow_the_route_schema(alerting):
    # The CRD leaves `routes` items unchecked (preserve-unknown-fields); the operator parses each child
    # as a Route. Validate each one as if it were the top-level route.
    validator = crd_schema.load_validators()[("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig")]
    for child in alerting["spec"]["route"]["routes"]:
        probe = {**alerting, "spec": {**alerting["spec"], "route": child}}
        assert not crd_schema.errors(validator, probe), child["receiver"]
        names = {r["name"] for r in alerting["spec"]["receivers"]}
        assert child["receiver"] in names


# --- W3: the SNS subscription filters the README advises must pass every page, whoever sends it ---


def sns_filter_accepts(policy: dict, attributes: dict) -> bool:
    """SNS filter-policy matching on message attributes (AWS docs, "Amazon SNS subscription filter
    policies"): every key of the policy must match, a key matches when at least one of its values
    does, and an attribute the message lacks matches only `{"exists": false}`."""
    for key, values in policy.items():
        present = key in attributes

        def one(value) -> bool:
            if isinstance(value, str):
                return present and attributes[key] == value
            if isinstance(value, dict) and set(value) == {"exists"}:
                return present == value["exists"]
            raise AssertionError(f"this test does not model the SNS filter operator {value!r}")

        if not any(one(v) for v in values):
            return False
    return True


def advised_filters() -> dict:
    text = (MANIFESTS / "README.md").read_text()
    found = re.findall(r"<!-- sns-filter: (\w+) -->\s*```json\n(.*?)\n```", text, re.S)
    return {name: json.loads(body) for name, body in found}


def alerts_topic_publishers() -> dict:
    """{publisher: message attributes} for everything that publishes to the alerts topic."""
    config = yaml.safe_load((MANIFESTS / "overlays" / "prod" / "alertmanagerconfig.yaml").read_text())
    publishers = {}
    for receiver in config["spec"]["receivers"]:
        for sns in receiver.get("snsConfigs", []):
            if sns["topicARN"] == "ALERTS_TOPIC_ARN":
                publishers[f"alertmanager:{receiver['name']}"] = dict(sns.get("attributes", {}))
    alarms = []
    for path in sorted((REPO / "terraform" / "app").glob("*.tf")):
        for name, body in re.findall(r'resource "aws_cloudwatch_metric_alarm" "(\w+)" \{(.*?)\n\}', path.read_text(), re.S):
            if "aws_sns_topic.alerts.arn" in body:
                alarms.append(name)
    assert alarms, "no CloudWatch alarm notifies the alerts topic: this test lost its subject"
    for name in alarms:
        publishers[f"cloudwatch-alarm:{name}"] = {}  # alarm notifications carry no message attributes
    return publishers


def test_advised_sns_filters_route_every_page_and_only_tickets_to_the_inbox():
    filters = advised_filters()
    assert set(filters) == {"pager", "ticket"}, f"manifests/README.md advises filters {sorted(filters)}"
    publishers = alerts_topic_publishers()
    assert publishers.get("alertmanager:page") == {"severity": "page"}, publishers
    assert publishers.get("alertmanager:ticket") == {"severity": "ticket"}, publishers
    for name, attributes in publishers.items():
        is_ticket = attributes.get("severity") == "ticket"
        assert sns_filter_accepts(filters["pager"], attributes) != is_ticket, (
            f"the advised pager filter {'pages' if is_ticket else 'drops'} {name} ({attributes})"
        )
        assert sns_filter_accepts(filters["ticket"], attributes) == is_ticket, f"ticket filter vs {name}"


def test_the_old_severity_only_filter_would_drop_the_alarms():
    """The filter the README used to advise: proof that the test above can fail."""
    alarms = [a for n, a in alerts_topic_publishers().items() if n.startswith("cloudwatch-alarm:")]
    assert not any(sns_filter_accepts({"severity": ["page"]}, a) for a in alarms)


# --- runbook links follow the repository the environment is bound to -----------------------------


def bound_repository(manifests) -> tuple[str, str]:
    """OWNER, NAME of manifests/argocd/repository.env's REPO_URL (https or ssh form)."""
    url = re.search(r"^REPO_URL=(\S+)$", (manifests / "argocd" / "repository.env").read_text(), re.M).group(1)
    owner, name = re.search(r"[:/]([\w.-]+)/([\w.-]+)$", url).groups()
    return owner, name.removesuffix(".git")


def runbook_urls(docs) -> list[str]:
    urls = [rule["annotations"]["runbook_url"]
            for doc in docs if doc["kind"] == "PrometheusRule"
            for group in doc["spec"]["groups"] for rule in group["rules"]
            if "runbook_url" in rule.get("annotations", {})]
    assert urls, "no runbook_url in the rendered PrometheusRules"
    return urls


def assert_runbooks_link_to(docs, owner, name):
    prefix = f"https://github.com/{owner}/{name}/blob/main/observability/runbooks.md#"
    wrong = [u for u in runbook_urls(docs) if not u.startswith(prefix)]
    assert not wrong, f"runbook links outside the bound repository {owner}/{name}: {wrong}"


def test_committed_bindings_agree_and_the_prod_runbooks_use_them(prod):
    owner, name = bound_repository(MANIFESTS)
    links = dict(l.split("=", 1) for l in (MANIFESTS / "overlays" / "prod" / "repository.env").read_text().splitlines()
                 if l and not l.startswith("#"))
    assert links == {"REPO_OWNER": owner, "REPO_NAME": name}, "the two repository bindings disagree"
    assert_runbooks_link_to(prod, owner, name)


def test_prod_runbook_links_follow_a_rebound_repository(tmp_path):
    """The base rule file names a placeholder repository; the bootstrap rebinds repository.env, and
    the rendered prod rules must link to the runbooks of *that* repository, not the placeholder."""
    import shutil

    from conftest import kustomize

    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, copy, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    (copy / "argocd" / "repository.env").write_text("REPO_URL=git@github.com:acme-ops/counter.svc.git\n")
    (copy / "overlays" / "prod" / "repository.env").write_text("REPO_OWNER=acme-ops\nREPO_NAME=counter.svc\n")
    assert bound_repository(copy) == ("acme-ops", "counter.svc")
    assert_runbooks_link_to(kustomize(copy / "overlays" / "prod"), "acme-ops", "counter.svc")
