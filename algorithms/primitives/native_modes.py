"""The C++ core's mode numbers, in one place for every plugin.

Each table maps the option a user writes to the integer the C++ function takes.
The values come from ``cpp/modes.h`` (:func:`benchpq.native.enum_value`, which
reads the header without building the library), so that header is their one
definition; ``tests/test_native_modes.py`` checks them against the compiled core.
"""
from __future__ import annotations

from benchpq.native import enum_value

# k-means of the PQ family (PQ, OPQ, k-means)
INITS = {"k-means++": enum_value("KMEANS_INIT_PLUSPLUS"),
         "random": enum_value("KMEANS_INIT_RANDOM")}
HOT_START = enum_value("KMEANS_INIT_GIVEN")  # k-means starts from the current codebooks

# LOPQ's coarse and fine k-means
LOPQ_INITS = {"greedy-k-means++": enum_value("KMEANS_INIT_GREEDY_PLUSPLUS"), **INITS}

# k-means on codes (PQk-means, Bk-means)
CODE_KMEANS_INITS = {"random": enum_value("CODE_KMEANS_INIT_DISTINCT"),
                     "pqkmeans": enum_value("CODE_KMEANS_INIT_LIBRARY")}
CODE_KMEANS_INIT_GIVEN = enum_value("CODE_KMEANS_INIT_GIVEN")
EMPTY_RULES = {"farthest": enum_value("CODE_KMEANS_EMPTY_FARTHEST"),
               "keep": enum_value("CODE_KMEANS_EMPTY_KEEP")}

# PQ fast scan: the instruction set of its kernels
SIMD_LEVELS = {"auto": enum_value("PQFS_SIMD_AUTO"), "scalar": enum_value("PQFS_SIMD_SCALAR"),
               "avx2": enum_value("PQFS_SIMD_AVX2"), "avx512": enum_value("PQFS_SIMD_AVX512")}
