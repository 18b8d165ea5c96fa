"""Every run an experiment would start is a valid run: each experiment's sweep is expanded
(its `hydra.sweeper.params`: comma lists, brace lists of algorithm configs), every point is
composed as the command line would, and its algorithm is instantiated with
``registry.create`` (no training) and its dataset resolved to a loader whose parameters bind
(no data is loaded). A typo such as ``algorithm: kmeens`` or ``algorithm.MM: 8`` fails here.
"""
import inspect
import shutil
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from benchpq import registry
from benchpq.api import Clusterer, Searcher
from benchpq.checks import InputError
from benchpq.datasets.registry import COMMON_KEYS, get_loader
from benchpq.measure.tasks import TASKS

from compose import CONF

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
TASK_INTERFACE = {"search": Searcher, "cluster": Clusterer}


def sweep_axes(experiment: str) -> list[tuple[str, list]]:
    """The sweep of an experiment: (override key, values) per axis, values parsed by Hydra's
    override grammar (strings, numbers, or dicts for a brace list of algorithm configs)."""
    params = ((experiment_file(experiment).get("hydra") or {}).get("sweeper") or {}).get(
        "params") or {}
    parsed = OverridesParser.create().parse_overrides(
        [f"{key}={value}" for key, value in params.items()])
    return [(o.get_key_element(), list(o.sweep_iterator()) if o.is_sweep_override()
             else [o.value()]) for o in parsed]


def experiment_file(experiment: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONF / "experiment" / f"{experiment}.yaml"))


def as_override(value) -> str:
    """A parsed sweep value written back in the override grammar."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{as_override(v)}" for k, v in value.items()) + "}"
    return str(value).lower() if isinstance(value, bool) else str(value)


def group_choice(experiment: str, group: str, value):
    """The config a group takes for a sweep value: a brace-list dict as it is, or the group's
    file ``conf/<group>/<value>.yaml`` with the experiment's own keys for that group on top."""
    if isinstance(value, dict):
        return value
    path = CONF / group / f"{value}.yaml"
    assert path.is_file(), f"{group}={value}: no {path.relative_to(CONF.parent)}"
    own = experiment_file(experiment).get(group) or {}
    raw = OmegaConf.load(path)
    if "defaults" in raw:  # a config that inherits another (fashion-mnist-10k): let Hydra merge
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            raw = compose(f"{group}/{value}")[group]
    return OmegaConf.to_container(OmegaConf.merge(raw, own), resolve=True)


def sweep_points(experiment: str):
    """(overrides, config) for every value of every axis of the sweep, the other axes at their
    first value. The first point is composed by Hydra; the others change it the way Hydra
    would (checked on the first point): a config group's value replaces that group's config,
    a key's value (``task.n_clusters=...``) sets that key, which must exist."""
    axes = sweep_axes(experiment)
    first = [f"{key}={as_override(values[0])}" for key, values in axes]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        base = OmegaConf.to_container(
            compose("config", overrides=[f"experiment={experiment}", *first]), resolve=True)
    yield first, base

    def with_group(group, value):
        """The first point with ``group`` set to ``value``, then the other axes' keys in it."""
        config = OmegaConf.create(base)
        config[group] = group_choice(experiment, group, value)
        for key, values in axes:
            if key.lstrip("+").startswith(group + "."):
                OmegaConf.update(config, key.lstrip("+"), values[0], merge=False)
        return config

    for axis, (key, values) in enumerate(axes):
        name = key.lstrip("+")
        is_group = (CONF / name).is_dir()
        if is_group and _global_group(name):  # its files set keys anywhere: Hydra composes
            for value in values[1:]:
                point = first[:axis] + [f"{key}={as_override(value)}"] + first[axis + 1:]
                with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
                    yield point, OmegaConf.to_container(
                        compose("config", overrides=[f"experiment={experiment}", *point]),
                        resolve=True)
            continue
        if is_group:
            assert OmegaConf.to_container(with_group(name, values[0])) == base, key
        for value in values[1:]:
            point = first[:axis] + [f"{key}={as_override(value)}"] + first[axis + 1:]
            if is_group:
                config = with_group(name, value)
            else:
                config = OmegaConf.create(base)
                assert OmegaConf.select(config, name, default="missing") != "missing", \
                    f"{key}: no such key in the composed config"
                OmegaConf.update(config, name, value, merge=False)
            yield point, OmegaConf.to_container(config, resolve=True)


def _global_group(group: str) -> bool:
    """A config group whose files are ``@package _global_`` (e.g. conf/speed/)."""
    return any(path.read_text().startswith("# @package _global_")
               for path in (CONF / group).glob("*.yaml"))


def check_dataset(dataset: dict) -> None:
    """The dataset config names a registered loader that accepts its keys."""
    params = {k: v for k, v in dataset.items() if k not in ("name", "loader", *COMMON_KEYS)}
    loader = get_loader(str(dataset["loader"]))
    accepted = inspect.signature(loader).parameters
    for k in ("n_learn", "n_base", "n_query"):  # generators take these themselves
        if dataset.get(k) is not None and k in accepted:
            params[k] = dataset[k]
    try:
        inspect.signature(loader).bind(None, **params)
    except TypeError as exc:
        raise InputError(f"dataset {dataset['name']!r}: {exc}") from None


def check_run(config: dict) -> None:
    """What a run needs before it loads data or trains: the algorithm, dataset and task."""
    plugin = registry.create(config["algorithm"])
    check_dataset(config["dataset"])
    task = config["task"]["name"]
    assert task in TASKS
    assert isinstance(plugin, TASK_INTERFACE[task]), \
        f"{config['algorithm']['name']} cannot run the {task} task"
    assert int(config["threads"]) >= 1


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_value_of_the_sweep_is_a_valid_run(experiment):
    points = list(sweep_points(experiment))
    for point, config in points:
        try:
            check_run(config)
        except Exception as exc:
            raise AssertionError(f"{experiment} {' '.join(point)}: {exc}") from exc
    assert len(points) == 1 + sum(len(values) - 1 for _, values in sweep_axes(experiment))


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "dataset").glob("*.yaml")))
def test_every_dataset_config_binds_to_its_loader(name):
    files = {"ann_hdf5": ["dataset.path=x.hdf5"], "files": ["dataset.base=b.npy",
                                                            "dataset.query=q.npy"]}
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        composed = compose("config", overrides=[f"dataset={name}", *files.get(name, [])])
    check_dataset(OmegaConf.to_container(composed.dataset, resolve=True))


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "algorithm").glob("*.yaml")))
def test_every_algorithm_config_instantiates(name):
    config = OmegaConf.to_container(OmegaConf.load(CONF / "algorithm" / f"{name}.yaml"))
    assert registry.create(config).name == name


TYPOS = [  # (experiment, sweep key, its swept values with one typo, the typo)
    ("clustering_paper", "algorithm", "faiss_kmeans,kmeens,pqkmeans", "kmeens"),
    ("clustering_paper", "dataset", "siftsmall,fashion-mnst", "fashion-mnst"),
    ("clustering_paper", "task.n_clusterz", "10,1000", "n_clusterz"),
    ("pq_siftsmall", "algorithm.MM", "4,8", "MM"),
    ("clustering_scale", "dataset.n_bse", "1000,2000", "n_bse"),
    ("lopq_siftsmall", "+algorithm", "{name:lopq,V:16,M:8},{name:lopq,VV:16,M:8}", "VV"),
    ("own_vs_faiss", "algorithm", "pq,faiss_kmeans", "faiss_kmeans"),  # cannot search
]


@pytest.mark.parametrize("experiment,key,values,typo", TYPOS)
def test_a_typo_in_a_sweep_fails(experiment, key, values, typo, tmp_path, monkeypatch):
    """The checks above catch a misspelt value or key, or a plugin unfit for the task, in a
    copy of an experiment whose sweep holds the mistake."""
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    path = conf / "experiment" / f"{experiment}.yaml"
    text = path.read_text()
    head = text[:text.index("    params:\n") + len("    params:\n")]
    path.write_text(f"{head}      {key}: '{values}'\n")
    monkeypatch.setattr(sys.modules[__name__], "CONF", conf)
    with pytest.raises(Exception, match=typo):
        test_every_value_of_the_sweep_is_a_valid_run(experiment)
