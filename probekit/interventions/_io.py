"""Saving and loading erasers: safetensors for the tensors, JSON for the description. No pickle.

A saved eraser is a directory with ``eraser.safetensors`` (``left``, ``right``,
``bias``, float64) and ``eraser.json`` (:meth:`Eraser.to_dict`, which names the
site, the model the eraser was fitted on and the SHA-256 of the tensors, plus
``checksum``: the SHA-256 of the rest of the description). The JSON is
written last and atomically, so a save that was interrupted, a tensor file
from another eraser, or a hand-edited description (another site, another
model) is refused on load, naming what does not match. Like a store's
checksums, these catch corruption and edits, not a forger who recomputes
them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from probekit.fingerprint import hash_json
from probekit.model import Site
from probekit.store import StoreError, read_json, write_json_atomic

if TYPE_CHECKING:
    from probekit.interventions._eraser import Eraser

__all__ = ["save_eraser", "load_eraser", "TENSORS_FILE", "META_FILE", "ERASER_FORMAT"]

logger = logging.getLogger(__name__)

TENSORS_FILE = "eraser.safetensors"
META_FILE = "eraser.json"
#: Version of an eraser's description and of its saved form (2: checksum of the description, fitted-on model).
ERASER_FORMAT = 2


def save_eraser(eraser: Eraser, path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Write ``eraser`` to directory ``path`` (see the module docstring)."""
    eraser._check_fitted()
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise FileExistsError(f"{path} exists and is not a directory; an eraser is saved as a directory")
        entries = set(os.listdir(path))
        if entries and META_FILE not in entries:
            raise FileExistsError(f"{path} is not empty and holds no probekit eraser ({len(entries)} entries); "
                                  "choose a new or empty directory")
        if META_FILE in entries and not overwrite:
            raise FileExistsError(f"{path} already holds an eraser; pass overwrite=True to replace it")
        if META_FILE in entries:
            os.remove(path / META_FILE)  # ours; removed first so a crash below leaves no valid eraser behind
    path.mkdir(parents=True, exist_ok=True)
    desc = eraser.to_dict()
    desc["checksum"] = {"sha256": hash_json(desc)}
    tmp = path / (TENSORS_FILE + ".tmp")
    save_file({"left": eraser.left_, "right": eraser.right_, "bias": eraser.bias_}, str(tmp),
              metadata={"format": "probekit-eraser", "version": str(ERASER_FORMAT)})
    os.replace(tmp, path / TENSORS_FILE)
    write_json_atomic(path / META_FILE, desc)
    logger.info("saved %r to %s", eraser, path)


def load_eraser(path: str | os.PathLike, registry: dict[str, type[Eraser]]) -> Eraser:
    """Read an eraser written by :func:`save_eraser`; raise ``ValueError`` naming what is wrong.

    ``registry`` maps each method name to its eraser class (``Eraser._registry``).
    """

    path = Path(path)
    meta_path, tensor_path = path / META_FILE, path / TENSORS_FILE
    if not meta_path.exists():
        what = "does not exist" if not path.exists() else f"has no {META_FILE}"
        raise FileNotFoundError(f"{path} {what}: it is not a saved probekit eraser")
    try:
        meta = read_json(meta_path)
    except StoreError as exc:
        raise ValueError(str(exc)) from exc
    if not isinstance(meta, dict) or meta.get("kind") != "eraser":
        raise ValueError(f"{meta_path} does not describe a probekit eraser")
    if meta.get("format") != ERASER_FORMAT:
        raise ValueError(f"{path} is eraser format {meta.get('format')}; this probekit reads format {ERASER_FORMAT} "
                         "(which records a checksum and the model the eraser was fitted on): fit and save it again")
    checksum = meta.pop("checksum", None)
    if not isinstance(checksum, dict) or checksum.get("sha256") != hash_json(meta):
        raise ValueError(f"{meta_path} does not match its checksum: the description (site, model, parameters, "
                         f"tensor hash) was edited after the eraser was saved; an edited eraser is refused, so fit "
                         f"and save it again (or load the original)")
    method = meta.get("method")
    if method not in registry:
        raise ValueError(f"{path}: unknown eraser method {method!r} (known: {', '.join(sorted(registry))})")
    if not tensor_path.exists():
        raise ValueError(f"{path} has {META_FILE} but no {TENSORS_FILE}: the save was incomplete")
    try:
        tensors = load_file(str(tensor_path))
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{tensor_path} is unreadable ({exc})") from exc
    if set(tensors) != {"left", "right", "bias"}:
        raise ValueError(f"{tensor_path} holds tensors {sorted(tensors)}, expected left, right and bias")
    if any(t.dtype != torch.float64 for t in tensors.values()):
        raise ValueError(f"{tensor_path}: eraser tensors must be float64")
    d, rank = meta.get("d"), meta.get("rank")
    shapes = {k: tuple(t.shape) for k, t in tensors.items()}
    if shapes != {"left": (d, rank), "right": (rank, d), "bias": (d,)}:
        raise ValueError(f"{tensor_path}: tensor shapes {shapes} do not match d={d}, rank={rank} of {META_FILE}")
    cls = registry[method]
    params = dict(meta.get("params") or {})
    unknown = set(params) - set(cls._json_params) - {"allow_other_model"}
    if unknown:
        raise ValueError(f"{meta_path}: unknown {method} parameters {sorted(unknown)}")
    site = meta.get("site")
    eraser = cls(site=site, **params)
    eraser._set_fitted(tensors["left"], tensors["right"], tensors["bias"], meta.get("classes") or (),
                       meta.get("fit") or {}, Site.parse(site) if site is not None else None)
    sha = meta.get("tensors", {}).get("sha256")
    if eraser.tensors_sha256() != sha:
        raise ValueError(f"{tensor_path} does not match {META_FILE} (tensor hash {eraser.tensors_sha256()[:12]}... vs "
                         f"{str(sha)[:12]}...): the files come from different saves; save the eraser again")
    fit_site = (meta.get("fit") or {}).get("site")
    if fit_site is not None and site is not None and Site.parse(fit_site) != Site.parse(site):
        raise ValueError(f"{meta_path} names site {site} but its rows were read at {fit_site}: the eraser was "
                         "fitted for another site")
    loaded = eraser.to_dict()
    if loaded != meta:  # every field round-trips: nothing in the file is ignored
        differ = sorted(k for k in set(meta) | set(loaded) if meta.get(k) != loaded.get(k))
        raise ValueError(f"{meta_path} does not describe the eraser it loads as (fields {differ} differ)")
    return eraser
