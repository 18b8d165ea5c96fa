"""Where a run is kept: run records, the trained-model cache, cache files and their seals,
and the provenance a record carries.

Everything here reads back what an earlier process wrote, so everything here checks it:
a record that does not parse is made again, a cache entry whose seal fails is rebuilt.
Imports only the floor (:mod:`benchpq.api`, :mod:`benchpq.checks`, ...).
"""
