#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""Join a kernel-glue bench guest's console with QEMU's VT-d trace (tests/vm/kglue/bench.sh).

    bench-summary.py CONSOLE TRACE [--times CONSOLE2] [--title T] [--json OUT.jsonl]

Run K of the guest (a "kglue-bench-k: K" line, then one "kglue-bench-run: key=value ..." line)
sits between two DMAR faults in the trace, at IOVAs 0x40000000 + 2K * 4096 and + (2K + 1) *
4096 (kshim_edu mark). The invalidation descriptors between them are run K's: IOTLB
descriptors (page-selective, domain, global) and wait descriptors, per map+unmap pair, and the
same net of the median count of the idle intervals (a "kglue-bench-idle: K" line: markers with
nothing between them, so the markers' own bind and release). Prints
a Markdown table of medians over the repetitions of each configuration, with ratios against
kernel-side strict (iommu_map + iommu_unmap per page) and iommufd strict of the same guest,
and the library's own cost: the in-kernel domain's time over the same IOMMU calls made
without the library (kernel-raw-sg: strict against groups of 1, arenas against groups of the
arena's size), and how much of it describing fresh pages takes (kernel-raw-sg-build).

QEMU's trace costs the emulator time per descriptor (a log line each): with --times, the times
come from CONSOLE2, a boot of the same runs without the trace (bench.sh does both), and the
traced times are shown beside them. Ratios are given as ratios of medians and as the median of
the ratios within each repetition (each repetition runs every configuration once, in turn, so
the two runs of a pair saw the same machine load).
"""
import argparse
import json
import re
import statistics
import sys

MARK_BASE = 0x40000000


def runs_of(console):
    """The runs (dicts of a kglue-bench-run line, with k) and the idle intervals' K."""
    runs, idle, k = [], [], None
    for line in open(console, errors="replace"):
        m = re.search(r"kglue-bench-k: (\d+)", line)
        if m:
            k = int(m.group(1))
            continue
        m = re.search(r"kglue-bench-idle: (\d+)", line)
        if m:
            idle.append(int(m.group(1)))
            k = None
            continue
        m = re.search(r"kglue-bench-run: (.*)", line)
        if m and k is not None:
            d = dict(kv.split("=", 1) for kv in m.group(1).split())
            d["k"] = k
            runs.append(d)
            k = None
    return runs, idle


def counts_of(trace):
    """Per marker interval K: {iotlb, wait, pages, domain, global, all}."""
    cur, out = None, {}
    fault = re.compile(r"vtd_dmar_fault .*addr (0x[0-9a-f]+)")
    for line in open(trace, errors="replace"):
        m = fault.search(line)
        if m:
            a = int(m.group(1), 16)
            if a >= MARK_BASE and (a - MARK_BASE) % 4096 == 0:
                mk = (a - MARK_BASE) // 4096
                if mk % 2 == 0 and mk // 2 not in out:
                    cur = mk // 2
                    out[cur] = dict(iotlb=0, wait=0, pages=0, domain=0, glob=0, all=0)
                elif mk % 2 == 1 and cur == mk // 2:
                    cur = None
            continue
        if cur is None or "vtd_inv_desc" not in line:
            continue
        c = out[cur]
        if "invalidate desc type" in line:
            c["all"] += 1
            if "type iotlb" in line:
                c["iotlb"] += 1
            elif "type wait" in line:
                c["wait"] += 1
        elif "vtd_inv_desc_iotlb_pages" in line:
            c["pages"] += 1
        elif "vtd_inv_desc_iotlb_domain" in line:
            c["domain"] += 1
        elif "vtd_inv_desc_iotlb_global" in line:
            c["glob"] += 1
    return out


def name_of(r):
    who = {"kernel-raw": "kernel-side strict (iommu_map + iommu_unmap per page)",
           "kernel-raw-sg": "raw IOMMU calls of the library's path, no library "
                            "(iommu_map_sg + iommu_unmap_fast + iommu_iotlb_sync per %s page%s)"
                            % (r["arena"], "" if r["arena"] == "1" else "s"),
           "kernel-raw-sg-build": "the same, each link's scatterlist built as the backend "
                                  "builds it (per %s page%s)"
                                  % (r["arena"], "" if r["arena"] == "1" else "s"),
           "kernel": "in-kernel domain", "kshim": "kshim (libiovaq, userspace)",
           "iommufd": "iommufd (libiovaq, userspace)"}[r["what"]]
    pol = r["policy"] + (" + arenas of %s" % r["arena"] if r["arena"] != "0" else "")
    return who if r["what"].startswith("kernel-raw") else "%s, %s" % (who, pol)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("console")
    ap.add_argument("trace")
    ap.add_argument("--times", help="console of an untraced boot of the same runs")
    ap.add_argument("--title", default="kernel-glue bench")
    ap.add_argument("--json")
    a = ap.parse_args()
    (runs, idle), counts = runs_of(a.console), counts_of(a.trace)
    if not runs:
        sys.exit("bench-summary.py: no kglue-bench-run lines in " + a.console)
    groups, problems = {}, []
    # The descriptors of an interval with nothing in it: the markers' own bind and release.
    idle_all = [counts[k]["all"] for k in idle if k in counts]
    base_all = statistics.median(idle_all) if idle_all else 0
    for r in runs:
        c = counts.get(r["k"])
        if c is None:
            problems.append("run %d: its markers are not in the trace" % r["k"])
            continue
        pairs = int(r["pairs"])
        g = groups.setdefault(name_of(r), [])
        g.append(dict(us=float(r["us_per_pair"]), iotlb=c["iotlb"] / pairs,
                      wait=c["wait"] / pairs, all=c["all"] / pairs,
                      net=max(c["all"] - base_all, 0) / pairs, pages=c["pages"],
                      domain=c["domain"], glob=c["glob"], unsafe=int(r["unsafe_reuse"]),
                      viol=int(r["violations"]), pairs=pairs,
                      backend=int(r.get("backend_ns", 0)) / 1e3 / pairs,
                      iommu=int(r.get("iommu_ns", 0)) / 1e3 / pairs, run=r))
    # Times: of the untraced boot if there is one (by configuration, in repetition order).
    timed = {}
    if a.times:
        truns, _ = runs_of(a.times)
        for r in truns:
            timed.setdefault(name_of(r), []).append(float(r["us_per_pair"]))
        for n, g in groups.items():
            if not timed.get(n):
                problems.append("%s: no run in the untraced console" % n)
    for n, g in groups.items():
        for x in g:
            x["us_traced"] = x["us"]
    series = {n: timed.get(n) or [x["us"] for x in g] for n, g in groups.items()}
    med = {n: dict(us=statistics.median(series[n]), us_min=min(series[n]),
                   us_traced=statistics.median(x["us_traced"] for x in g),
                   iotlb=statistics.median(x["iotlb"] for x in g),
                   wait=statistics.median(x["wait"] for x in g),
                   all=statistics.median(x["all"] for x in g),
                   net=statistics.median(x["net"] for x in g),
                   backend=statistics.median(x["backend"] for x in g),
                   iommu=statistics.median(x["iommu"] for x in g),
                   domain=max(x["domain"] for x in g), unsafe=max(x["unsafe"] for x in g),
                   n=len(series[n])) for n, g in groups.items()}

    def paired(num, den):
        """Median over repetitions of num's time / den's time in the same repetition."""
        a_, b_ = series.get(name_of(num)), series.get(name_of(den))
        if not a_ or not b_:
            return None
        return statistics.median(x / y for x, y in zip(a_, b_))

    base = med.get(name_of(dict(what="kernel-raw", policy="strict", arena="0")))
    ifd = med.get(name_of(dict(what="iommufd", policy="strict", arena="0")))
    print("### " + a.title + "\n")
    if a.times:
        print("Times from the boot without QEMU's trace (%s); \"traced\" is the same runs' "
              "time in the boot with it (descriptor counts).\n" % a.times)
    print("| configuration | µs/pair | traced µs/pair | IOTLB desc/pair | wait desc/pair | all desc/pair | "
          "net desc/pair | time vs kernel strict | time vs iommufd strict | "
          "desc vs iommufd strict | net desc vs iommufd strict | domain-wide | unsafe reuse | "
          "runs |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, m in med.items():
        def ratio(b, key):
            return "%.1f×" % (b[key] / m[key]) if b and m[key] else "–"
        print("| %s | %.2f | %.2f | %.3f | %.3f | %.3f | %.4f | %s | %s | %s | %s | %d | %d | "
              "%d |" % (
            n, m["us"], m["us_traced"], m["iotlb"], m["wait"], m["all"], m["net"], ratio(base, "us"),
            ratio(ifd, "us"), ratio(ifd, "all"), ratio(ifd, "net"), m["domain"], m["unsafe"],
            m["n"]))
    if idle_all:
        print("\nnet: less the descriptors of an interval with no run in it (the markers' own "
              "bind and release), median %g over %d intervals (%s)." % (
                  base_all, len(idle_all), ", ".join("%d" % x for x in idle_all)))
    # Issue 7's time targets, as paired ratios too.
    tl = []
    for lab, who in (("in-kernel domain", dict(what="kernel", policy="safe-deferred", arena="64")),
                     ("in-kernel domain", dict(what="kernel", policy="safe-deferred",
                                               arena="256")),
                     ("kshim from userspace", dict(what="kshim", policy="safe-deferred",
                                                   arena="64"))):
        for blab, b in (("kernel-side strict", dict(what="kernel-raw", policy="strict",
                                                     arena="0")),
                        ("iommufd strict", dict(what="iommufd", policy="strict", arena="0"))):
            r = paired(b, who)
            if r:
                tl.append("- %s, safe-deferred + arenas of %s, vs %s: %.1f× (median of the "
                          "%d repetitions' ratios)" % (lab, who["arena"], blab, r,
                                                       len(series[name_of(who)])))
    if tl:
        print("\nTime ratios paired by repetition:\n")
        print("\n".join(tl))
    # The library's own cost: the same IOMMU calls with and without it.
    pairs = [("strict", "1", dict(what="kernel", policy="strict", arena="0")),
             ("safe-deferred + arenas of 64", "64",
              dict(what="kernel", policy="safe-deferred", arena="64")),
             ("safe-deferred + arenas of 256", "256",
              dict(what="kernel", policy="safe-deferred", arena="256"))]
    lines = []
    for label, gp, lib in pairs:
        raw = med.get(name_of(dict(what="kernel-raw-sg", policy="strict", arena=gp)))
        built = med.get(name_of(dict(what="kernel-raw-sg-build", policy="strict", arena=gp)))
        m = med.get(name_of(lib))
        if raw and m:
            line = ("- in-kernel domain, %s: %.2f µs/pair against %.2f without the library: "
                    "%+.0f%%" % (label, m["us"], raw["us"], 100 * (m["us"] / raw["us"] - 1)))
            if built:
                line += ("; building each map's scatterlist as the backend does takes the raw "
                         "calls to %.2f (%+.0f%%), the rest is %+.0f%% over that" % (
                             built["us"], 100 * (built["us"] / raw["us"] - 1),
                             100 * (m["us"] / built["us"] - 1)))
            # Contention from other work on the host only adds time: the fastest run of each
            # configuration is the least disturbed one.
            line += ("; fastest runs: %.2f against %.2f, %+.0f%%" % (
                m["us_min"], raw["us_min"], 100 * (m["us_min"] / raw["us_min"] - 1)))
            if built:
                line += " (built: %.2f, %+.0f%%)" % (
                    built["us_min"], 100 * (m["us_min"] / built["us_min"] - 1))
            pr = paired(lib, dict(what="kernel-raw-sg", policy="strict", arena=gp))
            pb = paired(lib, dict(what="kernel-raw-sg-build", policy="strict", arena=gp))
            if pr:
                line += "; paired by repetition: %+.0f%% over the raw calls" % (100 * (pr - 1))
                if pb:
                    line += ", %+.0f%% over the built ones" % (100 * (pb - 1))
            lines.append(line)
    if lines:
        print("\nThe library's own cost (the same IOMMU calls with and without it, medians):\n")
        print("\n".join(lines))
    # With iovaq.ko's timing=1 (bench.sh -t): the in-kernel domain's time, split.
    split = [(n, m) for n, m in med.items() if m["backend"] > 0]
    if split:
        print("\nWhere the in-kernel domain's time goes (timing=1, medians, µs per pair; the "
              "clock reads add time of their own):\n")
        print("| configuration | total | core (total - backend) | backend ops | of which "
              "IOMMU calls | backend bookkeeping |")
        print("|---|---:|---:|---:|---:|---:|")
        for n, m in split:
            print("| %s | %.2f | %.2f | %.2f | %.2f | %.2f |" % (
                n, m["us"], m["us"] - m["backend"], m["backend"], m["iommu"],
                m["backend"] - m["iommu"]))
    for p in problems:
        print("\nproblem: " + p)
    if a.json:
        with open(a.json, "w") as f:
            for n, g in groups.items():
                f.write(json.dumps(dict(configuration=n, median=med[n], runs=g,
                                        untraced_us=timed.get(n, []))) + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
