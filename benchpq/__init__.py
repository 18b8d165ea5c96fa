"""benchpq: benchmarking and evaluation of vector quantizers and code-based clustering."""
__version__ = "0.1.0"

from . import resolvers as _resolvers

_resolvers.register()
