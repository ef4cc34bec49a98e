"""The docs hold together: every relative link and anchor in every Markdown file resolves, and every
citation of the design document names one of its sections (scripts/test-docs.sh)."""

from pathlib import Path

import pytest

from docs_check import (
    DESIGN,
    REPO,
    SOURCE_SUFFIXES,
    Link,
    anchors,
    check_link,
    design_references,
    design_sections,
    links,
    slug,
    stale_references,
    walk,
)

MARKDOWN = walk(REPO, {".md"})
SOURCES = walk(REPO, SOURCE_SUFFIXES)


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def test_the_walk_finds_the_project_docs_and_nothing_vendored():
    names = {rel(p) for p in MARKDOWN}
    assert {"README.md", "docs/design.md", "docs/configuration.md", "edge/README.md"} <= names
    assert not [n for n in names if "node_modules" in n or n.startswith(("target/", ".tools/"))]


@pytest.mark.parametrize("path", MARKDOWN, ids=rel)
def test_relative_links_and_anchors_resolve(path):
    text = path.read_text(encoding="utf-8")
    broken = [f"{rel(link.file)}:{link.line}: {why}" for link in links(path, text)
              if (why := check_link(link))]
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_design_references_name_a_section_of_the_design_document():
    sections = design_sections(DESIGN.read_text(encoding="utf-8"))
    assert {"1", "2", "9", "9.1", "9.10", "10"} <= sections, sorted(sections)
    references = []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8", errors="replace")
        references += design_references(path, text, inside_design=path == DESIGN)
    cited_from = {r.file for r in references}
    assert len(cited_from) >= 10, f"too few files cite docs/design.md: {sorted(map(rel, cited_from))}"
    missing = [f"{rel(r.file)}:{r.line}: §{r.section}" for r in references if r.section not in sections]
    assert not missing, "references to sections docs/design.md does not have:\n" + "\n".join(missing)


def test_nothing_cites_the_design_brief_outside_the_repository():
    stale = [f"{rel(path)}:{line}: {found!r}" for path in SOURCES
             for line, found in stale_references(path, path.read_text(encoding="utf-8", errors="replace"))]
    assert not stale, "cite docs/design.md §n instead:\n" + "\n".join(stale)


# --- the checker itself: each rule catches what it is for

@pytest.mark.parametrize("heading, expected", [
    ("1. The HTTP contract", "1-the-http-contract"),
    ("9.2 Database errors returned to clients", "92-database-errors-returned-to-clients"),
    ("Reaching Argo CD and Grafana", "reaching-argo-cd-and-grafana"),
    ("`MAX_BATCH` and the *queue*", "max_batch-and-the-queue"),
    ("Edge (`edge/`) and page — [static](static/)", "edge-edge-and-page--static"),
    ("Cost (eu-west-2, on-demand)", "cost-eu-west-2-on-demand"),
])
def test_slugs_follow_github(heading, expected):
    from docs_check import heading_text
    assert slug(heading_text(heading)) == expected


def test_anchors_number_duplicates_and_skip_code_blocks():
    text = "# Top\n## Notes\n```\n## not a heading\n```\n## Notes\nSetext\n---\n<a id=\"custom\"></a>\n"
    assert anchors(text) == {"top", "notes", "notes-1", "setext", "custom"}


def test_broken_files_anchors_and_lines_are_reported(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n## Write path\n")
    (tmp_path / "code.rs").write_text("one\ntwo\n")
    page = tmp_path / "docs" / "b.md"
    text = ("[ok](a.md#write-path) [gone](missing.md) [bad anchor](a.md#read-path) "
            "[line](../code.rs#L2) [far line](../code.rs#L9) [out](../../x.md) "
            "[web](https://example.com/x#y) `[in code](nowhere.md)`\n"
            "```\n[fenced](nowhere.md)\n```\n[ref]: a.md#nope\n")
    verdicts = {link.target: check_link(link, tmp_path) for link in links(page, text)}
    assert set(verdicts) == {"a.md#write-path", "missing.md", "a.md#read-path", "../code.rs#L2",
                             "../code.rs#L9", "../../x.md", "https://example.com/x#y", "a.md#nope"}
    broken = {target for target, why in verdicts.items() if why}
    assert broken == {"missing.md", "a.md#read-path", "../code.rs#L9", "../../x.md", "a.md#nope"}


def test_design_references_are_found_across_wrapped_comments_and_lists(tmp_path):
    source = ("//! The promise (docs/design.md\n//! §2): a 200 means committed.\n"
              "// held to docs/design.md §3, §6 and §9.2; RFC 9112 §3.2 is not ours\n"
              "# see [design](docs/design.md) §1–§2\n")
    found = [r.section for r in design_references(Path("x.rs"), source)]
    assert found == ["2", "3", "6", "9.2", "1", "2"]
    inside = [r.section for r in design_references(DESIGN, "See §4 (RFC 9112 §6.3).\n", inside_design=True)]
    assert inside == ["4"]
    brief = "DESIGN"  # spelled apart so this file does not cite the brief itself
    assert stale_references(Path("x.rs"), f"({brief} §1) and {brief}.md §3, ({brief}\n//! §2)") == [
        (1, f"{brief} §"), (1, f"{brief}.md §"), (1, f"{brief}\n//! §")]


def test_a_link_object_names_its_place():
    link = Link(REPO / "README.md", 3, "docs/nowhere.md")
    assert "no such file" in check_link(link)
