"""What one run measures: the tasks (search, encode, cluster), the metrics they compute,
peak memory per phase, threads, search grids, intervals over queries and seeds, codebook
diagnostics and training logs.

Imports the floor, :mod:`benchpq.store`, :mod:`benchpq.native` and
:mod:`benchpq.datasets`; the sweep drives it and the report reads what it wrote.
"""
