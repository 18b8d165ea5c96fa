"""Loader ``texmex``: datasets in the texmex layout (SIFT10K, SIFT1M, GIST1M, Deep1M...).

Files, in ``<data_dir>/<folder>/``::

    <prefix>_base.<ext>          (n_base, d)
    <prefix>_learn.<ext>         (n_learn, d)   unless ``learn: base``
    <prefix>_query.<ext>         (nq, d)
    <prefix>_groundtruth.ivecs   (nq, k) ids into base, nearest first

``ext`` is fvecs (float32) or bvecs (uint8, exposed as float32).

Downloads (http://corpus-texmex.irisa.fr/, ftp) for the prefixes in
:data:`SOURCES`. The texmex archives have no published checksum, so:

* siftsmall: the extracted files are checked against sha256 digests computed
  on the copies the project tests with (base, query, ground truth);
  siftsmall_learn.fvecs, which those copies lack, is checked by shape only.
* sift, gist: the extracted files are checked by shape only (sizes published
  on the texmex page).

Deep1M has no download: put ``deep1M_base.fvecs``, ``deep1M_learn.fvecs``,
``deep1M_query.fvecs`` and ``deep1M_groundtruth.ivecs`` in ``<data_dir>/deep1m``
(texmex layout; e.g. the first 1M vectors of Deep1B's base set, a learn subset
and the queries, with their exact top-100 ground truth over that 1M base).
"""
from __future__ import annotations

import dataclasses

from ..checks import InputError
from .context import LoadContext
from .dataset import Dataset
from .download import Expected
from .formats import read_array
from .locate import Source, locate_files
from .registry import register_loader

TEXMEX_FTP = "ftp://ftp.irisa.fr/local/texmex/corpus/"

SOURCES = {
    "siftsmall": Source(TEXMEX_FTP + "siftsmall.tar.gz", files={
        "siftsmall_base.fvecs": Expected(
            sha256="1e90414a3254361aba48a0d58e461f7661fb135dabb3da985290e94de8f60fe0"),
        "siftsmall_query.fvecs": Expected(
            sha256="095af38bda2741be721447ba97e9286fa918ece946be92a9ae133276eddc1a10"),
        "siftsmall_groundtruth.ivecs": Expected(
            sha256="b0717bf276111a166f14dcc2653fd04465b2afd6d34c72be641b622cf99f95ae"),
        "siftsmall_learn.fvecs": Expected(shape=(25000, 128)),
    }),
    "sift": Source(TEXMEX_FTP + "sift.tar.gz", files={
        "sift_base.fvecs": Expected(shape=(1_000_000, 128)),
        "sift_learn.fvecs": Expected(shape=(100_000, 128)),
        "sift_query.fvecs": Expected(shape=(10_000, 128)),
        "sift_groundtruth.ivecs": Expected(shape=(10_000, 100)),
    }),
    "gist": Source(TEXMEX_FTP + "gist.tar.gz", files={
        "gist_base.fvecs": Expected(shape=(1_000_000, 960)),
        "gist_learn.fvecs": Expected(shape=(500_000, 960)),
        "gist_query.fvecs": Expected(shape=(1_000, 960)),
        "gist_groundtruth.ivecs": Expected(shape=(1_000, 100)),
    }),
}


@register_loader("texmex")
def load_texmex(ctx: LoadContext, folder: str, prefix: str, learn: str = "learn",
                ext: str = "fvecs", groundtruth: bool = True, url: str | None = None) -> Dataset:
    """Load ``<folder>/<prefix>_{base,learn,query}.<ext>`` and the ground truth.

    Args:
        folder: sub-folder of the data directory.
        prefix: file name prefix (``siftsmall``, ``sift``, ``gist``, ``deep1M``).
        learn: ``learn`` to read the learn file, ``base`` to train on the base
            (documented split for sets without a learn file, e.g. siftsmall).
        ext: ``fvecs`` or ``bvecs``.
        groundtruth: read ``<prefix>_groundtruth.ivecs``.
        url: archive URL overriding the known one (a mirror); files are then
            checked as for the known source, or not at all for other prefixes.
    """
    if learn not in ("learn", "base"):
        raise InputError(f"dataset {ctx.name!r}: learn must be 'learn' or 'base', got {learn!r}")
    if ext not in ("fvecs", "bvecs"):
        raise InputError(f"dataset {ctx.name!r}: ext must be 'fvecs' or 'bvecs', got {ext!r}")
    parts = ["base"] + (["learn"] if learn == "learn" else []) + ["query"]
    names = {part: f"{prefix}_{part}.{ext}" for part in parts}
    if groundtruth:
        names["groundtruth"] = f"{prefix}_groundtruth.ivecs"
    source = SOURCES.get(prefix)
    if url:
        files = source.files if source else {n: Expected() for n in names.values()}
        source = Source(url, files=files)
    if source is not None:  # fetch only what is needed
        wanted = {n: e for n, e in source.files.items() if n in names.values()}
        source = dataclasses.replace(source, files=wanted)
    paths = locate_files(ctx, folder, list(names.values()), source)
    arrays = {part: read_array(paths[name]) for part, name in names.items()}
    base = arrays["base"]
    where = paths[names["base"]].parent
    return Dataset(
        name=ctx.name, learn=arrays.get("learn", base), base=base, query=arrays["query"],
        groundtruth=arrays.get("groundtruth"),
        info={"source": f"texmex {prefix} ({where})",
              "split": (f"learn = {prefix}_learn" if learn == "learn" else
                        "learn = base (no learn set)") + f", base = {prefix}_base, "
                       f"query = {prefix}_query",
              "groundtruth": f"shipped {prefix}_groundtruth.ivecs" if groundtruth else "none"})
