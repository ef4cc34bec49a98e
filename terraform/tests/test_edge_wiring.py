"""CloudFront is built from edge/: every policy, function and behaviour in edge/cloudfront.json is
wired into terraform/app, each of their fields is read from the data (never restated in HCL), and
every field the HCL reads exists in the data (or `terraform plan` would fail)."""

import re

import pytest

from conftest import REPO, text_of

# Top-level keys of edge/cloudfront.json and the resource that consumes each.
WIRED_KEYS = {
    "$comment",
    "cache_policies",
    "origin_request_policies",
    "response_headers_policy",
    "functions",
    "default_behavior",
    "ordered_behaviors",
}

# Fields the HCL may read with try(): optional in the data.
OPTIONAL_BEHAVIOR_FIELDS = {"origin_request_policy"}


def fields_read(text, prefix):
    return set(re.findall(re.escape(prefix) + r"\.([a-z_]+)", text))


def test_every_top_level_key_of_the_edge_data_is_wired(edge):
    unknown = set(edge) - WIRED_KEYS
    assert not unknown, f"edge/cloudfront.json gained {sorted(unknown)}: wire it in terraform/app/cloudfront.tf (and here)"
    missing = WIRED_KEYS - set(edge)
    assert not missing, f"edge/cloudfront.json lost {sorted(missing)}"


def test_app_reads_the_edge_data_files(layers):
    app_locals = layers["app"].locals()
    assert app_locals["edge_dir"] == "${path.module}/../../edge"
    assert app_locals["edge"] == '${jsondecode(file("${local.edge_dir}/cloudfront.json"))}'


@pytest.mark.parametrize(
    "resource,collection",
    [
        ("aws_cloudfront_cache_policy", "cache_policies"),
        ("aws_cloudfront_origin_request_policy", "origin_request_policies"),
        ("aws_cloudfront_function", "functions"),
    ],
)
def test_each_entry_becomes_a_resource_built_from_all_its_fields(layers, edge, resource, collection):
    body = layers["app"].resource(resource, "this")
    assert body["for_each"] == f"${{local.edge.{collection}}}", f"{resource} must be one per entry of {collection}"
    text = text_of(body)
    read = fields_read(text, "each.value")
    if collection == "functions":
        # A function's event type belongs to its association with each behaviour.
        associations = text_of(layers["app"].resource("aws_cloudfront_distribution", "this"))
        read |= fields_read(associations, "local.edge.functions[function_association.value]")
    for name, entry in edge[collection].items():
        unread = set(entry) - read
        assert not unread, f"{collection}.{name}: fields {sorted(unread)} are not wired into {resource}"
        absent = read - set(entry)
        assert not absent, f"{resource} reads {sorted(absent)}, which {collection}.{name} does not define"


def test_cache_policy_values_are_not_restated_in_hcl(layers):
    body = layers["app"].resource("aws_cloudfront_cache_policy", "this")
    for attribute in ("min_ttl", "default_ttl", "max_ttl"):
        assert body[attribute] == f"${{each.value.{attribute}}}"
    params = body["parameters_in_cache_key_and_forwarded_to_origin"][0]
    assert params["enable_accept_encoding_gzip"] == "${each.value.gzip}"
    assert params["enable_accept_encoding_brotli"] == "${each.value.brotli}"


def test_function_code_comes_from_the_edge_sources(layers, edge):
    body = layers["app"].resource("aws_cloudfront_function", "this")
    assert body["code"] == '${file("${local.edge_dir}/${each.value.source}")}'
    assert body["runtime"] == "${each.value.runtime}"
    for name, function in edge["functions"].items():
        source = REPO / "edge" / function["source"]
        assert source.is_file(), f"functions.{name}: {source} does not exist"
        assert source.stat().st_size <= 10 * 1024, f"functions.{name}: over CloudFront Functions' 10 KB limit"
        assert function["runtime"] == "cloudfront-js-2.0"
        assert function["event_type"] in ("viewer-request", "viewer-response")


def test_response_headers_policy_is_built_from_every_field(layers, edge):
    body = layers["app"].resource("aws_cloudfront_response_headers_policy", "this")
    text = text_of(body)
    policy = edge["response_headers_policy"]
    assert "local.edge.response_headers_policy.name" in text
    assert "local.edge.response_headers_policy.comment" in text
    assert layers["app"].locals()["security_headers"] == "${local.edge.response_headers_policy.security_headers}"
    assert set(policy) == {"name", "comment", "security_headers"}, f"unwired response_headers_policy fields: {set(policy)}"
    config = body["security_headers_config"][0]
    for header, fields in policy["security_headers"].items():
        assert header in config, f"security header {header} is not in the response headers policy"
        block = config[header][0]
        for field in fields:
            assert block.get(field) == f"${{local.security_headers.{header}.{field}}}", (
                f"{header}.{field} must be read from edge/cloudfront.json, got {block.get(field)!r}"
            )
        restated = set(block) - set(fields)
        assert not restated, f"{header}: {sorted(restated)} set in HCL but not defined in edge/cloudfront.json"


def distribution(layers):
    return layers["app"].resource("aws_cloudfront_distribution", "this")


def test_default_behavior_reads_every_field_of_the_data(layers, edge):
    default = distribution(layers)["default_cache_behavior"][0]
    text = text_of(default)
    read = fields_read(text, "local.edge.default_behavior")
    defined = set(edge["default_behavior"])
    assert defined <= read, f"default_behavior fields {sorted(defined - read)} are not wired"
    assert read - defined <= OPTIONAL_BEHAVIOR_FIELDS, f"default_behavior: HCL reads undefined {sorted(read - defined)}"
    assert default["cache_policy_id"] == "${aws_cloudfront_cache_policy.this[local.edge.default_behavior.cache_policy].id}"
    assert default["response_headers_policy_id"] == "${aws_cloudfront_response_headers_policy.this.id}"


def test_ordered_behaviors_are_generated_from_the_data(layers, edge):
    dynamic = distribution(layers)["dynamic"]
    ordered = [d["ordered_cache_behavior"] for d in dynamic if "ordered_cache_behavior" in d]
    assert len(ordered) == 1, "ordered behaviours must come from one dynamic block over the data"
    block = ordered[0]
    assert block["for_each"] == "${local.edge.ordered_behaviors}"
    assert block["iterator"] == "${behavior}" or block["iterator"] == "behavior"
    text = text_of(block["content"])
    read = fields_read(text, "behavior.value")
    for behavior in edge["ordered_behaviors"]:
        unread = set(behavior) - read
        assert not unread, f"behaviour {behavior['path_pattern']}: {sorted(unread)} not wired"
        absent = read - set(behavior) - OPTIONAL_BEHAVIOR_FIELDS
        assert not absent, f"behaviour {behavior['path_pattern']}: HCL reads undefined {sorted(absent)}"


def test_no_path_pattern_or_ttl_is_hard_coded(layers):
    text = (REPO / "terraform" / "app" / "cloudfront.tf").read_text()
    assert not re.search(r'path_pattern\s*=\s*"', text), "path patterns come from edge/cloudfront.json"
    assert not re.search(r"_ttl\s*=\s*\d", text.split("custom_error_response")[0]), "TTLs come from edge/cloudfront.json"
    assert not re.search(r'allowed_methods\s*=\s*\[', text), "methods come from edge/cloudfront.json"


def test_function_associations_follow_each_behaviours_list(layers):
    text = (REPO / "terraform" / "app" / "cloudfront.tf").read_text()
    assert text.count("for_each = local.edge.default_behavior.functions") == 1
    assert text.count("for_each = behavior.value.functions") == 1
    assert text.count("event_type   = local.edge.functions[function_association.value].event_type") == 2


def test_the_data_is_internally_consistent(edge):
    behaviors = [edge["default_behavior"], *edge["ordered_behaviors"]]
    for behavior in behaviors:
        where = behavior.get("path_pattern", "default")
        assert behavior["cache_policy"] in edge["cache_policies"], f"{where}: unknown cache policy"
        if "origin_request_policy" in behavior:
            assert behavior["origin_request_policy"] in edge["origin_request_policies"], f"{where}: unknown origin request policy"
        for function in behavior["functions"]:
            assert function in edge["functions"], f"{where}: unknown function {function}"
    used = {b["cache_policy"] for b in behaviors}
    assert used == set(edge["cache_policies"]), f"cache policies never used: {set(edge['cache_policies']) - used}"
