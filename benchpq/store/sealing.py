"""Seals on cache entries: a keyed digest that whoever can write the cache cannot forge.

Every file benchpq reads back from a cache (trained models, the native library
and the headers cppyy includes, ground truth, generated data, file digests) is
sealed when it is written: a manifest ``<entry>.seal`` beside it lists each
file's size and its HMAC-SHA256, and the manifest carries an HMAC of itself.
The key is the user's **signing key**, 32 random bytes in a file outside
every cache (``$BENCHPQ_CACHE_KEY``, else ``$XDG_CONFIG_HOME/benchpq/cache.key``,
else ``~/.config/benchpq/cache.key``),
made on first use and readable by its owner only. An entry is used only if its
seal verifies with that key, so a rewritten file, a rewritten file with a
recomputed plain checksum, or a seal copied from elsewhere is refused: the
caller rebuilds the entry, or fails loudly where it cannot.

Where users share a cache (a lab's file system), they share one key file,
readable by their group only, and say so with ``BENCHPQ_SHARED_CACHE=1``;
entries sealed with another key are rebuilt. Without that opt-in a cache
folder that another user could write into is refused (:func:`check_folder`):
its entries could be swapped between the check and the use.

The seal itself is verified on every load. Files up to :data:`REHASH_BYTES`
(1 MiB: states, metrics, headers) are re-hashed on every load; larger ones
(model arrays, libraries, data sets) whenever their inode, size, mtime or
ctime differs from the sealed ones. Any write to a file sets its ctime, and a
user cannot set it back (only root, by changing the clock), so a file that
kept all four is the file that was sealed; hashing 8 MB of codes on every load
would cost more than reading them.
"""
from __future__ import annotations

import grp
import hashlib
import hmac
import json
import logging
import os
import pwd
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

from ..checks import InputError
from .cachefiles import entry_lock, write_atomic

KEY_ENV = "BENCHPQ_CACHE_KEY"
SHARED_ENV = "BENCHPQ_SHARED_CACHE"
SEAL_SUFFIX = ".seal"
FOLDER_SEAL = "seal.json"
FORMAT = 1
#: files larger than this are re-hashed only when their inode, size, mtime or ctime changed
REHASH_BYTES = 1 << 20
_CHUNK = 1 << 24

log = logging.getLogger(__name__)


class UntrustedEntry(Exception):
    """A cache entry whose seal is missing or does not verify (the message says which file)."""


class UntrustedCacheError(InputError):
    """The signing key or a cache folder cannot be trusted (permissions, ownership, content)."""


def shared() -> bool:
    """Whether the user opted into a cache shared with other users (``BENCHPQ_SHARED_CACHE``)."""
    return os.environ.get(SHARED_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def key_path() -> Path:
    """Where the signing key lives (see the module doc)."""
    if os.environ.get(KEY_ENV):
        return Path(os.environ[KEY_ENV]).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config).expanduser() / "benchpq" / "cache.key"


_keys: dict[tuple, bytes] = {}


def signing_key() -> bytes:
    """The user's 32-byte signing key, made (mode 0600) on first use.

    Raises:
        UntrustedCacheError: the key file is not a regular file owned by this
            user, others can read or write it (group read is allowed under
            ``BENCHPQ_SHARED_CACHE``), or it does not hold 64 hex digits.
    """
    path = key_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
    st = path.stat()
    cached = _keys.get((str(path), st.st_ino, st.st_mtime_ns, st.st_ctime_ns))
    if cached is not None:
        return cached
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
        raise UntrustedCacheError(f"signing key {path}: not a regular file owned by you "
                                  f"(uid {os.geteuid()}): make your own with a new path in "
                                  f"${KEY_ENV}")
    allowed = 0o740 if shared() else 0o700
    if st.st_mode & 0o777 & ~allowed:
        raise UntrustedCacheError(
            f"signing key {path}: mode {stat.S_IMODE(st.st_mode):o} lets other users read or "
            f"write it, so they could forge cache entries; chmod 600 it"
            + ("" if shared() else f" (a key shared by a group is chmod 640 with "
                                   f"{SHARED_ENV}=1)"))
    text = path.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise UntrustedCacheError(f"signing key {path}: expected 64 hex digits, found "
                                  f"{len(text)} characters; delete it to make a new key")
    _keys[(str(path), st.st_ino, st.st_mtime_ns, st.st_ctime_ns)] = key
    return key


def signer_id() -> str:
    """A short public name of the signing key (12 hex digits), recorded in seals."""
    return hashlib.blake2b(signing_key(), digest_size=6, person=b"benchpq-signer").hexdigest()


def _mac(key: bytes):
    return hmac.new(key, b"benchpq-seal\0", hashlib.sha256)


def file_mac(path: str | os.PathLike, key: bytes | None = None) -> str:
    """HMAC-SHA256 (64 hex digits) of a file's bytes, read in 16 MiB chunks."""
    mac = _mac(key or signing_key())
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            mac.update(chunk)
    return mac.hexdigest()


def _manifest_mac(key: bytes, files: dict) -> str:
    mac = _mac(key)
    mac.update(json.dumps({"format": FORMAT, "files": files}, sort_keys=True).encode())
    return mac.hexdigest()


def _identity(st: os.stat_result) -> list[int]:
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def seal_path(entry: str | os.PathLike) -> Path:
    """The seal of an entry: ``<entry>.seal`` beside a file, ``<entry>/seal.json`` in a
    folder (so that a folder written elsewhere and renamed into place carries its seal)."""
    entry = Path(entry)
    return entry / FOLDER_SEAL if entry.is_dir() else entry.with_name(entry.name + SEAL_SUFFIX)


def _up_from(folder: str | os.PathLike):
    """``folder`` (absolute) and each of its parents up to ``/``, as strings."""
    part = os.path.abspath(folder)
    while True:
        yield part
        parent = os.path.dirname(part)
        if parent == part:
            return
        part = parent


def _private_group(gid: int, uid: int) -> bool:
    """Whether ``gid`` is ``uid``'s user private group: its primary group, named as the user,
    with no other members."""
    try:
        user, group = pwd.getpwuid(uid), grp.getgrgid(gid)
    except KeyError:
        return False
    return user.pw_gid == gid and group.gr_name == user.pw_name and \
        set(group.gr_mem) <= {user.pw_name}


def check_folder(folder: str | os.PathLike) -> None:
    """Refuse a cache folder that another user could write into.

    Every existing folder from ``folder`` up to ``/`` must be owned by this
    user or root and writable by its owner only (or also by the user's private
    group: the umask-002 default of many distributions), or be sticky (like
    ``/tmp``, where others cannot rename what is yours). ``BENCHPQ_SHARED_CACHE=1`` turns
    the check off (the seals still hold, with the group's shared key).
    """
    if shared():
        return
    uid = os.geteuid()
    for part in _up_from(folder):
        try:
            st = os.stat(part)
        except FileNotFoundError:
            continue
        sticky = bool(st.st_mode & stat.S_ISVTX)
        writable_by_others = not sticky and bool(
            st.st_mode & stat.S_IWOTH
            or st.st_mode & stat.S_IWGRP and not _private_group(st.st_gid, uid))
        foreign = st.st_uid not in (uid, 0)
        if writable_by_others or foreign:
            why = (f"is owned by uid {st.st_uid}" if foreign
                   else f"has mode {stat.S_IMODE(st.st_mode):o} (writable by other users)")
            raise UntrustedCacheError(
                f"cache folder {folder}: {part} {why}, so another user could swap its "
                f"entries; use a cache folder of your own (cache_dir=..., $BENCHPQ_CACHE), "
                f"or, for a cache your group shares with one signing key, set "
                f"{SHARED_ENV}=1")


def seal(entry: str | os.PathLike, files: Iterable[str | os.PathLike] | None = None) -> Path:
    """Seal ``entry`` (a file, or a folder with the given ``files`` inside it).

    ``files`` are paths inside the folder entry (default: the entry file
    itself). Writes ``<entry>.seal`` atomically and returns its path.
    """
    entry = Path(entry)
    check_folder(entry if entry.is_dir() else entry.parent)
    key = signing_key()
    paths = [entry] if files is None else [Path(f) for f in files]
    listed = {}
    for path in sorted(paths):
        name = "." if path == entry else path.relative_to(entry).as_posix()
        listed[name] = {"mac": file_mac(path, key), "identity": _identity(path.stat())}
    manifest = {"format": FORMAT, "signer": signer_id(), "files": listed,
                "mac": _manifest_mac(key, listed)}
    target = seal_path(entry)
    write_atomic(target, lambda tmp: tmp.write_text(json.dumps(manifest, sort_keys=True)))
    return target


def verify(entry: str | os.PathLike, expected: Iterable[str] | None = None) -> dict[str, Path]:
    """Check ``entry`` against its seal; return {name: path} of the sealed files.

    ``expected`` names files a folder entry must have (relative POSIX paths);
    a seal that lists fewer is refused.

    Raises:
        UntrustedEntry: no seal, a seal made with another key, or a file that is
            missing, changed, or not listed.
        UntrustedCacheError: the folder is writable by other users (see
            :func:`check_folder`) or the key cannot be used.
    """
    entry = Path(entry)
    check_folder(entry if entry.is_dir() else entry.parent)
    key = signing_key()
    try:
        manifest = json.loads(seal_path(entry).read_text())
        listed = manifest["files"]
        good = isinstance(listed, dict) and hmac.compare_digest(
            str(manifest["mac"]), _manifest_mac(key, listed))
    except FileNotFoundError:
        raise UntrustedEntry(f"{entry} has no seal") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UntrustedEntry(f"{entry}: its seal cannot be read ({exc})") from None
    if not good:
        raise UntrustedEntry(f"{entry}: its seal was not made with your signing key "
                             f"({key_path()})")
    missing = sorted(set(expected or ()) - set(listed))
    if missing:
        raise UntrustedEntry(f"{entry}: its seal does not cover {', '.join(missing)}")
    out = {}
    for name, sealed in listed.items():
        path = entry if name == "." else entry / name
        try:
            st = path.stat()
        except OSError:
            raise UntrustedEntry(f"{path} is missing") from None
        if st.st_size != sealed["identity"][1]:
            raise UntrustedEntry(f"{path} changed size since it was sealed")
        if st.st_size <= REHASH_BYTES or _identity(st) != sealed["identity"]:
            if not hmac.compare_digest(file_mac(path, key), sealed["mac"]):
                raise UntrustedEntry(f"{path} changed since it was sealed")
        out[name] = path
    return out


def write_sealed(path: str | os.PathLike, write, suffix: str = "") -> Path:
    """:func:`benchpq.store.cachefiles.write_atomic`, then seal the file; returns ``path``."""
    check_folder(Path(path).parent)
    write_atomic(path, write, suffix)
    seal(path)
    return Path(path)


def discard(entry: str | os.PathLike) -> None:
    """Remove a file entry and its seal."""
    entry = Path(entry)
    seal_path(entry).unlink(missing_ok=True)
    entry.unlink(missing_ok=True)


def trusted(entry: str | os.PathLike, warn: bool = True) -> bool:
    """Whether ``entry`` exists and verifies; a failing one is logged (unless not ``warn``)
    and left in place."""
    entry = Path(entry)
    if not entry.exists():
        return False
    try:
        verify(entry)
    except UntrustedEntry as exc:
        if warn:
            log.warning("cache entry not used: %s", exc)
        return False
    return True


def cached_file(path: str | os.PathLike, write, suffix: str = "") -> Path:
    """A sealed cache file, made by ``write(tmp)`` once (under its lock) when absent or untrusted.

    The one way benchpq makes a derived file once for many processes: readers
    that find it sealed use it at once; otherwise one process (re)writes it and
    the others wait for it. Returns ``path``.
    """
    path = Path(path)
    if trusted(path, warn=False):
        return path
    with entry_lock(path):
        if trusted(path):  # one warning, from the process that makes the file again
            return path
        discard(path)
        write_sealed(path, write, suffix)
    return path
