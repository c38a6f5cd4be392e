#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""The policy matrix on the sim, through the Python bindings: a NIC receive ring (one-page
buffers, each mapped, written by the device, unmapped) under strict, deferred and
safe-deferred, on a native IOMMU and on a nested one in caching mode (a vIOMMU). Prints a
table and plots the safety-window CDF with matplotlib (a table only when it is missing).

The CDF is drawn through the window report's quantiles (p50, p99, p99.9, max): the C API
exports no per-release histogram.

  IOVAQ_LIBRARY=build/libiovaq.so.0 python3 bindings/python/examples/policy_matrix.py
"""

import argparse
import collections
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import iovaq  # noqa: E402

MODELS = [("native", 0), ("nested+CM", 1 | 2)]  # IOVAQ_SIM_NESTED | IOVAQ_SIM_CACHING_MODE
POLICIES = ["strict", "deferred", "safe-deferred"]
PAGE = 4096


def run(model_flags, policy, ops, ring):
    with iovaq.Backend.open_sim(seed=1, flags=model_flags) as be:
        sim = be.sim
        free = collections.deque(iovaq.dma_buffer(PAGE) for _ in range(2 * ring))
        with iovaq.Domain(be, policy, on_complete=lambda slot: free.append(pending.pop(slot))) as dom:
            pending = {}
            slots = [None] * ring
            token = 0
            for i in range(ops):
                s = i % ring
                if slots[s] is not None:
                    iova, buf = slots[s]
                    token += 1
                    dom.unmap(iova, cookie=token)
                    if dom.policy == iovaq.Policy.SAFE_DEFERRED:
                        pending[token] = buf  # back at t_safe
                    else:
                        free.append(buf)
                if not free:
                    dom.poll()
                    if not free:
                        dom.sync()
                buf = free.popleft()
                iova = dom.map(buf, iovaq.Prot.WRITE)
                sim.dma_write(iova, b"\x5a" * 64)  # the device receives a packet
                slots[s] = (iova, buf)
            for s in slots:
                if s is not None:
                    token += 1
                    dom.unmap(s[0], cookie=token)
                    pending[token] = s[1]
            dom.sync()
            w, st = dom.window_report(), dom.stats()
        c = sim.counters()
    cpu = c["cpu_map_ns"] + c["cpu_unmap_ns"] + c["cpu_flush_ns"]
    return {"cmds_per_page": sum(c["inval_cmds"]) / max(w["released_pages"], 1),
            "window": w["window_ns"], "violations": w["violations"],
            "unsafe_reuse": w["unsafe_reuse"], "flushes": st["flushes"],
            "cpu_ns_per_op": cpu / ops}


def fmt_ns(ns):
    return "%.1f µs" % (ns / 1e3) if ns < 1e6 else "%.2f ms" % (ns / 1e6)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=20000, help="map+unmap operations per cell")
    ap.add_argument("--ring", type=int, default=1024, help="RX ring entries")
    ap.add_argument("--out", default="policy-window-cdf.png", help="PNG file of the plot")
    ap.add_argument("--no-plot", action="store_true", help="print the table only")
    a = ap.parse_args()
    results = {}
    print("%-10s %-14s %12s %10s %10s %10s %6s %6s %10s" % (
        "model", "policy", "cmds/page", "p50", "p99", "max", "viol", "unsafe", "cpu ns/op"))
    for mname, mflags in MODELS:
        for pol in POLICIES:
            r = run(mflags, pol, a.ops, a.ring)
            results[(mname, pol)] = r
            w = r["window"]
            print("%-10s %-14s %12.5f %10s %10s %10s %6d %6d %10.0f" % (
                mname, pol, r["cmds_per_page"], fmt_ns(w["p50"]), fmt_ns(w["p99"]),
                fmt_ns(w["max"]), r["violations"], r["unsafe_reuse"], r["cpu_ns_per_op"]))
    if a.no_plot:
        return 0
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not available (Debian: python3-matplotlib): table only")
        return 0
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (mname, pol), r in results.items():
        w = r["window"]
        xs = [max(w[k], 1) for k in ("p50", "p99", "p999", "max")]
        ax.step([xs[0]] + xs, [0, 0.5, 0.99, 0.999, 1.0], where="post",
                linestyle="-" if mname == "native" else "--", label="%s, %s" % (pol, mname))
    ax.set_xscale("log")
    ax.set_xlabel("safety window (ns, log scale)")
    ax.set_ylabel("fraction of releases")
    ax.set_title("Safety-window CDF on sim, nic-rx (through p50/p99/p99.9/max)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(a.out, dpi=100)
    print("plot: %s" % a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
