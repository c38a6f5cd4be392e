# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""examples/policy_matrix.py: the table, the plot, and the table alone without matplotlib."""

import os
import subprocess
import sys

import pytest

from conftest import HERE

SCRIPT = os.path.join(HERE, "..", "examples", "policy_matrix.py")
ARGS = ["--ops", "400", "--ring", "32"]


def run(tmp_path, prelude=""):
    out = str(tmp_path / "cdf.png")
    code = prelude + "import runpy, sys; sys.argv = [%r] + %r; runpy.run_path(%r, run_name='__main__')" % (
        SCRIPT, ARGS + ["--out", out], SCRIPT)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout, out


def table(stdout):
    rows = [l.split() for l in stdout.splitlines() if l.startswith(("native", "nested"))]
    assert len(rows) == 6
    return {(r[0], r[1]): r for r in rows}


def test_table_without_matplotlib(tmp_path):
    stdout, out = run(tmp_path, "import sys; sys.modules['matplotlib'] = None; ")
    assert "matplotlib not available" in stdout
    assert not os.path.exists(out)
    t = table(stdout)
    assert float(t[("native", "strict")][2]) == pytest.approx(1.0)  # one command per page
    assert float(t[("native", "deferred")][2]) < 0.5  # batched
    assert t[("native", "safe-deferred")][-2] == "0"  # no unsafe reuse
    assert t[("native", "deferred")][-2] != "0"


def test_plot_with_matplotlib(tmp_path):
    pytest.importorskip("matplotlib")
    stdout, out = run(tmp_path)
    table(stdout)
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
