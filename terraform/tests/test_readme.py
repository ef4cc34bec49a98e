"""terraform/README.md's deployment is a numbered list of script calls (issue 12: "the README calls
the scripts instead of holding long command blocks"), in the order the procedure needs, and the
first deploy step says plainly what the default origin protocol exposes (issue 12 #10)."""

import os
import re

from conftest import REPO, TERRAFORM


def deployment_section():
    text = (TERRAFORM / "README.md").read_text()
    return text.split("## Deployment, from a fresh account", 1)[1].split("\n## ", 1)[0]


def steps():
    return re.findall(r"^(\d+)\. (.*?)(?=^\d+\. |\Z)", deployment_section(), re.M | re.S)


def test_deployment_is_a_numbered_list_of_script_calls_in_order():
    found = steps()
    assert [int(n) for n, _ in found] == list(range(1, len(found) + 1))
    calls = [re.findall(r"`(scripts/[\w/.-]+\.sh)[^`]*`", body) for _, body in found]
    assert [c[0] if c else None for c in calls] == [
        "scripts/bootstrap-state.sh", "scripts/configure-repository.sh", None, "scripts/first-release.sh"]
    for script in [c[0] for c in calls if c]:
        path = REPO / script
        assert path.is_file() and os.access(path, os.X_OK), f"{script} is not an executable script"
    assert "```" not in deployment_section(), "no command blocks: each step is a script call"


def test_first_deploy_step_says_what_plain_http_to_the_origin_exposes():
    release_step = steps()[3][1]
    assert "plain HTTP" in release_step and "X-Origin-Verify" in release_step
    assert "origin_domain_name" in release_step and "origin_certificate_arn" in release_step


def test_teardown_is_the_script():
    text = (TERRAFORM / "README.md").read_text()
    teardown = text.split("## Teardown", 1)[1].split("\n## ", 1)[0]
    assert "`scripts/teardown.sh" in teardown and (REPO / "scripts" / "teardown.sh").is_file()
