"""The package as users get it: a wheel built from the checkout, installed into a fresh environment, runs the demo.

The installed copy is used with no editable install and the checkout off the path (the commands run from a
temporary folder), so a file the wheel forgets to ship, or an import that only works from the source tree, fails
here. The distribution name is ``probekit-nlp`` (``probekit`` on PyPI is another project); the import name and the
command stay ``probekit``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; CI runs 3.11

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _makefile_var(name: str) -> list[str]:
    """The words of ``NAME ?= ...`` or ``NAME := ...`` in the Makefile (the torch pin and the offline assets)."""
    text = (ROOT / "Makefile").read_text()
    match = re.search(rf"^{name}\s*[?:]?=\s*(.+)$", text, flags=re.MULTILINE)
    assert match, f"Makefile has no {name} line"
    return match.group(1).split()


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(cmd[:4])} ... failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def test_distribution_name_and_single_version():
    from probekit.version import __version__

    assert PYPROJECT["project"]["name"] == "probekit-nlp"
    assert "version" not in PYPROJECT["project"] and "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "probekit.version.__version__"}
    assert PYPROJECT["project"]["scripts"] == {"probekit": "probekit.cli:main"}
    # the changelog has a section for the current version, and the citation file repeats no version
    assert f"## {__version__}" in (ROOT / "CHANGELOG.md").read_text()
    assert not re.search(r"^version:", (ROOT / "CITATION.cff").read_text(), flags=re.MULTILINE)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # minutes on an idle 2-core CPU; a shared one can take much longer
def test_wheel_installs_into_fresh_venv_and_runs_the_demo(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PROBEKIT_CACHE=str(tmp_path / "cache"))
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--wheel", "--sdist", "--outdir", str(dist), str(ROOT)],
         cwd=tmp_path, env=env, timeout=600)
    wheels = sorted(dist.glob("probekit_nlp-*.whl"))
    sdists = sorted(dist.glob("probekit_nlp-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in dist.iterdir())
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "probekit/cli/_demo.py" in names and not any(n.startswith(("tests/", "benchmarks/")) for n in names)

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, env=env, timeout=300)
    py = str(venv / "bin" / "python")
    pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run(pip + _makefile_var("TORCH"), cwd=tmp_path, env=env, timeout=600)  # CPU torch before anything pulls one
    _run(pip + [f"{wheels[0]}[spacy]"], cwd=tmp_path, env=env, timeout=900)
    _run(pip + ["--no-deps"] + _makefile_var("ASSETS"), cwd=tmp_path, env=env, timeout=600)

    where = _run([py, "-c", "import probekit, sys; print(probekit.__file__); print(probekit.__version__)"],
                 cwd=tmp_path, env=env, timeout=120).stdout.split()
    assert Path(where[0]).is_relative_to(venv) and not Path(where[0]).is_relative_to(ROOT)
    from probekit.version import __version__
    assert where[1] == __version__

    out = tmp_path / "demo"
    _run([str(venv / "bin" / "probekit"), "demo", "--quick", "--no-progress", "--out", str(out)],
         cwd=tmp_path, env=env, timeout=3000)
    report = out / "report.html"
    assert report.is_file() and report.stat().st_size > 10_000
    assert (out / "report.md").is_file()
