"""The per-phase profile: collected only when asked, nested into stages, shown by the CLI and the report."""

from __future__ import annotations

import threading

from click.testing import CliRunner

import probekit
from probekit.cli import main
from probekit.profiling import Profile, current, phase


def test_nothing_is_recorded_without_a_profile():
    assert current() is None
    with phase("fit"):
        pass
    assert current() is None


def test_phases_add_up_nest_and_count_a_reentered_phase_once():
    with Profile() as outer:
        with phase("fit"):
            with phase("fit"):  # re-entered: the outer block's time only
                pass
        with Profile() as inner:
            with phase("bootstrap"):
                pass
        assert current() is outer
    assert outer.calls == {"fit": 1, "bootstrap": 1}
    assert set(inner.seconds) == {"bootstrap"}
    assert list(outer.to_dict()) == ["fit", "bootstrap"]  # in the order a study runs them
    assert "bootstrap" in outer.table()


def test_a_worker_thread_records_into_the_profile_it_was_handed():
    with Profile() as prof:
        handed = current()
        t = threading.Thread(target=lambda: phase("write", handed).__enter__().__exit__(None, None, None) or None)
        t.start()
        t.join()
    assert prof.calls.get("write") == 1


def test_extraction_records_tokenize_forward_pool_and_write(tmp_path, tiny):
    with Profile() as prof:
        probekit.extract(tiny, ["a cat sat on the mat", "it rained"], ["L0.resid"], tmp_path / "s",
                         word_pooling=["mean"], sentence_pooling=["mean"], progress=False)
    assert {"tokenize", "forward", "pool", "write"} <= set(prof.seconds)


def test_cli_profile_flag_prints_the_phases(tmp_path):
    data = tmp_path / "t.txt"
    data.write_text("a cat sat on the mat\nit rained\n", encoding="utf-8")
    r = CliRunner().invoke(main, ["--profile", "extract", "--model", "minilm-l6", "--data", str(data),
                                  "--sites", "L0.resid", "--sentence-pooling", "mean", "--out", str(tmp_path / "s"),
                                  "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "where the time went" in r.output and "forward" in r.output and "load" in r.output
