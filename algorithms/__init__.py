"""benchpq's plugins: one module per algorithm family, each registering its classes.

Every module here is imported by :func:`benchpq.registry.discover`; a new
plugin needs a module here (or an entry point) and ``conf/algorithm/<name>.yaml``.
"""
