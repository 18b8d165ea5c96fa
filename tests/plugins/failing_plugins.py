"""Plugins that fail on purpose, to check that the runner records each failure."""
import ctypes
import os
import time

from benchpq.api import Searcher
from benchpq.registry import register


class _Failing(Searcher):
    def __init__(self, seed=None):
        self.seed = seed

    def add(self, x):
        pass

    def search(self, queries, k):
        raise AssertionError("never reached")


@register("test_raises")
class Raises(_Failing):
    def fit(self, x):
        raise RuntimeError("boom from plugin")


@register("test_aborts")
class Aborts(_Failing):
    def fit(self, x):
        os.abort()


@register("test_segfaults")
class Segfaults(_Failing):
    def fit(self, x):
        ctypes.string_at(0)


@register("test_sleeps")
class Sleeps(_Failing):
    def fit(self, x):
        time.sleep(120)
