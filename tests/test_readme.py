"""The README is the front page: short, and every relative link and figure in it exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """The anchor mkdocs (and GitHub) give a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"\s+", "-", text)


def _relative_links(text: str) -> list[str]:
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def test_readme_is_at_most_200_lines():
    n = len(README.read_text().splitlines())
    assert n <= 200, f"README.md has {n} lines; the front page keeps to 200 (move detail into docs/)"


def test_readme_relative_links_and_anchors_exist():
    links = _relative_links(README.read_text())
    assert links, "no relative links found: the link pattern no longer matches the README"
    missing = []
    for target in links:
        path, _, anchor = target.partition("#")
        file = ROOT / path
        if not file.exists():
            missing.append(target)
        elif anchor and file.suffix == ".md":
            slugs = {_slug(h) for h in re.findall(r"^#+\s+(.*)$", file.read_text(), flags=re.MULTILINE)}
            if anchor not in slugs:
                missing.append(target)
    assert not missing, f"README.md links to what does not exist: {missing}"


def test_readme_figures_are_committed_pngs_from_the_docs_assets():
    figures = [t for t in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", README.read_text())]
    assert figures, "the front page shows an example figure"
    for fig in figures:
        assert fig.startswith("docs/assets/") and fig.endswith(".png"), fig
        assert (ROOT / fig).stat().st_size > 5_000, f"{fig} is not a real figure"


def test_slug_matches_headings_with_punctuation():
    assert _slug("Licences") == "licences"
    assert _slug("Where probekit fits") == "where-probekit-fits"
    assert _slug("What a store promises: names, sizes") == "what-a-store-promises-names-sizes"
