"""Published figures beside measured ones: the ``published`` column, the difference, a flag.

An experiment lists its references in its config (``conf/experiment/<name>.yaml``)::

    report:
      references:
        - metric: mse
          value: 21965
          tolerance: 2%            # absolute (0.02) or relative ("2%"); default 0
          check: within            # within (default), at_least, at_most
          where: {algorithm: faiss_pq, M: 8}   # run columns that must match
          source: faiss IndexPQ(128, 8, 8) trained on the siftsmall base, 100 queries

``report`` is not part of a run's identity (benchpq.store.records.NON_DEFINING_KEYS), so adding
or correcting a reference does not rerun anything; every record keeps it in its ``config``
and the loader gathers them in ``df.attrs["references"]`` with the sweep that carried them.
A reference is compared with the mean over seeds of the ok runs of that sweep matching
``where`` (``benchpq-report --references FILE`` applies an experiment file's references to
every sweep loaded, for records made before the references were added).
``within``: |measured - value| <= tolerance; ``at_least``: measured >= value - tolerance
(a test's threshold); ``at_most``: measured <= value + tolerance.
"""
from __future__ import annotations

import json
import math

import pandas as pd

from .formatting import format_key, format_number
from .load import ReportError, collect_references  # noqa: F401 - part of this API
from .names import with_declared_metrics
from .output import Grid, output

CHECKS = ("within", "at_least", "at_most")
REQUIRED = ("metric", "value", "source")


def check_reference(ref) -> dict:
    """A reference dict with its defaults filled in; ReportError naming what is wrong."""
    if not isinstance(ref, dict):
        raise ReportError(f"a reference must be a mapping, got {ref!r}")
    missing = [k for k in REQUIRED if ref.get(k) in (None, "")]
    if missing:
        raise ReportError(f"reference {json.dumps(ref, default=str)} lacks {', '.join(missing)}")
    out = {"check": "within", "tolerance": 0, "where": {}, **ref}
    if out["check"] not in CHECKS:
        raise ReportError(f"reference check {out['check']!r}: choose from {', '.join(CHECKS)}")
    if not isinstance(out["where"], dict):
        raise ReportError(f"reference 'where' must be a mapping, got {out['where']!r}")
    try:
        out["value"] = float(out["value"])
        tolerance_of(out)
    except (TypeError, ValueError):
        raise ReportError(f"reference {json.dumps(ref, default=str)}: value and tolerance must "
                          "be numbers (tolerance may be a percentage such as '2%')") from None
    return out


def tolerance_of(ref: dict) -> float:
    """The absolute tolerance of a reference ('2%' of value 100 -> 2.0)."""
    tol = ref.get("tolerance", 0)
    if isinstance(tol, str) and tol.strip().endswith("%"):
        return abs(float(tol.strip()[:-1]) / 100 * float(ref["value"]))
    return abs(float(tol))


def references_from_file(path) -> list[tuple[dict, None]]:
    """The ``report.references`` of an experiment YAML file, as (reference, None) pairs:
    they apply to the runs of every sweep loaded (for records made before the references
    were written into the experiment)."""
    from omegaconf import OmegaConf
    try:
        config = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except OSError as exc:
        raise ReportError(f"cannot read references from {path}: {exc}") from None
    except Exception as exc:  # omegaconf/yaml parse errors have several types
        raise ReportError(f"cannot parse {path}: {exc}") from None
    refs = (config.get("report") or {}).get("references") if isinstance(config, dict) else None
    if not refs:
        raise ReportError(f"{path} has no report.references list")
    return [(check_reference(r), None) for r in refs]


def merge_references(present, added) -> list[tuple[dict, str | None]]:
    """``present`` plus the (reference, sweep) pairs of ``added`` not already in it (a
    reference counts as present whatever sweep carried it)."""
    def key(ref):
        return json.dumps(check_reference(ref), sort_keys=True, default=str)
    seen = {key(ref) for ref, _ in present}
    return [*present, *((ref, sweep) for ref, sweep in added if key(ref) not in seen)]


@with_declared_metrics
def reference_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per reference of ``df.attrs["references"]``: measured beside published.

    Columns: sweep, dataset, where (text), metric, measured (mean of the matching ok runs),
    runs, published, difference (measured - published), tolerance, check, status ('ok',
    'OUT OF TOLERANCE', 'no run'), source. Empty frame if there are no references.
    """
    rows = []
    for raw, sweep in df.attrs.get("references") or []:
        ref = check_reference(raw)
        runs = df[df["status"] == "ok"]
        if sweep is not None and "sweep" in runs:
            runs = runs[runs["sweep"] == sweep]
        runs = _matching(runs, ref["where"])
        metric = ref["metric"]
        values = pd.to_numeric(runs[metric], errors="coerce").dropna() \
            if metric in runs.columns else pd.Series(dtype=float)
        measured = float(values.mean()) if len(values) else math.nan
        tol = tolerance_of(ref)
        rows.append({
            "sweep": sweep,
            "dataset": ", ".join(sorted(map(format_key, runs["dataset"].unique())))
            if len(runs) else "",
            "where": ", ".join(f"{k}={format_key(v)}" for k, v in sorted(
                ref["where"].items(), key=lambda kv: (kv[0] not in ("dataset", "algorithm"),
                                                      kv[0] != "dataset", kv[0]))),
            "metric": metric, "measured": measured, "runs": int(len(values)),
            "published": ref["value"], "difference": measured - ref["value"],
            "tolerance": tol, "check": ref["check"],
            "status": _status(measured, ref["value"], tol, ref["check"]),
            "source": str(ref["source"])})
    return pd.DataFrame(rows)


def _matching(runs: pd.DataFrame, where: dict) -> pd.DataFrame:
    for key, value in where.items():
        column = key if key in runs.columns else f"param.{key}"
        if column not in runs.columns:
            return runs.iloc[0:0]
        runs = runs[runs[column].map(lambda v, value=value: _equal(v, value))]
    return runs


def _equal(a, b) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def _status(measured: float, value: float, tol: float, check: str) -> str:
    if math.isnan(measured):
        return "no run"
    ok = {"within": abs(measured - value) <= tol + 1e-12 * abs(value),
          "at_least": measured >= value - tol,
          "at_most": measured <= value + tol}[check]
    return "ok" if ok else "OUT OF TOLERANCE"


def reference_rows(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """(header, text rows) of a :func:`reference_table` frame, numbers formatted."""
    header = ["dataset", "run", "metric", "measured", "published", "difference",
              "accepted", "status", "source"]
    rows = []
    for _, r in frame.iterrows():
        m = r.metric
        tolerance = {"within": f"± {format_number(m, r.tolerance)}",
                     "at_least": f"≥ {format_number(m, r.published - r.tolerance)}",
                     "at_most": f"≤ {format_number(m, r.published + r.tolerance)}"}[r.check]
        measured = format_number(m, r.measured) + (f" ({r.runs} runs)" if r.runs > 1 else "")
        diff = format_number(m, r.difference)
        rows.append([r.dataset, r["where"], m, measured,
                     format_number(m, r.published), diff if diff.startswith("-") or not diff
                     else "+" + diff, tolerance,
                     r.status, r.source])
    return header, rows


def render_references(frame: pd.DataFrame, fmt: str = "markdown") -> str:
    """The reference table in format ``fmt`` (CSV: the frame's numbers); out-of-tolerance
    statuses flagged."""
    if fmt == "csv":
        return output("csv").frame(frame)
    return output(fmt).table(reference_grid(frame))


def reference_grid(frame: pd.DataFrame) -> Grid:
    """The :func:`reference_rows` as a grid, statuses other than 'ok' flagged bad."""
    header, rows = reference_rows(frame)
    status = header.index("status")
    bad = [[j == status and row[status] != "ok" for j in range(len(row))] for row in rows]
    return Grid(header, rows, n_keys=3, bad=bad,
                text_cols={status, header.index("accepted"), header.index("source")})
