"""The command line: a plain run uses the plugins' defaults (an experiment applies only when
chosen)."""
import os
import subprocess
import sys

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from compose import CONF, REPO, compose_config


def run_cli(*args, cwd=REPO, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "benchpq.cli", *args], cwd=cwd,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


def shown_job_config(*overrides) -> dict:
    """What ``benchpq --cfg job OVERRIDES`` prints, read back as YAML."""
    proc = run_cli("--cfg", "job", *overrides)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return yaml.safe_load(proc.stdout)


def plugin_yaml(name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONF / "algorithm" / f"{name}.yaml"))


def curve_yaml(experiment: str, name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONF / "curves" / experiment / f"{name}.yaml"))


# --- an experiment applies only when it is chosen


@pytest.mark.parametrize("name", ["faiss_ivfpq", "lopq"])
def test_a_plain_run_searches_at_the_plugin_defaults(name):
    assert curve_yaml("quickstart", name) != plugin_yaml(name)["search"]  # else no test
    plain = compose_config([f"algorithm={name}", "dataset=siftsmall"])
    assert plain["algorithm"]["search"] == plugin_yaml(name)["search"]
    chosen = compose_config([f"algorithm={name}", "dataset=siftsmall", "experiment=quickstart"])
    assert chosen["algorithm"]["search"] == {**plugin_yaml(name)["search"],
                                             **curve_yaml("quickstart", name)}
    none = compose_config([f"algorithm={name}", "dataset=siftsmall", "experiment=none"])
    assert none == plain


def test_a_plain_run_has_no_experiment_sweep():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        plain = compose("config", return_hydra_config=True)
        quickstart = compose("config", overrides=["experiment=quickstart"],
                             return_hydra_config=True)
    assert plain.hydra.runtime.choices.experiment == "none"
    assert not plain.hydra.sweeper.params
    assert quickstart.hydra.sweeper.params.algorithm.startswith("pq,faiss_pq,nanopq_pq")


def test_cfg_job_shows_the_plugin_grid_unless_the_quickstart_is_chosen():
    plain = shown_job_config("algorithm=faiss_ivfpq", "dataset=siftsmall")
    assert plain["algorithm"]["search"] == {"nprobe": 16} == plugin_yaml("faiss_ivfpq")["search"]
    chosen = shown_job_config("algorithm=faiss_ivfpq", "dataset=siftsmall",
                              "experiment=quickstart")
    assert chosen["algorithm"]["search"] == {"nprobe": [2, 8, 32]}


def test_the_readme_starts_with_the_quickstart_and_the_tests():
    block = (REPO / "README.md").read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    first, second = block.strip().splitlines()
    assert first.startswith('pip install -e ".[test]" && benchpq experiment=quickstart ')
    assert second.startswith('pip install -e ".[test]" && pytest ')
    header = (CONF / "experiment" / "quickstart.yaml").read_text()
    assert "#   benchpq experiment=quickstart\n" in header
