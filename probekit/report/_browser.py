"""Open a report in headless Chromium through chromedriver: check what rendered and save a screenshot.

Speaks the W3C WebDriver protocol to ``chromedriver`` directly (plain HTTP
through :mod:`urllib`), so no Python browser package is needed; Chromium and
chromedriver themselves must be installed (Debian: ``apt-get install
chromium chromium-driver``).
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BrowserError", "PageCheck", "find_chromium", "render_in_browser"]

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

_PROBE_JS = """
const imgs = Array.from(document.images);
return {
  sections: Array.from(document.querySelectorAll('section.card')).map(s => s.id),
  headings: Array.from(document.querySelectorAll('section.card > h2')).map(h => h.textContent),
  images: imgs.map(i => ({alt: i.alt, complete: i.complete, w: i.naturalWidth, h: i.naturalHeight,
                          data: i.src.startsWith('data:image/png;base64,')})),
  tables: document.querySelectorAll('table.data').length,
  width: document.documentElement.scrollWidth,
  height: document.documentElement.scrollHeight,
  external: Array.from(document.querySelectorAll('[src],link[href],script')).filter(
      e => (e.getAttribute('src') || e.getAttribute('href') || 'script').match(/^(https?:|\\/\\/|script)/)).length,
};
"""


class BrowserError(RuntimeError):
    """Chromium or chromedriver is missing or failed (the message says which and how to fix it)."""


@dataclass
class PageCheck:
    """What the browser saw.

    Attributes
    ----------
    sections : list of str
        Ids of the report's sections, in page order.
    headings : list of str
    images : list of dict
        Per ``<img>``: ``alt``, ``complete``, natural width ``w`` and height ``h``, ``data`` (a PNG data URI).
    tables : int
    height : int
        Page height (CSS pixels).
    external : int
        Elements that would fetch from the network (should be 0).
    screenshot : Path or None
    """

    sections: list
    headings: list
    images: list
    tables: int
    height: int
    external: int
    screenshot: Path | None = None

    @property
    def rendered_images(self) -> int:
        """Images that decoded to a non-empty bitmap."""
        return sum(1 for i in self.images if i["complete"] and i["w"] > 0 and i["h"] > 0)


def find_chromium() -> tuple[str, str]:
    """Paths of Chromium and chromedriver on ``PATH``.

    Raises
    ------
    BrowserError
        Either is missing.
    """
    browser = next((p for p in map(shutil.which, _BROWSERS) if p), None)
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        missing = [n for n, p in (("chromium", browser), ("chromedriver", driver)) if not p]
        raise BrowserError(f"{' and '.join(missing)} not found on PATH; install them (Debian/Ubuntu: "
                           "`apt-get install -y chromium chromium-driver`) to take a screenshot")
    return browser, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Driver:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method: str, path: str, payload: dict | None = None, timeout: float = 60) -> object:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                body = json.loads(resp.read().decode() or "{}")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise BrowserError(f"chromedriver {method} {path} failed ({exc.code}): {detail}") from exc
        return body.get("value")


def render_in_browser(html_path: str | Path, screenshot: str | Path | None = None, *, width: int = 1280,
                      max_height: int = 20000, timeout: float = 60) -> PageCheck:
    """Load ``html_path`` in headless Chromium, report what rendered and optionally save a full-page PNG.

    Parameters
    ----------
    html_path : path
        The report (opened as a ``file://`` URL, with no network access needed).
    screenshot : path, optional
        Where to write the PNG of the whole page (up to ``max_height`` pixels tall).
    width : int
        Window width in CSS pixels.
    max_height : int
    timeout : float
        Seconds to wait for chromedriver and for the page.

    Returns
    -------
    PageCheck

    Raises
    ------
    BrowserError
        Chromium/chromedriver missing, failing to start, or the page failing to load.

    Notes
    -----
    Needs a Chromium and a matching chromedriver on the machine (not part of
    probekit's dependencies), so the example is not run as a doctest::

        check = render_in_browser("runs/demo/report.html", "runs/demo/report.png")
        assert check.rendered_images == len(check.images)
    """
    html_path = Path(html_path).resolve()
    if not html_path.is_file():
        raise FileNotFoundError(f"no report at {html_path}")
    browser, driver_bin = find_chromium()
    port = _free_port()
    proc = subprocess.Popen([driver_bin, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    drv = _Driver(port)
    session = None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if (drv.call("GET", "/status", timeout=5) or {}).get("ready"):
                    break
            except (urllib.error.URLError, ConnectionError, BrowserError, OSError):
                pass
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace")[-500:] if proc.stderr else ""
                raise BrowserError(f"chromedriver exited with code {proc.returncode}: {err}")
            if time.monotonic() > deadline:
                raise BrowserError(f"chromedriver did not become ready within {timeout:.0f} s")
            time.sleep(0.2)
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": browser,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--hide-scrollbars", "--force-device-scale-factor=1", f"--window-size={width},900"]}}}}
        value = drv.call("POST", "/session", caps, timeout=timeout)
        session = value["sessionId"]
        drv.call("POST", f"/session/{session}/url", {"url": html_path.as_uri()}, timeout=timeout)
        info = drv.call("POST", f"/session/{session}/execute/sync", {"script": _PROBE_JS, "args": []})
        check = PageCheck(sections=info["sections"], headings=info["headings"], images=info["images"],
                          tables=int(info["tables"]), height=int(info["height"]), external=int(info["external"]))
        if screenshot is not None:
            height = min(max(int(info["height"]), 600), max_height)
            drv.call("POST", f"/session/{session}/window/rect", {"width": width, "height": height})
            inner = drv.call("POST", f"/session/{session}/execute/sync",
                             {"script": "return window.innerHeight;", "args": []})
            if inner and int(inner) < height:  # the window frame takes part of the height: grow it by that much
                drv.call("POST", f"/session/{session}/window/rect",
                         {"width": width, "height": min(2 * height - int(inner), max_height)})
            png = base64.b64decode(drv.call("GET", f"/session/{session}/screenshot", timeout=timeout))
            screenshot = Path(screenshot)
            screenshot.write_bytes(png)
            check.screenshot = screenshot
        return check
    finally:
        if session is not None:
            try:
                drv.call("DELETE", f"/session/{session}", timeout=10)
            except (BrowserError, OSError):
                pass
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
