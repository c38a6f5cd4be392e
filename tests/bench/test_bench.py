#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# iovaq-bench's interface, run by ctest (label "bench"): exit statuses and messages for every
# kind of bad input, the JSON of a small matrix against docs/bench-schema.md, CSV, compare,
# plots present (valid PNGs) and absent (no gnuplot), --help against the man page, and replay
# on hand-written traces with known answers (and every kind of bad trace line).
# Nothing here judges a time: these runs are tiny and the machine is shared.
#
#   test_bench.py --bench PATH --src DIR CASE
#
# Exit status: 0 pass, 1 fail, 77 skipped (with the reason on stdout).

import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

SMALL = ["--pages", "64", "--reps", "1"]
POLICIES = ["strict", "deferred", "safe-deferred", "safe-deferred+arenas", "passthrough"]
WORKLOADS = ["nic-rx", "nic-tx", "memcached", "nginx"]
MODELS = ["native", "nested", "nested+cm"]
BACKENDS = ["sim", "iommufd", "vfio-type1", "kshim"]
COMMANDS = ["matrix", "compare", "run", "alloc", "sim", "soak", "replay"]
PNGS = ["throughput.png", "breakdown.png", "window-cdf.png", "inval-per-page.png"]

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what, flush=True)
    return cond


def run(args, env=None, cwd=None):
    return subprocess.run([BENCH] + args, capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)


# ---- bad input ------------------------------------------------------------------------------

def expect_usage(args, words, status=2, usage=True):
    """A one-line error naming every word in @words, usage on stderr, nothing on stdout."""
    p = run(args)
    name = "iovaq-bench " + " ".join(args)
    lines = p.stderr.splitlines()
    check(p.returncode == status, "%s: exit %d, expected %d (stderr: %s)"
          % (name, p.returncode, status, p.stderr.strip()))
    check(p.stdout == "", "%s: stdout not empty: %r" % (name, p.stdout[:200]))
    if not check(lines and lines[0].startswith("iovaq-bench: error: "),
                 "%s: no one-line error first on stderr: %r" % (name, p.stderr[:300])):
        return
    for w in words:
        check(w in lines[0], "%s: the error does not name %r: %s" % (name, w, lines[0]))
    if usage:
        check(any(line.startswith("Usage: iovaq-bench") for line in lines[1:]),
              "%s: no usage on stderr: %r" % (name, p.stderr))


def case_cli(tmp):
    # Unknown subcommand, flag, policy, workload, model, backend: the word and the choices.
    expect_usage(["frobnicate"], ["'frobnicate'"] + COMMANDS)
    expect_usage(["--frob"], ["'--frob'", "--json", "--help"])
    expect_usage(["matrix", "--frob"], ["'--frob'", "--policies", "--plot"])
    expect_usage(["matrix", "-x"], ["'-x'", "--policies"])
    expect_usage(["matrix", "stray"], ["'stray'"])
    expect_usage(["run", "--policy", "lazy", "--workload", "nic-rx"], ["'lazy'"] + POLICIES)
    expect_usage(["run", "--policy", "strict", "--workload", "redis"],
                 ["'redis'"] + WORKLOADS)
    expect_usage(["run", "--policy", "strict", "--workload", "nic-rx", "--backend", "xen"],
                 ["'xen'"] + BACKENDS)
    expect_usage(["matrix", "--policies", "strict,lazy"], ["'lazy'"] + POLICIES)
    expect_usage(["matrix", "--workloads", "nic-rx,,nginx"], ["empty workload"] + WORKLOADS)
    expect_usage(["matrix", "--workloads", "redis"], ["'redis'"] + WORKLOADS)
    expect_usage(["matrix", "--models", "nested,vm"], ["'vm'"] + MODELS)
    expect_usage(["matrix", "--backend", "xen"], ["'xen'"] + BACKENDS)
    expect_usage(["matrix", "--ring-layout", "spread"], ["'spread'", "auto", "shared", "percpu"])
    # --ring-layout reaches the domain: the run record names the layout and its ring count.
    for layout, want in (("shared", lambda n: n == 1), ("percpu", lambda n: n >= 1),
                         ("auto", lambda n: n >= 1)):
        p = run(["run", "--policy", "deferred", "--workload", "nic-rx", "--ops", "64",
                 "--reps", "1", "--ring-layout", layout, "--json"])
        if check(p.returncode == 0, "run --ring-layout %s: exit %d: %s"
                 % (layout, p.returncode, p.stderr.strip())):
            r = json.loads(p.stdout)
            check(r.get("ring_layout") == layout and want(r.get("rings", 0)),
                  "run --ring-layout %s: ring_layout %r, rings %r"
                  % (layout, r.get("ring_layout"), r.get("rings")))
    p = run(["run", "--policy", "deferred", "--workload", "nic-rx", "--ops", "64", "--reps", "1",
             "--ring-layout", "percpu", "--caching-mode", "--json"])
    if check(p.returncode == 0, "run --ring-layout percpu --caching-mode: exit %d"
             % p.returncode):
        r = json.loads(p.stdout)
        ncpu = max(1, os.sysconf("SC_NPROCESSORS_CONF"))  # what the library counts
        check(r.get("rings") == min(ncpu, 64),
              "percpu under caching mode: %r rings for %d CPUs" % (r.get("rings"), ncpu))
    expect_usage(["compare", "--frob"], ["'--frob'", "--metrics"])
    # Numbers: not numbers, out of range, empty; the bad value named.
    expect_usage(["matrix", "--pages", "lots"], ["'lots'", "--pages"])
    expect_usage(["matrix", "--pages", "0"], ["'0'", "--pages", "out of range"])
    expect_usage(["matrix", "--pages", "-5"], ["'-5'", "--pages"])
    expect_usage(["matrix", "--reps", "1001"], ["'1001'", "--reps", "out of range"])
    expect_usage(["matrix", "--threads", "65"], ["'65'", "--threads", "out of range"])
    expect_usage(["matrix", "--seed", "0x10"], ["'0x10'", "--seed"])
    expect_usage(["matrix", "--background=2M"], ["'2M'", "--background"])
    expect_usage(["run", "--policy", "strict", "--workload", "nic-rx", "--ops", "1.5"],
                 ["'1.5'", "--ops"])
    expect_usage(["matrix", "--pages"], ["--pages", "needs a value"])
    expect_usage(["matrix", "--json", "--csv"], ["--json", "--csv"])
    expect_usage(["matrix", "--backend", "iommufd", "--models", "native"],
                 ["--models", "iommufd"])
    afile = os.path.join(tmp, "a-file")
    open(afile, "w").close()
    expect_usage(["matrix", "--plot", os.path.join(afile, "sub")], ["--plot", afile])
    # A backend that cannot open: exit 1 with the backend's own error, before any run.
    for cmd in (["matrix"] + SMALL, ["run", "--policy", "strict", "--workload", "nic-rx"]):
        p = run(cmd + ["--backend", "iommufd"])
        check(p.returncode == 1, "%s --backend iommufd: exit %d, expected 1"
              % (cmd[0], p.returncode))
        check("cannot open backend 'iommufd'" in p.stderr and p.stdout == "",
              "%s --backend iommufd: %r" % (cmd[0], p.stderr))
    # compare: files that are missing, not JSON, of another command; too few arguments.
    bad = os.path.join(tmp, "bad.json")
    with open(bad, "w") as f:
        f.write('{"type": "run", "schema_version": 2,\n  "ops": 12,, }\n')
    alloc = os.path.join(tmp, "alloc.json")
    with open(alloc, "w") as f:
        f.write(run(["alloc", "--workload", "nic-rx", "--ops", "1000", "--reps", "1",
                     "--json"]).stdout)
    missing = os.path.join(tmp, "missing.json")
    expect_usage(["compare", missing, bad], ["'%s'" % missing, "No such file"])
    expect_usage(["compare", bad, bad], [bad, "not valid JSON", "line 2"])
    expect_usage(["compare", alloc, alloc], [alloc, "iovaq-bench alloc", "matrix"])
    expect_usage(["compare", bad], ["two files"])
    # --help of the tool and of every subcommand: exit 0, usage on stdout.
    for cmd in [[]] + [[c] for c in COMMANDS]:
        p = run(cmd + ["--help"])
        check(p.returncode == 0 and p.stdout.startswith("Usage: iovaq-bench")
              and p.stderr == "", "iovaq-bench %s --help" % " ".join(cmd))


# ---- JSON against the schema ----------------------------------------------------------------

def schema_sections(src):
    """{section title: set of documented paths} from docs/bench-schema.md's tables."""
    sections, cur = {}, None
    with open(os.path.join(src, "docs", "bench-schema.md")) as f:
        for line in f:
            if line.startswith("## "):
                cur = line[3:].strip()
                sections[cur] = set()
            elif cur and line.startswith("| `"):
                first = line.split("|")[1]
                sections[cur].update(re.findall(r"`([^`]+)`", first))
    return sections


def paths(v, prefix="", opaque=()):
    """Every key path of a JSON value: dots for members, [] for elements."""
    out = set()
    if isinstance(v, dict):
        for k, x in v.items():
            p = prefix + ("." if prefix else "") + k
            out.add(p)
            if p not in opaque:
                out |= paths(x, p, opaque)
    elif isinstance(v, list):
        out.add(prefix + "[]")
        for x in v:
            out |= paths(x, prefix + "[]", opaque)
    return out


def leaves(documented):
    """Documented paths without their parents (config.ops for config.ops.nginx)."""
    return {p for p in documented if not any(q.startswith(p + ".") or q.startswith(p + "[]")
                                             for q in documented if q != p)}


def check_keys(what, got, documented, optional=()):
    # An array that is null here ("plots": null) is documented as "plots[]".
    got = got | {p + "[]" for p in got if p + "[]" in documented}
    got_leaves = leaves(got)
    for p in sorted(got_leaves - documented):
        check(False, "%s: key %s is not in docs/bench-schema.md" % (what, p))
    for p in sorted(leaves(documented) - got - set(optional)):
        check(False, "%s: documented key %s is missing" % (what, p))


def number_or_null(v):
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def close(a, b, rel=1e-3):
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def check_run(r, name):
    """Invariants of one run record that hold whatever the timing."""
    cpu = r["cpu_ns_per_op"]
    m, s = cpu["measured"], cpu["modeled"]
    parts = ["alloc", "map", "unmap", "plan", "flush", "dma", "other"]
    check(close(sum(m[k] for k in parts), m["total"]),
          "%s: measured parts do not add up to their total: %s" % (name, m))
    check(all(m[k] >= 0 for k in parts if k != "other"),
          "%s: a negative measured part: %s" % (name, m))
    if r["backend"] == "sim":
        mparts = ["map", "unmap", "flush_submit", "flush_wait"]
        check(close(sum(s[k] for k in mparts), s["total"]),
              "%s: modeled parts do not add up: %s" % (name, s))
        check(close(cpu["host"], m["alloc"] + m["plan"] + m["other"] + s["total"]),
              "%s: host != alloc + plan + other + modeled" % name)
        check(r["sim"]["stale_hits"] == 0 and r["sim"]["faults"] == 0,
              "%s: stale hits or faults" % name)
    check(r["dma_pages"] == r["pages_per_op"] * r["total_ops"],
          "%s: dma_pages %d != pages_per_op x total_ops" % (name, r["dma_pages"]))
    check(len(r["rep_ns_per_op"]) == r["reps"], "%s: rep_ns_per_op has %d entries"
          % (name, len(r["rep_ns_per_op"])))
    pol = r["policy"]
    if pol in ("strict", "safe-deferred", "safe-deferred+arenas"):
        check(r["unsafe_reuse"] == 0, "%s: unsafe reuse under %s" % (name, pol))
    if pol == "passthrough":
        check(r["inval_cmds"] == 0, "%s: passthrough invalidated" % name)
        if r["backend"] == "sim":
            check(r["device_per_page"]["walk_refs"] == 0, "%s: passthrough walked" % name)
    if pol == "strict":
        check(r["inval_cmds"] >= 1 and r["flush_reasons"]["strict"] >= 1,
              "%s: strict without its own flushes" % name)
    if pol == "safe-deferred+arenas":
        check(r["arena_pages"] is not None, "%s: arenas without arena_pages" % name)
    else:
        check(r["arena_pages"] is None, "%s: arena_pages without arenas" % name)


def matrix_json(tmp, extra=()):
    p = run(["matrix"] + SMALL + ["--json", "--seed", "7"] + list(extra))
    check(p.returncode == 0, "matrix --json: exit %d: %s" % (p.returncode, p.stderr))
    return p


def case_json(tmp):
    sections = schema_sections(SRC)
    p = matrix_json(tmp)
    if p.returncode:
        return
    lines = [line for line in p.stdout.splitlines() if line.strip()]
    check(len(lines) == 1, "matrix --json: %d lines, expected one document" % len(lines))
    doc = json.loads(p.stdout)
    runs = doc["runs"]
    top = {k: v for k, v in doc.items() if k != "runs"}
    mx = sections["`matrix --json`: the matrix document"]
    rr = sections["Run record: `run --json` and `matrix` runs"]
    check_keys("matrix document", paths(top) | {"runs[]"}, {p for p in mx
                                                            if not p.startswith("runs[].")})
    extra = {p[len("runs[]."):] for p in mx if p.startswith("runs[].")}
    check(len(runs) == len(POLICIES) * len(WORKLOADS) * len(MODELS),
          "matrix: %d runs, expected %d" % (len(runs), 60))
    for r in runs:
        name = "%s %s %s" % (r["model"], r["workload"], r["policy"])
        check_keys("run " + name, paths(r), rr | extra)
        check_run(r, name)
        check(r["command"] == "matrix" and r["seed"] == 7, name + ": command or seed")
        check(number_or_null(r["host_vs_passthrough"]), name + ": host_vs_passthrough")
        if r["policy"] == "passthrough":
            check(close(r["host_vs_passthrough"], 1), name + ": passthrough vs itself != 1")
    # The configuration is echoed, seeds included, and the runs follow it in order.
    c = doc["config"]
    check(doc["schema_version"] == 2 and doc["type"] == "matrix", "matrix: type or version")
    check(c["seed"] == 7 and c["pages"] == 64 and c["reps"] == 1, "matrix: config %s" % c)
    check(c["policies"] == POLICIES and c["workloads"] == WORKLOADS and c["models"] == MODELS,
          "matrix: config lists %s" % c)
    check(doc["argv"][:3] == ["matrix", "--pages", "64"], "matrix: argv %s" % doc["argv"])
    check(c["ops"]["nginx"] == 1 and c["ops"]["memcached"] == 32 and c["ops"]["nic-rx"] == 64,
          "matrix: ops per workload %s" % c["ops"])
    order = [(r["model"], r["workload"], r["policy"]) for r in runs]
    check(order == [(m, w, p) for m in MODELS for w in WORKLOADS for p in POLICIES],
          "matrix: runs out of order")
    check(doc["plots"] is None, "matrix: plots without --plot")
    # The modeled figures are deterministic: the same seed gives the same ones.
    p2 = run(["matrix"] + SMALL + ["--json", "--seed", "7", "--models", "nested+cm",
                                     "--workloads", "nic-rx"])
    again = json.loads(p2.stdout)["runs"]
    first = [r for r in runs if r["model"] == "nested+cm" and r["workload"] == "nic-rx"]
    for a, b in zip(first, again):
        for k in ("inval_cmds", "flushes", "device_per_page", "sim"):
            check(a[k] == b[k], "matrix: %s of %s differs between two runs with one seed"
                  % (k, a["policy"]))
        check(a["cpu_ns_per_op"]["modeled"] == b["cpu_ns_per_op"]["modeled"],
              "matrix: modeled CPU of %s differs between two runs" % a["policy"])
    # run --json: one record, the same keys.
    p = run(["run", "--policy", "safe-deferred+arenas", "--workload", "nginx", "--ops", "2",
             "--reps", "2", "--nested", "--json"])
    check(p.returncode == 0, "run --json: exit %d: %s" % (p.returncode, p.stderr))
    r = json.loads(p.stdout)
    check_keys("run --json", paths(r), rr)
    check_run(r, "run --json")
    check(r["command"] == "run" and r["model"] == "nested", "run --json: command, model")
    # alloc and sim records.
    al = sections["`alloc --json` and the default suite"]
    p = run(["alloc", "--workload", "mixed", "--ops", "2000", "--reps", "1", "--json"])
    for line in p.stdout.splitlines():
        check_keys("alloc --json", paths(json.loads(line), opaque=("stats",)),
                   {k for k in al if k not in ("outstanding[]", "max_min_ratio")},
                   optional=("speedup", "speedup_vs", "ns_per_op[]"))
    si = sections["`sim --json`"]
    p = run(["sim", "--iters", "1", "--pages", "256", "--json"])
    recs = [json.loads(line) for line in p.stdout.splitlines()]
    check(len(recs) >= 2 and p.returncode == 0, "sim --json: %d records" % len(recs))
    got = set().union(*(paths(x) for x in recs)) if recs else set()
    check_keys("sim --json", got, si)


def case_csv(tmp):
    p = run(["matrix"] + SMALL + ["--csv", "--models", "native,nested+cm"])
    check(p.returncode == 0, "matrix --csv: exit %d: %s" % (p.returncode, p.stderr))
    rows = [line.split(",") for line in p.stdout.splitlines()]
    check(len(rows) == 1 + 2 * 4 * 5, "matrix --csv: %d lines" % len(rows))
    head = rows[0]
    for col in ("model", "policy", "workload", "ns_per_op", "cpu_alloc_ns", "modeled_flush_wait_ns",
                "host_ns_per_op", "ptcache_l2_misses_per_page", "host_gbit_per_s"):
        check(col in head, "matrix --csv: no column %s" % col)
    check(all(len(r) == len(head) for r in rows), "matrix --csv: ragged rows")


def case_table(tmp):
    p = run(["matrix"] + SMALL + ["--models", "native", "--workloads", "nic-rx"])
    check(p.returncode == 0, "matrix: exit %d: %s" % (p.returncode, p.stderr))
    out = p.stdout
    for title in ("Cost of protection", "CPU ns per op", "Device side per DMA'd page"):
        check(title in out, "matrix table: no %r" % title)
    for pol in POLICIES:
        check(len(re.findall(r"^native +nic-rx +%s " % re.escape(pol), out, re.M)) == 3,
              "matrix table: %s is not in all three tables" % pol)
    # Progress goes to a terminal only: stderr is a pipe here, so it stays clean.
    check("\r" not in p.stderr and "matrix 1/" not in p.stderr,
          "matrix: progress on a non-terminal stderr: %r" % p.stderr[:200])


def case_compare(tmp):
    a = os.path.join(tmp, "a.json")
    b = os.path.join(tmp, "b.json")
    pa = run(["matrix"] + SMALL + ["--json", "--models", "native,nested+cm"])
    pb = run(["matrix"] + SMALL + ["--json", "--models", "nested+cm", "--policies",
                                     "strict,passthrough", "--seed", "3"])
    with open(a, "w") as f:
        f.write(pa.stdout)
    with open(b, "w") as f:
        f.write(pb.stdout)
    # A against itself: every ratio is 1 (or unknown), in the table and in JSON.
    p = run(["compare", a, a, "--json"])
    check(p.returncode == 0, "compare A A: exit %d: %s" % (p.returncode, p.stderr))
    doc = json.loads(p.stdout)
    check(doc["pairs"] == 40 and not doc["only_a"] and not doc["only_b"],
          "compare A A: pairs %s" % doc["pairs"])
    for s in doc["summary"]:
        check(s["geomean"] is None or close(s["geomean"], 1, 1e-9),
              "compare A A: %s geomean %s" % (s["metric"], s["geomean"]))
    metrics = doc["runs"][0]["metrics"]
    for k in ("ns_per_op", "cpu_ns_per_op.host", "window_ns.p99", "device_per_page.walk_refs",
              "cpu_ns_per_op.measured.alloc", "throughput.host_gbit_per_s"):
        check(k in metrics, "compare --json: no metric %s" % k)
    check("seed" not in metrics and "ops" not in metrics, "compare: config keys as metrics")
    # A against a smaller B with another seed: the pairs, the runs only in A, the warning.
    p = run(["compare", a, b, "--metrics", "inval_per_page,cpu_ns_per_op.modeled.total"])
    check(p.returncode == 0, "compare A B: exit %d: %s" % (p.returncode, p.stderr))
    check(re.search(r"^nested\+cm nic-rx strict +1\.000 +1\.000$", p.stdout, re.M) is not None,
          "compare A B: strict's modeled figures should not depend on the seed:\n" + p.stdout)
    check("only in A" in p.stderr and "configurations differ" in p.stderr
          and "seed" in p.stderr, "compare A B: warnings %r" % p.stderr)
    check("geomean B/A" in p.stdout, "compare: no summary table")
    # run --json records (JSON Lines) compare too.
    r1 = run(["run", "--policy", "strict", "--workload", "nic-tx", "--ops", "300", "--reps",
              "1", "--json"]).stdout
    r2 = run(["run", "--policy", "deferred", "--workload", "nic-tx", "--ops", "300", "--reps",
              "1", "--json"]).stdout
    lines = os.path.join(tmp, "runs.jsonl")
    with open(lines, "w") as f:
        f.write(r1 + r2)
    p = run(["compare", lines, a, "--json"])
    check(p.returncode == 0 and json.loads(p.stdout)["pairs"] == 2,
          "compare runs.jsonl A: exit %d, %s" % (p.returncode, p.stdout[:200]))
    expect_usage(["compare", lines, b], ["no run of", "counterpart"])
    expect_usage(["compare", a, a, "--metrics", "ns_per_opp"], ["'ns_per_opp'", "ns_per_op"])


# ---- plots ----------------------------------------------------------------------------------

def png_ok(path):
    """A PNG signature, an IHDR chunk with a plausible size and a valid CRC."""
    with open(path, "rb") as f:
        data = f.read(33)
    if len(data) < 33 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return False
    w, h = struct.unpack(">II", data[16:24])
    crc = struct.unpack(">I", data[29:33])[0]
    return 0 < w < 10000 and 0 < h < 10000 and zlib.crc32(data[12:29]) == crc


def case_plot(tmp):
    if not shutil.which("gnuplot"):
        print("SKIP: gnuplot is not installed (Debian: gnuplot-nox; scripts/setup.sh)")
        sys.exit(77)
    d = os.path.join(tmp, "new", "plots")  # created, parents included
    p = run(["matrix"] + SMALL + ["--plot", d])
    check(p.returncode == 0, "matrix --plot: exit %d: %s" % (p.returncode, p.stderr))
    for name in PNGS:
        f = os.path.join(d, name)
        check(os.path.isfile(f) and os.path.getsize(f) > 0 and png_ok(f),
              "matrix --plot: %s missing, empty or not a PNG" % name)
        check(f in p.stdout, "matrix --plot: %s not printed" % f)
    for name in ("plots.gp", "throughput.dat", "breakdown.dat", "window.dat", "inval.dat"):
        check(os.path.isfile(os.path.join(d, name)), "matrix --plot: no %s" % name)
    # With --json, the plots are listed in the document and the message goes to stderr.
    p = run(["matrix"] + SMALL + ["--models", "native", "--json", "--plot", d])
    doc = json.loads(p.stdout)
    check(doc["plots"] == [os.path.join(d, n) for n in PNGS], "matrix --json: plots %s"
          % doc["plots"])
    check(os.path.join(d, "throughput.png") in p.stderr, "matrix --json --plot: no message")


def case_noplot(tmp):
    # No gnuplot on PATH: the table still comes out, the data and script too, no PNG, and
    # the message says what to install; exit 1.
    empty = os.path.join(tmp, "empty-path")
    os.mkdir(empty)
    env = dict(os.environ, PATH=empty)
    d = os.path.join(tmp, "plots")
    p = run(["matrix"] + SMALL + ["--models", "native", "--plot", d], env=env)
    check(p.returncode == 1, "matrix --plot without gnuplot: exit %d" % p.returncode)
    check("Cost of protection" in p.stdout, "matrix --plot without gnuplot: no table")
    check("gnuplot" in p.stderr and "gnuplot-nox" in p.stderr,
          "matrix --plot without gnuplot: message %r" % p.stderr)
    check(os.path.isfile(os.path.join(d, "plots.gp")), "no plots.gp without gnuplot")
    check(not any(os.path.exists(os.path.join(d, n)) for n in PNGS), "PNGs without gnuplot")
    p = run(["matrix"] + SMALL + ["--models", "native", "--json", "--plot", d], env=env)
    check(p.returncode == 1 and json.loads(p.stdout)["plots"] is None,
          "matrix --json --plot without gnuplot: exit %d" % p.returncode)


# ---- documentation --------------------------------------------------------------------------

def case_docs(tmp):
    """Every option of every --help is in the man page."""
    with open(os.path.join(SRC, "docs", "iovaq-bench.1")) as f:
        man = f.read().replace("\\-", "-")
    for cmd in [[]] + [[c] for c in COMMANDS]:
        out = run(cmd + ["--help"]).stdout
        section = out.split("Options:", 1)[-1]
        for opt in sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", section))):
            check(opt in man, "man page: %s of '%s' is not documented"
                  % (opt, " ".join(["iovaq-bench"] + cmd)))
        if cmd:
            check(re.search(r"^\.SS .*\b%s\b" % cmd[0], man, re.M) is not None,
                  "man page: no section for %s" % cmd[0])


def case_soak(tmp):
    """A short soak passes, with its JSON keys as documented; bad values are usage errors."""
    expect_usage(["soak", "--ops", "5"], ["'5'", "--ops", "out of range"])
    expect_usage(["soak", "--max-growth", "101"], ["'101'", "--max-growth"])
    p = run(["soak", "--ops", "2M", "--check", "500k", "--max-growth", "5", "--quiet",
             "--json"])
    if not check(p.returncode == 0, "soak: exit %d: %s" % (p.returncode, p.stderr.strip())):
        return
    r = json.loads(p.stdout)
    with open(os.path.join(SRC, "docs", "bench-schema.md")) as f:
        doc = f.read().split("## `soak --json`", 1)[1].split("\n## ", 1)[0]
    keys = set(re.findall(r"^\| `([a-z_]+)(?:\[\])?` \|", doc, re.M))
    check(set(r) == keys, "soak JSON keys %s, documented %s" % (sorted(r), sorted(keys)))
    check(r["type"] == "soak" and r["ops"] == 2000000 and r["error"] is None,
          "soak record: %r" % r)
    check(r["invariant_checks"] >= 4, "soak: %d invariant checks for 2M ops every 500k"
          % r["invariant_checks"])
    check(len(r["policies"]) == 5 and len(r["workloads"]) == 4, "soak: %r" % r)


# ---- replay ---------------------------------------------------------------------------------

REPLAY_SECTION = "`replay --json`: the replay document"


def tline(ev, ts, iova, size, unmapped=None, task="<idle>-0", cpu=0, flags="..s2."):
    """One trace line in the tracefs format of docs/apps-testbed.md."""
    head = "%16s [%03d] %s %12.6f: " % (task, cpu, flags, ts)
    if ev == "map":
        return head + ("map: IOMMU: iova=0x%016x - 0x%016x paddr=0x%016x size=%d\n"
                       % (iova, iova + size, 0x78000000 + (iova & 0xfffff000), size))
    return head + ("unmap: IOMMU: iova=0x%016x - 0x%016x size=%d unmapped_size=%d\n"
                   % (iova, iova + size, size, size if unmapped is None else unmapped))


def write_trace(tmp, name, lines):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write("".join(lines))
    return path


def pairs(n, pages=1, gap=1e-6, t0=100.0):
    """n map/unmap pairs of @pages pages each, one after the other, IOVAs reused."""
    out, ts = [], t0
    for i in range(n):
        iova = 0xfff00000 - (i % 256) * 0x10000
        out.append(tline("map", ts, iova, pages * 4096))
        ts += gap
        out.append(tline("unmap", ts, iova, pages * 4096))
        ts += gap
    return out


def replay_json(path, *extra):
    p = run(["replay", path, "--json"] + list(extra))
    if not check(p.returncode == 0, "replay %s %s: exit %d: %s"
                 % (os.path.basename(path), " ".join(extra), p.returncode, p.stderr.strip())):
        return None
    return json.loads(p.stdout)


def by_policy(doc, model="native"):
    return {r["policy"]: r for r in doc["runs"] if r["model"] == model}


def check_replay_run(r, name):
    """Invariants of one replay run, whatever the trace and the timing."""
    # Windows are wall time: on a loaded machine (or under a sanitizer) a preempted replay
    # can exceed the default 10 ms bound, so only a bound no preemption reaches is judged.
    if r["max_window_ns"] >= 10**9:
        check(r["violations"] == 0, "%s: %d violations" % (name, r["violations"]))
    check(r["dma_pages"] == r["unmapped_pages"], "%s: dma_pages %d != unmapped_pages %d"
          % (name, r["dma_pages"], r["unmapped_pages"]))
    fr = r["flush_reasons"]
    check(sum(fr.values()) == r["flushes"], "%s: flush reasons %s do not add up to %d"
          % (name, fr, r["flushes"]))
    mdl = r["modeled_ns_per_event"]
    if all(isinstance(mdl[k], (int, float)) for k in mdl):
        check(close(mdl["map"] + mdl["unmap"] + mdl["flush_submit"] + mdl["flush_wait"],
                    mdl["total"]), "%s: modeled parts do not add up: %s" % (name, mdl))
    pol = r["policy"]
    if pol in ("strict", "safe-deferred", "safe-deferred+arenas"):
        check(r["unsafe_reuse"] == 0, "%s: unsafe reuse" % name)
    if pol == "passthrough":
        check(r["inval_cmds"] == 0 and r["device_per_page"]["walk_refs"] in (0, None),
              "%s: passthrough invalidated or walked" % name)
    if pol == "safe-deferred+arenas":
        check(isinstance(r["arenas_reserved"], int) and r["arenas_reserved"] >= 1,
              "%s: arenas_reserved %r" % (name, r["arenas_reserved"]))
    else:
        check(r["arenas_reserved"] is None, "%s: arenas_reserved without arenas" % name)


def case_replay(tmp):
    """replay on hand-written traces with known answers; its JSON against the schema."""
    sections = schema_sections(SRC)
    n = 200
    tr = write_trace(tmp, "pairs.trace", pairs(n))
    # A window bound of 60 s: no age flush, so every count below is exact.
    doc = replay_json(tr, "--max-window-ns", "60e9")
    if doc is None:
        return
    check_keys("replay --json", paths(doc), sections[REPLAY_SECTION])
    check(doc["type"] == "replay" and doc["schema_version"] == 2 and doc["command"] == "replay",
          "replay: type, version or command")
    check(doc["argv"][:2] == ["replay", tr], "replay: argv %s" % doc["argv"])
    t = doc["trace"]
    check((t["events"], t["maps"], t["unmaps"], t["mapped_pages"], t["premapped"],
           t["live_at_end"], t["max_live"]) == (2 * n, n, n, n, 0, 0, 1),
          "replay: trace summary %s" % t)
    c = doc["config"]
    check(c["policies"] == POLICIES and c["models"] == MODELS and c["pace"] == "fast",
          "replay: config %s" % c)
    order = [(r["model"], r["policy"]) for r in doc["runs"]]
    check(order == [(m, p) for m in MODELS for p in POLICIES], "replay: runs out of order")
    for r in doc["runs"]:
        name = "replay pairs %s %s" % (r["model"], r["policy"])
        check_replay_run(r, name)
        check(r["maps"] == n and r["unmaps"] == n and r["unmapped_pages"] == n,
              "%s: maps %d, unmaps %d, pages %d for %d pairs"
              % (name, r["maps"], r["unmaps"], r["unmapped_pages"], n))
        # Strict: one command, and one flush, per single-page unmap.
        if r["policy"] == "strict":
            check(r["inval_cmds"] == n and r["flushes"] == n
                  and r["flush_reasons"]["strict"] == n and r["inval_per_page"] == 1,
                  "%s: %d commands in %d flushes for %d single-page unmaps"
                  % (name, r["inval_cmds"], r["flushes"], n))
        if r["policy"] == "passthrough":
            check(r["unsafe_reuse"] == n, "%s: unsafe_reuse %d" % (name, r["unsafe_reuse"]))
        if r["policy"] == "safe-deferred":
            check(r["completions"] == n and r["flushes"] == 1,
                  "%s: %d completions for %d unmaps in %d flushes"
                  % (name, r["completions"], n, r["flushes"]))
    # The same trace and seed: the same counts (pace fast; deferred may add age flushes).
    again = replay_json(tr, "--policies", "strict,safe-deferred,passthrough",
                        "--max-window-ns", "60e9")
    if again:
        a = {(r["model"], r["policy"]): r for r in doc["runs"]}
        for r in again["runs"]:
            b = a[(r["model"], r["policy"])]
            for k in ("inval_cmds", "device_per_page", "modeled_ns_per_event"):
                check(r[k] == b[k], "replay: %s of %s %s differs between two runs"
                      % (k, r["model"], r["policy"]))

    # Deferred with a known batch: one shared ring of 64 entries, a window bound far above
    # the replay's time, gives ceil(N / 64) flushes: full rings, then the final sync.
    n = 1000
    tr = write_trace(tmp, "pairs1000.trace", pairs(n))
    d = replay_json(tr, "--policies", "deferred,safe-deferred", "--models", "native",
                    "--ring-layout", "shared", "--ring-entries", "64", "--max-window-ns", "60e9")
    if d:
        want = (n + 63) // 64
        for r in d["runs"]:
            name = "replay deferred batch 64 (%s)" % r["policy"]
            check_replay_run(r, name)
            fr = r["flush_reasons"]
            check(r["flushes"] == want and fr["full"] == want - 1 and fr["sync"] == 1,
                  "%s: %d flushes (reasons %s) for %d unmaps, expected %d"
                  % (name, r["flushes"], fr, n, want))
            # The release that finds the ring full is accounted before the flush it triggers.
            check(r["reachable_pages_max"] <= 65, "%s: %d pages reachable with a 64-entry ring"
                  % (name, r["reachable_pages_max"]))
            check(1 <= r["inval_cmds"] <= n and r["max_window_ns"] == 60 * 10**9,
                  "%s: %d commands, bound %d" % (name, r["inval_cmds"], r["max_window_ns"]))
        check(d["config"]["ring_entries"] == 64 and d["config"]["ring_layout"] == "shared",
              "replay: config %s" % d["config"])

    # Sizes are kept: 1-, 2- and 5-page maps, interleaved, unmapped in another order.
    lines, ts, sizes = [], 1.0, [1, 2, 5, 1, 2]
    for i, pg in enumerate(sizes):
        lines.append(tline("map", ts + i * 1e-3, 0x100000 + i * 0x10000, pg * 4096))
    for k, i in enumerate([3, 0, 4, 2, 1]):
        lines.append(tline("unmap", ts + 0.1 + k * 1e-3, 0x100000 + i * 0x10000,
                           sizes[i] * 4096))
    d = replay_json(write_trace(tmp, "sizes.trace", lines), "--models", "native",
                    "--max-window-ns", "60e9")
    if d:
        check(d["trace"]["mapped_pages"] == sum(sizes) and d["trace"]["max_live"] == 5,
              "replay sizes: trace %s" % d["trace"])
        for pol, r in by_policy(d).items():
            check_replay_run(r, "replay sizes " + pol)
            check(r["unmapped_pages"] == sum(sizes) and r["unmaps"] == len(sizes),
                  "replay sizes %s: %d pages in %d unmaps" % (pol, r["unmapped_pages"],
                                                               r["unmaps"]))
            if pol == "strict":
                # One flush per unmap; a range may take more than one command (5 pages are
                # tiled into aligned power-of-two ranges), never more than one per page.
                check(r["flushes"] == len(sizes)
                      and len(sizes) <= r["inval_cmds"] <= sum(sizes),
                      "replay sizes strict: %d commands in %d flushes for 5 multi-page unmaps"
                      % (r["inval_cmds"], r["flushes"]))

    # Pairing rules: an unmap from before the trace (premapped), a partial unmap ended by its
    # last page, a double unmap (unmatched, skipped), an unmap of nothing (unmapped_size 0),
    # a mapping left live. Strict then makes exactly 2 commands (premapped, 2-page mapping).
    lines = ["# tracer: nop\n", "#\n",
             tline("unmap", 1.0, 0x10000, 4096),
             tline("map", 1.1, 0x20000, 8192),
             tline("unmap", 1.2, 0x20000, 4096),
             tline("unmap", 1.3, 0x21000, 4096),
             tline("unmap", 1.4, 0x20000, 8192),
             tline("map", 1.5, 0x30000, 4096),
             tline("unmap", 1.6, 0x30000, 4096, unmapped=0),
             tline("map", 1.7, 0x40000, 4096), "\n"]
    d = replay_json(write_trace(tmp, "pairing.trace", lines), "--models", "native",
                    "--max-window-ns", "60e9")
    if d:
        t = d["trace"]
        want = {"lines": 11, "events": 8, "maps": 3, "unmaps": 5, "premapped": 1,
                "premapped_pages": 1, "partial_unmaps": 2, "short_unmaps": 1,
                "unmaps_unmatched": 1, "unmatched_pages": 2, "live_at_end": 2, "max_live": 2}
        check(all(t[k] == v for k, v in want.items()), "replay pairing: trace %s, want %s"
              % (t, want))
        for pol, r in by_policy(d).items():
            check_replay_run(r, "replay pairing " + pol)
            check(r["unmaps"] == 2 and r["unmapped_pages"] == 3 and r["maps"] == 3,
                  "replay pairing %s: maps %d unmaps %d pages %d"
                  % (pol, r["maps"], r["unmaps"], r["unmapped_pages"]))
        st = by_policy(d).get("strict")
        check(st is not None and st["inval_cmds"] == 2, "replay pairing strict: %r commands"
              % (st and st["inval_cmds"]))

    # Arenas: 64 single pages into 64-page arenas, a sync per 16 unlinked pages.
    d = replay_json(write_trace(tmp, "arena.trace", pairs(64)), "--models", "native",
                    "--policies", "safe-deferred+arenas", "--arena-pages", "64",
                    "--arena-sync", "16", "--max-window-ns", "60e9")
    if d:
        r = d["runs"][0]
        check_replay_run(r, "replay arenas")
        # One arena, one release (arena sync) per 16 unlinked pages.
        check(r["arenas_reserved"] == 1 and r["unmapped_pages"] == 64
              and r["releases"] == 4 and d["config"]["arena_sync_pages"] == 16,
              "replay arenas: %d arenas, %d pages, %d releases" % (
                  r["arenas_reserved"], r["unmapped_pages"], r["releases"]))

    # --pace trace follows the timestamps: 20 pairs 2 ms apart take at least their 78 ms,
    # and a deferred queue is flushed by age in the gaps (the window bound, 10 ms).
    d = replay_json(write_trace(tmp, "paced.trace", pairs(20, gap=2e-3)), "--pace", "trace",
                    "--models", "native", "--policies", "deferred,safe-deferred")
    if d:
        check(d["config"]["pace"] == "trace", "replay --pace trace: config")
        for r in d["runs"]:
            check_replay_run(r, "replay paced " + r["policy"])
            check(r["wall_ns"] >= 78e6 and r["late_ns_max"] is not None,
                  "replay paced %s: %d ns for a 78 ms trace" % (r["policy"], r["wall_ns"]))
            check(r["flush_reasons"]["age"] >= 1, "replay paced %s: no age flush in 78 ms: %s"
                  % (r["policy"], r["flush_reasons"]))

    # The table: one row per model and policy, the trace summary above it.
    p = run(["replay", tr, "--models", "native"])
    check(p.returncode == 0 and "Replay of " + tr in p.stdout
          and all(("native  " in line) for line in p.stdout.splitlines()
                  if any(line.split()[1:2] == [pol] for pol in POLICIES)),
          "replay table: %r" % p.stdout[:400])
    rows = [line for line in p.stdout.splitlines() if line.startswith("native ")]
    check([line.split()[1] for line in rows] == POLICIES, "replay table rows: %s" % rows)

    # A real trace: the first 400 events of a Redis GET load's (virtio-net, strict guest;
    # bench/apps/smoke.sh), which start with unmaps of the receive ring mapped before the
    # trace. The replay's view of it must agree with the reference reader's.
    real = os.path.join(SRC, "tests", "bench", "redis-get.iommu.trace")
    ref = json.loads(subprocess.run([sys.executable, os.path.join(SRC, "bench", "apps",
                                                                  "trace-stats.py"), real],
                                    capture_output=True, text=True, check=True).stdout)
    d = replay_json(real, "--max-window-ns", "60e9")
    if d:
        t = d["trace"]
        check((t["events"], t["maps"], t["unmaps"], t["mapped_pages"], t["premapped"],
               t["max_live"], t["live_at_end"], t["unmaps_unmatched"])
              == (ref["events"], ref["maps"], ref["unmaps"], ref["bytes_mapped"] // 4096,
                  ref["unmaps_not_mapped_in_trace"], ref["max_live_mappings"],
                  ref["live_at_end"], 0),
              "replay of the real trace: %s, trace-stats.py: %s" % (t, ref))
        for r in d["runs"]:
            name = "replay real %s %s" % (r["model"], r["policy"])
            check_replay_run(r, name)
            check(r["unmaps"] == ref["unmaps"] and
                  r["unmapped_pages"] == ref["bytes_unmapped"] // 4096,
                  "%s: %d unmaps of %d pages" % (name, r["unmaps"], r["unmapped_pages"]))
            # Maps of 1 and 2 pages at naturally aligned IOVAs: one command per strict
            # unmap; the deferred queues (4096 entries and pages) only flush at the end.
            if r["policy"] == "strict":
                check(r["inval_cmds"] == ref["unmaps"], "%s: %d commands for %d unmaps"
                      % (name, r["inval_cmds"], ref["unmaps"]))
            if r["policy"] in ("deferred", "safe-deferred"):
                check(r["flushes"] == 1 and r["inval_cmds"] < ref["unmaps"],
                      "%s: %d commands in %d flushes" % (name, r["inval_cmds"], r["flushes"]))

    # An empty trace (comments only) replays to zeros and nulls, not an error.
    d = replay_json(write_trace(tmp, "empty.trace", ["# tracer: nop\n"]), "--models", "native")
    if d:
        check(d["trace"]["events"] == 0 and all(r["inval_cmds"] == 0 and
                                                 r["inval_per_page"] is None
                                                 for r in d["runs"]),
              "replay of an empty trace: %s" % d["runs"][:1])


def case_replay_bad(tmp):
    """Every kind of bad trace: FILE:LINE: reason, exit 2, nothing on stdout."""
    good = pairs(2)   # lines 1-4
    m = tline("map", 200.0, 0x50000, 4096)
    bad = [
        ("garbage", "hello world\n", "not a trace event"),
        ("event", m.replace(": map:", ": frob:"), "not an iommu map or unmap event"),
        ("no pid", m.replace("<idle>-0", "<idle>-x"), "TASK-PID [CPU]"),
        ("timestamp", m.replace("200.000000", "200"), "bad timestamp"),
        ("size", m.replace("size=4096", "size=8192"), "iova range is 4096 bytes, size says 8192"),
        ("unaligned", tline("map", 200.0, 0x50800, 4096), "not 4 KiB-aligned"),
        ("zero size", tline("map", 200.0, 0x50000, 0), "not a non-zero multiple of 4096"),
        ("odd size", m.replace("0x0000000000051000", "0x0000000000050800")
                      .replace("size=4096", "size=2048"), "not a non-zero multiple of 4096"),
        ("long hex", m.replace("iova=0x", "iova=0x0"), "bad iova start"),
        ("paddr", m.replace("paddr=0x", "paddr=0y"), "paddr"),
        ("unmap fields", tline("unmap", 200.0, 0x50000, 4096).replace(" unmapped_size=4096", ""),
         "unmapped_size"),
        ("unmapped", tline("unmap", 200.0, 0x50000, 4096, unmapped=8192), "exceeds size"),
        ("trailing", m[:-1] + " x\n", "unexpected text after the last field"),
        ("crlf", m[:-1] + "\r\n", "unexpected text after the last field"),
        ("nul", m[:20] + "\0" + m[21:], "NUL byte"),
        ("overflow", m.replace("size=4096", "size=99999999999999999999999"), "size"),
        ("backwards", tline("map", 1.0, 0x50000, 4096), "timestamp goes backwards"),
        ("overlap", "".join([tline("map", 200.0, 0x50000, 8192),
                             tline("map", 200.1, 0x51000, 4096)]),
         "overlaps the mapping of line 5"),
    ]
    for name, text, why in bad:
        path = os.path.join(tmp, "bad-%s.trace" % name.replace(" ", "-"))
        with open(path, "w", newline="") as f:
            f.write("".join(good) + text + "".join(pairs(1, t0=300.0)))
        line = 6 if name == "overlap" else 5
        p = run(["replay", path, "--models", "native"])
        check(p.returncode == 2 and p.stdout == "",
              "replay bad %s: exit %d, stdout %r" % (name, p.returncode, p.stdout[:100]))
        want = "iovaq-bench: error: %s:%d: " % (path, line)
        check(p.stderr.startswith(want) and why in p.stderr,
              "replay bad %s: stderr %r, expected %r ... %r" % (name, p.stderr, want, why))
    # Truncated: the last line has no newline.
    path = write_trace(tmp, "truncated.trace", good + [tline("map", 200.0, 0x50000, 4096)[:-1]])
    p = run(["replay", path])
    check(p.returncode == 2 and ("%s:5: truncated" % path) in p.stderr,
          "replay truncated: exit %d, %r" % (p.returncode, p.stderr))
    # Missing file, no file, two files, bad choices.
    missing = os.path.join(tmp, "missing.trace")
    p = run(["replay", missing])
    check(p.returncode == 2 and missing in p.stderr and "No such file" in p.stderr,
          "replay of a missing file: exit %d, %r" % (p.returncode, p.stderr))
    expect_usage(["replay"], ["trace file"])
    expect_usage(["replay", path, path], ["'%s'" % path])
    expect_usage(["replay", path, "--pace", "slow"], ["'slow'", "fast", "trace"])
    expect_usage(["replay", path, "--policies", "lazy"], ["'lazy'"] + POLICIES)
    expect_usage(["replay", path, "--models", "vm"], ["'vm'"] + MODELS)
    expect_usage(["replay", path, "--ring-entries", "8"], ["'8'", "--ring-entries"])


CASES = {"cli": case_cli, "json": case_json, "csv": case_csv, "table": case_table,
         "compare": case_compare, "plot": case_plot, "noplot": case_noplot, "docs": case_docs,
         "soak": case_soak, "replay": case_replay, "replay_bad": case_replay_bad}


def main():
    global BENCH, SRC
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True)
    ap.add_argument("--src", required=True)
    ap.add_argument("case", choices=sorted(CASES))
    a = ap.parse_args()
    BENCH, SRC = os.path.abspath(a.bench), a.src
    with tempfile.TemporaryDirectory(prefix="iovaq-bench-test.") as tmp:
        CASES[a.case](tmp)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
