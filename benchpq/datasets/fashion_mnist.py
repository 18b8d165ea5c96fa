"""Loader ``fashion_mnist``: Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) from its IDX files.

Split: learn = base = the 60000 training images, query = the 10000 test
images, all (n, 784) float32 with values 0..255; labels = the training labels
(for clustering metrics). Ground truth: ``derived/fashion-mnist_groundtruth.ivecs``
(exact top-100 L2 of test against train) when present, otherwise computed.

Files (gzipped as published, or already gunzipped) in ``<data_dir>/fashion-mnist``:
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``.

Download: from the Zalando mirror, each .gz checked against the md5 published by
the Fashion-MNIST project and its gunzipped content against md5s computed on the
copies the project tests with. (Those .gz files are recompressed by Debian, so their own md5
differs from the published one; their content does not.)
"""
from __future__ import annotations

from .context import LoadContext
from .dataset import Dataset
from .download import Expected
from .formats import read_array
from .locate import Source, locate_files
from .registry import register_loader

FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

#: md5 of each published .gz (Fashion-MNIST README) and of its gunzipped content
FILES = {
    "train-images-idx3-ubyte.gz": Expected(md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                                           content_md5="f4a8712d7a061bf5bd6d2ca38dc4d50a"),
    "train-labels-idx1-ubyte.gz": Expected(md5="25c81989df183df01b3e8a0aad5dffbe",
                                           content_md5="9018921c3c673c538a1fc5bad174d6f9"),
    "t10k-images-idx3-ubyte.gz": Expected(md5="bef4ecab320f06d8554ea6380940ec79",
                                          content_md5="8181f5470baa50b63fa0f6fddb340f0a"),
    "t10k-labels-idx1-ubyte.gz": Expected(md5="bb300cfdad3c16e7a12a480ee83cd310",
                                          content_md5="15d484375f8d13e6eb1aabb0c3f46965"),
}
SOURCE = Source(FASHION_URL, files=FILES, archive=False)


@register_loader("fashion_mnist")
def load_fashion_mnist(ctx: LoadContext, folder: str = "fashion-mnist",
                       groundtruth: str | None = "derived/fashion-mnist_groundtruth.ivecs"
                       ) -> Dataset:
    """Load Fashion-MNIST; see the module doc for the split.

    Args:
        folder: sub-folder of the data directory.
        groundtruth: ivecs file (relative to the folder) with the top-k test
            neighbours in train; None or a missing file: computed on demand.
    """
    specs = [(name, name[:-3]) for name in FILES]  # the .gz or the gunzipped file
    paths = locate_files(ctx, folder, specs, SOURCE)
    train = read_array(paths["train-images-idx3-ubyte.gz"])
    labels = read_array(paths["train-labels-idx1-ubyte.gz"])
    test = read_array(paths["t10k-images-idx3-ubyte.gz"])
    root = paths["train-images-idx3-ubyte.gz"].parent
    gt, gt_info = None, "computed on demand (no shipped file)"
    if groundtruth and (root / groundtruth).is_file():
        gt, gt_info = read_array(root / groundtruth), f"shipped {groundtruth}"
    return Dataset(name=ctx.name, learn=train, base=train, query=test, groundtruth=gt,
                   labels=labels,
                   info={"source": f"Fashion-MNIST IDX ({root})",
                         "split": "learn = base = train (60000), query = test (10000), "
                                  "labels = train labels",
                         "groundtruth": gt_info})
