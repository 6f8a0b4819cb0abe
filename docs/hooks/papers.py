"""mkdocs hook: the paper-checks page is ``papers/README.md`` followed by every folder's ``results.md``.

``docs/papers.md`` holds the marker ``<!-- papers -->``. The README's links to ``<folder>/results.md`` become
links to that folder's section on the same page, and each ``results.md`` is inlined with its headings one level
down, so the page shows what the repository holds, regenerated at every build.
"""

from __future__ import annotations

import re
from pathlib import Path

MARKER = "<!-- papers -->"
PAPERS = Path(__file__).resolve().parents[2] / "papers"


def _demote(markdown: str, anchor: str) -> str:
    lines, first = [], True
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if not in_code and re.match(r"#{1,5} ", line):
            line = "#" + line
            if first:
                line += f" {{#{anchor}}}"
                first = False
        lines.append(line)
    return "\n".join(lines)


def render(papers: Path = PAPERS) -> str:
    readme = (papers / "README.md").read_text()
    readme = re.sub(r"^# .*\n", "", readme, count=1)
    readme = re.sub(r"\]\(([a-z0-9_]+)/results\.md\)", r"](#\1)", readme)
    parts = [readme]
    for results in sorted(papers.glob("*/results.md")):
        parts.append(_demote(results.read_text(), results.parent.name))
    return "\n\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001  (mkdocs hook signature)
    return markdown.replace(MARKER, render()) if MARKER in markdown else markdown
