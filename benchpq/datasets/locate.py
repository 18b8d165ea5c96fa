"""Finding the files of a named dataset, downloading them when allowed.

A loader calls :func:`locate_files` with the folder and file names it needs
and, when the dataset can be downloaded, a :class:`Source`. Files are looked
for in ``<data_dir>/<folder>`` then ``<cache_dir>/data/<folder>``; missing
files are downloaded into the latter (never into the data directory, which
may be read-only), by one process at a time (a file lock beside the folder).
When that is impossible the error says which files to put where.
"""
from __future__ import annotations

import urllib.error
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..checks import InputError
from ..store.cachefiles import entry_lock
from .context import DATA_ENV, LoadContext
from .download import Expected, download_file, fetch_archive, fetch_files

#: a file name, or alternative names of which the first present one is used
FileSpec = str | Sequence[str]


class DatasetNotFoundError(FileNotFoundError):
    """A named dataset's files are missing and could not be downloaded.

    ``reason`` says why nothing was downloaded (offline, no source, a failed transfer).
    """

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason


def files_not_found(ctx: LoadContext, wanted: str, folder: Path,
                    reason: str) -> DatasetNotFoundError:
    """The error of files ``wanted`` missing from ``folder`` of a named dataset."""
    return DatasetNotFoundError(f"dataset {ctx.name!r} not found: put {wanted} in {folder} "
                                f"(set {DATA_ENV} or data_dir to change the folder); {reason}",
                                reason)


@dataclass(frozen=True)
class Source:
    """Where a known dataset can be downloaded from and how it is verified.

    Attributes:
        url: archive URL (``archive=True``); or, with ``archive=False``, a base
            URL ending in ``/`` that file names are appended to, or the URL of
            the single file in ``files``.
        files: file name -> :class:`Expected` checks, for every file placed.
        archive: whether ``url`` is one archive to extract.
        archive_expected: checks of the archive itself, if known.
    """

    url: str
    files: dict = field(default_factory=dict)
    archive: bool = True
    archive_expected: Expected | None = None

    def fetch(self, folder: Path) -> Path:
        """Download into ``folder``; raises on transfer or verification failure."""
        if self.archive:
            return fetch_archive(self.url, folder, self.files, self.archive_expected)
        if not self.url.endswith("/") and len(self.files) == 1:
            (name, expected), = self.files.items()
            download_file(self.url, folder / name, expected)
            return folder
        return fetch_files(self.url, folder, self.files)


def _alternatives(spec: FileSpec) -> tuple[str, ...]:
    return (spec,) if isinstance(spec, str) else tuple(spec)


def _find(folder: Path, specs: Sequence[FileSpec]) -> dict[str, Path] | None:
    found = {}
    for spec in specs:
        alts = _alternatives(spec)
        hit = next((folder / a for a in alts if (folder / a).is_file()), None)
        if hit is None:
            return None
        found[alts[0]] = hit
    return found


def _describe(specs: Sequence[FileSpec]) -> str:
    parts = []
    for spec in specs:
        alts = _alternatives(spec)
        parts.append(alts[0] + (f" (or {' or '.join(alts[1:])})" if len(alts) > 1 else ""))
    return ", ".join(parts)


def locate_files(ctx: LoadContext, folder: str | Path, specs: Sequence[FileSpec],
                 source: Source | None = None) -> dict[str, Path]:
    """Return {first alternative name: path} for every file, downloading if needed.

    All files of one call come from the same folder.

    Raises:
        DatasetNotFoundError: the files are missing and the download is
            impossible, disabled or failed. The message lists the files to put
            in ``<data_dir>/<folder>`` and why nothing was downloaded.
    """
    for candidate in ctx.folders(folder):
        found = _find(candidate, specs)
        if found is not None:
            return found
    target = ctx.resolve(folder)
    present = [a for s in specs for a in _alternatives(s) if (target / a).is_file()]
    allowed, reason = ctx.can_download(source.url if source else "")
    if source is None:
        reason = "no download source is known for it"
    elif allowed:
        download_to = ctx.download_folder(folder)
        try:
            with entry_lock(download_to):  # one job downloads; the others wait, then find it
                found = _find(download_to, specs)
                if found is None:
                    source.fetch(download_to)
                    found = _find(download_to, specs)
            if found is not None:
                return found
            reason = f"the download from {source.url} did not provide every file"
        except (OSError, urllib.error.URLError, InputError) as exc:  # InputError: bad checksum
            reason = f"the download from {source.url} failed: {exc}"
    have = f" (found only {', '.join(present)})" if present else ""
    raise files_not_found(ctx, _describe(specs) + have, target, reason)
