"""``python -m benchpq.datasets.calibrate BASE_FILE OUT.npz``: fit a calibrated-generator model.

BASE_FILE is any file :func:`benchpq.datasets.read_array` reads (.fvecs, .bvecs,
.npy, .hdf5:key, IDX); OUT.npz is then usable as ``dataset.calibration=OUT.npz``
with ``dataset=calibrated_siftsmall`` or ``calibrated_sift1m`` (see
:mod:`benchpq.datasets.calibrated`).
"""
from __future__ import annotations

import argparse
import sys

from ..checks import InputError, check_positive_int
from .calibrated import fit_calibration, save_calibration
from .formats import read_array


def main(argv: list[str] | None = None) -> int:
    """Fit a calibration model to BASE_FILE and save it as OUT.npz; returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m benchpq.datasets.calibrate",
                                description="Fit a calibration model to a base file.")
    p.add_argument("base", help="vectors: .fvecs/.bvecs/.npy/.hdf5[:key]/IDX")
    p.add_argument("out", help="output .npz")
    p.add_argument("--components", type=int, default=512)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--knots", type=int, default=9,
                   help="quantiles per component and dimension of the marginal remap")
    p.add_argument("--rows", type=int, default=None,
                   help="fit the first ROWS vectors only (default: all)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        x = read_array(args.base)
        if args.rows is not None:
            x = x[:check_positive_int(args.rows, "--rows")]
        model = fit_calibration(x, args.components, args.rank,
                                n_knots=args.knots, seed=args.seed)
    except (InputError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    path = save_calibration(model, args.out)
    print(f"wrote {path}: {model['weights'].size} components, rank "
          f"{model['loadings'].shape[2]}, "
          f"{path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
