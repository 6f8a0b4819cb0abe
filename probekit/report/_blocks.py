"""The report's building blocks: sections of text, facts, tables, figures and HTML fragments, as plain data.

The HTML and Markdown writers render the same sections, so both always show
the same numbers. A section whose inputs are absent carries only a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from probekit.runfolder import RunFolder, table_path

__all__ = ["Block", "Section", "figures", "src", "absent"]


@dataclass
class Block:
    """One piece of a section: ``kind`` is text (a list of sentences), facts, table, figure, html, code, bars
    or link."""

    kind: str
    data: object
    caption: str = ""
    source: str | None = None


@dataclass
class Section:
    """A titled list of blocks; ``note`` says why it is empty.

    A ``collapsed`` section shows its title and ``summary`` and opens on a
    click (HTML ``<details>``); ``derived`` holds tables the report computed
    and writes beside the run's own (``tables/report_<name>.csv``).
    """

    id: str
    title: str
    blocks: list = field(default_factory=list)
    note: str = ""
    derived: dict = field(default_factory=dict)
    collapsed: bool = False
    summary: str = ""

    @property
    def empty(self) -> bool:
        return not self.blocks


def figures(run: RunFolder, section: str, blocks: list) -> None:
    """Append a figure block for each ``figures/<section>__*.png`` of the run."""
    for f in run.figures.get(section, []):
        name = f.stem.split("__", 1)[1].replace("_", " ")
        blocks.append(Block("figure", f, caption=name, source=f"figures/{f.name}"))


def src(name: str) -> str:
    """The run-relative path of table ``name``."""
    return table_path(name)


def absent(section: Section, what: str) -> Section:
    """``section`` with a note saying which inputs the run lacks."""
    section.note = f"Not in this run: {what}."
    return section
