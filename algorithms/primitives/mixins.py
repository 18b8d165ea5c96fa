"""Small mixins for what many plugins share: threads, the fitted guard, stored codes, sizes.

Each one needs only the attributes its docstring names; a plugin lists them
before its :mod:`benchpq.api` base classes, e.g.
``class ITQ(NativeThreads, FittedGuard, ModelArrays, HammingSearcher)``;
our product quantizers take the four they share as one,
``class PQ(NativeProductCodes, CheckedCodes, Quantizer, Searcher)``.
"""
from __future__ import annotations

import numpy as np

from benchpq import native
from benchpq.checks import InputError, as_matrix, check_positive_int

from .codes import appended_rows, pq_code_bits


class NativeThreads:
    """``set_threads`` for plugins whose work runs in the C++ core's OpenMP regions."""

    def set_threads(self, threads: int) -> None:
        native.set_num_threads(check_positive_int(threads, "threads"))


class FittedGuard:
    """:meth:`require_fitted`: the one "call fit() first" error of every plugin.

    A plugin whose fit sets one attribute (None before) names it in
    ``fitted_attribute``; :meth:`trained` then returns it or raises.
    """

    fitted_attribute = ""
    fitted_action = "using the quantizer"

    def trained(self):
        """The attribute ``fitted_attribute`` set by fit, or InputError if fit was not called."""
        value = getattr(self, self.fitted_attribute, None)
        self.require_fitted(value is not None, self.fitted_action)
        return value

    def require_fitted(self, fitted: bool, before: str = "using the quantizer") -> None:
        """Raise InputError unless ``fitted``: ``<name>: call fit() before <before>``."""
        if not fitted:
            name = getattr(self, "name", "") or type(self).__name__
            raise InputError(f"{name}: call fit() before {before}")


class StoredCodes:
    """A searcher that keeps its database as codes: ``add`` encodes and appends to ``codes``.

    Needs ``encode(x)`` and a ``codes`` attribute (None before the first add);
    ``dim`` (the trained dimension) when the plugin has one.
    """

    codes: np.ndarray | None = None

    def add(self, x) -> None:
        """Encode and append database vectors (n, D); ids continue from the current size."""
        self.append_codes(self.encode(as_matrix(x, "base", dim=getattr(self, "dim", None))))

    def append_codes(self, codes: np.ndarray) -> None:
        """Append the codes of vectors added (ids continue from the current size)."""
        self.codes = appended_rows(self.codes, codes)

    @property
    def codes_bytes(self) -> int:
        return int(self.codes.nbytes) if self.codes is not None else 0


class PQCodeBits:
    """``code_bits`` of product codes: M sub-codes of ceil(log2 Ks) bits (needs ``M``, ``Ks``)."""

    @property
    def code_bits(self) -> int:
        return pq_code_bits(self.M, self.Ks)


class BinaryCodeBits:
    """``code_bits`` of binary codes: ``num_bit``."""

    @property
    def code_bits(self) -> int:
        return int(self.num_bit)


class ModelArrays:
    """``model_bytes`` as the sum over the attributes named in ``model_arrays``.

    Each is an array (its ``nbytes``), a plugin (its ``model_bytes``) or None
    (not trained yet: 0).
    """

    model_arrays: tuple[str, ...] = ()

    @property
    def model_bytes(self) -> int:
        total = 0
        for name in self.model_arrays:
            part = getattr(self, name, None)
            if part is not None:
                total += part.model_bytes if hasattr(part, "model_bytes") else part.nbytes
        return int(total)


class NativeProductCodes(NativeThreads, FittedGuard, PQCodeBits, ModelArrays):
    """What our C++-backed product quantizers (pq, opq, lopq) share: OpenMP threads, the
    fitted guard, M x ceil(log2 Ks) code bits and model bytes from ``model_arrays``."""


class CheckedCodes(StoredCodes):
    """Stored codes checked whenever they are set, and a C++ model dropped on pickling.

    C++ scans the codes without bounds checks, so nothing unchecked gets in:
    setting ``codes`` calls :meth:`check_stored_codes` (the plugin's check),
    then :meth:`codes_changed`. The attributes in ``transient`` (the C++
    object ``_cpp``, rebuilt from the numpy state on use) are reset on pickling.
    """

    transient: dict = {"_cpp": None}

    def check_stored_codes(self, codes) -> np.ndarray:
        raise NotImplementedError

    def codes_changed(self) -> None:
        """Called after ``codes`` is set (e.g. to mark an index stale)."""

    @property
    def codes(self) -> np.ndarray | None:
        """The added database's codes; checked whenever they are set."""
        return self.__dict__.get("_codes")

    @codes.setter
    def codes(self, value) -> None:
        self.__dict__["_codes"] = None if value is None else self.check_stored_codes(value)
        self.codes_changed()

    def append_codes(self, codes: np.ndarray) -> None:
        """Check the appended codes only (those stored were checked when they came in)."""
        self.__dict__["_codes"] = appended_rows(self.codes, self.check_stored_codes(codes))
        self.codes_changed()

    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(self.transient)
        return state

    def __setstate__(self, state):
        codes = state.pop("_codes", state.pop("codes", None))
        self.__dict__.update(state)
        self.codes = codes
