"""Loader ``bigann``: the billion-scale sets of big-ann-benchmarks (BIGANN/SIFT1B, Deep1B)
and their 10M / 100M subsets, in the published binary layout
(:mod:`benchpq.datasets.bigann_formats`).

The base is the first ``n_base`` rows of the 1B file, memory-mapped: only those rows are
read. big-ann-benchmarks publishes exact top-100 ground truth of its 10,000 public queries
for the first 10M, the first 100M and all 1B rows; the config maps each of those sizes to
its file (``groundtruth``), and the loader reads the file of the ``n_base`` asked for. For
any other ``n_base`` no file applies, and ground truth is computed and cached
(:func:`benchpq.datasets.groundtruth.ensure_groundtruth`).

Files are looked for in ``<data_dir>/<folder>`` (then the download folder); a base cropped
by big-ann-benchmarks' own download (``base.1B.u8bin.crop_nb_10000000``) serves a subset
of at most that many rows. Missing files are downloaded from ``url`` when allowed; no
checksum is published, so they are checked by shape (the header and the size it implies).
Offline, the error names each file to fetch and where from.

The learn set is ``learn`` (a file of the folder, e.g. BIGANN's ``learn.100M.u8bin``), or
the first ``n_learn`` rows of the base when ``learn`` is null (as big-ann-benchmarks'
baselines train).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..checks import InputError, check_positive_int
from .bigann_formats import GROUNDTRUTH_FORMAT, read_header
from .context import LoadContext
from .dataset import Dataset
from .download import Expected
from .formats import read_array
from .locate import DatasetNotFoundError, Source, files_not_found, locate_files
from .registry import register_loader


def _source(url: str | None, spec: str, expected: Expected) -> tuple[str, Source | None]:
    """(local file name, where to download it): ``spec`` is a URL or a name under ``url``."""
    if "://" in spec:
        name = spec.rsplit("/", 1)[-1]
        return name, Source(spec, files={name: expected}, archive=False)
    if url is None:
        return spec, None
    return spec, Source(url.rstrip("/") + "/" + spec, files={spec: expected}, archive=False)


def groundtruth_spec(groundtruth: Mapping | None, n_base: int) -> str | None:
    """The ground-truth file (name or URL) the config gives for ``n_base`` rows, if any."""
    for rows, spec in (groundtruth or {}).items():
        if int(rows) == n_base:
            return str(spec)
    return None


def _locate_all(ctx: LoadContext, folder: str, wanted: dict) -> dict:
    """{part: path} for ``wanted`` = {part: (file name or alternatives, Source)}, each
    downloaded when missing and allowed; one error naming every file still missing."""
    found, missing = {}, []
    for part, (spec, source) in wanted.items():
        names = (spec,) if isinstance(spec, str) else spec
        try:
            found[part] = locate_files(ctx, folder, [names], source)[names[0]]
        except DatasetNotFoundError as exc:
            reason = exc.reason
            missing.append(" or ".join(names) + (f" (from {source.url})" if source else ""))
    if missing:
        raise files_not_found(ctx, ", ".join(missing), ctx.resolve(folder), reason)
    return found


@register_loader("bigann")
def load_bigann(ctx: LoadContext, folder: str, base: str, query: str, dim: int,
                base_rows: int, n_query_published: int, groundtruth: Mapping | None = None,
                learn: str | None = None, url: str | None = None,
                n_base: int | None = None, n_learn: int | None = None,
                n_query: int | None = None) -> Dataset:
    """Load the first ``n_base`` rows of a big-ann set, its queries and ground truth.

    Args:
        folder: sub-folder of the data directory.
        base: the full base file's name (``base.1B.u8bin``); its extension gives the type.
        query: the public queries' file.
        dim: the vectors' dimension (every file is checked against it).
        base_rows: rows of the full base file (the published size, checked on download).
        n_query_published: rows of the query file.
        groundtruth: {rows of the base prefix: ground-truth file name or URL}.
        learn: a learn file of the folder, or None to train on the base's first rows.
        url: where the base and query files (and ground truth given by name) are
            downloaded from (a folder URL).
        n_base: rows of the base to use (default: all ``base_rows``).
        n_learn: rows of the learn set (default: all of the learn file; required when
            ``learn`` is None, as a float copy of the base is not made whole).
        n_query: rows of the queries (default: all).
    """
    where = f"dataset {ctx.name!r}"
    dim = check_positive_int(dim, f"{where} dim")
    base_rows = check_positive_int(base_rows, f"{where} base_rows")
    n_base = base_rows if n_base is None else check_positive_int(n_base, f"{where} n_base",
                                                                 1, base_rows)
    if learn is None and n_learn is None:
        raise InputError(f"{where}: with learn: null the learn set is the base's first "
                         f"n_learn rows; set dataset.n_learn (e.g. 1000000)")
    base_name, base_source = _source(url, base, Expected(shape=(base_rows, dim)))
    crops = (f"{base_name}.crop_nb_{n_base}",) if n_base < base_rows else ()
    wanted = {"base": ((base_name, *crops), base_source),
              "query": _source(url, query, Expected(shape=(n_query_published, dim)))}
    if learn is not None:
        wanted["learn"] = _source(url, learn, Expected())
    spec = groundtruth_spec(groundtruth, n_base)
    if spec is not None:
        wanted["groundtruth"] = _source(url, spec, Expected(shape=(n_query_published, 100),
                                                            fmt=GROUNDTRUTH_FORMAT))
    paths = _locate_all(ctx, folder, wanted)
    rows, cols = read_header(paths["base"])
    if cols != dim or rows < n_base:
        raise InputError(f"{where}: {paths['base']} holds {rows} x {cols} vectors; "
                         f"{n_base} x {dim} are needed")
    base_x = read_array(paths["base"])[:n_base]
    query_x = read_array(paths["query"])
    learn_x = read_array(paths["learn"]) if learn is not None else base_x
    if n_learn is not None:
        learn_x = learn_x[:check_positive_int(n_learn, f"{where} n_learn", 1, learn_x.shape[0])]
    if n_query is not None:
        query_x = query_x[:check_positive_int(n_query, f"{where} n_query", 1,
                                              query_x.shape[0])]
    for part, x in (("query", query_x), ("learn", learn_x)):
        if x.shape[1] != dim:
            raise InputError(f"{where}: the {part} file holds {x.shape[1]}-d vectors, "
                             f"the base {dim}-d")
    gt, gt_info = None, f"none shipped for n_base={n_base}: computed"
    if spec is not None:
        gt = np.asarray(read_array(paths["groundtruth"], key="ids", fmt=GROUNDTRUTH_FORMAT),
                        dtype=np.int64)[:query_x.shape[0]]
        gt_info = (f"shipped {paths['groundtruth'].name} (exact top-{gt.shape[1]} over the "
                   f"first {n_base} rows)")
    return Dataset(
        name=ctx.name, learn=learn_x, base=base_x, query=query_x, groundtruth=gt,
        info={"source": f"big-ann {base_name} ({paths['base'].parent})",
              "split": (f"learn = {learn}" if learn else "learn = the base's first rows")
                       + f", base = the first {n_base} rows of {base_name}, query = {query}",
              "groundtruth": gt_info})
