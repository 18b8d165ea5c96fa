"""A dataset loader added as a plugin: one module (this) and one YAML (conf/dataset/)."""
import numpy as np

from benchpq.datasets import Dataset, register_loader


@register_loader("test_grid")
def load_grid(ctx, side: int = 8, dim: int = 4):
    """Points of a regular grid in the plane, zero-padded to ``dim``: base = learn, queries
    the grid shifted by a quarter step (float32, (side * side, dim))."""
    axis = np.arange(side, dtype=np.float32)
    plane = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)
    base = np.zeros((plane.shape[0], dim), dtype=np.float32)
    base[:, :2] = plane
    query = base[::7] + np.float32(0.25)
    return Dataset(ctx.name, learn=base, base=base, query=query,
                   info={"source": f"{side} x {side} grid"})
