"""The report in a real browser: headless Chromium through chromedriver renders every section and image.

The set-up installs the Debian packages ``chromium`` and ``chromium-driver``
when they are absent (as root, with apt-get) and skips, saying why, only
where they cannot be installed. The screenshot is kept as ``report.png`` in
the run folder (its path is printed; set ``PROBEKIT_REPORT_PNG`` to copy it
elsewhere).
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from probekit.cli import main
from probekit.report import render_in_browser, write_report
from tests.report._chromium import ensure_chromium

pytestmark = pytest.mark.slow  # real weights and data, and a browser

SECTIONS = ["findings", "probes", "attention", "attributions", "variants", "comparison", "provenance"]


@pytest.fixture(scope="session")
def chromium():
    browser, driver, reason = ensure_chromium()
    if browser is None:
        pytest.skip(reason)
    return browser, driver


def _not_blank(png) -> None:
    im = np.asarray(Image.open(png).convert("RGB"), dtype=np.float32)
    assert im.shape[1] == 1280 and im.shape[0] > 2000, im.shape
    assert im.std() > 20, "the screenshot is (nearly) one colour"
    colours = len(np.unique(im[::4, ::4].reshape(-1, 3), axis=0))
    assert colours > 500, f"only {colours} colours: the figures did not render"


def test_report_renders_in_chromium(real_run, chromium):
    html = write_report(real_run)
    shot = real_run / "report.png"
    check = render_in_browser(html, shot)
    assert check.sections == SECTIONS
    assert check.headings == ["Findings", "Probes", "Attention", "Attributions", "Variants", "Comparison",
                              "Provenance"]
    n_figs = len(list((real_run / "figures").glob("*.png")))
    assert len(check.images) == n_figs >= 6
    assert all(i["data"] for i in check.images), "an image is not an embedded data URI"
    assert check.rendered_images == n_figs, [i for i in check.images if not i["w"]]
    assert check.tables >= 10 and check.external == 0
    _not_blank(shot)
    print(f"\nreport screenshot: {shot}")
    if os.environ.get("PROBEKIT_REPORT_PNG"):
        shutil.copyfile(shot, os.environ["PROBEKIT_REPORT_PNG"])


def test_cli_screenshot_of_a_partial_run(run_copy, chromium):
    shutil.rmtree(run_copy / "figures" )
    shutil.rmtree(run_copy / "attributions")
    res = CliRunner().invoke(main, ["report", str(run_copy), "--screenshot"])
    assert res.exit_code == 0, res.output
    assert "0 of 0 images rendered" in res.output
    check = render_in_browser(run_copy / "report.html")
    assert check.sections == SECTIONS and not check.images
    im = np.asarray(Image.open(run_copy / "report.png").convert("L"), dtype=np.float32)
    assert im.std() > 10
