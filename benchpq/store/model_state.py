"""A trained plugin as arrays and JSON: what the model cache stores instead of a pickle.

A pickle names any callable to run on load, so a cache that unpickles runs
whatever a writer of the cache put there. :func:`to_storage` walks a plugin's
state (``__getstate__()``, else its ``__dict__``) into a JSON tree and a dict
of numpy arrays (never of dtype object); :func:`from_storage` rebuilds it from
them, reading arrays with ``allow_pickle=False``. What the tree may hold:

* JSON scalars, lists, dicts (keys of any JSON scalar type), tuples;
* numpy arrays and scalars, numpy dtypes and scalar types (``np.uint8``);
* faiss indexes, through ``faiss.serialize_index``;
* objects of *storable classes*: classes defined in benchpq (its algorithms
  included) or in the module of a registered plugin, and the third-party
  classes a plugin lists in its ``stored_classes`` (e.g. nanopq's ``PQ``; a
  tuple, or a static method returning one, for a library imported lazily).
  An object is rebuilt as ``cls.__new__(cls)`` then ``__setstate__(state)``
  (else ``__dict__.update``): no constructor runs, no name outside these
  classes is looked up.

Anything else (a C++ handle, a function, a class not listed) makes the plugin
unstorable: :class:`NotStorable` says where, and the model cache skips it.
"""
from __future__ import annotations

import importlib
import sys

import numpy as np

from .. import registry
from ..api import UNSET

FORMAT = 1


class NotStorable(TypeError):
    """A plugin's state holds something that cannot be stored without a pickle."""


class BadState(ValueError):
    """A stored state that does not describe a plugin this code can rebuild."""


def _class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def storable_classes(plugin_cls: type) -> dict[str, type]:
    """{'module:qualname': class} of the third-party classes ``plugin_cls`` declares."""
    out = {}
    for cls in plugin_cls.__mro__:
        listed = vars(cls).get("stored_classes", ())
        if isinstance(listed, staticmethod):  # imports its library only when called
            listed = listed.__func__()
        for stored in listed:
            out[_class_name(stored)] = stored
    return out


def _own_module(module: str) -> bool:
    """Modules whose classes may be rebuilt from state: benchpq's and registered plugins'."""
    if module == "benchpq" or module.startswith("benchpq."):
        return True
    return module in {registry.get(name).__module__ for name in registry.names()}


def _state(obj) -> dict:
    getstate = getattr(obj, "__getstate__", None)
    state = getstate() if getstate is not None else obj.__dict__
    if not isinstance(state, dict):
        raise NotStorable(f"{type(obj).__name__}.__getstate__ returned a "
                          f"{type(state).__name__}, not a dict")
    return state


class _Writer:
    def __init__(self, extra: dict[str, type]):
        self.arrays: dict[str, np.ndarray] = {}
        self.extra = extra

    def array(self, a: np.ndarray) -> str:
        name = f"a{len(self.arrays)}"
        self.arrays[name] = a
        return name

    def value(self, v, where: str):
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, (int, float)) and type(v) in (int, float):
            return v
        if isinstance(v, list):
            return [self.value(w, f"{where}[{i}]") for i, w in enumerate(v)]
        if type(v) is tuple:
            return {"tuple": [self.value(w, f"{where}[{i}]") for i, w in enumerate(v)]}
        if type(v) is dict:
            if all(type(k) is str for k in v):
                return {"dict": {k: self.value(w, f"{where}.{k}") for k, w in v.items()}}
            return {"items": [[self.value(k, f"{where} key"), self.value(w, f"{where}[{k!r}]")]
                              for k, w in v.items()]}
        if isinstance(v, np.ndarray):
            if v.dtype.hasobject:
                raise NotStorable(f"{where}: an array of Python objects")
            return {"array": self.array(np.ascontiguousarray(v))}
        if isinstance(v, np.generic):
            if v.dtype.hasobject:
                raise NotStorable(f"{where}: a numpy object scalar")
            return {"scalar": self.array(np.asarray(v))}
        if isinstance(v, np.dtype):
            if v.hasobject:
                raise NotStorable(f"{where}: an object dtype")
            return {"dtype": v.str}
        if isinstance(v, type) and issubclass(v, np.generic) and v is not np.object_:
            return {"numpy_type": np.dtype(v).str}
        if v is _unset():
            return {"unset": True}
        if isinstance(v, bytes):
            return {"bytes": self.array(np.frombuffer(v, dtype=np.uint8).copy())}
        faiss = sys.modules.get("faiss")
        if faiss is not None and isinstance(v, faiss.Index):
            return {"faiss_index": self.array(faiss.serialize_index(v))}
        cls = type(v)
        name = _class_name(cls)
        if not (name in self.extra or _own_module(cls.__module__)) or isinstance(v, type):
            raise NotStorable(f"{where}: a {cls.__module__}.{cls.__qualname__}, which is not a "
                              f"storable class (benchpq's, a plugin module's, or listed in the "
                              f"plugin's stored_classes)")
        return {"object": name, "state": self.value(_state(v), where)}


def _unset():
    return UNSET


def to_storage(plugin) -> tuple[dict, dict[str, np.ndarray]]:
    """(tree, arrays) of a plugin's state; ``tree`` is JSON-serialisable.

    Raises:
        NotStorable: naming the first part of the state that cannot be stored.
    """
    cls = type(plugin)
    writer = _Writer(storable_classes(cls))
    state = writer.value(_state(plugin), plugin.name or cls.__name__)
    return {"format": FORMAT, "class": _class_name(cls), "state": state}, writer.arrays


class _Reader:
    def __init__(self, arrays, extra: dict[str, type]):
        self.arrays = arrays
        self.extra = extra

    def array(self, name) -> np.ndarray:
        if not isinstance(name, str) or name not in self.arrays:
            raise BadState(f"state names an array {name!r} that is not stored")
        return self.arrays[name]

    def value(self, v):
        if v is None or isinstance(v, (bool, str, int, float)):
            return v
        if isinstance(v, list):
            return [self.value(w) for w in v]
        if not isinstance(v, dict) or len(v) not in (1, 2):
            raise BadState(f"unexpected state node {str(v)[:80]!r}")
        kind = next(iter(v))
        if kind == "tuple":
            return tuple(self.value(w) for w in v["tuple"])
        if kind == "dict":
            return {k: self.value(w) for k, w in v["dict"].items()}
        if kind == "items":
            return {self.value(k): self.value(w) for k, w in v["items"]}
        if kind == "array":
            return self.array(v["array"])
        if kind == "scalar":
            return self.array(v["scalar"])[()]
        if kind == "dtype":
            return np.dtype(str(v["dtype"]))
        if kind == "numpy_type":
            return np.dtype(str(v["numpy_type"])).type
        if kind == "unset":
            return _unset()
        if kind == "bytes":
            return self.array(v["bytes"]).tobytes()
        if kind == "faiss_index":
            import faiss
            return faiss.deserialize_index(self.array(v["faiss_index"]))
        if kind == "object":
            return self.rebuild(self.resolve(v["object"]), v["state"])
        raise BadState(f"unknown state node kind {kind!r}")

    def resolve(self, name) -> type:
        if not isinstance(name, str) or ":" not in name:
            raise BadState(f"bad class name {name!r}")
        if name in self.extra:
            return self.extra[name]
        module, qualname = name.split(":", 1)
        if not _own_module(module):
            raise BadState(f"state names class {name}, which is not a storable class")
        target = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part, None)
        if not isinstance(target, type) or _class_name(target) != name:
            raise BadState(f"state names class {name}, which does not exist")
        return target

    def rebuild(self, cls: type, state):
        obj = cls.__new__(cls)
        state = self.value(state)
        if not isinstance(state, dict):
            raise BadState(f"state of a {cls.__qualname__} is not a mapping")
        setstate = getattr(obj, "__setstate__", None)
        if setstate is not None:
            setstate(state)
        else:
            obj.__dict__.update(state)
        return obj


def from_storage(tree: dict, arrays, plugin_cls: type):
    """Rebuild a plugin of class ``plugin_cls`` from :func:`to_storage`'s output.

    ``arrays`` maps names to arrays (e.g. an ``np.load(..., allow_pickle=False)``).

    Raises:
        BadState: the tree is of another format or class, or malformed.
    """
    if not isinstance(tree, dict) or tree.get("format") != FORMAT:
        found = tree.get("format") if isinstance(tree, dict) else None
        raise BadState(f"stored state of format {found!r}, expected {FORMAT}")
    if tree.get("class") != _class_name(plugin_cls):
        raise BadState(f"stored state is of class {tree.get('class')}, expected "
                       f"{_class_name(plugin_cls)}")
    reader = _Reader(arrays, storable_classes(plugin_cls))
    try:
        return reader.rebuild(plugin_cls, tree["state"])
    except (KeyError, TypeError, AttributeError) as exc:
        raise BadState(f"stored state of {plugin_cls.__qualname__} is malformed "
                       f"({type(exc).__name__}: {exc})") from None
