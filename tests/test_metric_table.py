"""The metric table: every metric a run records is declared once, and nothing else guesses."""
import dataclasses
import json

import numpy as np
import pytest

from benchpq import metric_table, registry
from benchpq.api import Clusterer, Quantizer, Searcher
from benchpq.checks import InputError
from benchpq.datasets import Dataset, load_dataset
from benchpq.measure.tasks import declared_metrics, run_task
from benchpq.metric_table import (
    CORE,
    FAMILIES,
    Metric,
    UnknownMetricError,
    declare,
    known,
    lookup,
    spec,
)
from benchpq.report import names
from benchpq.sweep import runner

from compose import REPO, compose_config

SMALL = ["dataset=synthetic", "++dataset.n_learn=2000", "++dataset.n_base=2000",
         "++dataset.n_query=20", "++dataset.dim=32"]
SEARCH = {"name": "search", "k": 100, "recall_at": [1, 10, 100], "k_recall": [10],
          "mse": True, "search_repeats": 2, "diagnostics": True}
CLUSTER = {"name": "cluster", "n_clusters": 10, "data": "base"}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """The synthetic SIFT-like set, small: 2000 learn and base vectors of 32 dims, 20 queries."""
    cache = tmp_path_factory.mktemp("cache")
    config = compose_config([*SMALL, f"cache_dir={cache}"])
    return load_dataset(config["dataset"], cache_dir=cache)


def recorded_keys(result: dict) -> set:
    """Every metric key of a task result: the build's and each search point's."""
    keys = set(result["build"])
    for point in result["points"]:
        assert point["status"] == "ok", point["message"]
        keys |= set(point["metrics"])
    return keys


def assert_all_declared(result: dict) -> None:
    extra = result["metric_specs"]
    json.dumps(extra)  # plain JSON, as the record stores it
    unknown = sorted(k for k in recorded_keys(result) if not known(k, extra))
    assert not unknown, f"recorded metrics without an entry: {unknown}"


# --------------------------------------------------------- every recorded metric has an entry

SEARCH_PLUGINS = {
    "lopq": {"V": 4, "M": 4, "Ks": 16, "coarse_iter": 5, "iter": 5, "quota": 200},
    "faiss_ivfpq": {"M": 4, "nbits": 4, "nlist": 16},
    "faiss_imi": {"M": 4, "nbits": 4, "coarse_bits": 2},
    "opq": {"M": 4, "Ks": 16, "niter": 2, "iter": 3},
    "itq": {"num_bit": 16, "niter": 5},
    "faiss_pq": {"M": 4, "nbits": 4},
}
CLUSTER_PLUGINS = {
    "kmeans": {"niter": 5},
    "faiss_kmeans": {"niter": 5},
    "pqkmeans": {"M": 4, "Ks": 16, "encoder_iter": 3, "niter": 3},
    "bkmeans": {"num_bit": 16, "itq_iter": 3, "niter": 3},
}


def create(name: str, params: dict, seed: int = 0):
    return registry.create({"name": name, **params, "seed": seed})


@pytest.mark.parametrize("name", SEARCH_PLUGINS)
def test_every_metric_of_a_search_run_has_an_entry(synthetic, name, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHPQ_CACHE", str(tmp_path))
    plugin = create(name, SEARCH_PLUGINS[name])
    result = run_task(plugin, synthetic, SEARCH, threads=1)
    assert_all_declared(result)
    keys = recorded_keys(result)
    for expected in ("recall@1", "recall@100", "10-recall@10", "recall@10_ci_low", "qps",
                     "search_s_median", "train_peak_rss_bytes", "per_query"):
        assert expected in keys
    if isinstance(plugin, Quantizer):  # mse and the codebook diagnostics
        assert {"mse", "encode_s", "subspace_mse", "code_entropy_bits"} <= keys


@pytest.mark.parametrize("name", CLUSTER_PLUGINS)
def test_every_metric_of_a_cluster_run_has_an_entry(synthetic, name):
    result = run_task(create(name, CLUSTER_PLUGINS[name]), synthetic, CLUSTER, threads=1)
    assert_all_declared(result)
    assert {"error", "cluster_s", "cluster_balance", "iterations"} <= recorded_keys(result)


def test_clustering_against_labels_records_declared_metrics(toy):
    labelled = Dataset("toy", learn=toy.learn, base=toy.base, query=toy.query,
                       labels=(toy.base[:, 0] > 0).astype(np.int64))
    result = run_task(create("kmeans", {"niter": 5}), labelled, CLUSTER, threads=1)
    assert_all_declared(result)
    assert {"nmi", "ari", "empty_clusters", "n_clusters"} <= recorded_keys(result)


def test_a_record_carries_the_plugin_declarations_and_they_resolve_its_metrics(tmp_path):
    config = compose_config([*SMALL, "algorithm=faiss_ivfpq", "algorithm.M=4",
                             "algorithm.nbits=4", "algorithm.nlist=64", "seed=0",
                             f"results_dir={tmp_path / 'results'}",
                             f"cache_dir={tmp_path / 'cache'}"])
    records = runner.execute(config)
    assert records
    for record in records:
        assert record["status"] == "ok", record["message"]
        specs = record["metric_specs"]
        assert set(specs) == {"mean_candidates", "mean_lists"}
        assert "mean_candidates" in record["metrics"]
        for key in record["metrics"]:
            assert known(key, specs), key
        assert lookup("mean_candidates", extra=specs).scope == "search"


# ------------------------------------------------------------------ families and derived names

@pytest.mark.parametrize("name, direction, kind, display, unit, scope", [
    ("recall@1", "max", "fraction", "Recall@1", "", "search"),
    ("recall@100", "max", "fraction", "Recall@100", "", "search"),
    ("10-recall@10", "max", "fraction", "10-Recall@10", "", "search"),
    ("train_s", "min", "time", "Train time (s)", "s", "build"),
    ("search_s", "min", "time", "Search time (s)", "s", "search"),
    ("cluster_s", "min", "time", "Clustering time (s)", "s", "build"),
    ("search_s_median", "min", "time", "Search time, median of passes (s)", "s", "search"),
    ("encode_peak_rss_bytes", "min", "bytes", "Encode peak RSS (bytes)", "bytes", "build"),
    ("search_rss_delta_bytes", "min", "bytes", "Search RSS increase (bytes)", "bytes", "search"),
    ("qps", "max", "rate", "QPS", "queries/s", "search"),
    ("mse", "min", "error", "MSE", "", "build"),
    ("code_bits", None, "count", "Code size (bits)", "bits", "build"),
    ("n_base", None, "count", "Base vectors", "", "build"),
    # derived: interval bounds (never bolded), the loader's prefixes, ratios to a baseline
    ("recall@10_ci_low", None, "fraction", "Recall@10 CI low", "", "search"),
    ("10-recall@10_ci_high", None, "fraction", "10-Recall@10 CI high", "", "search"),
    ("metric.mse", "min", "error", "MSE", "", "build"),
    ("param.recall@10", "max", "fraction", "Recall@10", "", "search"),
    ("train_s ratio", "min", "ratio", "Train time ratio", "", "build"),
    ("qps ratio", "max", "ratio", "QPS ratio", "", "search"),
    ("code_bits ratio", None, "ratio", "Code size ratio", "", "build"),
])
def test_names_resolve_with_their_direction_kind_and_display(name, direction, kind, display,
                                                             unit, scope):
    m = lookup(name)
    assert (m.name, m.direction, m.kind, m.display, m.unit, m.scope) \
        == (name, direction, kind, display, unit, scope)
    assert names.better_direction(name) == direction
    assert names.number_kind(name) == kind
    assert names.display_name(name) == display and names.unit(name) == unit
    assert names.is_known_metric(name)


def test_times_are_marked_machine_dependent():
    assert lookup("train_s").is_time and lookup("qps").is_time
    assert lookup("search_s_median").is_time and lookup("train_s ratio").is_time
    assert not lookup("mse").is_time and not lookup("recall@10").is_time
    assert not lookup("peak_rss_bytes").is_time


def test_ratios_are_offered_only_where_they_mean_something():
    assert {n for n, m in CORE.items() if m.ratio} >= {"qps", "mse", "error", "codes_bytes"}
    assert lookup("train_s").ratio and not lookup("encode_rss_delta_bytes").ratio
    assert not lookup("recall@10").ratio and not lookup("n_base").ratio


def test_the_name_builders_form_the_family_names():
    t = metric_table
    assert t.recall_name(10) == "recall@10" and t.k_recall_name(10) == "10-recall@10"
    assert t.phase_time_name("train") == "train_s"
    assert t.phase_time_stat_name("search", "median") == "search_s_median"
    assert t.phase_peak_name("add") == "add_peak_rss_bytes"
    assert t.phase_delta_name("cluster") == "cluster_rss_delta_bytes"
    assert t.ci_names("recall@10") == ("recall@10_ci_low", "recall@10_ci_high")
    assert t.ratio_name("train_s") == "train_s ratio"
    with pytest.raises(ValueError, match="warmup"):
        t.phase_time_name("warmup")  # a new phase is declared in PHASES first
    with pytest.raises(ValueError):
        t.recall_name(0)


def test_columns_sort_in_table_order():
    columns = ["qps", "recall@100", "mean_candidates", "10-recall@10", "recall@1",
               "train_s", "recall@10", "search_s", "recall@10_ci_low", "mse"]
    extra = {"mean_candidates": spec(Metric("mean_candidates", "Candidates per query."))}
    ordered = sorted(columns, key=lambda c: metric_table.sort_key(c, extra))
    assert ordered == ["recall@1", "recall@10", "recall@10_ci_low", "recall@100",
                       "10-recall@10", "qps", "train_s", "search_s", "mse", "mean_candidates"]


# ------------------------------------------------------------------------------ unknown names

@pytest.mark.parametrize("name", ["recal@10", "10-recall@100", "warmup_s", "threads",
                                  "recal@10_ci_low", "nope ratio", "mean_candidates"])
def test_an_unknown_name_is_an_error_that_names_it(name):
    assert not known(name) and not names.is_known_metric(name)
    with pytest.raises(UnknownMetricError, match=f"unknown metric '{name}'") as caught:
        lookup(name)
    assert "metric_specs" in str(caught.value) and "benchpq/metric_table.py" in str(caught.value)
    with pytest.raises(UnknownMetricError):
        names.better_direction(name)
    with pytest.raises(UnknownMetricError):
        names.number_kind(name)


# ------------------------------------------------------------------------------ plugin metrics

class Exact(Searcher):
    """Brute force over the raw vectors; reports a made-up 'probes' figure of its own."""
    name = "exact_probes"
    code_bits = 0
    model_bytes = 0

    def fit(self, x):
        return self

    def add(self, x):
        self.base = np.asarray(x)

    def search(self, q, k):
        d = ((q[:, None, :] - self.base[None]) ** 2).sum(-1)
        ids = np.argsort(d, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(d, ids, 1).astype(np.float32), ids

    @property
    def codes_bytes(self):
        return self.base.nbytes

    def extra_metrics(self):
        return {"probes": 3.0, "encode_s": 0.5}  # encode_s: a core metric, no declaration


PROBES = Metric("probes", "Cells probed per query.", direction="min",
                display="Probes per query", kind="count", scope="search")


class DeclaredExact(Exact):
    metric_specs = declare(PROBES)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHPQ_CACHE", str(tmp_path))
    rng = np.random.default_rng(0)
    base = rng.normal(size=(300, 8)).astype(np.float32)
    return Dataset("toy", learn=base, base=base, query=base[:10].copy())


TOY_SEARCH = {"name": "search", "k": 10, "recall_at": [1, 10], "k_recall": [10]}


def test_an_undeclared_plugin_metric_fails_the_run_naming_it_and_the_mechanism(toy):
    result = run_task(Exact(), toy, TOY_SEARCH, threads=1)
    (point,) = result["points"]
    assert point["status"] == "error"
    assert "undeclared metrics ('probes')" in point["message"]
    assert "metric_specs = declare(Metric(" in point["message"]
    assert "recall@1" in point["metrics"]  # what the task measured is kept
    assert result["metric_specs"] == {}


def test_a_declared_plugin_metric_is_carried_and_resolves(toy):
    result = run_task(DeclaredExact(), toy, TOY_SEARCH, threads=1)
    (point,) = result["points"]
    assert point["status"] == "ok", point["message"]
    assert point["metrics"]["probes"] == 3.0
    assert result["metric_specs"] == {"probes": spec(PROBES)}
    assert lookup("probes", extra=result["metric_specs"]) == PROBES
    assert lookup("probes_ci_low", extra=result["metric_specs"]).direction is None
    assert lookup("probes ratio", extra=result["metric_specs"]).kind == "ratio"
    assert not known("probes")  # only with the run's declarations


def test_a_new_metric_is_seen_by_the_report_from_its_declaration_alone(toy):
    """Adding a metric: one declaration; the report's helpers see it from the record."""
    class Fanout(DeclaredExact):
        metric_specs = declare(Metric(
            "fanout", "Children visited per node.", unit="nodes", direction="max",
            display="Fan-out (nodes)", kind="rate", scope="search"))

        def extra_metrics(self):
            return {**super().extra_metrics(), "fanout": 4.0}

    result = run_task(Fanout(), toy, TOY_SEARCH, threads=1)
    assert result["points"][0]["status"] == "ok", result["points"][0]["message"]
    extra = result["metric_specs"]
    assert set(extra) == {"probes", "fanout"}  # the base's declaration is inherited
    assert names.better_direction("fanout", extra) == "max"
    assert names.number_kind("fanout", extra) == "rate"
    assert names.display_name("fanout", extra) == "Fan-out (nodes)"
    assert names.unit("fanout", extra) == "nodes"
    assert names.is_known_metric("fanout", extra) and not names.is_known_metric("fanout")


def test_a_plugin_may_not_redeclare_a_core_or_derived_name():
    with pytest.raises(ValueError, match="'recall@10' is a core metric"):
        declare(Metric("recall@10", "Mine."))
    with pytest.raises(ValueError, match="derived names"):
        declare(Metric("probes_ci_low", "Mine."))
    with pytest.raises(ValueError, match="declared twice"):
        declare(PROBES, PROBES)


def test_a_malformed_declaration_fails_before_training(toy):
    class Misnamed(Exact):
        metric_specs = {"probes": dataclasses.replace(PROBES, name="probe")}

    class CoreClash(Exact):
        metric_specs = {"mse": Metric("mse", "Mine.")}

    for cls, message in ((Misnamed, "must be a Metric named 'probes'"),
                         (CoreClash, "'mse' is a core metric")):
        with pytest.raises(InputError, match=message):
            run_task(cls(), toy, TOY_SEARCH, threads=1)


def test_a_cluster_task_checks_declarations_too(toy):
    class Halves(Clusterer):
        name = "halves"

        def fit_predict(self, x, n_clusters):
            self.n = len(x)
            return (x[:, 0] > 0).astype(np.int64)

        @property
        def codes_bytes(self):
            return self.n * 4

        def extra_metrics(self):
            return {"splits": 1}

    result = run_task(Halves(), toy, {"name": "cluster", "n_clusters": 2}, threads=1)
    assert result["points"][0]["status"] == "error"
    assert "'splits'" in result["points"][0]["message"]


def test_every_repository_plugin_declaration_is_well_formed():
    declared = metric_table.repository_plugins()
    assert {"lopq", "faiss_ivfpq", "kmeans", "pqkmeans", "itq"} <= set(declared)
    by_name = {}
    for plugin, metrics in declared.items():
        for name, metric in metrics.items():
            # one name, one meaning: plugins reporting the same metric share its declaration
            assert by_name.setdefault(name, metric) == metric, (plugin, name)
            assert not known(name)


# ------------------------------------------------------------------------------ specs

def test_specs_round_trip_through_json():
    members = [f.match(n) for f, n in zip(FAMILIES, ("recall@10", "10-recall@10", "train_s",
                                                     "search_s_max", "add_peak_rss_bytes",
                                                     "search_rss_delta_bytes"))]
    for m in [*CORE.values(), *members, PROBES, lookup("train_s ratio")]:
        assert Metric.from_spec(json.loads(json.dumps(spec(m)))) == m
    assert declared_metrics(DeclaredExact()) == {"probes": spec(PROBES)}


def test_a_bad_spec_or_entry_is_refused():
    with pytest.raises(ValueError, match="unknown fields better"):
        Metric.from_spec({**spec(PROBES), "better": "max"})
    with pytest.raises(ValueError, match="direction"):
        Metric("x", "An x.", direction="up")
    with pytest.raises(ValueError, match="kind"):
        Metric("x", "An x.", kind="percent")
    with pytest.raises(ValueError, match="scope"):
        Metric("x", "An x.", scope="query")
    with pytest.raises(ValueError, match="definition"):
        Metric("x", "")
    assert Metric("x", "An x.").display == "x"


# ------------------------------------------------------------------------------ the docs

def test_docs_metrics_md_is_generated_from_the_table():
    page = (REPO / "docs" / "metrics.md").read_text()
    expected = metric_table.document(page, metric_table.repository_plugins())
    assert page == expected, ("docs/metrics.md disagrees with the metric table: run "
                              "python -m benchpq.metric_table --write docs/metrics.md")
    for name in ("`mse`", "`recall@<R>`", "`<phase>_s`", "`mean_candidates`", "`objective`"):
        assert name in page
