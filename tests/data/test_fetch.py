"""Fetching pinned data: a file:// mirror of the bundled sample with its own pins, tampered copies refused,
interrupted downloads leaving nothing that looks complete, and the default UD folder. No network: every
source here is a local folder or a file:// URL."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess

import pytest
from click.testing import CliRunner

from probekit.cli import main
from probekit.data import (
    DATASETS,
    UD_EWT,
    ChecksumError,
    DatasetSpec,
    FetchError,
    FilePin,
    _pins,
    build_task,
    conllu_content_sha256,
    default_ud_path,
    fetch,
    fetched_path,
    verify_fetched,
)
from probekit.data import _fetch as fetch_mod
from tests.data.conftest import UD_SAMPLE, UD_SAMPLE_DEV, UD_SAMPLE_TRAIN

TRAIN, DEV = UD_SAMPLE_TRAIN.name, UD_SAMPLE_DEV.name
UNREACHABLE = "https://example.invalid/never-contacted/"  # every test passes a local source or a file:// base


def _token_lines_sha256(path) -> str:
    """The content pin computed here independently: SHA-256 of the lines that are not comments."""
    lines = path.read_bytes().splitlines(keepends=True)
    return hashlib.sha256(b"".join(ln for ln in lines if not ln.startswith(b"#"))).hexdigest()


def sample_spec(name: str = "ud_sample", base_url: str = UNREACHABLE) -> DatasetSpec:
    """The bundled sample pinned like the release: dev by its bytes, train by its token lines."""
    dev = UD_SAMPLE_DEV.read_bytes()
    return DatasetSpec(name, "t1", base_url, (
        FilePin("train", TRAIN, content_sha256=_token_lines_sha256(UD_SAMPLE_TRAIN)),
        FilePin("dev", DEV, sha256=hashlib.sha256(dev).hexdigest(), size=len(dev))))


@pytest.fixture
def mirror(tmp_path):
    """A copy of the sample to alter (tamper, annotate, truncate)."""
    d = tmp_path / "mirror"
    d.mkdir()
    for f in (UD_SAMPLE_TRAIN, UD_SAMPLE_DEV):
        shutil.copyfile(f, d / f.name)
    return d


def _listing(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_fetch_from_a_file_url_mirror(tmp_path):
    spec = sample_spec(base_url=UD_SAMPLE.as_uri() + "/")  # the spec's own URL, file://
    out = fetch(spec, data_dir=tmp_path / "data", progress=False)
    assert out == tmp_path / "data" / "ud_sample-t1"
    assert _listing(out) == ["en_ewt-ud-dev.conllu", "en_ewt-ud-train.conllu", "probekit-fetch.json"]
    for f in (UD_SAMPLE_TRAIN, UD_SAMPLE_DEV):
        assert (out / f.name).read_bytes() == f.read_bytes()
    man = json.loads((out / "probekit-fetch.json").read_text())
    assert man["dataset"] == "ud_sample" and man["release"] == "t1" and set(man["files"]) == {"train", "dev"}
    assert man["files"]["dev"]["sha256"] == spec.files[1].sha256
    assert man["files"]["train"]["source"] == UD_SAMPLE.as_uri() + "/" + TRAIN
    assert fetched_path(spec, data_dir=tmp_path / "data") == out
    assert verify_fetched(spec, data_dir=tmp_path / "data") == out
    assert build_task("upos", "ud", path=out).dataset == build_task("upos", "ud", path=UD_SAMPLE).dataset


def test_fetched_files_get_the_mode_of_any_new_file(tmp_path, mirror):
    old = os.umask(0o022)
    try:
        out = fetch(sample_spec(), source=mirror, data_dir=tmp_path / "data", progress=False)
    finally:
        os.umask(old)
    for name in (TRAIN, DEV, "probekit-fetch.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name


@pytest.mark.parametrize("how", ["folder", "file_url"])
def test_fetch_from_a_local_copy_checks_the_same_pins(tmp_path, mirror, how):
    src = mirror if how == "folder" else mirror.as_uri()
    out = fetch(sample_spec(), source=src, data_dir=tmp_path / "data", progress=False)
    assert (out / DEV).read_bytes() == UD_SAMPLE_DEV.read_bytes()
    assert json.loads((out / "probekit-fetch.json").read_text())["files"]["dev"]["source"].endswith(DEV)


@pytest.mark.parametrize("split", ["dev", "train"])
def test_a_tampered_copy_is_refused_by_name_and_nothing_is_kept(tmp_path, mirror, split):
    f = mirror / (DEV if split == "dev" else TRAIN)
    text = f.read_text(encoding="utf-8")
    # one gold head changed: the token lines differ, the size does not
    changed = text.replace("\t3\tdet\t", "\t5\tdet\t", 1)
    assert changed != text
    f.write_text(changed, encoding="utf-8")
    assert f.stat().st_size == (UD_SAMPLE / f.name).stat().st_size
    data = tmp_path / "data"
    with pytest.raises(ChecksumError, match=f"{f.name} from .* does not match its pin") as info:
        fetch(sample_spec(), source=mirror, data_dir=data, progress=False)
    assert ("SHA-256" if split == "dev" else "content fingerprint") in str(info.value)
    folder = data / "ud_sample-t1"
    assert f.name not in _listing(folder) and "probekit-fetch.json" not in _listing(folder)
    assert not [n for n in _listing(folder) if n.endswith(".part")]
    assert fetched_path(sample_spec(), data_dir=data) is None


def test_train_with_other_comment_lines_and_crlf_still_verifies(tmp_path, mirror):
    text = (mirror / TRAIN).read_text(encoding="utf-8")
    extra = text.replace("# sent_id = ", "# newpar id = extra\n# sent_id = ").replace("\n", "\r\n")
    (mirror / TRAIN).write_text(extra, encoding="utf-8", newline="")
    out = fetch(sample_spec(), source=mirror, data_dir=tmp_path / "data", progress=False)
    assert (out / TRAIN).read_bytes() == extra.encode()  # the copy as it is, verified by its annotation
    assert conllu_content_sha256(out / TRAIN) == conllu_content_sha256(UD_SAMPLE_TRAIN)


def test_content_fingerprint_is_the_documented_shell_pipeline():
    if shutil.which("sed") is None or shutil.which("sha256sum") is None:
        pytest.skip("sed and sha256sum are not installed")
    out = subprocess.run(f"sed -e 's/\\r$//' -e '/^#/d' '{UD_SAMPLE_TRAIN}' | sha256sum", shell=True,
                         capture_output=True, text=True, check=True).stdout.split()[0]
    assert conllu_content_sha256(UD_SAMPLE_TRAIN) == out == _token_lines_sha256(UD_SAMPLE_TRAIN)


def test_an_interrupted_download_leaves_nothing_that_looks_complete(tmp_path, mirror, monkeypatch):
    real_open = fetch_mod._open

    class Cut:
        """A source that breaks after its first chunk."""

        def __init__(self, stream, exc):
            self.stream, self.exc, self.n = stream, exc, 0

        def read(self, n):
            self.n += 1
            if self.n > 1:
                raise self.exc
            return self.stream.read(n)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.stream.close()

    data = tmp_path / "data"
    monkeypatch.setattr(fetch_mod, "_CHUNK", 4096)
    for exc, caught in ((ConnectionResetError("connection reset"), FetchError),
                        (KeyboardInterrupt(), KeyboardInterrupt)):
        monkeypatch.setattr(fetch_mod, "_open", lambda w, loc, pin, e=exc: (Cut(real_open(w, loc, pin)[0], e), None))
        with pytest.raises(caught):
            fetch(sample_spec(), source=mirror, data_dir=data, progress=False)
        assert _listing(data / "ud_sample-t1") == []  # no partial file, no temporary file, no manifest
        assert fetched_path(sample_spec(), data_dir=data) is None
    monkeypatch.setattr(fetch_mod, "_open", real_open)
    assert fetched_path(sample_spec(), data_dir=data) is None
    out = fetch(sample_spec(), source=mirror, data_dir=data, progress=False)
    assert fetched_path(sample_spec(), data_dir=data) == out


@pytest.fixture
def http_mirror(mirror):
    """The mirror folder served over HTTP on the loopback interface (no network beyond this machine)."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(mirror)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", mirror
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_fetch_from_an_http_mirror(tmp_path, http_mirror):
    url, folder = http_mirror
    out = fetch(sample_spec(), source=url, data_dir=tmp_path / "data", progress=False)
    assert (out / TRAIN).read_bytes() == UD_SAMPLE_TRAIN.read_bytes()
    assert json.loads((out / "probekit-fetch.json").read_text())["files"]["train"]["source"] == url + TRAIN
    (folder / DEV).unlink()
    with pytest.raises(FetchError, match=f"cannot read {DEV} from {url}{DEV}: HTTP 404"):
        fetch(sample_spec(), source=url, data_dir=tmp_path / "data2", progress=False)
    assert fetched_path(sample_spec(), data_dir=tmp_path / "data2") is None


def test_a_file_missing_at_the_source_is_named(tmp_path, mirror):
    (mirror / DEV).unlink()
    with pytest.raises(FetchError, match=f"{DEV} is not in {mirror}"):
        fetch(sample_spec(), source=mirror, data_dir=tmp_path / "data", progress=False)
    with pytest.raises(FetchError, match=f"cannot read {DEV} from file://"):
        fetch(sample_spec(), source=mirror.as_uri(), data_dir=tmp_path / "data", progress=False)
    assert fetched_path(sample_spec(), data_dir=tmp_path / "data") is None
    with pytest.raises(FileNotFoundError, match="no such folder"):
        fetch(sample_spec(), source=tmp_path / "nope", data_dir=tmp_path / "data", progress=False)
    with pytest.raises(ValueError, match="folder or an http"):
        fetch(sample_spec(), source="ftp://mirror/ud", data_dir=tmp_path / "data", progress=False)


def test_splits_subset_and_a_later_full_fetch(tmp_path, mirror):
    data = tmp_path / "data"
    out = fetch(sample_spec(), source=mirror, splits=["dev"], data_dir=data, progress=False)
    assert _listing(out) == [DEV, "probekit-fetch.json"]
    assert set(json.loads((out / "probekit-fetch.json").read_text())["files"]) == {"dev"}
    fetch(sample_spec(), source=mirror, data_dir=data, progress=False)
    assert set(json.loads((out / "probekit-fetch.json").read_text())["files"]) == {"dev", "train"}
    with pytest.raises(ValueError, match="has files for train, dev; not test"):
        fetch(sample_spec(), splits=["test"], data_dir=data)
    with pytest.raises(LookupError, match="unknown dataset 'ud_ewtt'.*ud_ewt"):
        fetch("ud_ewtt", data_dir=data)


def test_a_file_that_no_longer_matches_is_kept_until_forced(tmp_path, mirror):
    data = tmp_path / "data"
    out = fetch(sample_spec(), source=mirror, data_dir=data, progress=False)
    (out / DEV).write_text("changed by hand\n", encoding="utf-8")
    assert fetched_path(sample_spec(), data_dir=data) is None  # the size no longer matches the manifest
    with pytest.raises(FileNotFoundError, match="incomplete or changed.*probekit data fetch ud_sample"):
        fetched_path(sample_spec(), data_dir=data, required=True)
    with pytest.raises(ChecksumError, match=f"{DEV} .* left as it is.*force"):
        fetch(sample_spec(), source=mirror, data_dir=data, progress=False)
    assert (out / DEV).read_text() == "changed by hand\n"
    fetch(sample_spec(), source=mirror, data_dir=data, force=True, progress=False)
    assert (out / DEV).read_bytes() == UD_SAMPLE_DEV.read_bytes()
    assert fetched_path(sample_spec(), data_dir=data) == out


def test_pins_need_a_checksum_and_a_plain_name():
    with pytest.raises(ValueError, match="needs sha256 or content_sha256"):
        FilePin("dev", "x.conllu")
    with pytest.raises(ValueError, match="plain file name"):
        FilePin("dev", "../x.conllu", sha256="0" * 64)


def test_cli_fetch_path_verify_list(tmp_path, mirror, monkeypatch):
    monkeypatch.setenv("PROBEKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(DATASETS, "ud_sample", sample_spec())
    run = CliRunner().invoke
    r = run(main, ["data", "path", "ud_sample"])
    assert r.exit_code != 0 and "run `probekit data fetch ud_sample`" in r.output
    bad = tmp_path / "bad"
    shutil.copytree(mirror, bad)
    with open(bad / DEV, "ab") as fh:
        fh.write(b"# one more line\n")
    r = run(main, ["data", "fetch", "ud_sample", "--from", str(bad), "--no-progress"])
    assert r.exit_code != 0 and f"{DEV} from" in r.output and "does not match its pin" in r.output
    r = run(main, ["data", "fetch", "ud_sample", "--from", mirror.as_uri(), "--no-progress"])
    folder = tmp_path / "cache" / "data" / "ud_sample-t1"
    assert r.exit_code == 0 and r.output.strip() == str(folder), r.output
    r = run(main, ["data", "path", "ud_sample"])
    assert r.exit_code == 0 and r.output.strip() == str(folder)
    r = run(main, ["data", "verify", "ud_sample"])
    assert r.exit_code == 0 and "every file matches its pin" in r.output
    (folder / TRAIN).write_text((folder / TRAIN).read_text().replace("\tNOUN\t", "\tVERB\t", 1))  # same size
    r = run(main, ["data", "verify", "ud_sample"])
    assert r.exit_code != 0 and f"{TRAIN} from" in r.output and "content fingerprint" in r.output
    r = run(main, ["data", "list"])
    assert r.exit_code == 0 and "ud_ewt  r2.16" in r.output and "CC BY-SA 4.0" in r.output
    r = run(main, ["data", "fetch", "ud_sample", "--splits", "test"])
    assert r.exit_code != 0 and "not test" in r.output


def test_build_task_uses_the_fetched_copy_or_names_the_command(tmp_path, mirror, monkeypatch):
    monkeypatch.delenv("PROBEKIT_UD_PATH", raising=False)
    monkeypatch.setenv("PROBEKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"run `probekit data fetch ud_ewt`.*--from DIR_OR_URL"):
        build_task("upos", "ud")
    # the sample stands in for the release: same name, its own pins
    monkeypatch.setattr(_pins, "UD_EWT", sample_spec(name="ud_ewt"))
    out = fetch(_pins.UD_EWT, source=mirror, progress=False)
    assert out == tmp_path / "cache" / "data" / "ud_ewt-t1"
    assert default_ud_path() == out
    assert build_task("upos", "ud", limit=30).dataset == build_task("upos", "ud", path=UD_SAMPLE, limit=30).dataset
    monkeypatch.setenv("PROBEKIT_UD_PATH", str(mirror))  # the variable comes first
    assert default_ud_path() == mirror


# ------------------------------------------------------------------ the release pins, on the whole treebank
def test_release_pins_match_the_whole_treebank(ud_full, tmp_path, monkeypatch):
    """The pins of UD EWT r2.16 verify the whole train and dev files (the test file is not in this copy)."""
    out = fetch(UD_EWT, source=ud_full, splits=["train", "dev"], data_dir=tmp_path / "data", progress=False)
    assert out == tmp_path / "data" / "ud_ewt-r2.16"
    assert (out / "en_ewt-ud-dev.conllu").stat().st_size == 1_805_545
    monkeypatch.delenv("PROBEKIT_UD_PATH", raising=False)
    monkeypatch.setenv("PROBEKIT_CACHE", str(tmp_path))
    assert default_ud_path() == out
    t = build_task("upos", "ud")
    assert t.splits.count("train") == 12544 and len(t.dataset) == 12544 + 2001
