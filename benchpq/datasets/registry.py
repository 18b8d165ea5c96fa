"""Dataset loaders by name, and :func:`load_dataset` (config -> Dataset).

A loader is a function ``loader(ctx: LoadContext, **params) -> Dataset``
registered with ``@register_loader("name")`` in its own module; the core never
changes to add one. Installed distributions can add loaders through the entry
point group ``benchpq.datasets`` (an entry pointing at a module is imported so
its decorators run; one pointing at a function is registered under the entry
point's name).

A dataset config (``conf/dataset/<name>.yaml``) has ``name``, ``loader``, the
loader's own keys, and these keys handled here for every dataset:

=================  =======  ===================================================
key                default  meaning
=================  =======  ===================================================
``n_learn``        all      keep the first n learn vectors
``n_base``         all      keep the first n base vectors (drops shipped gt)
``n_query``        all      keep the first n queries (loaders that take these
                            keys themselves, e.g. synthetic, also get them)
``download``       true     download missing files of known datasets
``groundtruth_k``  100      fill ground truth up to k columns (null: don't)
``validate``       true     run :meth:`Dataset.validate`
``description``    none     free text, copied to ``Dataset.info``
``metric``         l2       ``l2``, ``ip`` or ``cosine`` (:mod:`.metric`; a file
                            that names its metric, ann-benchmarks', sets it)
=================  =======  ===================================================
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points

from ..checks import InputError, check_positive_int
from ..configs import compose_config
from ..resources import conf_dir
from ..suggest import did_you_mean
from .context import LoadContext, resolve_cache_dir, resolve_data_dir
from .dataset import Dataset
from .groundtruth import check_groundtruth, ensure_groundtruth
from .metric import check_metric, normalized

ENTRY_POINT_GROUP = "benchpq.datasets"
COMMON_KEYS = ("n_learn", "n_base", "n_query", "download", "groundtruth_k", "validate",
               "description", "metric")
Loader = Callable[..., Dataset]

_LOADERS: dict[str, Loader] = {}
_entry_points_loaded = False


class UnknownLoaderError(InputError):
    """A dataset config names a loader nobody registered."""


def register_loader(name: str):
    """Decorator: register ``fn(ctx, **params) -> Dataset`` as loader ``name``."""
    def wrap(fn: Loader) -> Loader:
        existing = _LOADERS.get(name)
        if existing is not None and existing is not fn and (
                existing.__module__, existing.__qualname__) != (fn.__module__, fn.__qualname__):
            raise InputError(f"dataset loader {name!r} is already registered by "
                             f"{existing.__module__}.{existing.__qualname__}")
        _LOADERS[name] = fn
        return fn
    return wrap


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()
        if callable(obj) and not inspect.ismodule(obj):
            register_loader(ep.name)(obj)


def known_loaders() -> list[str]:
    """Sorted names of the registered loaders."""
    _load_entry_points()
    return sorted(_LOADERS)


def get_loader(name: str) -> Loader:
    """The loader registered as ``name``; the error lists the known ones."""
    if name not in _LOADERS:
        _load_entry_points()
    try:
        return _LOADERS[name]
    except KeyError:
        raise UnknownLoaderError(f"unknown dataset loader {name!r}; known loaders: "
                                 f"{', '.join(known_loaders())}") from None


def _plain(cfg) -> dict:
    """A plain dict of a Mapping or an OmegaConf DictConfig (interpolations resolved)."""
    try:
        from omegaconf import DictConfig, OmegaConf
        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf comes with hydra
        pass
    if not isinstance(cfg, Mapping):
        raise InputError(f"dataset config must be a mapping, got {type(cfg).__name__}")
    return dict(cfg)


def _check_params(where: str, loader_name: str, loader: Loader, params: dict) -> None:
    sig = inspect.signature(loader)
    named = [p for p in list(sig.parameters.values())[1:]
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if not any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        unknown = sorted(set(params) - {p.name for p in named})
        if unknown:
            raise InputError(f"{where}: loader {loader_name!r} does not accept "
                             f"{', '.join(map(repr, unknown))}; its keys are "
                             f"{', '.join(p.name for p in named)} (and {', '.join(COMMON_KEYS)})")
    for p in named:
        if p.default is p.empty and p.name not in params:
            raise InputError(f"{where}: loader {loader_name!r} needs the key {p.name!r}")


def named_datasets() -> list[str]:
    """The names of the dataset configs shipped in ``conf/dataset/``."""
    return sorted(p.stem for p in (conf_dir() / "dataset").glob("*.yaml"))


def dataset_config(name: str, **keys) -> dict:
    """The config ``conf/dataset/<name>.yaml`` with ``keys`` on top, resolved as the
    command line resolves ``dataset=<name> dataset.<key>=<value>``.

    Raises:
        InputError: ``name`` is not a shipped dataset config (the message lists them).
    """
    from omegaconf import OmegaConf

    known = named_datasets()
    if name not in known:
        raise InputError(f"dataset {name!r}: no such config in conf/dataset"
                         f"{did_you_mean(name, known)} (known: {', '.join(known)})")
    # Hydra composes it, so a config that extends another (its defaults) works
    composed = compose_config(f"dataset/{name}").dataset
    # keys the YAML does not list (the common keys, a loader's optional ones) are checked by
    # load_dataset against the loader, with a message naming the keys it takes
    OmegaConf.set_struct(composed, False)
    return OmegaConf.to_container(OmegaConf.merge(composed, OmegaConf.create(keys)),
                                  resolve=True)


def with_metric(ds: Dataset, metric: str | None) -> Dataset:
    """``ds`` searched by ``metric`` (None: the loader's, ``l2`` unless its files name
    another). A file's metric (``info["file_metric"]``: its shipped neighbours were found
    with it) cannot be overridden. Under ``cosine`` the learn, base and query vectors are
    replaced by float32 copies normalised to unit length (said in ``info["metric"]``)."""
    where = f"dataset {ds.name!r}"
    given = ds.info.get("file_metric")
    if metric is not None and given is not None and metric != given:
        raise InputError(f"{where}: metric {metric!r} contradicts its file, whose neighbours "
                         f"are by {given!r}; leave metric out or set it to {given!r}")
    if metric is not None and metric != ds.metric and ds.groundtruth is not None:
        ds.groundtruth = None  # shipped for the loader's metric: recomputed for this one
        ds.info["groundtruth"] = f"shipped for {ds.metric}: recomputed for {metric}"
    ds.metric = metric or ds.metric
    if ds.metric == "cosine":
        same = ds.learn is ds.base
        ds.base = normalized(ds.base)
        ds.learn = ds.base if same else normalized(ds.learn)
        ds.query = normalized(ds.query)
        ds.info["metric"] = ("cosine: learn, base and query normalised to unit L2 norm (float32) "
                             "and searched by inner product")
    return ds


def load_dataset(cfg: Mapping | str, data_dir=None, cache_dir=None, refresh: bool = False,
                 **keys) -> Dataset:
    """Load the dataset described by ``cfg``.

    Args:
        cfg: a shipped dataset's name (``"siftsmall"``, :func:`named_datasets`), with
            ``keys`` as the command line's ``dataset.<key>=...`` (e.g. ``n_query=50``);
            or a mapping with ``loader``, optional ``name``, the loader's keys and
            the common keys of the module doc (a Hydra ``DictConfig`` works).
        data_dir: data directory; default ``$BENCHPQ_DATA`` or ``~/.cache/benchpq/data``.
        cache_dir: cache directory; default ``$BENCHPQ_CACHE`` or ``~/.cache/benchpq``.
        refresh: compute cached ground truth again (a run's ``force=true``).

    Returns:
        A validated :class:`Dataset` with ground truth of >= ``groundtruth_k`` columns.

    Raises:
        UnknownLoaderError: ``loader`` is not registered (lists known ones).
        InputError: bad or missing config keys, invalid data.
        DatasetNotFoundError: files missing and not downloadable.
    """
    if isinstance(cfg, str):
        cfg = dataset_config(cfg, **keys)
    elif keys:
        raise InputError(f"load_dataset: keys {sorted(keys)} are taken with a dataset name; "
                         f"put them in the config mapping")
    params = _plain(cfg)
    loader_name = params.pop("loader", None)
    name = str(params.pop("name", None) or loader_name)
    where = f"dataset {name!r}"
    if not loader_name:
        raise InputError(f"{where}: the config has no 'loader' key (known loaders: "
                         f"{', '.join(known_loaders())})")
    missing = sorted(k for k, v in params.items() if v == "???")
    if missing:
        raise InputError(f"{where}: set {', '.join(map(repr, missing))} (e.g. on the command "
                         f"line: dataset.{missing[0]}=...)")
    common = {k: params.pop(k) for k in COMMON_KEYS if k in params}
    loader = get_loader(str(loader_name))
    accepted = inspect.signature(loader).parameters
    for k in ("n_learn", "n_base", "n_query"):  # generators make exactly that many
        if common.get(k) is not None and k in accepted:
            params[k] = common[k]
    _check_params(where, str(loader_name), loader, params)
    ctx = LoadContext(name=name, data_dir=resolve_data_dir(data_dir),
                      cache_dir=resolve_cache_dir(cache_dir),
                      download=bool(common.get("download", True)))
    metric = None if common.get("metric") is None else check_metric(common["metric"],
                                                                      f"{where}: metric")
    ds = loader(ctx, **params)
    ds.name = name
    if common.get("description"):
        ds.info["description"] = str(common["description"])
    ds = with_metric(ds.subset(common.get("n_learn"), common.get("n_base"),
                               common.get("n_query")), metric)
    if common.get("validate", True):
        ds.validate()
        if ds.groundtruth is not None:
            check_groundtruth(ds.base, ds.query, ds.groundtruth, metric=ds.metric,
                              what=f"dataset {name!r}: shipped ground truth")
    k = common.get("groundtruth_k", 100)
    if k:
        ensure_groundtruth(ds, check_positive_int(k, f"{where} groundtruth_k"), ctx.cache_dir,
                           refresh=refresh)
    return ds
