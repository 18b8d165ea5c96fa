"""benchpq's plugins, one layer per concern (each imports only the layers below it):

* :mod:`~benchpq.algorithms.primitives`: input checks specific to quantizers,
  training samples, rotations, code helpers, the native-call tables and the
  plugin mixins; no plugin lives here.
* :mod:`~benchpq.algorithms.own`: our C++-backed algorithms, one module each.
* :mod:`~benchpq.algorithms.adapters`: faiss, nanopq and pqkmeans-library adapters.
* :mod:`~benchpq.algorithms.compat`: drop-in replacements for the nanopq and
  pqkmeans APIs.

Every module here is imported by :func:`benchpq.registry.discover`; a new
plugin needs a module here (or an entry point) and ``conf/algorithm/<name>.yaml``.
"""
