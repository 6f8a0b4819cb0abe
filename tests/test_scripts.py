"""The README's research-script example keeps working."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(out_dir):
    cmd = [sys.executable, str(ROOT / "scripts" / "quickstart.py"), "--n", "120", "--out", str(out_dir)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_quickstart_script(tmp_path):
    out = _run(tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [ln for ln in out.stdout.splitlines() if "accuracy" in ln]
    assert [ln.split()[0] for ln in lines] == ["emb", "L2.resid", "L5.resid"]
    assert (tmp_path / "probe_by_layer.png").stat().st_size > 5_000
    again = _run(tmp_path)  # a second run reuses the store and gives the same figures
    assert again.returncode == 0 and again.stdout == out.stdout
