"""``probekit tasks list`` / ``probekit tasks show``."""

from __future__ import annotations

from click.testing import CliRunner

from probekit.cli import main
from tests.data.conftest import UD_SAMPLE


def test_tasks_list():
    r = CliRunner().invoke(main, ["tasks", "list"])
    assert r.exit_code == 0, r.output
    for name in ("upos", "arc", "structural", "sentlen", "coordinv", "sentiment"):
        assert name in r.output


def test_tasks_show_prints_class_stats(tmp_path, monkeypatch):
    monkeypatch.setenv("PROBEKIT_CACHE", str(tmp_path))
    r = CliRunner().invoke(main, ["tasks", "show", "upos", "--ud-path", str(UD_SAMPLE), "--limit", "200"])
    assert r.exit_code == 0, r.output
    assert "Task('upos'" in r.output and "NOUN" in r.output and "train" in r.output
    r = CliRunner().invoke(main, ["tasks", "show", "sentlen.control", "--ud-path", str(UD_SAMPLE), "--seed", "2"])
    assert r.exit_code == 0, r.output
    assert "sentlen.control" in r.output and "26-28" in r.output and "skipped:" in r.output


def test_tasks_show_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROBEKIT_UD_PATH", raising=False)
    r = CliRunner().invoke(main, ["tasks", "show", "upso"])
    assert r.exit_code != 0 and "did you mean upos" in r.output
    monkeypatch.setenv("PROBEKIT_CACHE", str(tmp_path / "cache"))
    r = CliRunner().invoke(main, ["tasks", "show", "upos"])
    assert r.exit_code != 0 and "run `probekit data fetch ud_ewt`" in r.output and "PROBEKIT_UD_PATH" in r.output
    monkeypatch.setenv("PROBEKIT_UD_PATH", str(UD_SAMPLE))  # the variable names the folder to use
    r = CliRunner().invoke(main, ["tasks", "show", "upos", "--limit", "20"])
    assert r.exit_code == 0 and "Task('upos'" in r.output, r.output
