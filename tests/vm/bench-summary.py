#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""Join a guest's iovaq-bench runs (tests/vm/guest-bench.sh) with QEMU's VT-d trace.

    tests/vm/bench-summary.py CONSOLE TRACE [--json OUT.jsonl] [--title TEXT]

The console holds one line per run: "iovaq-bench: seg=K backend=B policy=P ops=N reps=R rc=C
json={...}". The trace (QEMU -D with vtd_inv_desc* and vtd_dmar_fault enabled) holds the
markers vm-mark left: a DMA fault at IOVA 0x40000000 + M * 4096, M = 2K before run K and 2K + 1
after it. Descriptors are counted per run from QEMU's generic "vtd_inv_desc invalidate desc type
T" event (one per descriptor) and the IOTLB granularity from the typed events.

Every configuration ran with --ops N and --ops 1; per op = (count(N) - count(1)) /
((N - 1) * executions), executions = reps + 1 (iovaq-bench's breakdown repetition). Prints a
Markdown table; with --json, one JSON object per configuration.
"""
import json
import re
import sys

MARK_BASE = 0x40000000
MARK_SPAN = 65536 * 4096
LINE = re.compile(r"iovaq-bench: seg=(\d+) backend=(\S+) policy=(\S+) ops=(\d+) reps=(\d+) "
                  r"rc=(\d+) json=(.*)$")
KINDS = ("iotlb", "wait", "context-cache", "iec", "pages", "domain", "global", "other")


def read_runs(console):
    runs = {}
    with open(console, errors="replace") as f:
        for line in f:
            m = LINE.search(line.rstrip("\r\n"))
            if not m:
                continue
            seg, be, pol, ops, reps, rc, js = m.groups()
            try:
                doc = json.loads(js) if int(rc) == 0 else None
            except ValueError:
                doc = None
            runs[int(seg)] = dict(backend=be, policy=pol, ops=int(ops), reps=int(reps),
                                  rc=int(rc), json=doc)
    return runs


def count_trace(trace):
    """{segment: {kind: count}} for descriptors between marker 2K and 2K + 1."""
    counts, seg, seen = {}, None, set()
    typed = {"vtd_inv_desc_iotlb_pages": "pages", "vtd_inv_desc_iotlb_domain": "domain",
             "vtd_inv_desc_iotlb_global": "global"}
    with open(trace, errors="replace") as f:
        for line in f:
            if line.startswith("vtd_dmar_fault"):
                m = re.search(r"addr 0x([0-9a-f]+)", line)
                addr = int(m.group(1), 16) if m else 0
                if MARK_BASE <= addr < MARK_BASE + MARK_SPAN:
                    mk = (addr - MARK_BASE) >> 12
                    seen.add(mk)
                    seg = mk // 2 if mk % 2 == 0 else None
                    if seg is not None:
                        counts.setdefault(seg, dict.fromkeys(KINDS, 0))
                continue
            if seg is None:
                continue
            name = line.split(" ", 1)[0]
            if name == "vtd_inv_desc":
                m = re.search(r"desc type (\S+)", line)
                kind = m.group(1) if m else "other"
                counts[seg][kind if kind in KINDS else "other"] += 1
            elif name in typed:
                counts[seg][typed[name]] += 1
    return counts, seen


def fmt(v, digits=3):
    if v is None:
        return "–"
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return "%.0f" % v
    return ("%%.%dg" % digits) % v


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    console, trace = argv[1], argv[2]
    out_json = argv[argv.index("--json") + 1] if "--json" in argv else None
    title = argv[argv.index("--title") + 1] if "--title" in argv else None
    runs = read_runs(console)
    counts, seen = count_trace(trace)
    configs = {}
    for seg, r in sorted(runs.items()):
        key = (r["backend"], r["policy"])
        c = configs.setdefault(key, {})
        c["one" if r["ops"] == 1 else "n"] = (seg, r)
    rows, problems = [], []
    for (be, pol), c in configs.items():
        if "one" not in c or "n" not in c:
            problems.append("%s %s: a run is missing" % (be, pol))
            continue
        (s1, r1), (sn, rn) = c["one"], c["n"]
        if s1 not in counts or sn not in counts or (2 * sn + 1) not in seen:
            problems.append("%s %s: markers missing in the trace (segments %d, %d)"
                            % (be, pol, s1, sn))
            continue
        if rn["json"] is None or r1["json"] is None:
            problems.append("%s %s: a run failed" % (be, pol))
            continue
        j = rn["json"]
        execs = rn["reps"] + (1 if j.get("breakdown_wall_ns") else 0)
        div = float((rn["ops"] - 1) * execs)
        ppo = j.get("pages_per_op") or 1
        per = {k: (counts[sn][k] - counts[s1][k]) / div for k in KINDS}
        row = dict(backend=be, policy=pol, ops=rn["ops"], reps=rn["reps"], executions=execs,
                   ns_per_op=j["ns_per_op"], ns_per_op_min=j["ns_per_op_min"],
                   ns_per_op_max=j["ns_per_op_max"],
                   lib_inval_per_page=j["inval_per_page"], lib_flushes=j["flushes"],
                   unmapped_pages=j["unmapped_pages"], window_p99_ns=j["window_ns"]["p99"],
                   unsafe_reuse=j["unsafe_reuse"], violations=j["violations"],
                   qemu_per_page={k: per[k] / ppo for k in KINDS},
                   qemu_raw={"ops_n": counts[sn], "ops_1": counts[s1]})
        rows.append(row)
    base = {r["backend"]: r["ns_per_op"] for r in rows if r["policy"] == "strict"}
    if title:
        print(title)
        print()
    print("| backend | policy | µs per op | vs strict | library flushes per page "
          "| QEMU IOTLB descriptors per page (page-sel. / domain) | wait descriptors per page "
          "| window p99 | unsafe reuse | bound violations |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        q = r["qemu_per_page"]
        vs = r["ns_per_op"] / base[r["backend"]] if r["backend"] in base else None
        win = r["window_p99_ns"]
        print("| %s | %s | %s (%s–%s) | %s | %s | %s (%s / %s) | %s | %s | %d | %d |" % (
            r["backend"], r["policy"], fmt(r["ns_per_op"] / 1e3), fmt(r["ns_per_op_min"] / 1e3),
            fmt(r["ns_per_op_max"] / 1e3), fmt(vs, 2) + "×" if vs else "–",
            fmt(r["lib_flushes"] / r["unmapped_pages"] if r["unmapped_pages"] else None), fmt(q["iotlb"]), fmt(q["pages"]), fmt(q["domain"]),
            fmt(q["wait"]), ("%.1f µs" % (win / 1e3)) if win else "–", r["unsafe_reuse"],
            r["violations"]))
    for p in problems:
        print("\nbench-summary: %s" % p)
    if out_json:
        with open(out_json, "w") as f:
            for r in rows:
                f.write(json.dumps(r, sort_keys=True) + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
