"""Naming one configuration of an algorithm in a comparison: ``rabitq[bits=4]``.

``--compare A=B`` and ``--baseline A=B`` pair runs of two algorithms. When a side has runs
of several configurations that the pairing cannot tell apart (``rabitq`` at bits 1 and 4
against ``faiss_rabitq`` at nb_bits 1 and 4: the two name their bits differently), pooling
them would compare unlike runs, so the comparison is refused, naming the params that
differ, and a side names its configuration with params in brackets:
``rabitq[bits=4]=faiss_rabitq[nb_bits=4]``, several separated by commas
(``pq[M=8,Ks=256]``). ``param=default`` names the runs that did not set the param (which
ran with the plugin's default): ``opq[niter=default]=opq[niter=9]``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .formatting import format_key
from .load import ReportError, param_columns

#: the value that selects runs which left a param unset
DEFAULT = "default"


@dataclass(frozen=True)
class Selector:
    """An algorithm name and the params its runs must have (values as text)."""

    name: str
    params: dict = field(default_factory=dict)
    label: str = ""

    def __str__(self) -> str:
        return self.label or self.name


def split_top_level(text: str, sep: str) -> list[str]:
    """``text`` split at each ``sep`` outside brackets: 'a[x=1,y=2],b' -> ['a[x=1,y=2]', 'b']."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += (char == "[") - (char == "]")
        if depth < 0:
            raise ReportError(f"{text!r}: a ']' without its '['")
        if char == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise ReportError(f"{text!r}: a '[' without its ']'")
    parts.append(text[start:])
    return parts


def parse_pair(spec: str, form: str = "A=B") -> tuple[Selector, Selector]:
    """'A=B' with either side optionally ``name[param=value,...]`` -> two selectors;
    ``form`` names the sides in the error."""
    sides = split_top_level(spec, "=")
    if len(sides) != 2 or not all(s.strip() for s in sides):
        raise ReportError(f"{spec!r}: expected {form}, e.g. pq=faiss_pq or "
                          f"rabitq[bits=4]=faiss_rabitq[nb_bits=4]")
    return parse_selector(sides[0]), parse_selector(sides[1])


def parse_selector(text: str) -> Selector:
    """'rabitq' or 'rabitq[bits=4,seed=0]' -> :class:`Selector`."""
    text = text.strip()
    name, bracket, rest = text.partition("[")
    params = {}
    if bracket:
        if not rest.endswith("]"):
            raise ReportError(f"{text!r}: expected name[param=value,...]")
        for item in split_top_level(rest[:-1], ","):
            key, sep, value = item.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise ReportError(f"{text!r}: {item!r} is not param=value")
            params[key.strip()] = value.strip()
    if not name.strip():
        raise ReportError(f"{text!r}: no algorithm name")
    return Selector(name.strip(), params, text)


def _matches(column: pd.Series, value: str) -> pd.Series:
    """Cells of ``column`` equal to ``value`` (given as text): numbers compared as numbers;
    :data:`DEFAULT` matches the unset cells."""
    if value == DEFAULT:
        return column.isna()
    number = pd.to_numeric(pd.Series([value]), errors="coerce").iat[0]
    if pd.notna(number):
        return pd.to_numeric(column, errors="coerce") == number
    return column.astype(str) == value


def select(df: pd.DataFrame, selector: Selector) -> pd.DataFrame:
    """The runs of ``selector``'s algorithm with its params; ReportError if there is none
    or a param is not a column of the runs."""
    runs = df[df.algorithm == selector.name]
    if runs.empty:
        raise ReportError(f"no ok run of {selector.name!r} to compare (algorithms: "
                          f"{', '.join(sorted(map(str, df.algorithm.unique())))})")
    for key, value in selector.params.items():
        if key not in runs.columns:
            known = [p for p in param_columns(df) if runs[p].notna().any()]
            raise ReportError(f"{selector}: {key!r} is not a param of {selector.name!r}'s "
                              f"runs ({', '.join(known)})")
        runs = runs[_matches(runs[key], value)]
    if runs.empty:
        raise ReportError(f"no ok run of {selector} to compare")
    return runs


def require_one_configuration(runs: pd.DataFrame, selector: Selector, where: str) -> None:
    """ReportError if ``runs`` (of one side, under one set of conditions) differ in a param:
    they would be pooled into one mean."""
    differing = []
    for p in param_columns(runs):
        values = runs[p].map(format_key)
        if values.nunique() > 1:
            differing.append(f"{p} ({', '.join(sorted(values.unique()))})")
    if differing:
        raise ReportError(
            f"runs of {selector} {where} differ in {'; '.join(differing)}: comparing them "
            f"would pool unlike runs; name one configuration, e.g. "
            f"{selector.name}[{differing[0].split(' ')[0]}=...]")
