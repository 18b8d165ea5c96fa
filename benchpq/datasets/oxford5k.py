"""Loader ``oxford5k``: the Oxford5k features shipped with the LOPQ reference code.

``oxford_features.fvecs``: 5063 x 128 float32 (CaffeNet fc7, PCA'd to 128-d),
from https://github.com/yahoo/lopq (``data/oxford``).

Split as the LOPQ test does, ``train_test_split(data, test_size=0.2,
random_state=40)``: learn = base = the 80% (4050 rows), query = the 20% (1013
rows), see :func:`benchpq.datasets.splits.shuffle_split`. No ground truth is
shipped: it is computed (exact, cached).

Download: the file from the LOPQ repository, checked against the sha256
computed on the copy the project tests with.
"""
from __future__ import annotations

import numpy as np

from .context import LoadContext
from .dataset import Dataset
from .download import Expected
from .formats import read_array
from .locate import Source, locate_files
from .registry import register_loader
from .splits import shuffle_split

OXFORD_FILE = "oxford_features.fvecs"
SOURCE = Source(
    "https://raw.githubusercontent.com/yahoo/lopq/master/data/oxford/" + OXFORD_FILE,
    files={OXFORD_FILE: Expected(
        sha256="a002574d9d5fb76bd3fe5c3d4b84566bebf099f3f545f11cc1bc461fa40fcd89")},
    archive=False)


@register_loader("oxford5k")
def load_oxford5k(ctx: LoadContext, folder: str = "oxford5k-lopq", file: str = OXFORD_FILE,
                  test_size: float = 0.2, seed: int = 40) -> Dataset:
    """Load the features and split them (see the module doc).

    Args:
        folder: sub-folder of the data directory.
        file: the fvecs file in it.
        test_size: fraction (or count) of rows used as queries.
        seed: RandomState seed of the permutation.
    """
    source = SOURCE if file == OXFORD_FILE else None
    path = locate_files(ctx, folder, [file], source)[file]
    data = np.ascontiguousarray(read_array(path))
    train, test = shuffle_split(data.shape[0], test_size, seed)
    base = data[train]
    return Dataset(name=ctx.name, learn=base, base=base, query=data[test],
                   info={"source": f"LOPQ Oxford5k features ({path})",
                         "split": f"train_test_split(test_size={test_size}, random_state={seed})"
                                  f": learn = base = train ({train.size}), query = test "
                                  f"({test.size})",
                         "groundtruth": "computed on demand (none shipped)"})
