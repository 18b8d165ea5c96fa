"""Every config under conf/ composes, and names what exists."""

import pytest

from benchpq import registry
from benchpq.measure.tasks import TASKS

from compose import CONF, compose_config


def choices(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("name", choices("algorithm"))
def test_algorithm_configs_compose(name):
    config = compose_config([f"algorithm={name}"])
    assert config["algorithm"]["name"] == name
    assert name in registry.names()


# file-based datasets are named after their file, which must be given
FILE_KEYS = {"ann_hdf5": ["dataset.path=/data/glove-25-angular.hdf5"],
             "files": ["dataset.base=my/base_vectors.fvecs", "dataset.query=my/q.fvecs"]}


@pytest.mark.parametrize("name", choices("dataset"))
def test_dataset_configs_compose(name):
    config = compose_config([f"dataset={name}", *FILE_KEYS.get(name, [])])
    assert config["dataset"]["name"] == {"ann_hdf5": "glove-25-angular",
                                         "files": "base_vectors"}.get(name, name)
    assert config["dataset"]["loader"]


@pytest.mark.parametrize("name", choices("task"))
def test_task_configs_compose(name):
    assert compose_config([f"task={name}"])["task"]["name"] in TASKS


@pytest.mark.parametrize("name", choices("experiment"))
def test_experiment_configs_compose(name):
    config = compose_config([f"experiment={name}"], resolve=False)
    assert config.name


def test_groups_are_not_empty():
    for group in ("algorithm", "dataset", "task", "experiment"):
        assert choices(group), group


def test_experiment_values_win_over_the_main_config():
    config = compose_config(["experiment=pq_siftsmall"])
    assert config["name"] == "pq-siftsmall"
    assert config["dataset"]["name"] == "siftsmall"
    assert compose_config([])["name"] == "search-synthetic"
    assert compose_config(["experiment=pq_siftsmall", "name=mine"])["name"] == "mine"
