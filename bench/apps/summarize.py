#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""Tables (Markdown) and plots from the TAG.json files that bench/apps/run-apps.py wrote.

  bench/apps/summarize.py [--plots PLOTDIR] DIR...

Throughput: runs without QEMU's trace and without perf only (the trace costs host time per
descriptor, perf a little per sample), median over the repetitions with every value in
brackets, per NIC, caching mode and the policy the run got (the NIC's default-domain type in
the guest; a run that asked for lazy and got strict is listed under "lazy->strict").
Descriptors per request: traced runs (--qemu-trace). Where QEMU spends its time: runs with
--perf, the host's cpu-clock samples of the QEMU process per thread and object file.

--plots PLOTDIR: the data as text files and one gnuplot script (plots.gp) in PLOTDIR, and
gnuplot run there (the files stay: "gnuplot plots.gp" redraws them):
  apps-throughput.png   throughput per load, policy and NIC (caching-mode=off): median bars,
                        the runs' lowest and highest as error bars
  apps-inv-per-req.png  VT-d invalidation descriptors (page-selective + domain + global) per
                        request, per load, policy, NIC and caching mode; log scale, so
                        passthrough's zero has no bar
  apps-qemu-time.png    where QEMU's CPU time goes per load and policy (perf runs), stacked
Without gnuplot the data and the script are still written and a note says so.

Exit 1 when a run failed, no run was found, or gnuplot failed.
"""
import collections
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys

MODES = ('strict', 'lazy', 'pt')
INV_KINDS = ('vtd_inv_desc_iotlb_pages', 'vtd_inv_desc_iotlb_domain', 'vtd_inv_desc_iotlb_global')
LOADS = (('mc', 'memcached (memcaslap), ops/s'), ('redis_set', 'Redis SET, req/s'),
         ('redis_get', 'Redis GET, req/s'), ('ng1k', 'nginx 1 KiB (wrk), req/s'),
         ('ng1m', 'nginx 1 MiB (wrk), MiB/s'))


def label(r):
    eff = r.get('effective')
    return r['mode'] if eff == r['mode'] else f'{r["mode"]}->{eff}'


def fmt(v):
    return f'{v:.0f}' if v >= 100 else f'{v:.1f}'


# Where QEMU's time goes (perf runs): the host's samples of the QEMU process grouped by thread
# (the TCG vCPU thread, everything else: the main loop with slirp, RCU, workers) and object.
PERF_CATS = (
    ('vcpu_jit', 'vCPU: guest code (TCG-translated)'),
    ('vcpu_qemu', 'vCPU: QEMU (TCG runtime, softmmu, devices, VT-d)'),
    ('vcpu_kernel', 'vCPU: host kernel'),
    ('vcpu_lib', 'vCPU: libraries'),
    ('main_slirp', 'main: libslirp'),
    ('main_qemu', 'main: QEMU (main loop, devices)'),
    ('main_kernel', 'main: host kernel (sockets, poll)'),
    ('main_lib', 'main: libc, glib'),
)


def perf_cat(comm, dso):
    side = 'vcpu' if '/TCG' in comm else 'main'
    if dso.startswith('[JIT]') or dso in ('[unknown]', '//anon'):
        return 'vcpu_jit' if side == 'vcpu' else 'main_lib'
    if dso.startswith('[kernel') or dso == '[vdso]':
        return side + '_kernel'
    if dso.startswith('qemu-system'):
        return side + '_qemu'
    if 'slirp' in dso and side == 'main':
        return 'main_slirp'
    return side + '_lib'


def perf_shares(v):
    """Per category, % of the load's samples (None when the load has no perf figures)."""
    p = v.get('perf')
    if not p:
        return None
    c = collections.Counter()
    for row in p['by_thread_object']:
        c[perf_cat(row[1], row[2])] += row[0]
    return c


def gp_quote(s):
    return "'" + s.replace("'", "''") + "'"


def plots(pdir, tput, inv, perf, order):
    """Write the plot data and plots.gp into pdir and run gnuplot; 0 or 1 (gnuplot failed)."""
    os.makedirs(pdir, exist_ok=True)
    gp = ['# bench/apps/summarize.py --plots: redraw with "gnuplot plots.gp"',
          "set terminal pngcairo size 1500,900 font ',10' noenhanced",
          'set style data histograms', 'set style fill solid 0.85 border -1',
          'set boxwidth 0.9', 'set grid ytics', 'set key top left', 'set xtics nomirror']
    loads = [(ld, name) for ld, name in LOADS]
    nics = sorted({k[0] for k in tput if k[1] == 'off'})
    if tput:
        cols = [m for m in order if any(k[3] == m and k[1] == 'off' for k in tput)]
        gp += ["set output 'apps-throughput.png'", 'set style histogram errorbars gap 2 lw 1',
               "set multiplot layout 2,3 title 'Throughput in the TCG guest, caching-mode=off: "
               "median, lowest and highest run'"]
        for ld, name in loads:
            fn = f'throughput-{ld}.dat'
            have = [m for m in cols if any(tput.get((nic, 'off', ld, m)) for nic in nics)]
            with open(os.path.join(pdir, fn), 'w') as f:
                f.write('# nic ' + ' '.join(f'{m}_median {m}_min {m}_max' for m in cols) + '\n')
                for nic in nics:
                    row = [nic]
                    for m in cols:
                        v = tput.get((nic, 'off', ld, m), [])
                        row += ([f'{statistics.median(v):g}', f'{min(v):g}', f'{max(v):g}']
                                if v else ['NaN'] * 3)
                    f.write(' '.join(row) + '\n')
            if not have:
                continue
            gp.append(f'set title {gp_quote(name)}')
            gp.append('set yrange [0:*]')
            # gnuplot rejects a histogram column without one valid point: plot those with data.
            gp.append('plot ' + ', '.join(
                f"{gp_quote(fn)} using {2 + 3 * i}:{3 + 3 * i}:{4 + 3 * i}:xtic(1)"
                f" title {gp_quote(m)}" for i, m in enumerate(cols) if m in have))
        gp += ['unset multiplot', 'set yrange [*:*]']
    if inv:
        cfgs = sorted({(k[0], k[1]) for k in inv})
        cols = [m for m in order if any(k[3] == m for k in inv)]
        gp += ["set output 'apps-inv-per-req.png'", 'set style histogram clustered gap 2',
               'set logscale y', 'set format y "%g"',
               "set multiplot layout 2,3 title 'VT-d invalidation descriptors per request "
               "(page-selective + domain + global; QEMU trace; passthrough: none)'"]
        for ld, name in loads:
            fn = f'inv-{ld}.dat'
            tot = {(c, m): sum(inv[(c[0], c[1], ld, m)].get(d, 0) for d in INV_KINDS)
                   for c in cfgs for m in cols if (c[0], c[1], ld, m) in inv}
            have = [m for m in cols if any(tot.get((c, m), 0) > 0 for c in cfgs)]
            with open(os.path.join(pdir, fn), 'w') as f:
                f.write('# nic,cm ' + ' '.join(cols) + '\n')
                for nic, cm in cfgs:
                    row = [f'{nic}/cm-{cm}']
                    for m in cols:
                        t = tot.get(((nic, cm), m), 0)
                        row.append(f'{t:g}' if t > 0 else 'NaN')
                    f.write(' '.join(row) + '\n')
            if not have:
                continue
            gp.append(f'set title {gp_quote(name.split(",")[0] + ", descriptors per request")}')
            gp.append('plot ' + ', '.join(
                f"{gp_quote(fn)} using {2 + i}:xtic(1) title {gp_quote(m)}"
                for i, m in enumerate(cols) if m in have))
        gp += ['unset multiplot', 'unset logscale y']
    if perf:
        cfgs = sorted({(k[0], k[1]) for k in perf})
        cols = [m for m in order if any(k[3] == m for k in perf)]
        gp += ["set output 'apps-qemu-time.png'", 'set style histogram rowstacked',
               'set yrange [0:100]', "set ylabel '% of QEMU samples'", 'set key outside right',
               f"set multiplot layout {len(cfgs)},1 title 'Where QEMU spends its time "
               "(host perf, cpu-clock, one run per policy)'"]
        for nic, cm in cfgs:
            fn = f'qemu-time-{nic}-cm{cm}.dat'
            with open(os.path.join(pdir, fn), 'w') as f:
                f.write('# load/policy ' + ' '.join(c for c, _ in PERF_CATS) + '\n')
                for ld, _ in loads:
                    for m in cols:
                        c = perf.get((nic, cm, ld, m))
                        if c is None:
                            continue
                        cells = ' '.join(f'{c.get(k, 0):.2f}' for k, _ in PERF_CATS)
                        f.write(f'{ld}/{m.replace(">", "")} {cells}\n')
            gp.append(f'set title {gp_quote(f"{nic}, caching-mode={cm}")}')
            gp.append('plot ' + ', '.join(
                f"{gp_quote(fn)} using {2 + i}:xtic(1) title {gp_quote(t)}"
                for i, (_, t) in enumerate(PERF_CATS)))
        gp += ['unset multiplot']
    with open(os.path.join(pdir, 'plots.gp'), 'w') as f:
        f.write('\n'.join(gp) + '\n')
    if not shutil.which('gnuplot'):
        print(f'summarize.py: gnuplot not found: {pdir}/plots.gp and its data are written, no PNG '
              '(Debian: apt-get install gnuplot-nox, or bash scripts/setup.sh)', file=sys.stderr)
        return 0
    p = subprocess.run(['gnuplot', 'plots.gp'], cwd=pdir, capture_output=True, text=True,
                       timeout=120)
    if p.returncode != 0:
        print(f'summarize.py: gnuplot failed in {pdir}: {p.stderr.strip()[-600:]}',
              file=sys.stderr)
        return 1
    return 0


def median_rows(data, tput, nic, cm, cols, named=True):
    """One table row per load measured for (nic, cm): each mode's median with its runs, and
    passthrough over strict. The first cell is the load's name with its unit (@named), or its
    key where the unit is the table's own."""
    for ld, name in [x for x in LOADS if any(k[:3] == (nic, cm, x[0]) for k in tput)]:
        cells, med = [], {}
        for m in cols:
            v = data.get((nic, cm, ld, m), [])
            if v:
                med[m] = statistics.median(v)
                cells.append(f'{fmt(med[m])} [{", ".join(fmt(x) for x in v)}]')
            else:
                cells.append('-')
        ratio = (f'{med["pt"] / med["strict"]:.2f}' if 'pt' in med and 'strict' in med
                 and med['strict'] else '-')
        print(f'| {name if named else ld} | ' + ' | '.join(cells) + f' | {ratio} |')


def main():
    args = sys.argv[1:]
    pdir = None
    if args[:1] == ['--plots']:
        if len(args) < 2:
            print(__doc__, file=sys.stderr)
            return 2
        pdir, args = args[1], args[2:]
    runs = []
    for d in args:
        for f in sorted(glob.glob(os.path.join(d, '*.json'))):
            r = json.load(open(f))
            if 'loads' in r and 'mode' in r:
                runs.append(r)
    if not runs:
        print('summarize.py: no runs found in ' + ' '.join(args), file=sys.stderr)
        return 1
    failed = [r for r in runs if not r.get('ok')]
    tput = collections.defaultdict(list)   # (nic, cm, load, label) -> [rps]
    qcpu = collections.defaultdict(list)   # (nic, cm, load, label) -> [vCPU s per s]
    eff = collections.defaultdict(list)    # (nic, cm, load, label) -> [requests per vCPU s]
    lavg = collections.defaultdict(list)   # (nic, cm, label) -> [host load average]
    inv = {}                                # (nic, cm, load, label) -> {desc: per request}
    perf = {}                               # (nic, cm, load, label) -> {category: %}
    perf_cpu = {}                           # (nic, cm, load, label) -> QEMU CPU s per wall s
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
            if r.get('perf'):
                if perf_shares(v) is not None:
                    perf[k] = perf_shares(v)
                    perf_cpu[k] = sum(v.get('qemu_cpu_s', {}).values()) / v['elapsed_s']
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
    cfgs = sorted({(k[0], k[1]) for k in tput} | {(k[0], k[1]) for k in inv}
                  | {(k[0], k[1]) for k in perf})
    for nic, cm in cfgs:
        if any(k[0] == nic and k[1] == cm for k in tput):
            print(f'\n### Throughput: {nic}, caching-mode={cm} (median [runs])\n')
            cols = [m for m in order if any(k[:2] == (nic, cm) and k[3] == m for k in tput)]
            print('| load | ' + ' | '.join(cols) + ' | pt / strict |')
            print('|---|' + '---:|' * (len(cols) + 1))
            median_rows(tput, tput, nic, cm, cols)
            print('\nRequests (nginx 1 MiB: MiB) per CPU second of the TCG vCPU thread, median '
                  '[runs]: the guest\'s work per emulated CPU time, less sensitive to how much '
                  'of the host the vCPU thread got:\n')
            print('| load | ' + ' | '.join(cols) + ' | pt / strict |')
            print('|---|' + '---:|' * (len(cols) + 1))
            median_rows(eff, tput, nic, cm, cols, named=False)
            print('\nQEMU CPU per wall second during the load, median (TCG vCPU thread / other '
                  'threads: main loop with slirp, I/O):\n')
            print('| load | ' + ' | '.join(cols) + ' |')
            print('|---|' + '---:|' * len(cols))
            for ld, name in [x for x in LOADS if any(k[:3] == (nic, cm, x[0]) for k in tput)]:
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
            for ld, name in [x for x in LOADS if any(k[:3] == (nic, cm, x[0]) for k in inv)]:
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
        if any(k[:2] == (nic, cm) for k in perf):
            print(f'\n### Where QEMU spends its time: {nic}, caching-mode={cm} (host perf, '
                  'cpu-clock at 499 Hz on every QEMU thread during the load; % of samples)\n')
            cols = [m for m in order if any(k[:2] == (nic, cm) and k[3] == m for k in perf)]
            print('| load | policy | QEMU CPU s/s | ' + ' | '.join(t for _, t in PERF_CATS) + ' |')
            print('|---|---|' + '---:|' * (len(PERF_CATS) + 1))
            for ld, name in LOADS:
                for m in cols:
                    c = perf.get((nic, cm, ld, m))
                    if c is None:
                        continue
                    print(f'| {ld} | {m} | {perf_cpu[(nic, cm, ld, m)]:.2f} | '
                          + ' | '.join(f'{c.get(k, 0):.1f}' for k, _ in PERF_CATS) + ' |')
    print('\n### Boots: what each policy gave the NIC\n')
    print('| NIC | caching-mode | asked | NIC domain type | "batching disallowed" in dmesg '
          '| boots | boot to READY, host s (median) |')
    print('|---|---|---|---|---|---:|---:|')
    for (nic, cm, lb), rs in sorted(boots.items()):
        r = rs[0]
        print(f'| {nic} | {cm} | {r["mode"]} | {r["nic_info"].get("group_type")} | '
              f'{"yes" if r.get("batching_disallowed") else "no"} | {len(rs)} | '
              f'{statistics.median(x["boot_host_s"] for x in rs):.1f} |')
    rc = 0
    if pdir is not None:
        rc = plots(pdir, tput, inv, perf, order)
        print(f'\nPlots: {pdir}/ (apps-throughput.png, apps-inv-per-req.png, apps-qemu-time.png; '
              'data and plots.gp beside them).')
    if failed:
        print('\n### Failed runs\n')
        for r in failed:
            print(f'- {r["tag"]}: {r.get("error", "a load gave no figure")}')
        return 1
    return rc


if __name__ == '__main__':
    sys.exit(main())
