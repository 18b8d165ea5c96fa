"""One declarative table per C++ class or function group: names, argument dtypes and shapes.

A :class:`NativeTable` lists each C++ function (or method) once, with its
arguments in order: :class:`Array` (dtype and shape, the shape's entries dim
names or integers), :class:`Scalar` (an integer or flag, its name may be a
dim) and :class:`Object` (a C++ object). From that one table are derived:

* the GIL release of every call not marked ``quick`` (:func:`benchpq.native.release_gil`),
* the warm-up: once the library is loaded, each call is made on tiny inputs
  built from the table's ``warm`` dims (cppyy JIT-compiles a call wrapper on
  the first call; doing it at load time keeps that out of timed phases),
* the checks of :meth:`NativeTable.call`: every array is checked by
  :func:`benchpq.native.array_arg` (dtype, C-contiguity, shape), and every dim
  must take one value across the arrays, the scalars and the dims the caller
  pins (e.g. the model's ``d``), so C++ never reads past an array.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from benchpq import native


@dataclass(frozen=True)
class Array:
    """An array argument: ``dtype`` exact, ``shape`` of dim names or ints; ``out``: C++ writes
    into it; ``optional``: None is passed as nullptr."""

    name: str
    dtype: type
    shape: tuple
    out: bool = False
    optional: bool = False


@dataclass(frozen=True)
class Scalar:
    """An integer or flag argument; a name that is also a dim must agree with the arrays."""

    name: str


@dataclass(frozen=True)
class Object:
    """A C++ object argument; its warm-up value is ``warm[name](namespace)``."""

    name: str


@dataclass(frozen=True)
class Call:
    """One C++ function: its arguments, dims overriding the table's for the warm-up,
    ``quick`` (keeps the GIL), ``static`` (called on the class, not an instance)."""

    args: tuple
    warm: dict = field(default_factory=dict)
    quick: bool = False
    static: bool = False


class NativeTable:
    """The C++ calls of one class (``scope``, built from ``constructor`` dims) or of the
    namespace (``scope=None``), registered for GIL release and warm-up on load."""

    #: every table declared, in order (for tests and diagnostics)
    declared: list[NativeTable] = []

    def __init__(self, scope: str | None, calls: dict[str, Call], warm: dict,
                 constructor: tuple = ()):
        self.scope, self.calls, self.warm, self.constructor = scope, calls, warm, constructor
        NativeTable.declared.append(self)
        native.on_load(self._prepare)

    def __repr__(self) -> str:
        return f"NativeTable({self.scope or 'benchpq'}: {', '.join(self.calls)})"

    # -- load time ------------------------------------------------------------
    def _prepare(self, ns) -> None:
        scope = getattr(ns, self.scope) if self.scope else ns
        if not all(hasattr(scope, name) for name in self.calls):
            return  # a library built from other sources: only these calls fail, when made
        native.release_gil(scope, *[name for name, call in self.calls.items() if not call.quick])
        instance = scope(*[self.warm[d] for d in self.constructor]) if self.scope else ns
        for name, call in self.calls.items():
            dims = {**self.warm, **call.warm}
            target = scope if call.static else instance
            getattr(target, name)(*[self._tiny(arg, dims, ns) for arg in call.args])

    @staticmethod
    def _tiny(arg, dims: dict, ns):
        if isinstance(arg, Scalar):
            return dims[arg.name]
        if isinstance(arg, Object):
            return dims[arg.name](ns)
        shape = tuple(d if isinstance(d, int) else dims[d] for d in arg.shape)
        if arg.out or np.dtype(arg.dtype).kind != "f":
            return np.zeros(shape, arg.dtype)  # integer inputs are codes, ids: 0 is valid
        return (np.arange(int(np.prod(shape))) % 7).reshape(shape).astype(arg.dtype)

    # -- call time ------------------------------------------------------------
    def call(self, target, name: str, *args, **dims):
        """``target.name(*args)`` after checking every argument against the table.

        ``dims`` pins dims the arrays must have (e.g. ``d=self.dim``). Raises
        :class:`benchpq.native.NativeArgumentError` on a wrong dtype, layout or
        shape, or a dim that takes two values.
        """
        spec = self.calls[name].args
        if len(args) != len(spec):
            raise TypeError(f"{name}: expected {len(spec)} arguments, got {len(args)}")
        bound = {key: int(value) for key, value in dims.items()}
        for arg, value in zip(spec, args):
            if isinstance(arg, Scalar) and isinstance(value, (int, np.integer)) \
                    and not isinstance(value, bool):
                self._bind(bound, arg.name, int(value), name)
        passed = []
        for arg, value in zip(spec, args):
            if isinstance(arg, Array):
                if value is None and arg.optional:
                    passed.append(native.nullptr())
                    continue
                shape = tuple(d if isinstance(d, int) else bound.get(d) for d in arg.shape)
                native.array_arg(value, arg.dtype, shape, arg.name, writeable=arg.out)
                for d, n in zip(arg.shape, value.shape):
                    if isinstance(d, str):
                        self._bind(bound, d, n, name)
            passed.append(value)
        result = getattr(target, name)(*passed)
        _drop_lifelines(target, passed)
        return result

    @staticmethod
    def _bind(bound: dict, dim: str, value: int, call: str) -> None:
        if bound.setdefault(dim, value) != value:
            raise native.NativeArgumentError(
                f"{call}: {dim} is {bound[dim]} in one argument and {value} in another")


def _drop_lifelines(target, passed: list) -> None:
    """Forget the arrays cppyy kept alive on ``target`` after a method call.

    cppyy keeps the last array given to each pointer argument of a method in the
    instance's ``__dict__`` (keys ``__<number>``), in case C++ kept the pointer. Our
    classes copy what they are given and keep no pointer to it, so the reference only
    holds memory: a block of the base passed to ``encode`` would stay resident until the
    next block replaced it, two blocks at a time.
    """
    lifelines = getattr(target, "__dict__", None)
    if not lifelines:
        return
    arrays = [id(value) for value in passed if isinstance(value, np.ndarray)]
    for key, value in list(lifelines.items()):
        if key.startswith("__") and key[2:].isdigit() and id(value) in arrays:
            del lifelines[key]
