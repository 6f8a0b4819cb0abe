"""Find headless Chromium and chromedriver, installing the Debian packages when they are absent."""

from __future__ import annotations

import os
import shutil
import subprocess

PACKAGES = ("chromium", "chromium-driver")


def _found() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def ensure_chromium(timeout: float = 900) -> tuple[str | None, str | None, str]:
    """Return ``(chromium, chromedriver, reason)``; install ``chromium chromium-driver`` with apt when missing.

    The paths are ``None`` (and ``reason`` says why) when they are absent and cannot be installed:
    not root, no ``apt-get``, or the installation failed.
    """
    found = _found()
    if found:
        return found[0], found[1], ""
    if shutil.which("apt-get") is None:
        return None, None, "chromium/chromedriver are not installed and apt-get is not available to install them"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return None, None, ("chromium/chromedriver are not installed and installing them needs root: "
                            "run `apt-get install -y chromium chromium-driver`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log = []
    for cmd in (["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES],
                ["apt-get", "update"],
                ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]):
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.append(f"{' '.join(cmd)}: {exc}")
            continue
        log.append(f"{' '.join(cmd)}: exit {proc.returncode} {proc.stderr.strip()[-300:]}")
        if proc.returncode == 0 and cmd[1] == "install" and _found():
            found = _found()
            return found[0], found[1], ""
    return None, None, "could not install chromium and chromium-driver with apt-get: " + " | ".join(log)
