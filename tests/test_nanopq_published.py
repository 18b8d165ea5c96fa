"""nanopq's own published test suite passes against our drop-in, with only the import changed.

The suite ships in nanopq's source distribution (``tests/test_pq.py``, ``test_opq.py``,
``test_convert_faiss.py``: 16 tests). CI fetches the sdist of the installed nanopq
version from the package index (``pip download --no-binary :all: nanopq==X``) and
names it in ``BENCHPQ_NANOPQ_SDIST``; tests never download. Each file's ``import
nanopq`` becomes ``from benchpq.algorithms.compat import nanopq_api as nanopq`` and
nothing else changes. 15 pass; the 16th, ``test_faiss_to_nanopq_opq``, calls
``faiss.OPQMatrix(D, M=M)``, which faiss itself refuses (a TypeError before our code
runs). ``test_ip`` demands that ``dtable(q).adist(codes)`` equals numpy's sum of the
table's entries bit for bit, so this runs on every SIMD path.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from importlib.metadata import version
from pathlib import Path

import pytest

SDIST_VARIABLE = "BENCHPQ_NANOPQ_SDIST"
ORIGINAL_IMPORT = "import nanopq"
DROP_IN_IMPORT = "from benchpq.algorithms.compat import nanopq_api as nanopq"
#: the one published test that cannot pass, and why
REFUSED_BY_FAISS = {"test_convert_faiss.TestSuite.test_faiss_to_nanopq_opq":
                    "OPQMatrix.__init__() got an unexpected keyword argument 'M'"}

pytestmark = pytest.mark.native_kernels


@pytest.fixture(scope="module")
def published_tests(tmp_path_factory) -> Path:
    """A folder with nanopq's published tests, the import switched to the drop-in."""
    sdist = os.environ.get(SDIST_VARIABLE)
    if not sdist or not Path(sdist).is_file():
        message = (f"nanopq's published tests need its sdist: set {SDIST_VARIABLE} to "
                   f"nanopq-{version('nanopq')}.tar.gz (pip download --no-deps "
                   f"--no-binary :all: nanopq=={version('nanopq')})")
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("nanopq_published")
    with tarfile.open(sdist) as archive:
        top = archive.getnames()[0].split("/")[0]
        assert top == f"nanopq-{version('nanopq')}", \
            f"{sdist} is not the sdist of the installed nanopq {version('nanopq')}"
        members = [m for m in archive.getmembers()
                   if m.isfile() and m.name.startswith(f"{top}/tests/")
                   and m.name.endswith(".py")]
        for member in members:
            text = archive.extractfile(member).read().decode()
            lines = text.splitlines(keepends=True)
            switched = [i for i, line in enumerate(lines) if line.strip() == ORIGINAL_IMPORT]
            assert len(switched) == 1, f"{member.name}: expected one '{ORIGINAL_IMPORT}' line"
            lines[switched[0]] = lines[switched[0]].replace(ORIGINAL_IMPORT, DROP_IN_IMPORT)
            (folder / Path(member.name).name).write_text("".join(lines))
    return folder


def test_published_suite_passes_but_for_the_call_faiss_refuses(published_tests, tmp_path):
    report = tmp_path / "junit.xml"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"--junitxml={report}", "--rootdir", str(published_tests),
                           str(published_tests)],
                          cwd=published_tests, capture_output=True, text=True, timeout=600)
    outcomes = {}
    for case in ET.parse(report).iter("testcase"):
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        name = f"{case.get('classname')}.{case.get('name')}"
        outcomes[name] = None if failure is None else failure.get("message", "")
    assert len(outcomes) == 16, done.stdout[-3000:]
    failed = {name: message for name, message in outcomes.items() if message is not None}
    assert set(failed) == set(REFUSED_BY_FAISS), done.stdout[-5000:]
    for name, reason in REFUSED_BY_FAISS.items():
        assert reason in failed[name]
    assert sum(message is None for message in outcomes.values()) == 15
