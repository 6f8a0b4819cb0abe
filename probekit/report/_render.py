"""Render sections as one self-contained HTML page and as Markdown.

The HTML embeds every figure as a base64 data URI and carries its CSS
inline: no script, font or image is fetched, so the file opens offline and
can be mailed as is. The Markdown links the figures relatively.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import jinja2
from markupsafe import Markup

from probekit.report._format import Table, pretty_seconds

__all__ = ["markdown_table", "render_html", "render_markdown"]

CSS = """
:root { --ink:#1d2330; --muted:#5b6475; --line:#e3e6ec; --accent:#2f5bd3; --bg:#f6f7f9; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", sans-serif; }
header.top { background:#1d2330; color:#fff; padding:22px 0 18px; }
header.top .wrap { display:flex; flex-wrap:wrap; align-items:baseline; gap:6px 18px; }
header.top h1 { margin:0; font-size:22px; font-weight:650; letter-spacing:.2px; }
header.top .sub { color:#b9c2d6; font-size:13px; }
nav.toc { background:#fff; border-bottom:1px solid var(--line); position:sticky; top:0; z-index:2; }
nav.toc .wrap { display:flex; flex-wrap:wrap; gap:4px 2px; padding:8px 14px; }
nav.toc a { color:var(--ink); text-decoration:none; font-size:13px; padding:3px 10px; border-radius:12px; }
nav.toc a:hover { background:var(--bg); }
nav.toc a.absent { color:#9aa3b2; }
.wrap { max-width:1120px; margin:0 auto; padding:0 24px; }
main.wrap { padding-top:18px; padding-bottom:48px; }
section.card { background:#fff; border:1px solid var(--line); border-radius:10px; padding:18px 22px 20px;
  margin:0 0 20px; }
section.card > h2 { margin:0 0 12px; font-size:19px; font-weight:650; }
h3 { font-size:14px; margin:18px 0 6px; color:var(--muted); font-weight:600; }
ul.lead { margin:0 0 12px; padding-left:18px; font-size:14px; }
ul.lead li { margin:2px 0; }
p.note { color:var(--muted); font-style:italic; margin:4px 0; }
dl.facts { display:grid; grid-template-columns: max-content 1fr; gap:3px 16px; margin:0 0 10px; font-size:14px; }
dl.facts dt { color:var(--muted); }
dl.facts dd { margin:0; word-break:break-word; }
.tbl { overflow-x:auto; margin:6px 0 4px; }
table.data { border-collapse:collapse; font-size:13px; font-variant-numeric: tabular-nums; }
table.data th, table.data td { padding:4px 10px; border-bottom:1px solid var(--line); text-align:left;
  white-space:nowrap; }
table.data th { background:#f0f2f6; font-weight:600; position:sticky; top:0; }
table.data tr:nth-child(even) td { background:#fafbfc; }
table.data td.num, table.data th.num { text-align:right; }
.tnote { font-size:12px; color:var(--muted); margin:2px 0 10px; }
.tnote a, a.csv { color:var(--accent); }
figure { margin:14px 0; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); border-radius:6px; background:#fff; }
figure figcaption { font-size:12px; color:var(--muted); margin-top:3px; }
.figs { display:grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap:0 18px; }
.bars { font-size:13px; margin:6px 0 10px; }
.bar { display:grid; grid-template-columns: 150px 1fr 90px; align-items:center; gap:10px; margin:3px 0; }
.bar .track { background:#eef0f4; border-radius:4px; height:12px; overflow:hidden; }
.bar .fill { background:var(--accent); height:12px; }
.bar.cached .fill { background:#9fb3e8; }
.bar .secs { text-align:right; font-variant-numeric: tabular-nums; color:var(--muted); }
details { margin:8px 0; }
details summary { cursor:pointer; color:var(--muted); font-size:13px; }
details.section > summary { font-size:14px; margin-bottom:6px; }
pre { background:#f3f4f7; border:1px solid var(--line); border-radius:6px; padding:10px 12px; font-size:12px;
  overflow-x:auto; }
.frag { border:1px solid var(--line); border-radius:6px; padding:6px 10px; margin:8px 0; overflow-x:auto; }
.frag h4 { margin:2px 0 6px; font-size:13px; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:10px 0 30px; }
"""

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>{{ css }}</style>
</head>
<body>
<header class="top"><div class="wrap"><h1>{{ title }}</h1><span class="sub">{{ subtitle }}</span></div></header>
<nav class="toc"><div class="wrap">
{%- for s in sections %}<a href="#{{ s.id }}"{% if s.empty %} class="absent"{% endif %}>{{ s.title }}</a>{% endfor -%}
</div></nav>
<main class="wrap">
{% for s in sections %}
<section class="card" id="{{ s.id }}">
<h2>{{ s.title }}</h2>
{% if s.empty %}<p class="note">{{ s.note }}</p>{% endif %}
{% if s.collapsed and not s.empty %}<details class="section"><summary>{{ s.summary or "show" }}</summary>{% endif %}
{% for b in s.blocks %}{{ block(b) }}{% endfor %}
{% if s.collapsed and not s.empty %}</details>{% endif %}
</section>
{% endfor %}
</main>
<footer>{{ footer }}</footer>
</body>
</html>
"""


def _table_html(t: Table) -> str:
    e = html.escape
    num = set(t.numeric or [])
    head = "".join(f'<th class="num">{e(c)}</th>' if c in num else f"<th>{e(c)}</th>" for c in t.frame.columns)
    rows = []
    for _, r in t.frame.iterrows():
        rows.append("<tr>" + "".join(f'<td class="num">{e(str(v))}</td>' if c in num else f"<td>{e(str(v))}</td>"
                                     for c, v in r.items()) + "</tr>")
    note = []
    if t.note:
        note.append(e(t.note))
    if t.source:
        note.append(f'full table: <a href="{e(t.source)}">{e(t.source)}</a>')
    foot = f'<div class="tnote">{" · ".join(note)}</div>' if note else ""
    return (f"<h3>{e(t.caption)}</h3><div class=\"tbl\"><table class=\"data\"><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>{foot}")


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _block_html(b) -> Markup:
    e = html.escape
    if b.kind == "text":
        head = f"<h3>{e(b.caption)}</h3>" if b.caption else ""
        return Markup(head + '<ul class="lead">' + "".join(f"<li>{e(t)}</li>" for t in b.data) + "</ul>")
    if b.kind == "facts":
        items = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in b.data)
        return Markup(f'<dl class="facts">{items}</dl>')
    if b.kind == "table":
        return Markup(_table_html(b.data))
    if b.kind == "figure":
        return Markup(f'<figure><img src="{_data_uri(b.data)}" alt="{e(b.caption)}">'
                      f"<figcaption>{e(b.caption)} · {e(b.source or '')}</figcaption></figure>")
    if b.kind == "html":
        return Markup(f'<div class="frag" title="{e(b.source or "")}">{b.data}</div>')
    if b.kind == "code":
        return Markup(f"<details><summary>{e(b.caption)}</summary><pre>{e(b.data)}</pre></details>")
    if b.kind == "link":
        return Markup(f'<p class="tnote">{e(b.caption)}: <a class="csv" href="{e(b.data)}">{e(b.data)}</a></p>')
    if b.kind == "bars":
        rows = []
        for name, secs, share, cached in b.data:
            rows.append(f'<div class="bar{" cached" if cached else ""}"><span>{e(name)}'
                        f'{" (cached)" if cached else ""}</span><span class="track"><span class="fill" '
                        f'style="display:block;width:{100 * share:.1f}%"></span></span>'
                        f'<span class="secs">{e(pretty_seconds(secs))}</span></div>')
        return Markup(f'<h3>{e(b.caption)}</h3><div class="bars">{"".join(rows)}</div>')
    raise ValueError(f"unknown block kind {b.kind!r}")


def _group_figures(blocks: list) -> list:
    """Wrap runs of consecutive figures so that they sit two per row on wide screens."""
    out, run = [], []
    for b in blocks:
        if b.kind == "figure":
            run.append(b)
            continue
        if run:
            out.append(("figs", run))
            run = []
        out.append(b)
    if run:
        out.append(("figs", run))
    return out


def render_html(sections: list, *, title: str, subtitle: str = "", footer: str = "") -> str:
    """The whole report as one HTML string (figures inline)."""
    env = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)

    def block(b) -> Markup:
        if isinstance(b, tuple):
            figs = "".join(_block_html(f) for f in b[1])
            return Markup(f'<div class="figs">{figs}</div>' if len(b[1]) > 1 else figs)
        return _block_html(b)

    class _View:
        def __init__(self, s):
            self.id, self.title, self.note, self.empty = s.id, s.title, s.note, s.empty
            self.collapsed, self.summary = s.collapsed, s.summary
            self.blocks = _group_figures(s.blocks)

    return env.from_string(_PAGE).render(title=title, subtitle=subtitle, footer=footer, css=Markup(CSS),
                                         sections=[_View(s) for s in sections], block=block)


def _md_cell(v: str) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def _table_md(t: Table) -> str:
    cols = list(t.frame.columns)
    num = set(t.numeric or [])
    lines = ([f"**{t.caption}**", ""] if t.caption else []) + ["| " + " | ".join(_md_cell(c) for c in cols) + " |",
             "|" + "|".join("---:" if c in num else "---" for c in cols) + "|"]
    for _, r in t.frame.iterrows():
        lines.append("| " + " | ".join(_md_cell(v) for v in r.tolist()) + " |")
    extra = []
    if t.note:
        extra.append(t.note)
    if t.source:
        extra.append(f"full table: [{t.source}]({t.source})")
    if extra:
        lines += ["", "*" + " · ".join(extra) + "*"]
    return "\n".join(lines)


def markdown_table(df, *, caption: str = "", max_rows: int | None = None) -> str:
    """``df`` as a Markdown table for people: the report's own rendering (numbers rounded, intervals merged).

    Parameters
    ----------
    df : DataFrame
    caption : str
        Shown in bold above the table when given.
    max_rows : int, optional
        Longest table shown in full (default: every row).

    Examples
    --------
    >>> import pandas as pd
    >>> print(markdown_table(pd.DataFrame({"layer": [1], "accuracy": [0.91234], "note": [None]})), end="")
    | layer | accuracy |
    |---:|---:|
    | 1 | 0.912 |
    """
    t = Table.build(df, caption, max_rows=max(max_rows or len(df), 1))
    return _table_md(t) + "\n"


def render_markdown(sections: list, *, title: str, subtitle: str = "") -> str:
    """The report as Markdown; figures and snippets are linked relative to the run folder."""
    out = [f"# {title}", ""]
    if subtitle:
        out += [subtitle, ""]
    out += ["Contents: " + " · ".join(f"[{s.title}](#{s.id})" for s in sections), ""]
    for s in sections:
        out += [f'<a id="{s.id}"></a>', "", f"## {s.title}", ""]
        if s.empty:
            out += [f"*{s.note}*", ""]
        elif s.collapsed and s.summary:
            out += [f"*{s.summary}.*", ""]
        for b in s.blocks:
            if b.kind == "text":
                out += ([f"**{b.caption}**", ""] if b.caption else []) + [f"- {t}" for t in b.data] + [""]
            elif b.kind == "facts":
                out += [f"- **{k}**: {v}" for k, v in b.data] + [""]
            elif b.kind == "table":
                out += [_table_md(b.data), ""]
            elif b.kind == "figure":
                out += [f"![{b.caption}]({b.source})", "", f"*{b.caption}*", ""]
            elif b.kind == "html":
                out += [f"- attribution snippet: [{b.caption}]({b.source})"]
            elif b.kind == "code":
                out += [f"<details><summary>{b.caption}</summary>", "", "```yaml", b.data.rstrip(), "```", "",
                        "</details>", ""]
            elif b.kind == "link":
                out += [f"{b.caption}: [{b.data}]({b.data})", ""]
            elif b.kind == "bars":
                out += [f"**{b.caption}**", "", "| stage | time | share | cached |", "|---|---:|---:|---|"]
                out += [f"| {_md_cell(n)} | {pretty_seconds(t)} | {100 * sh:.0f}% | {'yes' if c else ''} |"
                        for n, t, sh, c in b.data]
                out += [""]
        if any(b.kind == "html" for b in s.blocks):
            out += [""]
    return "\n".join(out).rstrip() + "\n"
