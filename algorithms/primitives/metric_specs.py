"""Declarations of the plugin metrics that several plugins return (benchpq.metric_table).

A plugin declares the keys of its ``extra_metrics()`` in its class attribute
``metric_specs = declare(...)``; a metric that more than one plugin reports is declared
here once, so that every record using its name means the same thing by it.
"""
from __future__ import annotations

from benchpq.metric_table import Metric

ITERATIONS = Metric(
    "iterations", "Iterations of the clustering loop that ran (at most niter; fewer when it "
    "stopped early).", display="Iterations", kind="count")
OBJECTIVE = Metric(
    "objective", "The clustering's own objective after its last iteration: the sum over the "
    "points it trained on of the distance to their centre (squared L2 for k-means on floats, "
    "the symmetric PQ distance for PQk-means, the Hamming distance for Bk-means); not "
    "comparable across those (error is).", direction="min", display="Objective",
    kind="error")
ENCODER_TRAIN_S = Metric(
    "encoder_train_s", "Seconds a code clusterer spent training its encoder (PQ codebooks or "
    "the ITQ rotation) inside fit_predict.", unit="s", direction="min",
    display="Encoder train time (s)", kind="time", is_time=True, ratio=True)
KMEANS_S = Metric(
    "kmeans_s", "Seconds of a code clusterer's k-means loop on the codes inside fit_predict.",
    unit="s", direction="min", display="k-means time (s)", kind="time", is_time=True,
    ratio=True)
ITER_S = Metric(
    "iter_s", "Mean seconds per iteration of a code clusterer's k-means loop.", unit="s",
    direction="min", display="Time per iteration (s)", kind="time", is_time=True, ratio=True)
QUANTIZATION_LOSS = Metric(
    "quantization_loss", "ITQ's quantization loss ||B - V R||_F^2 on its training set after "
    "the last iteration (Gong & Lazebnik, Iterative quantization, CVPR 2011).",
    direction="min", display="ITQ loss", kind="error")
N_TRAIN = Metric(
    "n_train", "Vectors the encoder was trained on (a seeded sample of at most train_size).",
    display="Encoder training vectors", kind="count")
STATE_BYTES = Metric(
    "state_bytes", "Bytes a code clusterer holds while clustering: codes, labels, centres and "
    "its distance tables.", unit="bytes", direction="min", display="Clustering state (bytes)",
    kind="bytes", ratio=True)
FINE_BITS = Metric(
    "fine_bits", "Bits of the fine (residual) code per vector, M * ceil(log2 Ks), the same as "
    "code_bits (the cell is implied by the inverted list).", unit="bits",
    display="Fine code (bits)", kind="count")
CELL_BITS = Metric(
    "cell_bits", "Bits of a vector's coarse cell id (two halves of a multi-index: "
    "2 * ceil(log2 V)).", unit="bits", display="Cell id (bits)", kind="count")
TOTAL_BITS = Metric(
    "total_bits", "fine_bits + cell_bits: the size of a code outside the index.", unit="bits",
    display="Total code (bits)", kind="count")
MEAN_CANDIDATES = Metric(
    "mean_candidates", "Codes whose distance was computed per query, averaged over the "
    "queries of the last search (non-exhaustive searchers): the budget recall is bought with.",
    direction="min", display="Candidates per query", scope="search")
MAX_CANDIDATES = Metric(
    "max_candidates", "Most candidates ranked for one query in the last search.",
    direction="min", display="Max candidates per query", kind="count", scope="search")
MEAN_CELLS = Metric(
    "mean_cells", "Cells of the index traversed per query (empty ones included), averaged over "
    "the queries of the last search.", direction="min", display="Cells per query",
    scope="search")
