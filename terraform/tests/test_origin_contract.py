"""The ALB, target group and CloudFront origin agree with the origin's configuration and with the
cross-part decision (Terraform owns the ALB; Kubernetes binds pods with a TargetGroupBinding)."""

import pathlib


from conftest import REPO, text_of

# The deployed origin's environment: manifests/base/origin/origin.env, which kustomize turns into its ConfigMap.
ORIGIN_ENV = pathlib.Path(REPO / "manifests" / "base" / "origin" / "origin.env")


def origin_setting(name):
    """The value the deployed origin runs with; the deployment must set every value checked here."""
    settings = {}
    for line in ORIGIN_ENV.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    assert name in settings, f"{ORIGIN_ENV.relative_to(REPO)} does not set {name}"
    return settings[name]


def alb(layers):
    return layers["app"].resource("aws_lb", "this")


def origin_config(layers):
    origin = layers["app"].resource("aws_cloudfront_distribution", "this")["origin"][0]
    return origin, origin["custom_origin_config"][0]


def test_alb_idle_timeout_is_60_and_below_the_origin_keep_alive(layers):
    idle = alb(layers)["idle_timeout"]
    assert idle == 60, "cross-part decision: ALB idle timeout 60 s"
    keepalive = int(origin_setting("KEEPALIVE_IDLE_TIMEOUT_S"))
    assert idle < keepalive, f"ALB idle timeout {idle}s must be below the origin's keep-alive {keepalive}s"


def test_cloudfront_keep_alive_is_below_the_alb_idle_timeout(layers):
    _, config = origin_config(layers)
    assert config["origin_keepalive_timeout"] < alb(layers)["idle_timeout"]


def test_cloudfront_waits_longer_than_the_origin_request_deadline(layers):
    _, config = origin_config(layers)
    deadline_s = int(origin_setting("REQUEST_TIMEOUT_MS")) / 1000
    assert config["origin_read_timeout"] > deadline_s, "the origin's own 503/504 must win over a CloudFront timeout"
    assert config["origin_read_timeout"] <= 60, "above 60 s needs a CloudFront quota increase"


def test_target_group_matches_the_origin(layers):
    tg = layers["app"].resource("aws_lb_target_group", "origin")
    listen_port = int(str(origin_setting("LISTEN_ADDR")).rsplit(":", 1)[1])
    assert tg["target_type"] == "ip"
    assert tg["port"] == 8080 == listen_port
    assert tg["protocol"] == "HTTP"
    assert tg["deregistration_delay"] == 30
    check = tg["health_check"][0]
    assert check["path"] == "/readyz", "readiness (drain-aware), never liveness"
    assert check["port"] == "traffic-port"
    assert check["matcher"] == "200"
    assert tg["name"] == "${var.target_group_name}"
    assert layers["app"].variables()["target_group_name"]["default"] == "counter-origin"


def test_metrics_port_is_never_behind_the_alb(layers):
    for path in (REPO / "terraform" / "app").glob("*.tf"):
        assert "9090" not in path.read_text(), f"{path.name}: the metrics port must not be exposed through the ALB"


def test_listener_forbids_everything_without_the_secret_header(layers):
    app = layers["app"]
    listener = app.resource("aws_lb_listener", "this")
    default = listener["default_action"][0]
    assert default["type"] == "fixed-response"
    assert default["fixed_response"][0]["status_code"] == "403"
    rules = app.resources("aws_lb_listener_rule")
    assert list(rules) == ["from_cloudfront"], "one rule: forward only with the secret header"
    rule = rules["from_cloudfront"]
    assert rule["action"][0]["type"] == "forward"
    assert rule["action"][0]["target_group_arn"] == "${aws_lb_target_group.origin.arn}"
    header = rule["condition"][0]["http_header"][0]
    assert header["http_header_name"] == "X-Origin-Verify"
    assert "random_password.origin_verify" in header["values"]


def test_cloudfront_sends_the_secret_header_it_generated(layers):
    origin, _ = origin_config(layers)
    header = origin["custom_header"][0]
    assert header["name"] == "X-Origin-Verify"
    assert header["value"] == "${random_password.origin_verify[var.origin_verify_active].result}"
    secret = layers["app"].resource("aws_secretsmanager_secret_version", "origin_verify")
    assert "random_password.origin_verify" in text_of(secret)


def test_alb_admits_only_the_cloudfront_origin_facing_prefix_list(layers):
    app = layers["app"]
    prefix_list = app.data("aws_ec2_managed_prefix_list")["cloudfront_origin_facing"]
    assert prefix_list["name"] == "com.amazonaws.global.cloudfront.origin-facing"
    ingress = {
        name: rule
        for name, rule in app.resources("aws_vpc_security_group_ingress_rule").items()
        if rule["security_group_id"] == "${aws_security_group.alb.id}"
    }
    assert list(ingress) == ["alb_from_cloudfront"]
    rule = ingress["alb_from_cloudfront"]
    assert rule["prefix_list_id"] == "${data.aws_ec2_managed_prefix_list.cloudfront_origin_facing.id}"
    assert "cidr_ipv4" not in rule and "cidr_ipv6" not in rule
    assert "ingress" not in app.resource("aws_security_group", "alb"), "rules live in their own resources"


def test_nothing_in_the_layers_is_open_to_the_internet(layers):
    for layer in layers.values():
        for rtype in ("aws_vpc_security_group_ingress_rule", "aws_security_group_rule", "aws_security_group"):
            for name, body in layer.resources(rtype).items():
                text = text_of(body)
                assert "0.0.0.0/0" not in text and "::/0" not in text, f"{layer.name}: {rtype}.{name} is open to the internet"


def test_alb_and_target_group_outputs_for_the_target_group_binding(layers):
    outputs = layers["app"].outputs()
    for name in ("target_group_arn", "target_group_name", "alb_security_group_id", "cloudfront_domain_name"):
        assert name in outputs
