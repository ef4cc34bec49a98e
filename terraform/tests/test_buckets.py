"""Every S3 bucket is hardened by the one module (terraform/modules/s3-bucket-hardening): the
layers keep only the bucket itself (name, force_destroy, prevent_destroy) and their own policy
statements, and the `moved` blocks keep each object at its address in the state when a layer adopts
the module (so an apply replaces nothing)."""

SOURCE = "../modules/s3-bucket-hardening"
MODULE = "modules/s3-bucket-hardening"
# Arguments a module block may set besides the module's variables.
MODULE_META = {"source", "version", "count", "for_each", "providers", "depends_on"}


def hardening_calls(layers):
    """(layer, call name, body) of every call of the hardening module."""
    for layer in layers.values():
        for name, body in layer.module_calls().items():
            if body["source"] == SOURCE:
                yield layer, name, body


def test_every_bucket_is_hardened_by_the_module_and_by_nothing_else(layers, modules):
    managed = {rtype for block in modules[MODULE].blocks("resource") for rtype in block}
    calls = list(hardening_calls(layers))
    buckets = [(layer.name, name) for layer in layers.values() for name in layer.resources("aws_s3_bucket")]
    assert sorted(buckets) == [("app", "logs"), ("bootstrap", "state")]
    for layer_name, bucket in buckets:
        mine = [body for layer, _, body in calls if layer.name == layer_name and body["bucket"] == f"${{aws_s3_bucket.{bucket}.id}}"]
        assert len(mine) == 1, f"{layer_name}: aws_s3_bucket.{bucket} needs exactly one {SOURCE} call"
        assert mine[0]["bucket_arn"] == f"${{aws_s3_bucket.{bucket}.arn}}"
    for layer in layers.values():
        written_out = sorted(rtype for rtype in managed if layer.resources(rtype))
        assert not written_out, f"{layer.name} configures {written_out} itself: that is the module's job"


def test_module_calls_set_declared_variables_and_every_required_one(layers, modules):
    """What `terraform validate` would say about the calls (it cannot run offline)."""
    for layer in layers.values():
        for name, body in layer.module_calls().items():
            module = modules[body["source"].removeprefix("../")]
            declared = module.variables()
            unknown = set(body) - set(declared) - MODULE_META
            assert not unknown, f"{layer.name}: module.{name} sets undeclared {sorted(unknown)}"
            missing = {v for v, spec in declared.items() if "default" not in spec} - set(body)
            assert not missing, f"{layer.name}: module.{name} misses required {sorted(missing)}"


def test_moved_blocks_keep_every_object_where_the_state_has_it(layers, modules):
    managed = sorted(rtype for block in modules[MODULE].blocks("resource") for rtype in block)
    for layer, call, body in hardening_calls(layers):
        bucket = body["bucket"].removeprefix("${aws_s3_bucket.").removesuffix(".id}")
        moved = {(m["from"], m["to"]) for m in layer.blocks("moved") if m["to"].startswith(f"${{module.{call}.")}
        expected = {(f"${{{rtype}.{bucket}}}", f"${{module.{call}.{rtype}.this}}") for rtype in managed}
        assert moved == expected, f"{layer.name}: module.{call} needs a moved block per object it took over"


def test_the_module_hardens_every_bucket_alike(modules):
    m = modules[MODULE]
    versioning = m.resource("aws_s3_bucket_versioning", "this")
    assert versioning["versioning_configuration"][0]["status"] == "Enabled"
    block = m.resource("aws_s3_bucket_public_access_block", "this")
    assert all(block[k] is True for k in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"))
    policy = m.resource("aws_s3_bucket_policy", "this")
    assert policy["depends_on"] == ["${aws_s3_bucket_public_access_block.this}"]
    transport = {s["sid"]: s for s in m.data("aws_iam_policy_document")["transport"]["statement"]}
    conditions = {sid: [(c["test"], c["variable"], c["values"]) for c in s["condition"]] for sid, s in transport.items()}
    assert conditions == {
        "DenyInsecureTransport": [("Bool", "aws:SecureTransport", ["false"])],
        "DenyTlsOlderThan12": [("NumericLessThan", "s3:TlsVersion", ["1.2"])],
    }
    for statement in transport.values():
        assert statement["effect"] == "Deny" and statement["actions"] == ["s3:*"]
        assert statement["resources"] == ["${var.bucket_arn}", "${var.bucket_arn}/*"]
    merged = m.data("aws_iam_policy_document")["this"]
    assert merged["source_policy_documents"] == "${concat([data.aws_iam_policy_document.transport.json], var.policy_documents)}"
