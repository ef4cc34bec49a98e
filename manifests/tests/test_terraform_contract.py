"""What the issue asked of an Ingress, checked on the Terraform side that owns the ALB instead
(manifests/base/origin/targetgroupbinding.yaml explains the split). The numbers that must agree with the
pods (port, health check, deregistration delay, idle timeout) are in test_invariants.py."""

from __future__ import annotations

import textwrap

import pytest

import terraform_contract


@pytest.fixture(scope="session")
def terraform() -> dict:
    try:
        return terraform_contract.load()
    except FileNotFoundError as error:
        pytest.fail(str(error))


def test_only_cloudfront_can_reach_the_alb(terraform):
    source = str(terraform)
    assert "com.amazonaws.global.cloudfront.origin-facing" in source, "ALB not limited to CloudFront's prefix list"
    rules = terraform["resource"].get("aws_lb_listener_rule", {})
    headers = [
        condition.get("http_header")
        for rule in rules.values()
        for condition in (rule.get("condition") if isinstance(rule.get("condition"), list) else [rule.get("condition")])
        if condition
    ]
    assert any("X-Origin-Verify" in str(h) for h in headers), "no listener rule requires the secret origin header"
    listeners = terraform["resource"].get("aws_lb_listener", {})
    assert listeners and all("403" in str(l.get("default_action")) for l in listeners.values()), (
        "a listener forwards requests without the secret header"
    )


def test_metrics_port_is_never_a_target(terraform):
    for name, tg in terraform["resource"]["aws_lb_target_group"].items():
        assert terraform_contract.resolve(terraform, tg["port"]) != 9090, name


# The reader must understand both module shapes that install as `hcl2` (see terraform_contract).
@pytest.mark.parametrize(
    "parsed",
    [
        {  # python-hcl2 8.x
            "variable": [{'"tg"': {"default": '"counter-origin"', "__is_block__": True}}],
            "locals": [{"port": 8080, "__is_block__": True}],
            "resource": [{'"aws_lb"': {'"this"': {"idle_timeout": 60, "__is_block__": True}}},
                         {'"aws_lb_target_group"': {'"this"': {
                             "name": "${var.tg}", "port": "${local.port}", "target_type": '"ip"',
                             "protocol": '"HTTP"', "deregistration_delay": 30,
                             "health_check": [{"path": '"/readyz"', "__is_block__": True}], "__is_block__": True}}}],
        },
        {  # bc-python-hcl2 (checkov's fork)
            "variable": [{"tg": {"default": ["counter-origin"]}}],
            "locals": [{"port": [8080]}],
            "resource": [{"aws_lb": {"this": {"idle_timeout": [60]}}},
                         {"aws_lb_target_group": {"this": {
                             "name": ["${var.tg}"], "port": ["${local.port}"], "target_type": ["ip"],
                             "protocol": ["HTTP"], "deregistration_delay": [30],
                             "health_check": [{"path": ["/readyz"]}]}}}],
        },
    ],
    ids=["python-hcl2", "bc-python-hcl2"],
)
def test_reader_normalises_both_parser_shapes(parsed, tmp_path, monkeypatch):
    (tmp_path / "main.tf").write_text("# parsed output is injected below\n")
    monkeypatch.setattr(terraform_contract.hcl2, "load", lambda handle: parsed)
    facts = terraform_contract.alb_facts(tmp_path)
    facts.pop("source")
    assert facts == {"idle_timeout": 60, "deregistration_delay": 30, "target_type": "ip", "port": 8080,
                     "protocol": "HTTP", "health_check_path": "/readyz", "name": "counter-origin"}


def test_reader_parses_real_hcl(tmp_path):
    (tmp_path / "alb.tf").write_text(textwrap.dedent("""
        variable "dereg" {
          type    = number
          default = 45
        }
        resource "aws_lb" "main" {
          idle_timeout = 90
        }
        resource "aws_lb_target_group" "origin" {
          name                 = "x"
          port                 = 8080
          target_type          = "ip"
          protocol             = "HTTP"
          deregistration_delay = var.dereg
          health_check {
            path = "/readyz"
          }
        }
    """))
    facts = terraform_contract.alb_facts(tmp_path)
    assert (facts["idle_timeout"], facts["deregistration_delay"], facts["health_check_path"]) == (90, 45, "/readyz")


def test_reader_fails_clearly_without_terraform(tmp_path):
    with pytest.raises(FileNotFoundError, match="aws_lb_target_group"):
        terraform_contract.alb_facts(tmp_path / "missing")
