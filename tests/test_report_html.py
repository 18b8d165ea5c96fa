"""benchpq-report --html: a static site whose every link and image exists."""
import re
from pathlib import Path

import numpy as np

from benchpq.report import load_records
from benchpq.report.cli import main
from benchpq.report.html import slug, write_site
from benchpq.store.records import record_path, write_record

FAIL = "InputError: M=16 does not divide d=100"


def write_sweep(root: Path) -> Path:
    sweep = root / "results" / "toy"
    rng = np.random.default_rng(0)
    refs = [{"metric": "mse", "value": 50.0, "tolerance": 1, "where": {"algorithm": "pq", "M": 8},
             "source": "paper Z"},
            {"metric": "mse", "value": 9.0, "tolerance": 1, "where": {"dataset": "other data"},
             "source": "paper on another set"}]
    n = 0
    for alg in ("pq", "faiss_pq"):
        for M in (4, 8):
            for seed in (0, 1):
                n += 1
                ranks = np.where(rng.random(50) < 0.5 + M / 20, 2, -1)
                rid = f"r{n:02d}"
                write_record(record_path(sweep, rid), {
                    "run_id": rid, "status": "ok", "message": "", "algorithm": alg,
                    "dataset": "toy data", "task": "search", "seed": seed, "threads": 1,
                    "params": {"M": M},
                    "metrics": {"recall@10": float((ranks >= 0).mean()), "mse": 400.0 / M + seed,
                                "search_s": 0.01 * M, "code_bits": 8 * M,
                                "per_query": {"nn_rank": ranks.tolist()}},
                    "config": {"name": "toy", "report": {"references": refs}},
                    "provenance": {"git_commit": "abc123", "started_at": "2024-01-01T00:00:00"}})
    write_record(record_path(sweep, "bad"), {
        "run_id": "bad", "status": "error", "message": FAIL, "algorithm": "pq",
        "dataset": "toy data", "task": "search", "seed": 0, "threads": 1, "params": {"M": 16},
        "metrics": {}, "config": {"name": "toy"}, "traceback": "Traceback: line 1"})
    write_record(record_path(root / "results" / "clu", "c1"), {
        "run_id": "c1", "status": "ok", "message": "", "algorithm": "kmeans",
        "dataset": "toy data", "task": "cluster", "seed": 0, "threads": 1, "params": {},
        "metrics": {"error": 3.0, "cluster_s": 0.5}, "config": {"name": "clu"}})
    return root / "results"


def links(page: Path) -> list[str]:
    return re.findall(r'(?:href|src)="([^"#]+)"', page.read_text())


def test_site_pages_and_images_all_exist(tmp_path):
    results = write_sweep(tmp_path)
    out = tmp_path / "site"
    index = write_site(load_records(results, status=None), out, compare=[("pq", "faiss_pq")])
    pages = [index]
    seen = set()
    while pages:                                   # follow every link from the index
        page = pages.pop()
        seen.add(page)
        for target in links(page):
            assert not target.startswith(("http:", "https:", "/")), target   # offline, relative
            path = page.parent / target
            assert path.is_file(), f"{page.name} links to missing {target}"
            if path.suffix == ".html" and path not in seen:
                pages.append(path)
    names = {p.name for p in seen}
    assert names == {"index.html", f"{slug('toy', 'toy data', 'search')}.html",
                     f"{slug('clu', 'toy data', 'cluster')}.html"}
    search = (out / "toy-toy-data-search.html").read_text()
    images = [t for t in links(out / "toy-toy-data-search.html") if t.endswith(".png")]
    assert len(images) >= 3 and all((out / t).stat().st_size > 1000 for t in images)
    assert FAIL in search and "Traceback: line 1" in search          # failed run, message
    assert "abc123" in search and "&quot;name&quot;: &quot;toy&quot;" in search  # provenance
    assert "Paired comparison: pq vs faiss_pq" in search and "queries x 2 seeds" in search
    assert "paper Z" in search and "±" in search                     # references, intervals
    assert ">paper on another set</td>" not in search  # another dataset's figure: index only
    assert ">paper on another set</td>" in index.read_text()
    assert "<script" not in search


def test_cli_writes_the_site(tmp_path, capsys):
    results = write_sweep(tmp_path)
    assert main([str(results), "--html", str(tmp_path / "out"), "--compare", "pq=faiss_pq"]) == 0
    assert (tmp_path / "out" / "index.html").is_file()
    assert "wrote" in capsys.readouterr().err
