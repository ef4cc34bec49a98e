"""What the docs suite checks, as plain functions the tests call (and test on small inputs).

- Relative links in Markdown: the target file exists, and a `#fragment` names a heading of that
  file by GitHub's slug rules (or an explicit `<a id>`), or a line (`#L12`) of a non-Markdown file.
- References to the design document (`docs/design.md §2`, `design.md §9.2`, and bare `§n` inside
  it) name a numbered section heading of docs/design.md.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

REPO = Path(__file__).resolve().parents[2]
DESIGN = REPO / "docs" / "design.md"

# Not part of the project's own text: dependencies, build output, local tools and artifacts.
SKIPPED_DIRS = {".git", "node_modules", "target", ".tools", "artifacts", "data", "__pycache__",
                ".pytest_cache", "corpus"}
# Source files whose comments may cite the design document.
SOURCE_SUFFIXES = {".rs", ".py", ".mjs", ".js", ".sh", ".md", ".toml", ".yaml", ".yml", ".tf",
                   ".json", ".html", ".css"}


def walk(root: Path, suffixes: set[str]) -> list[Path]:
    found = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        found.extend(Path(directory) / f for f in sorted(files) if Path(f).suffix in suffixes)
    return found


# ---------------------------------------------------------------- Markdown structure

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
HTML_ANCHOR = re.compile(r"""<a\s[^>]*?\b(?:id|name)\s*=\s*["']([^"']+)["']""", re.I)
CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    out, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)[0] * len(match.group(1))
            continue
        if fence is not None:
            if line.strip().startswith(fence) and set(line.strip()) <= {fence[0]}:
                fence = None
            continue
        out.append((number, line))
    return out


def heading_text(raw: str) -> str:
    """The text GitHub renders for a heading's Markdown: code spans verbatim, link text only,
    emphasis markers dropped."""
    parts, last = [], 0
    for match in CODE_SPAN.finditer(raw):
        parts.append(_strip_inline(raw[last:match.start()]))
        parts.append(match.group(2).strip() if match.group(2).strip() else match.group(2))
        last = match.end()
    parts.append(_strip_inline(raw[last:]))
    return "".join(parts)


def _strip_inline(text: str) -> str:
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # [text](url) -> text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = text.replace("*", "")
    return re.sub(r"(?<![\w])_+|_+(?![\w])", "", text)  # _emphasis_, not snake_case


def slug(text: str) -> str:
    """GitHub's heading anchor (github-slugger): lower case; letters, digits, marks, `-` and `_`
    kept; spaces become `-`; everything else (punctuation, symbols, emoji) dropped."""
    out = []
    for char in text.lower():
        if char == " ":
            out.append("-")
        elif char in "-_" or unicodedata.category(char)[0] in "LNM":
            out.append(char)
    return "".join(out)


def anchors(text: str) -> set[str]:
    """Every fragment a Markdown file answers to: heading slugs (duplicates numbered -1, -2, …)
    and explicit HTML anchors."""
    found: set[str] = set()
    seen: dict[str, int] = {}

    def add(heading: str) -> None:
        base = slug(heading_text(heading))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")

    previous = None
    for _, line in prose_lines(text):
        match = ATX_HEADING.match(line)
        if match:
            add(match.group(2))
        elif previous and previous.strip() and SETEXT_UNDERLINE.match(line) \
                and not ATX_HEADING.match(previous) and not previous.lstrip().startswith(("|", "-", "*")):
            add(previous.strip())
        found.update(HTML_ANCHOR.findall(line))
        previous = line
    return found


# ---------------------------------------------------------------- links

INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^()\s]*(?:\([^()\s]*\)[^()\s]*)*)"
                         r"(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HTML_HREF = re.compile(r"""<(?:a|img)\s[^>]*?\b(?:href|src)\s*=\s*["']([^"']+)["']""", re.I)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


@dataclass(frozen=True)
class Link:
    file: Path
    line: int
    target: str


def links(path: Path, text: str) -> list[Link]:
    """Every link target in a Markdown file, outside code blocks and code spans."""
    found = []
    for number, line in prose_lines(text):
        outside_code = CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)
        targets = [m.group(1) for m in INLINE_LINK.finditer(outside_code)]
        targets += [m.group(1) for m in REFERENCE_DEFINITION.finditer(outside_code)]
        targets += HTML_HREF.findall(outside_code)
        for target in targets:
            target = target[1:-1] if target.startswith("<") and target.endswith(">") else target
            found.append(Link(path, number, target))
    return found


LINE_FRAGMENT = re.compile(r"^L(\d+)(?:C\d+)?(?:-L(\d+)(?:C\d+)?)?$")


def check_link(link: Link, root: Path = REPO) -> str | None:
    """Why a link is broken, or None. External links (with a scheme) are not fetched."""
    target = link.target
    if not target or EXTERNAL.match(target) or target.startswith("//"):
        return None
    path_part, _, fragment = target.partition("#")
    path_part = unquote(path_part.split("?", 1)[0])
    if path_part.startswith("/"):
        resolved = (root / path_part.lstrip("/")).resolve()
    elif path_part:
        resolved = (link.file.parent / path_part).resolve()
    else:
        resolved = link.file
    try:
        resolved.relative_to(root.resolve())
    except ValueError:
        return f"{target}: points outside the repository"
    if not resolved.exists():
        return f"{target}: no such file ({_shown(resolved, root)})"
    if not fragment:
        return None
    fragment = unquote(fragment)
    if resolved.is_dir():
        return f"{target}: a fragment on a directory"
    if resolved.suffix == ".md":
        if fragment.lower() not in {a.lower() for a in anchors(resolved.read_text(encoding="utf-8"))}:
            return f"{target}: no heading #{fragment} in {_shown(resolved, root)}"
        return None
    line = LINE_FRAGMENT.match(fragment)
    if not line:
        return f"{target}: #{fragment} is neither a heading nor a line of {_shown(resolved, root)}"
    last = max(int(n) for n in line.groups() if n)
    lines = resolved.read_text(encoding="utf-8", errors="replace").count("\n") + 1
    if last > lines:
        return f"{target}: {_shown(resolved, root)} has {lines} lines"
    return None


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root.resolve()))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------- design-document references

SECTION_HEADING = re.compile(r"^#{2,3}[ \t]+§?(\d+(?:\.\d+)?)\.?[ \t]")
# `design.md` (any path prefix), then a chain of sections: `§1`, `§1–§2`, `§3, §6`, `§9.2 and §9.3`.
# Between the document name and the first `§` only spacing, a link's `]`/`)` or a comment marker
# of a wrapped line may stand.
_SEP = r"(?:\s|//!|//|#|\*|\]|\))*"
_SECTION = r"§\d+(?:\.\d+)?"
DESIGN_REFERENCE = re.compile(rf"design\.md(?:\]\([^)]*\))?{_SEP}({_SECTION}(?:\s*(?:,|–|-|and|or)\s*{_SECTION})*)")
SECTION_TOKEN = re.compile(r"§(\d+(?:\.\d+)?)")
# A `§` of another specification (RFC 9112 §3.2), never the design document's.
FOREIGN_SECTION = re.compile(r"(?:RFC\s*\d+|\bspec\w*)\s*" + _SECTION, re.I)
# Citations of the design brief, which is not in the repository.
STALE_REFERENCE = re.compile(rf"\bDESIGN(?:\.md)?{_SEP}§")


def design_sections(text: str) -> set[str]:
    """Section numbers of the design document's `## n.` / `### n.m` headings."""
    return {m.group(1) for _, line in prose_lines(text) if (m := SECTION_HEADING.match(line))}


@dataclass(frozen=True)
class Reference:
    file: Path
    line: int
    section: str


def design_references(path: Path, text: str, *, inside_design: bool = False) -> list[Reference]:
    """`design.md §n` citations; inside the design document itself, also every bare `§n`."""
    found = []
    for match in DESIGN_REFERENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        found += [Reference(path, line, s) for s in SECTION_TOKEN.findall(match.group(1))]
    if inside_design:
        for number, line in prose_lines(text):
            foreign = [m.span() for m in FOREIGN_SECTION.finditer(line)]
            for token in SECTION_TOKEN.finditer(line):
                if not any(start <= token.start() < end for start, end in foreign):
                    found.append(Reference(path, number, token.group(1)))
    return found


def stale_references(path: Path, text: str) -> list[tuple[int, str]]:
    return [(text.count("\n", 0, m.start()) + 1, m.group(0)) for m in STALE_REFERENCE.finditer(text)]
