"""The C++ core's mode numbers (enum values), in one place for every plugin.

Each table maps the option a user writes to the integer the C++ function takes;
the comment names the C++ constants it mirrors.
"""
from __future__ import annotations

# k-means of the PQ family (PQ, OPQ, k-means)
INITS = {"k-means++": 0, "random": 1}  # cpp/kmeans.h KMEANS_INIT_*
HOT_START = 2  # cpp/kmeans.h KMEANS_INIT_GIVEN: k-means starts from the current codebooks

# LOPQ's coarse and fine k-means
# k-means initialisations: cpp/kmeans.h KMEANS_INIT_*, cpp/lopq.h LOPQ_INIT_GREEDY_PLUSPLUS
LOPQ_INITS = {"greedy-k-means++": 16, "k-means++": 0, "random": 1}

# k-means on codes (PQk-means, Bk-means)
CODE_KMEANS_INITS = {"random": 0, "pqkmeans": 1}  # cpp/pqkmeans_common.h CODE_KMEANS_INIT_*
CODE_KMEANS_INIT_GIVEN = 2
EMPTY_RULES = {"farthest": 0, "keep": 1}  # CODE_KMEANS_EMPTY_*

# PQ fast scan
SIMD_LEVELS = {"auto": -1, "scalar": 0, "avx2": 1, "avx512": 2}  # cpp/pqfs.h PQFS_SIMD_*
