"""Where data is read from and caches are written to, for one dataset load.

* data directory: the ``data_dir`` argument, else ``$BENCHPQ_DATA``, else
  ``~/.cache/benchpq/data``. It may be read-only: benchpq never writes there.
* cache directory: the ``cache_dir`` argument, else ``$BENCHPQ_CACHE``, else
  ``~/.cache/benchpq``. Ground truth, generated data and downloads
  (``<cache_dir>/data/<folder>``) go there.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .download import OFFLINE_ENV, offline

DATA_ENV = "BENCHPQ_DATA"
CACHE_ENV = "BENCHPQ_CACHE"


def resolve_data_dir(data_dir=None) -> Path:
    """The data directory (see module doc); not created."""
    value = data_dir or os.environ.get(DATA_ENV) or "~/.cache/benchpq/data"
    return Path(value).expanduser()


def resolve_cache_dir(cache_dir=None) -> Path:
    """The cache directory (see module doc); created on first write, not here."""
    value = cache_dir or os.environ.get(CACHE_ENV) or "~/.cache/benchpq"
    return Path(value).expanduser()


@dataclass(frozen=True)
class LoadContext:
    """What a loader gets besides its own config keys.

    Attributes:
        name: the dataset's name (for messages and ``Dataset.name``).
        data_dir: resolved data directory (read-only for benchpq).
        cache_dir: resolved cache directory (writable).
        download: the config's ``download`` key (default true).
    """

    name: str
    data_dir: Path
    cache_dir: Path
    download: bool = True

    @property
    def download_dir(self) -> Path:
        """Where downloaded datasets are placed: ``<cache_dir>/data``."""
        return self.cache_dir / "data"

    def can_download(self, url: str = "") -> tuple[bool, str]:
        """(allowed, reason when not allowed); offline mode spares ``file://`` URLs."""
        if not self.download:
            return False, "download is disabled (download: false)"
        if offline() and not url.startswith("file:"):
            return False, f"download is disabled ({OFFLINE_ENV}={os.environ[OFFLINE_ENV]})"
        return True, ""

    def resolve(self, path) -> Path:
        """A config path: ``~`` expanded, relative paths taken from the data directory."""
        path = Path(str(path)).expanduser()
        return path if path.is_absolute() else self.data_dir / path

    def download_folder(self, folder) -> Path:
        """Where files of ``folder`` are downloaded: ``<cache_dir>/data/<folder>``
        (for an absolute ``folder``, ``<cache_dir>/data/<its last component>``)."""
        folder = Path(folder).expanduser()
        return self.download_dir / (folder.name if folder.is_absolute() else folder)

    def folders(self, folder) -> list[Path]:
        """Folders searched for a named dataset: data_dir/folder, then the download folder."""
        out = [self.resolve(folder), self.download_folder(folder)]
        return out if out[0] != out[1] else out[:1]
