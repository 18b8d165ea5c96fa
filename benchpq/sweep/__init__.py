"""Where a run starts: the ``benchpq`` command, Hydra's plumbing (paths, callbacks), the
run options, and the runner that executes each run in its own child process.

The top of the package: it may import every other wing, and none imports it.
"""
