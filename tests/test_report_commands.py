"""Every benchpq-report command that the README, docs/ and the saved experiments' headers
show runs, on records holding what it names, and shows what it asks for.

The records are made here (two algorithms, three seeds, every column the command names),
so the test checks the commands themselves: their options exist, their columns are
metrics of the metric table or params, their tables carry the columns they ask for, their
plots are written, and a Pareto command gets the axes its comment promises.
"""
from __future__ import annotations

import itertools
import re
import shlex
from pathlib import Path

import pytest

from benchpq import registry
from benchpq.metric_table import known, lookup, plugin_metrics, spec
from benchpq.report.cli import build_parser, main, names
from benchpq.report.load import parse_floors
from benchpq.report.pareto import default_axes
from benchpq.report.selectors import DEFAULT, parse_pair
from benchpq.store.records import record_path, write_record

REPO = Path(__file__).resolve().parents[1]
SOURCES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")),
           *sorted((REPO / "conf" / "experiment").glob("*.yaml"))]
FIXED = {"algorithm", "dataset", "task", "seed", "threads", "simd", "machine", "sweep"}


def documented_commands() -> list[tuple[str, str, str]]:
    """(source file, command, comment after it) for every benchpq-report command shown."""
    found = []
    for source in SOURCES:
        lines = source.read_text().splitlines()
        i = 0
        while i < len(lines):
            line = re.sub(r"^\s*#?\s*", "", lines[i]).strip("`")
            i += 1
            if not line.startswith("benchpq-report "):
                continue
            while line.endswith("\\") and i < len(lines):
                line = line[:-1] + " " + re.sub(r"^\s*#?\s*", "", lines[i])
                i += 1
            command, _, comment = line.partition(" #")
            if "/shared/" in command or "<" in command:  # a placeholder path, not a command
                continue
            found.append((source.relative_to(REPO).as_posix(), command.strip(), comment.strip()))
    return found


COMMANDS = documented_commands()


def test_the_documents_show_report_commands():
    assert len(COMMANDS) >= 30
    assert {source for source, _, _ in COMMANDS} >= {"README.md",
                                                     "conf/experiment/paired_siftsmall.yaml"}


def plugin_declarations() -> dict[str, dict]:
    """Every metric the registered plugins declare, {name: spec}."""
    out = {}
    for name in registry.names():
        out.update({m: spec(metric) for m, metric in plugin_metrics(registry.get(name)).items()})
    return out


DECLARED = plugin_declarations()


def value(name: str, seed: int, algorithm: int) -> float:
    """A plausible value of metric ``name`` for one run."""
    if name.startswith("recall") or "-recall@" in name or name in ("nmi", "ari"):
        return 0.5 + 0.1 * algorithm + 0.01 * seed
    return 10.0 * (1 + algorithm) + seed


def sweep_for(args, tmp_path: Path) -> None:
    """Write the records a command reads: its algorithms x 3 seeds, every named column."""
    sides = [s for spec in names(args.baseline) + names(args.compare) for s in parse_pair(spec)]
    algorithms = list(dict.fromkeys(s.name for s in sides)) or ["pq", "faiss_pq"]
    # the configurations a command names in brackets (rabitq[bits=4]), per algorithm
    configs = {name: [s.params for s in sides if s.name == name and s.params] or [{}]
               for name in algorithms}
    named = {key for s in sides for key in s.params}
    columns = [c for c in names(args.rows) + names(args.cols) + names(args.values)
               + names(args.by) + [args.x, args.y] if c and c not in FIXED]
    columns = [c[:-len(" ratio")] if c.endswith(" ratio") else c for c in columns]
    metrics = {c for c in columns if known(c, DECLARED)} | {
        "recall@1", "recall@10", "recall@100", "mse", "train_s", "search_s", "qps", "code_bits",
        "mean_candidates"}
    params = [c for c in columns if not known(c, DECLARED) and c not in named]
    floors = parse_floors(names(args.floor)) if args.floor else {}  # met by half the runs
    metrics |= set(floors)
    datasets = ["siftsmall", "sift1m"] if "dataset" in names(args.rows) + names(args.cols) \
        else ["siftsmall"]
    for path in args.paths:
        folder = tmp_path / path
        n = 0
        for dataset in datasets:
            for a, algorithm in enumerate(algorithms):
                for config, setting, seed in itertools.product(configs[algorithm], (2, 8),
                                                               range(3)):
                    n += 1
                    rid = f"{n:04d}"
                    write_record(record_path(folder, rid), {
                        "run_id": rid, "status": "ok", "message": "",
                        "algorithm": algorithm, "dataset": dataset, "task": "search",
                        "params": {"M": 8, **{p: setting for p in params},
                                   **{k: int(v) if v.isdigit() else v
                                      for k, v in config.items() if v != DEFAULT}},
                        "seed": seed, "threads": 1, "simd": "avx2",
                        "metrics": {**{m: value(m, seed, a) * (1 + setting / 100)
                                       for m in sorted(metrics)},
                                    **(floors if setting == 8 else {})},
                        "metric_specs": {m: DECLARED[m] for m in metrics if m in DECLARED},
                        "config": {"name": folder.name},
                        "provenance": {"started_at": "2026-01-01T00:00:00+00:00"},
                        "wall_s": 1.0})


@pytest.mark.parametrize("source, command, comment", COMMANDS,
                         ids=[f"{s}:{c[15:60]}" for s, c, _ in COMMANDS])
def test_documented_report_command(source, command, comment, tmp_path, monkeypatch, capsys):
    argv = shlex.split(command)[1:]
    args = build_parser().parse_args(argv)  # every option it uses exists
    for option in ("html", "plot", "pareto", "diagnostics", "output"):
        if getattr(args, option):
            assert not Path(getattr(args, option)).is_absolute()
    for path in args.references or ():
        assert (REPO / path).is_file(), f"{source}: {path} does not exist"
    sweep_for(args, tmp_path)
    monkeypatch.chdir(tmp_path)
    if args.references:
        argv = [str(REPO / a) if a in args.references else a for a in argv]
    if args.published:  # the published figures come with the experiment's records
        sweep = Path(args.paths[0]).name.replace("-", "_")
        argv += ["--references", str(REPO / "conf" / "experiment" / f"{sweep}.yaml")]
    if args.diagnostics:
        pytest.skip("codebook diagnostics need a quantizer's per-sub-space records "
                    "(tests/test_diagnostics.py runs this command on real runs)")
    code = main(argv)
    out = capsys.readouterr()
    assert code == 0, f"{source}: {command}\n{out.err}"
    for option in ("html", "plot", "pareto", "output"):
        target = getattr(args, option)
        if target:
            assert (tmp_path / target).exists()
    if args.values and not (args.pareto or args.html or args.output or args.compare):
        table = out.out
        latex = args.format == "latex" or (args.output or "").endswith(".tex")
        for name in names(args.values):
            shown = lookup(name, DECLARED).display if latex else name
            assert shown in table, f"{source}: {command} shows no column {shown}"
    if args.pareto:
        x, y = default_axes(args.x, args.y)
        said = comment.lower()
        if "qps" in said:
            assert {x, y} == {"recall@10", "qps"}
        if "candidates" in said or args.x == "mean_candidates":
            assert {x, y} == {"mean_candidates", "recall@10"}
