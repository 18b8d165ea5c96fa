"""Downloads with checksum verification and atomic placement.

A file is downloaded to a temporary name in its destination folder, checked
(sha256 or md5 of the file, md5 of its gzip content, or the shape of a vecs
file when no checksum is known), and only then renamed into place, so a
half-downloaded or corrupted file is never seen under its real name.

Set ``BENCHPQ_OFFLINE=1`` to forbid network downloads (``file://`` URLs,
which never leave the machine, still work).
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..checks import InputError
from .formats import array_shape

log = logging.getLogger(__name__)

OFFLINE_ENV = "BENCHPQ_OFFLINE"
_BLOCK = 1 << 20


class ChecksumError(InputError):
    """A downloaded or extracted file is not what it should be."""


class DownloadDisabledError(OSError):
    """A network download was requested while BENCHPQ_OFFLINE is set."""


def offline() -> bool:
    """True when the environment variable BENCHPQ_OFFLINE is set to 1/true/yes."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def file_digest(path, algorithm: str = "sha256", gunzip: bool = False) -> str:
    """Hex digest of a file (of its decompressed content if ``gunzip``), read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    opener = gzip.open if gunzip else open
    with opener(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Expected:
    """What a file must be. Only the fields that are set are checked.

    Attributes:
        sha256: hex sha256 of the file.
        md5: hex md5 of the file (where that is what the source publishes).
        content_md5: hex md5 of the gunzipped content of a .gz file.
        shape: the array's shape, as :func:`benchpq.datasets.formats.read_array` reads
            it, for sources whose checksums are not known.
        fmt: the format to read it with, for a name that does not tell it.
    """

    sha256: str | None = None
    md5: str | None = None
    content_md5: str | None = None
    shape: tuple[int, ...] | None = None
    fmt: str | None = None


def verify_file(path, expected: Expected, what: str | None = None) -> None:
    """Raise :class:`ChecksumError` (naming the file) unless ``path`` matches ``expected``."""
    path = Path(path)
    what = what or str(path)
    checks = [("sha256", expected.sha256, False), ("md5", expected.md5, False),
              ("md5", expected.content_md5, True)]
    for algorithm, want, gunzip in checks:
        if want is None:
            continue
        got = file_digest(path, algorithm, gunzip=gunzip)
        if got != want.lower():
            label = f"{algorithm} of the gzip content" if gunzip else algorithm
            raise ChecksumError(f"{what}: {label} mismatch: expected {want}, got {got} "
                                f"(corrupted or different file)")
    if expected.shape is not None:
        try:
            shape = array_shape(path, fmt=expected.fmt)
        except (InputError, FileNotFoundError) as exc:
            raise ChecksumError(f"{what}: unreadable ({exc})") from None
        if tuple(shape) != tuple(expected.shape):
            raise ChecksumError(f"{what}: shape {tuple(shape)}, expected {tuple(expected.shape)}")


def download_file(url: str, dest, expected: Expected | None = None,
                  timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` (atomically) and verify it.

    The parent folder of ``dest`` is created if needed. On any failure the
    temporary file is removed and ``dest`` is left as it was.

    Raises:
        DownloadDisabledError: network URL while BENCHPQ_OFFLINE is set.
        OSError / urllib.error.URLError: the transfer failed.
        ChecksumError: the file does not match ``expected``.
    """
    dest = Path(dest)
    scheme = urllib.parse.urlparse(url).scheme
    if scheme != "file" and offline():
        raise DownloadDisabledError(f"not downloading {url}: {OFFLINE_ENV} is set")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        log.info("downloading %s -> %s", url, dest)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out, _BLOCK)
        if expected is not None:
            verify_file(tmp, expected, what=f"{url} (downloaded)")
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


def extract_archive(archive, dest_dir) -> Path:
    """Extract a .tar.gz / .tgz / .tar archive, or gunzip a single .gz file, into ``dest_dir``.

    Tar members that would land outside ``dest_dir`` (absolute paths, ``..``,
    links) are refused. Returns ``dest_dir``.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    name = archive.name.lower()
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        try:
            with tarfile.open(archive, "r:*") as tar:
                tar.extractall(dest_dir, filter="data")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise InputError(f"{archive}: cannot extract archive ({exc})") from None
    elif name.endswith(".gz"):
        try:
            with gzip.open(archive, "rb") as src, open(dest_dir / archive.name[:-3], "wb") as out:
                shutil.copyfileobj(src, out, _BLOCK)
        except (OSError, EOFError) as exc:
            raise InputError(f"{archive}: cannot decompress ({exc})") from None
    else:
        raise InputError(f"{archive}: unknown archive type (expected .tar.gz, .tgz, .tar or .gz)")
    return dest_dir


def fetch_archive(url: str, folder, files: dict[str, Expected],
                  archive_expected: Expected | None = None, timeout: float = 60.0) -> Path:
    """Download an archive, extract it, verify ``files`` and move them into ``folder``.

    Each name in ``files`` is looked up by base name anywhere in the extracted
    tree (texmex archives hold a top folder). Nothing is placed in ``folder``
    unless every file is present and verified; the download and extraction
    happen in a temporary folder next to ``folder`` and are removed afterwards.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}.") as tmp:
        tmp = Path(tmp)
        archive_name = Path(urllib.parse.urlparse(url).path).name or "archive.tar.gz"
        archive = download_file(url, tmp / archive_name, archive_expected, timeout)
        tree = extract_archive(archive, tmp / "extracted")
        found = {}
        for name, expected in files.items():
            matches = sorted(tree.rglob(name))
            if not matches:
                raise ChecksumError(f"{url}: archive has no file {name!r}")
            verify_file(matches[0], expected, what=f"{name} from {url}")
            found[name] = matches[0]
        folder.mkdir(parents=True, exist_ok=True)
        for name, path in found.items():
            os.replace(path, folder / name)
    return folder


def fetch_files(base_url: str, folder, files: dict[str, Expected], timeout: float = 60.0) -> Path:
    """Download ``base_url + name`` for each file into ``folder``, verifying each."""
    folder = Path(folder)
    for name, expected in files.items():
        if not (folder / name).is_file():
            download_file(base_url + name, folder / name, expected, timeout)
    return folder
