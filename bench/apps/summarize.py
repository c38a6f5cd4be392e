#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""Tables (Markdown) from the TAG.json files that bench/apps/run-apps.py wrote.

  bench/apps/summarize.py DIR...

Throughput: untraced runs only (QEMU's trace costs host time per descriptor), median over the
repetitions with every value in brackets, per NIC, caching mode and the policy the run got
(the NIC's default-domain type in the guest; a run that asked for lazy and got strict is
listed under "lazy->strict"). Descriptors per request: traced runs (--qemu-trace). Exit 1
when a run failed or no run was found.
"""
import collections
import glob
import json
import os
import statistics
import sys

MODES = ('strict', 'lazy', 'pt')
LOADS = (('mc', 'memcached (memcaslap), ops/s'), ('redis_set', 'Redis SET, req/s'),
         ('redis_get', 'Redis GET, req/s'), ('ng1k', 'nginx 1 KiB (wrk), req/s'),
         ('ng1m', 'nginx 1 MiB (wrk), MiB/s'))


def label(r):
    eff = r.get('effective')
    return r['mode'] if eff == r['mode'] else f'{r["mode"]}->{eff}'


def fmt(v):
    return f'{v:.0f}' if v >= 100 else f'{v:.1f}'


def main():
    runs = []
    for d in sys.argv[1:]:
        for f in sorted(glob.glob(os.path.join(d, '*.json'))):
            r = json.load(open(f))
            if 'loads' in r and 'mode' in r:
                runs.append(r)
    if not runs:
        print('summarize.py: no runs found in ' + ' '.join(sys.argv[1:]), file=sys.stderr)
        return 1
    failed = [r for r in runs if not r.get('ok')]
    tput = collections.defaultdict(list)   # (nic, cm, load, label) -> [rps]
    qcpu = collections.defaultdict(list)   # (nic, cm, load, label) -> [vCPU s per s]
    eff = collections.defaultdict(list)    # (nic, cm, load, label) -> [requests per vCPU s]
    lavg = collections.defaultdict(list)   # (nic, cm, label) -> [host load average]
    inv = {}                                # (nic, cm, load, label) -> {desc: per request}
    boots = collections.defaultdict(list)
    labels = set()
    for r in runs:
        if not r.get('ok'):
            continue
        lb = label(r)
        labels.add(lb)
        boots[(r['nic'], r['cm'], lb)].append(r)
        for ld, v in r['loads'].items():
            k = (r['nic'], r['cm'], ld, lb)
            if r.get('qemu_trace'):
                if v.get('inv_per_req') is not None:
                    inv[k] = v['inv_per_req']
                continue
            tput[k].append(v['rps'])
            lavg[(r['nic'], r['cm'], lb)].append(float(v.get('loadavg', 'nan')))
            cpu = v.get('qemu_cpu_s', {})
            vcpu = sum(s for t, s in cpu.items() if '/TCG' in t)
            main = sum(s for t, s in cpu.items() if '/TCG' not in t)
            qcpu[k].append((vcpu / v['elapsed_s'], main / v['elapsed_s']))
            req = v.get('requests') or v['rps'] * v['elapsed_s']
            if vcpu > 0:
                eff[k].append(req / vcpu)
    order = [m for m in MODES if m in labels] + sorted(labels - set(MODES))
    cfgs = sorted({(k[0], k[1]) for k in tput} | {(k[0], k[1]) for k in inv})
    for nic, cm in cfgs:
        if any(k[0] == nic and k[1] == cm for k in tput):
            print(f'\n### Throughput: {nic}, caching-mode={cm} (median [runs])\n')
            cols = [m for m in order if any(k[:2] == (nic, cm) and k[3] == m for k in tput)]
            print('| load | ' + ' | '.join(cols) + ' | pt / strict |')
            print('|---|' + '---:|' * (len(cols) + 1))
            for ld, name in LOADS:
                cells, med = [], {}
                for m in cols:
                    v = tput.get((nic, cm, ld, m), [])
                    if v:
                        med[m] = statistics.median(v)
                        cells.append(f'{fmt(med[m])} [{", ".join(fmt(x) for x in v)}]')
                    else:
                        cells.append('-')
                ratio = (f'{med["pt"] / med["strict"]:.2f}' if 'pt' in med and 'strict' in med
                         and med['strict'] else '-')
                print(f'| {name} | ' + ' | '.join(cells) + f' | {ratio} |')
            print('\nRequests (nginx 1 MiB: MiB) per CPU second of the TCG vCPU thread, median '
                  '[runs]: the guest\'s work per emulated CPU time, less sensitive to how much '
                  'of the host the vCPU thread got:\n')
            print('| load | ' + ' | '.join(cols) + ' | pt / strict |')
            print('|---|' + '---:|' * (len(cols) + 1))
            for ld, name in LOADS:
                cells, med = [], {}
                for m in cols:
                    v = eff.get((nic, cm, ld, m), [])
                    if v:
                        med[m] = statistics.median(v)
                        cells.append(f'{fmt(med[m])} [{", ".join(fmt(x) for x in v)}]')
                    else:
                        cells.append('-')
                ratio = (f'{med["pt"] / med["strict"]:.2f}' if 'pt' in med and 'strict' in med
                         and med['strict'] else '-')
                print(f'| {ld} | ' + ' | '.join(cells) + f' | {ratio} |')
            print('\nQEMU CPU per wall second during the load, median (TCG vCPU thread / other '
                  'threads: main loop with slirp, I/O):\n')
            print('| load | ' + ' | '.join(cols) + ' |')
            print('|---|' + '---:|' * len(cols))
            for ld, name in LOADS:
                cells = []
                for m in cols:
                    v = qcpu.get((nic, cm, ld, m), [])
                    cells.append(f'{statistics.median(x[0] for x in v):.2f} / '
                                 f'{statistics.median(x[1] for x in v):.2f}' if v else '-')
                print(f'| {ld} | ' + ' | '.join(cells) + ' |')
            print('| host load average (1 min, median over loads) | ' + ' | '.join(
                f'{statistics.median(lavg[(nic, cm, m)]):.1f}' for m in cols) + ' |')
        if any(k[:2] == (nic, cm) for k in inv):
            print(f'\n### VT-d invalidation descriptors per request: {nic}, caching-mode={cm} '
                  '(one traced run; page-selective IOTLB / domain IOTLB / wait)\n')
            cols = [m for m in order if any(k[:2] == (nic, cm) and k[3] == m for k in inv)]
            print('| load | ' + ' | '.join(cols) + ' |')
            print('|---|' + '---:|' * len(cols))
            for ld, name in LOADS:
                cells = []
                for m in cols:
                    v = inv.get((nic, cm, ld, m))
                    if v is None:
                        cells.append('-')
                        continue
                    cells.append(' / '.join(f'{v.get(d, 0):g}' for d in (
                        'vtd_inv_desc_iotlb_pages', 'vtd_inv_desc_iotlb_domain',
                        'vtd_inv_desc_wait_sw')))
                print(f'| {ld} | ' + ' | '.join(cells) + ' |')
    print('\n### Boots: what each policy gave the NIC\n')
    print('| NIC | caching-mode | asked | NIC domain type | "batching disallowed" in dmesg '
          '| boots | boot to READY, host s (median) |')
    print('|---|---|---|---|---|---:|---:|')
    for (nic, cm, lb), rs in sorted(boots.items()):
        r = rs[0]
        print(f'| {nic} | {cm} | {r["mode"]} | {r["nic_info"].get("group_type")} | '
              f'{"yes" if r.get("batching_disallowed") else "no"} | {len(rs)} | '
              f'{statistics.median(x["boot_host_s"] for x in rs):.1f} |')
    if failed:
        print('\n### Failed runs\n')
        for r in failed:
            print(f'- {r["tag"]}: {r.get("error", "a load gave no figure")}')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
