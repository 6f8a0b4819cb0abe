"""The report on a run folder the pipeline wrote: Markdown, self-contained HTML, partial runs, bad input."""

from __future__ import annotations

import base64
import doctest
import json
import re
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner

from probekit.cli import main
from probekit.report import RunFolderError, _derived, _findings, _format, _provenance, fmt_number, write_report

SECTION_TITLES = ("Findings", "Probes", "Attention", "Attributions", "Variants", "Comparison", "Provenance")
INTERVAL = re.compile(r"\d\.\d{2,4} \[\d\.\d{2,4}, \d\.\d{2,4}\]")  # three significant figures
# the pipeline's names: the fine-tuned model is the base of its variants, the int8 one is "quantize"
BASE, VARIANT = "finetuned", "quantize"


def test_docstring_examples():
    for mod in (_format, _derived, _findings, _provenance):
        res = doctest.testmod(mod)
        assert res.failed == 0 and res.attempted > 0, mod.__name__


@pytest.mark.slow
def test_markdown_of_real_run(run_copy):
    write_report(run_copy)
    md = (run_copy / "report.md").read_text()
    for title in SECTION_TITLES:
        assert f"\n## {title}\n" in md
    assert "Not in this run" not in md and "could not be built" not in md
    # the report opens with what was found; how the run was made comes last
    positions = [md.index(f"\n## {title}\n") for title in SECTION_TITLES]
    assert positions == sorted(positions)
    findings = md.split("## Findings\n", 1)[1].split("\n## ", 1)[0]
    assert "best layer" in findings and "selectivity" in findings and f"{VARIANT} vs {BASE}" in findings
    assert "largest probe accuracy change" in findings and "along the layer map" in findings
    assert md.index("Activation store fingerprints") > md.index("\n## Comparison\n")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == len(list((run_copy / "figures").glob("*.png"))) > 0
    for link in links:
        assert not link.startswith(("/", "http")) and (run_copy / link).is_file(), link
    assert INTERVAL.search(md), "no interval rendered as 'v [lo, hi]'"
    # every number shown for the probe table is the CSV's, to three significant figures
    summ = pd.read_csv(run_copy / "tables" / "probe_summary.csv")
    for _, row in summ.iterrows():
        cell = f"{fmt_number(row.accuracy)} [{fmt_number(row.ci_low)}, {fmt_number(row.ci_high)}]"
        assert f"| {row.task} | {row.probe} | {row.layer} | {row.site} | {cell} |" in md, cell
    variants = pd.read_csv(run_copy / "tables" / "variants.csv")
    assert f"{int(variants.params.iloc[0]):,}" in md
    assert "| stage | time | share | cached |" in md
    for name in json.loads((run_copy / "run.json").read_text())["timings"]:
        assert f"| {name} |" in md
    # every table also as Parquet, equal to its CSV
    for csv in (run_copy / "tables").glob("*.csv"):
        pq = pd.read_parquet(csv.with_suffix(".parquet"))
        assert pq.shape == pd.read_csv(csv).shape, csv.name


@pytest.mark.slow
def test_html_is_self_contained(run_copy):
    html = write_report(run_copy).read_text()
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "something would load from the network"
    assert "@import" not in html and "url(" not in html
    uris = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    figs = sorted((run_copy / "figures").glob("*.png"))
    assert len(uris) == len(figs)
    assert sorted(base64.b64decode(u) for u in uris) == sorted(f.read_bytes() for f in figs)
    for title in SECTION_TITLES:
        assert f"<h2>{title}</h2>" in html
    assert html.count('<div class="frag"') == len(list((run_copy / "attributions").glob("*.html")))
    # provenance is one click away: a collapsed section at the end, linked from the contents bar
    prov = html.split('<section class="card" id="provenance">', 1)[1]
    assert prov.lstrip().startswith("<h2>Provenance</h2>") and '<details class="section"><summary>' in prov
    assert "Activation store fingerprints" in prov and 'href="#provenance"' in html
    assert INTERVAL.search(html)


@pytest.mark.slow
def test_partial_run_omits_sections_with_a_note(run_copy):
    for sub in ("figures", "attributions"):
        shutil.rmtree(run_copy / sub)
    for f in (run_copy / "tables").iterdir():
        if f.stem not in ("variants", "special_mass"):
            f.unlink()
    (run_copy / "config.yaml").unlink()
    write_report(run_copy)
    md = (run_copy / "report.md").read_text()
    html = (run_copy / "report.html").read_text()
    for title in ("Probes", "Attributions", "Comparison"):
        block = md.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
        assert "*Not in this run:" in block, title
    assert "Mean attention mass per layer" in md and VARIANT in md
    assert "<img" not in html and 'class="absent"' in html
    # nothing but a variants table: still a report
    (run_copy / "run.json").unlink()
    (run_copy / "tables" / "special_mass.csv").unlink()
    write_report(run_copy)
    md = (run_copy / "report.md").read_text()
    assert "Not in this run: run.json and config.yaml" in md and f"| {VARIANT} |" in md
    assert f"{VARIANT} vs {BASE}: accuracy" in md.split("## Findings\n", 1)[1].split("\n## ", 1)[0]


@pytest.mark.slow
def test_probe_summary_is_derived_from_the_tidy_table(run_copy):
    written = pd.read_csv(run_copy / "tables" / "probe_summary.csv")
    (run_copy / "tables" / "probe_summary.csv").unlink()
    (run_copy / "tables" / "expected_layer.csv").unlink()
    write_report(run_copy)
    derived = pd.read_csv(run_copy / "tables" / "report_probe_summary.csv")
    base = derived[derived["variant"].isna()] if "variant" in derived else derived
    cols = ["task", "probe", "layer", "accuracy", "ci_low", "ci_high", "control", "selectivity", "majority"]
    pd.testing.assert_frame_equal(base[cols].reset_index(drop=True), written[cols].reset_index(drop=True))
    assert (run_copy / "tables" / "report_probe_summary.parquet").is_file()
    md = (run_copy / "report.md").read_text()
    tidy = pd.read_csv(run_copy / "tables" / "probes.csv")
    if tidy.loc[tidy["metric"] == "expected_layer", "value"].notna().any():
        assert "Expected layer" in md and "report_expected_layer.csv" in md
    else:  # accuracy flat over the layers (a tiny random model): no expected layer, and no section for one
        assert "report_expected_layer.csv" not in md


@pytest.mark.slow
def test_long_tables_are_summarised(run_copy):
    write_report(run_copy, max_rows=2)
    md = (run_copy / "report.md").read_text()
    probes = md.split("## Probes\n", 1)[1].split("\n## ", 1)[0]
    assert "best layer per" in probes  # one row per model/variant/task/probe instead of every layer
    assert "showing the first 2 of" in md
    assert "[tables/attention_heads.csv](tables/attention_heads.csv)" in md


@pytest.mark.slow
def test_html_escapes_run_text(run_copy):
    meta = json.loads((run_copy / "run.json").read_text())
    meta["name"] = "<script>alert('x')</script> & co"
    (run_copy / "run.json").write_text(json.dumps(meta))
    (run_copy / "attributions" / "evil.html").write_text('<p onclick="x()">hi</p><script>alert(1)</script>')
    html = write_report(run_copy).read_text()
    assert "<script" not in html.lower() and "onclick" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co" in html


@pytest.mark.slow
def test_bad_input_is_named(tmp_path, run_copy):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_report(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunFolderError, match="not a run folder"):
        write_report(tmp_path / "empty")
    (run_copy / "run.json").write_text("{not json")
    with pytest.raises(RunFolderError, match="run.json is not valid JSON"):
        write_report(run_copy)
    with pytest.raises(ValueError, match="max_rows"):
        write_report(run_copy, max_rows=0)


@pytest.mark.slow
def test_cli_report(run_copy, tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["report", "--help"])
    assert res.exit_code == 0 and "probekit report runs/demo" in res.output
    res = runner.invoke(main, ["report", str(run_copy)])
    assert res.exit_code == 0, res.output
    assert (run_copy / "report.html").is_file() and (run_copy / "report.md").is_file()
    res = runner.invoke(main, ["report", str(tmp_path / "nope")])
    assert res.exit_code != 0 and "does not exist" in res.output


@pytest.mark.slow
def test_malformed_table_spoils_only_its_section(run_copy):
    pd.DataFrame({"task": ["sentiment"], "score": [0.5]}).to_csv(run_copy / "tables" / "probes.csv", index=False)
    (run_copy / "tables" / "probe_summary.csv").unlink()
    write_report(run_copy)
    md = (run_copy / "report.md").read_text()
    probes = md.split("## Probes\n", 1)[1].split("\n## ", 1)[0]
    assert "could not be built" in probes and "tables/probes.csv lacks columns" in probes
    assert "## Variants" in md and f"| {VARIANT} |" in md


def test_expected_layers_keep_the_real_model_beside_random_init():
    from probekit.report import expected_layers

    rows = pd.DataFrame({"model": "m", "variant": [None, None, "random-init", "random-init"], "task": "upos",
                         "probe": "linear", "metric": ["expected_layer", "center_of_gravity"] * 2,
                         "value": [1.5, 3.0, 2.5, 3.2]})
    out = expected_layers(rows).set_index("variant")
    assert set(out.index) == {"", "random-init"}
    assert out.loc["", "expected_layer"] == 1.5 and out.loc["random-init", "center_of_gravity"] == 3.2
