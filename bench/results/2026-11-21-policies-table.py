#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""Tables and target checks of 2026-11-21-policies.md from the JSON Lines of
2026-11-21-policies.sh:  bench/results/2026-11-21-policies-table.py RUNS.jsonl"""
import json
import sys

runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
POL = ["strict", "deferred", "safe-deferred", "safe-deferred+arenas", "passthrough"]
WL = ["nic-rx", "nic-tx", "memcached", "nginx"]


def ns(v):
    if v is None:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.1f} ms"
    if v >= 1e3:
        return f"{v / 1e3:.1f} us"
    return f"{v:.0f} ns"


def f(v, fmt):
    return "-" if v is None else format(v, fmt)


def find(**kw):
    for r in runs:
        if all(r.get(k) == v for k, v in kw.items()):
            return r
    return None


def inv(r):
    p = r["inval_per_page"]
    if p is None or p == 0:
        return "0"
    return f"{p:.4f} (1/{1 / p:.0f})" if p < 0.5 else f"{p:.3f}"


for bg in (0, 4096):
    for model in ("native", "nested+cm"):
        rows = [r for r in runs if r["background"] == bg and r["model"] == model
                and r["threads"] == 1]
        if not rows:
            continue
        print(f"\n#### {model}, background {bg}\n")
        print("| workload | policy | ns/op | spread | inval/pg | win p50 | win p99 | win max "
              "| reach max | unsafe | viol | IOTLB miss | PSC miss/pg | walk refs/pg "
              "| dev ns/pg | cpu ns/op (model) | foreign CPU |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for wl in WL:
            for pol in POL:
                r = find(background=bg, model=model, workload=wl, policy=pol, threads=1)
                if not r:
                    continue
                w = r["window_ns"]
                rel = r["releases"] > 0
                spread = (r["ns_per_op_max"] - r["ns_per_op_min"]) / r["ns_per_op"]
                fc = r["foreign_cpu_share"]
                print(f"| {wl} | {pol} | {r['ns_per_op']:.0f} | {100 * spread:.0f}% | {inv(r)} "
                      f"| {ns(w['p50']) if rel else '-'} | {ns(w['p99']) if rel else '-'} "
                      f"| {ns(w['max']) if rel else '-'} | {r['reachable_pages_max']} "
                      f"| {r['unsafe_reuse']} | {r['violations']} "
                      f"| {f(r['iotlb_miss_rate'], '.3f')} | {f(r['ptcache_miss_per_page'], '.4f')} "
                      f"| {f(r['walk_refs_per_page'], '.3f')} | {f(r['modeled_device_ns'], '.1f')} "
                      f"| {f(r['modeled_cpu_ns_per_op'], '.0f')} "
                      f"| {'-' if fc is None else f'{100 * fc:.0f}%'} |")

rows = [r for r in runs if r["threads"] > 1]
if rows:
    print("\n#### nic-rx, 2 threads on one domain, background 0\n")
    print("| model | policy | ns/op | inval/pg | win p99 | win max | reach max | unsafe | viol "
          "| flushes (full/age/reach) | foreign CPU |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for r in rows:
        w = r["window_ns"]
        fr = r["flush_reasons"]
        fc = r["foreign_cpu_share"]
        print(f"| {r['model']} | {r['policy']} | {r['ns_per_op']:.0f} | {inv(r)} | {ns(w['p99'])} "
              f"| {ns(w['max'])} | {r['reachable_pages_max']} | {r['unsafe_reuse']} "
              f"| {r['violations']} | {r['flushes']} ({fr['full']}/{fr['age']}/{fr['reachable']}) "
              f"| {'-' if fc is None else f'{100 * fc:.0f}%'} |")

print("\n#### Target 1: nic-rx, deferred and safe-deferred, default bounds, background 0\n")
print("| model | policy | inval/pg | <= 1/256 | win p99 | <= bound | viol | verdict |")
print("|---|---|---:|---|---:|---|---:|---|")
for model in ("native", "nested+cm"):
    for pol in ("deferred", "safe-deferred"):
        r = find(background=0, model=model, workload="nic-rx", policy=pol, threads=1)
        if not r:
            continue
        a = r["inval_per_page"] <= 1 / 256
        b = r["window_ns"]["p99"] <= r["max_window_ns"]
        c = r["violations"] == 0
        print(f"| {model} | {pol} | {inv(r)} | {'yes' if a else 'NO'} | {ns(r['window_ns']['p99'])} "
              f"| {'yes' if b else 'NO'} | {r['violations']} | {'pass' if a and b and c else 'FAIL'} |")

print("\n#### Target 2: safe-deferred+arenas against strict with scattered IOVAs (background 4096)\n")
print("| model | workload | walk refs/pg strict / arenas | ratio (>= 10x) | PSC miss/pg strict / arenas "
      "| ratio | inval cmds strict / arenas | ratio (>= 64x) |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for model in ("native", "nested+cm"):
    for wl in WL:
        s = find(background=4096, model=model, workload=wl, policy="strict", threads=1)
        a = find(background=4096, model=model, workload=wl, policy="safe-deferred+arenas",
                 threads=1)
        if not s or not a:
            continue
        wr = s["walk_refs_per_page"] / a["walk_refs_per_page"]
        pr = (s["ptcache_miss_per_page"] / a["ptcache_miss_per_page"]
              if a["ptcache_miss_per_page"] else float("inf"))
        # per unmapped page, so that runs of different lengths compare
        ir = s["inval_per_page"] / a["inval_per_page"] if a["inval_per_page"] else float("inf")
        print(f"| {model} | {wl} | {s['walk_refs_per_page']:.3f} / {a['walk_refs_per_page']:.3f} "
              f"| {wr:.2f}x {'pass' if wr >= 10 else 'FAIL'} "
              f"| {s['ptcache_miss_per_page']:.4f} / {a['ptcache_miss_per_page']:.4f} | {pr:.0f}x "
              f"| {s['inval_cmds']} / {a['inval_cmds']} | {ir:.0f}x {'pass' if ir >= 64 else 'FAIL'} |")

print("\n#### Target 3: what strict costs (background 0)\n")
print("| model | workload | ns/op strict / passthrough / safe-deferred / arenas "
      "| cpu ns/op (model) strict / safe-deferred / arenas | dev ns/pg strict / arenas "
      "| traps/op strict / safe-deferred |")
print("|---|---|---|---|---|---|")
for model in ("native", "nested+cm"):
    for wl in WL:
        r = {p: find(background=0, model=model, workload=wl, policy=p, threads=1) for p in POL}
        if not all(r.values()):
            continue
        s, p, d, a = r["strict"], r["passthrough"], r["safe-deferred"], r["safe-deferred+arenas"]
        print(f"| {model} | {wl} | {s['ns_per_op']:.0f} / {p['ns_per_op']:.0f} / "
              f"{d['ns_per_op']:.0f} / {a['ns_per_op']:.0f} "
              f"| {s['modeled_cpu_ns_per_op']:.0f} / {d['modeled_cpu_ns_per_op']:.0f} / "
              f"{a['modeled_cpu_ns_per_op']:.0f} "
              f"| {s['modeled_device_ns']:.1f} / {a['modeled_device_ns']:.1f} "
              f"| {s['traps_per_op']:.2f} / {d['traps_per_op']:.2f} |")
