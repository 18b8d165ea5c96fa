"""The native layer's loader: compile ``cpp/`` once, cache the library, load it with cppyy.

Every ``cpp/*.cpp`` is compiled by the system C++ compiler (``$CXX``, else
``c++``, else ``g++``) into one shared library, cached at
``$BENCHPQ_CACHE/native/<key>/libbenchpq.so`` (``BENCHPQ_CACHE`` defaults to
``~/.cache/benchpq``). The flags are fixed: :data:`FLAGS`, the target flags of
the SIMD path this process runs (:mod:`benchpq.native.simd`: ``scalar``, ``avx2`` or
``avx512``, chosen from what the CPU reports or forced by ``BENCHPQ_SIMD``), and
``-fopenmp`` where the compiler has OpenMP (else a single-threaded build, with
one warning; ``BENCHPQ_OPENMP=off`` asks for that build). Each path is its own
library; all give the same results. The key hashes the bytes of every source
and header, the flags, the compiler command and its ``--version`` output, so a
change to any of them builds a new library; a build holds a file lock on the library's
name and renames the finished library into place (:mod:`benchpq.store.cachefiles`),
so concurrent processes, on one machine or sharing the cache over NFS, build
once and never load a half-written file. The headers are
copied beside the library and read by cppyy (``load_library`` + ``include``):
Python sees the C++ namespace ``benchpq`` directly. OpenMP lives in the
sources only: cppyy's own JIT cannot compile it.

numpy arrays are passed to C++ as pointers (cppyy takes any C-contiguous array
of the exact element type through the buffer protocol, without a copy). C++
trusts what it is given, so :func:`array_arg` checks dtype, contiguity and
shape before every call. Algorithm modules mark their long calls to release
the GIL, and warm them up, in an :func:`on_load` hook.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

from ..checks import InputError
from ..resources import cpp_dir
from ..store import sealing
from ..store.cachefiles import entry_lock, write_atomic
from ..store.provenance import cpu_model
from . import simd

#: cpp/ of this checkout; $BENCHPQ_NATIVE_SRC overrides it
SOURCE_DIR = cpp_dir()
#: the flags of every portable build; -ffp-contract=off: no product and sum is fused
#: unless the source asks for it, so every path rounds alike
FLAGS = ("-O3", "-std=c++17", "-fPIC", "-shared", "-ffp-contract=off")
#: the flags of the ``native`` build (BENCHPQ_SIMD=native): the pre-portable build,
#: kept to measure what the portable paths cost
NATIVE_FLAGS = ("-O3", "-std=c++17", "-fPIC", "-shared")
OPENMP_FLAG = "-fopenmp"
#: ``off`` builds without OpenMP (single-threaded); anything else uses it where it compiles
OPENMP_ENV = "BENCHPQ_OPENMP"
LIBRARY = "libbenchpq.so"

log = logging.getLogger(__name__)


class NativeBuildError(RuntimeError):
    """The native library cannot be built or loaded (no compiler, compile error)."""


class NativeArgumentError(InputError):
    """An array about to cross into C++ has the wrong dtype, layout or shape."""


def source_dir() -> Path:
    """Directory of the C++ sources: ``$BENCHPQ_NATIVE_SRC`` or the checkout's ``cpp/``."""
    return Path(os.environ.get("BENCHPQ_NATIVE_SRC") or SOURCE_DIR)


def cache_dir() -> Path:
    """``$BENCHPQ_NATIVE_CACHE``, else ``$BENCHPQ_CACHE/native`` (default
    ``~/.cache/benchpq/native``). The library depends only on the sources and the
    compiler, so several data/model caches may share one compiled copy."""
    if os.environ.get("BENCHPQ_NATIVE_CACHE"):
        return Path(os.environ["BENCHPQ_NATIVE_CACHE"])
    root = os.environ.get("BENCHPQ_CACHE") or Path.home() / ".cache" / "benchpq"
    return Path(root) / "native"


def compiler() -> list[str]:
    """The compiler command: ``$CXX`` (may hold arguments), else ``c++``, else ``g++``."""
    if os.environ.get("CXX"):
        return shlex.split(os.environ["CXX"])
    for name in ("c++", "g++"):
        if shutil.which(name):
            return [name]
    raise NativeBuildError("no C++ compiler found: $CXX is unset and neither c++ nor g++ is "
                           "on PATH (install g++, e.g. apt-get install g++)")


@functools.lru_cache(maxsize=8)
def _compiler_version(cxx: tuple[str, ...]) -> str:
    try:
        done = subprocess.run([*cxx, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NativeBuildError(f"C++ compiler {shlex.join(cxx)!r} cannot be run: {exc}") from None
    if done.returncode != 0:
        raise NativeBuildError(f"$ {shlex.join([*cxx, '--version'])}\n{done.stderr}")
    return done.stdout


@functools.lru_cache(maxsize=8)
def _has_openmp(cxx: tuple[str, ...]) -> bool:
    """Whether the compiler takes -fopenmp and finds omp.h (a preprocessor run, ~20 ms)."""
    try:
        done = subprocess.run([*cxx, OPENMP_FLAG, "-x", "c++", "-E", "-o", os.devnull, "-"],
                              input="#include <omp.h>\n", capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    if done.returncode != 0:
        log.warning("the C++ compiler %r has no OpenMP (%s): building benchpq's core "
                    "single-threaded; every native call runs on one thread",
                    shlex.join(cxx), (done.stderr.strip().splitlines() or ["no omp.h"])[-1])
    return done.returncode == 0


def openmp(cxx: list[str] | None = None) -> bool:
    """Whether the library is built with OpenMP: not under ``BENCHPQ_OPENMP=off``, and
    only where the compiler has it."""
    if os.environ.get(OPENMP_ENV, "").strip().lower() in ("off", "0", "false", "no"):
        return False
    return _has_openmp(tuple(cxx or compiler()))


def build_flags(cxx: list[str] | None = None) -> tuple[str, ...]:
    """The compiler flags of this process's build: the SIMD path's and OpenMP's."""
    path = simd.resolve()
    base = NATIVE_FLAGS if path == simd.NATIVE else FLAGS
    return (*base, *simd.compiler_flags(path), *((OPENMP_FLAG,) if openmp(cxx) else ()))


def build_info() -> dict:
    """What this process's native build is, for records and cache keys: SIMD path,
    OpenMP, flags, compiler and its version, CPU model and the library's key."""
    cxx = compiler()
    return {"simd": simd.resolve(), "openmp": openmp(cxx), "flags": " ".join(build_flags(cxx)),
            "compiler": shlex.join(cxx),
            "compiler_version": _compiler_version(tuple(cxx)).strip().splitlines()[0],
            "cpu_model": cpu_model(), "key": build_key(cxx=cxx)}


def _files(src: Path) -> tuple[list[Path], list[Path]]:
    """Every source and header below ``src``, sub-folders included (``internal/``)."""
    sources = sorted(src.rglob("*.cpp"))
    headers = sorted([*src.rglob("*.h"), *src.rglob("*.hpp")])
    if not sources:
        raise NativeBuildError(f"no C++ sources (*.cpp) in {src}")
    return sources, headers


#: the public header that defines every mode number of the native API
MODES_HEADER = "modes.h"


def enum_value(name: str) -> int:
    """The value of the C++ enumerator ``name`` of ``cpp/modes.h``, without building the library.

    Python's tables of mode numbers take their values from here, so that the
    header is their one definition; a test checks them against the loaded library.
    """
    values = _enum_values(source_dir() / MODES_HEADER)
    if name not in values:
        raise KeyError(f"{name} is not an enumerator of {MODES_HEADER}")
    return values[name]


@functools.lru_cache(maxsize=4)
def _enum_values(header: Path) -> dict[str, int]:
    text = re.sub(r"//[^\n]*", "", header.read_text())
    values = {}
    for body in re.findall(r"\benum\s+\w+\s*:\s*int\s*\{(.*?)\}", text, re.S):
        for name, value in re.findall(r"\b([A-Z][A-Z0-9_]*)\s*=\s*(-?\d+)", body):
            values[name] = int(value)
    return values


def build_key(src: Path | None = None, cxx: list[str] | None = None) -> str:
    """Hash of sources, headers, :func:`build_flags`, compiler and its version (20 hex digits)."""
    src = Path(src) if src else source_dir()
    cxx = cxx or compiler()
    digest = hashlib.sha256()
    for path in sum(_files(src), []):
        digest.update(path.relative_to(src).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for part in (*build_flags(cxx), "|", *cxx, "|", _compiler_version(tuple(cxx))):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:20]


def build(src: Path | None = None, cache: Path | None = None) -> Path:
    """Compile ``src`` (default :func:`source_dir`) unless cached; return the library path.

    The library's directory also holds ``include/`` (the headers it was built
    from, sub-folders kept: the public API headers at its top, what they
    include below) and ``build.txt`` (the command). Raises :class:`NativeBuildError`
    with the command and the compiler's full output when compilation fails.
    """
    src = Path(src) if src else source_dir()
    cxx = compiler()
    out = (Path(cache) if cache else cache_dir()) / build_key(src, cxx)
    library = out / LIBRARY
    if _intact(out, src):
        return library
    with entry_lock(library):  # a concurrent builder finishes first
        if _intact(out, src):
            return library
        library.unlink(missing_ok=True)  # what failed its seal (the lock file beside it stays)
        shutil.rmtree(out / "include", ignore_errors=True)
        sealing.seal_path(out).unlink(missing_ok=True)
        log.info("compiling benchpq's C++ core (first use only, about 20 s)")
        t0 = time.perf_counter()
        sources, headers = _files(src)
        include = out / "include"
        for header in headers:
            target = include / header.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(header, target)

        def compile_to(tmp: Path) -> None:
            log.info("compiling %d C++ sources of %s -> %s", len(sources), src, library)
            cmd = [*cxx, *build_flags(cxx), f"-I{src}", *map(str, sources), "-o", str(tmp)]
            try:
                done = subprocess.run(cmd, capture_output=True, text=True)
            except OSError as exc:
                raise NativeBuildError(f"$ {shlex.join(cmd)}\ncannot run the compiler: {exc}") \
                    from None
            if done.returncode != 0:
                raise NativeBuildError(f"compiling {src} failed (exit status {done.returncode})\n"
                                       f"$ {shlex.join(cmd)}\n{done.stderr}{done.stdout}")
            (out / "build.txt").write_text(f"$ {shlex.join(cmd)}\n"
                                           f"{_compiler_version(tuple(cxx))}")

        write_atomic(library, compile_to)
        sealing.seal(out, [library, *(include / h.relative_to(src) for h in headers)])
        log.info("compiled benchpq's C++ core in %.1f s", time.perf_counter() - t0)
    return library


def _sealed_files(src: Path) -> list[str]:
    """What a library folder's seal must cover: the library and every header of ``src``."""
    return [LIBRARY, *(f"include/{h.relative_to(src).as_posix()}" for h in _files(src)[1])]


def _intact(out: Path, src: Path) -> bool:
    """The cached library and its headers verify against their seal (:mod:`benchpq.store.sealing`).

    A truncated, overwritten or swapped library (with or without its headers)
    would run its code inside dlopen, where nothing can catch it; it is
    rebuilt instead, with a warning saying which file failed.
    """
    if not (out / LIBRARY).exists():
        return False
    try:
        sealing.verify(out, expected=_sealed_files(src))
    except sealing.UntrustedEntry as exc:
        log.warning("cached C++ library is not used (%s): rebuilding it", exc)
        return False
    return True


def _public_headers(library: Path) -> list[Path]:
    """The sealed public headers beside ``library`` (``include/*.h``), verified now."""
    files = sealing.verify(library.parent, expected=[LIBRARY])
    return sorted(path for name, path in files.items()
                  if name.startswith("include/") and name.count("/") == 1
                  and path.suffix in (".h", ".hpp"))


_lock = threading.Lock()
_loaded = None


def load():
    """Build if needed, load once per process and return the C++ namespace ``cppyy.gbl.benchpq``."""
    global _loaded
    with _lock:
        if _loaded is None:
            library = build()
            import cppyy  # deferred: importing cppyy starts its interpreter
            try:
                cppyy.load_library(str(library))
            except (ImportError, RuntimeError, SyntaxError, OSError) as exc:
                # a library that fails to load is rebuilt once, then the error is final
                log.warning("cppyy cannot load %s (%s): rebuilding it", library, exc)
                shutil.rmtree(library.parent, ignore_errors=True)
                library = build()
                try:
                    cppyy.load_library(str(library))
                except (ImportError, RuntimeError, SyntaxError, OSError) as exc2:
                    raise NativeBuildError(f"cppyy cannot load {library}: {exc2}") from None
            try:  # the public API only; internal/ headers are read where a public one includes them
                for header in _public_headers(library):
                    cppyy.include(str(header))
            except sealing.UntrustedEntry as exc:
                raise NativeBuildError(f"cppyy cannot load {library}: {exc}") from None
            except (ImportError, RuntimeError, SyntaxError) as exc:
                raise NativeBuildError(f"cppyy cannot load {library}: {exc}") from None
            namespace = cppyy.gbl.benchpq
            _check_level(namespace, library)
            for hook in _hooks:
                hook(namespace)
            _loaded = namespace
        return _loaded


def _check_level(namespace, library: Path) -> None:
    """The loaded library was compiled for the SIMD path this process asked for."""
    path = simd.resolve()
    if path in simd.LEVELS and hasattr(namespace, "simd_level") \
            and int(namespace.simd_level()) != simd.LEVELS[path]:
        raise NativeBuildError(f"{library} was built for the {path} path but reports SIMD "
                               f"level {int(namespace.simd_level())} (expected "
                               f"{simd.LEVELS[path]}): the compiler flags "
                               f"{' '.join(build_flags())!r} did not give that target")


_hooks: list = []


def loaded() -> bool:
    """Whether this process has loaded the native library."""
    return _loaded is not None


def on_load(hook):
    """Decorator: run ``hook(namespace)`` once the library is loaded (at once if it is).

    Each algorithm module registers its own hook, which marks its long calls
    with :func:`release_gil` and calls each function once on tiny inputs:
    cppyy JIT-compiles a call wrapper on the first call (a few ms each), and
    doing it here keeps that cost out of the first timed phase of a benchmark.
    The loader itself knows no algorithm.
    """
    with _lock:
        _hooks.append(hook)
        if _loaded is not None:
            hook(_loaded)
    return hook


def release_gil(scope, *names: str) -> None:
    """Release the GIL during the named functions or methods of ``scope`` (long calls)."""
    for name in names:
        getattr(scope, name).__release_gil__ = True


def nullptr():
    """C++ ``nullptr``, for optional pointer arguments."""
    import cppyy
    return cppyy.nullptr


def set_num_threads(threads: int) -> None:
    """Threads used by the native library's OpenMP regions from now on."""
    load().set_num_threads(int(threads))


def array_arg(a, dtype, shape: tuple, name: str = "array", writeable: bool = False) -> np.ndarray:
    """Return ``a`` unchanged if C++ may take it as a pointer, else raise NativeArgumentError.

    Args:
        a: the array about to be passed.
        dtype: the exact element type the C++ signature takes.
        shape: expected shape; ``None`` entries accept any length.
        writeable: the C++ side writes into it.
    """
    if not isinstance(a, np.ndarray):
        raise NativeArgumentError(f"{name}: expected a numpy array, got {type(a).__name__}")
    if a.dtype != np.dtype(dtype):
        raise NativeArgumentError(f"{name}: expected dtype {np.dtype(dtype)}, got {a.dtype}")
    if len(shape) != a.ndim or any(s is not None and s != n for s, n in zip(shape, a.shape)):
        raise NativeArgumentError(f"{name}: expected shape {shape}, got {a.shape}")
    if not a.flags.c_contiguous:
        raise NativeArgumentError(f"{name}: not C-contiguous")
    if writeable and not a.flags.writeable:
        raise NativeArgumentError(f"{name}: read-only, but C++ writes into it")
    if a.size == 0:
        raise NativeArgumentError(f"{name}: empty")
    return a
