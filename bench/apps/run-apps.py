#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""Boot the application guest once per configuration and load its servers from the host.

  bench/apps/run-apps.py OUTDIR [--modes strict,lazy,pt] [--nics virtio,e1000e] [--cm off]
                         [--reps 3] [--loads mc,redis_set,redis_get,ng1k,ng1m] [--dur 8]
                         [--first-rep 0] [--qemu-trace] [--guest-trace] [--perf]
                         --kernel K --initrd I

Normally run through bench/apps/run.sh, which builds the image first (docs/apps-testbed.md).
For each repetition, each NIC and each caching mode, the kernel policies are booted in a
rotated order (rep 0: strict lazy pt, rep 1: lazy pt strict, ...): interleaved A/B, so that
drift of the host (the 2-core machine is shared) spreads over every mode.

One guest at a time: QEMU (TCG, 1 vCPU, q35, intel-iommu with interrupt remapping) with one NIC
whose DMA goes through the emulated VT-d, user-mode networking with host forwards bound to
127.0.0.1 only, on ports chosen free at boot. The guest (bench/apps/guest-init) reports the
NIC's IOMMU group and its default-domain type (DMA = strict, DMA-FQ = lazy, identity =
passthrough) and whether the kernel printed "IOMMU batching disallowed" (caching mode turns
lazy into strict); a run whose domain type is not the one its policy asks for is labelled by
what it got ("effective" in the JSON) and flagged.

Loads, each bounded in time (the load's own duration, and a hard timeout of duration + 60 s):
  mc         memcaslap (Debian's name for memaslap) -T 1 -c 8 -t DURs
  redis_set  redis-benchmark -c 8 -n N -t set -q     (N = 1500 x DUR)
  redis_get  redis-benchmark -c 8 -n N -t get -q
  ng1k       wrk -t1 -c8 -dDURs /1k.bin
  ng1m       wrk -t1 -c8 -dDURs /1m.bin

--qemu-trace: QEMU's vtd_inv_desc* trace events to OUTDIR/TAG.qemu.trace, counted per load
(descriptors by type; the trace costs host time per descriptor, so throughput of a traced run
is not compared with untraced ones).
--guest-trace: the guest kernel's iommu:map and iommu:unmap tracefs events during each load,
saved as OUTDIR/TAG.LOAD.iommu.trace (format: docs/apps-testbed.md); the guest writes them
where nginx serves them and the host fetches them over HTTP after the load.
--perf: where QEMU spends its time: "perf record -e cpu-clock -F 499 -p QEMU" on the host for
the length of each load (software clock sampling: it needs no hardware PMU), reduced to the
shares of samples per thread and object file (TCG-translated guest code, QEMU, libslirp, the
host kernel) and the top symbols in the JSON ("perf"); OUTDIR/TAG.LOAD.perf.data stays for
perf report. A load where perf could not sample records why ("perf_error").

Output: OUTDIR/TAG.json per boot (TAG = nic-cmX-mode-rN), OUTDIR/TAG.console, the loads'
output as OUTDIR/TAG.LOAD.out. Exit 0 when every boot reached READY and every load gave a
figure, 1 otherwise. QEMU is killed by its PID when a run ends, fails or is interrupted.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MODE_ARGS = {'strict': 'iommu.strict=1', 'lazy': 'iommu.strict=0', 'pt': 'iommu=pt'}
# The default-domain type each policy should give the NIC's group (sysfs iommu_group/type).
MODE_TYPE = {'strict': 'DMA', 'lazy': 'DMA-FQ', 'pt': 'identity'}
TYPE_MODE = {v: k for k, v in MODE_TYPE.items()}
NIC_ARGS = {'virtio': 'virtio-net-pci,netdev=n0,iommu_platform=on,disable-legacy=on',
            'e1000e': 'e1000e,netdev=n0'}
LOADS = ('mc', 'redis_set', 'redis_get', 'ng1k', 'ng1m')

qemu_proc = None
perf_proc = None
PERF_FREQ = 499
# perf report's field separator: no thread, object or symbol name contains it.
PERF_SEP = '\x1f'


def log(*a):
    print('run-apps:', *a, file=sys.stderr, flush=True)


def kill_qemu(*_):
    global qemu_proc
    perf_stop()
    q = qemu_proc
    if q is not None and q.poll() is None:
        q.terminate()
        try:
            q.wait(timeout=15)
        except subprocess.TimeoutExpired:
            q.kill()
            q.wait()
    qemu_proc = None


def perf_start(pid, path):
    """Sample QEMU (every thread) on the host's cpu-clock until perf_stop()."""
    global perf_proc
    perf_proc = subprocess.Popen(
        ['perf', 'record', '-q', '-e', 'cpu-clock', '-F', str(PERF_FREQ), '-p', str(pid),
         '-o', path], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=open(path + '.log', 'w'))


def perf_stop():
    """Stop perf record as ^C would (it then writes its file); kill it if it does not."""
    global perf_proc
    p = perf_proc
    perf_proc = None
    if p is None:
        return None
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


def perf_summary(path, top=25):
    """Shares (%) of the samples per thread and object, and the top symbols."""
    def report(sort):
        p = subprocess.run(['perf', 'report', '-i', path, '--stdio', '-q', '--no-children',
                            '--sort', sort, '--field-separator', PERF_SEP],
                           capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            raise RuntimeError(f'perf report: {p.stderr.strip()[-300:]}')
        rows = []
        for line in p.stdout.splitlines():
            f = [x.strip() for x in line.split(PERF_SEP)]
            if len(f) < 2 or not f[0].endswith('%'):
                continue
            rows.append([float(f[0].rstrip('%'))] + f[1:])
        return rows
    by_obj = report('comm,dso')
    syms = report('comm,dso,sym')[:top]
    return {'event': 'cpu-clock', 'freq_hz': PERF_FREQ,
            'by_thread_object': [[round(r[0], 2)] + r[1:] for r in by_obj if r[0] >= 0.05],
            'top_symbols': [[round(r[0], 2)] + r[1:] for r in syms]}


def on_signal(sig, _frame):
    kill_qemu()
    sys.exit(128 + sig)


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


def thread_cpu(pid):
    """CPU seconds per QEMU thread name (QEMU names its threads with debug-threads=on)."""
    hz = os.sysconf('SC_CLK_TCK')
    d = {}
    try:
        tasks = os.listdir(f'/proc/{pid}/task')
    except FileNotFoundError:
        return d
    for t in tasks:
        try:
            st = open(f'/proc/{pid}/task/{t}/stat').read()
        except OSError:
            continue
        comm = st[st.index('(') + 1:st.rindex(')')]
        f = st[st.rindex(')') + 2:].split()
        d[comm] = d.get(comm, 0) + (int(f[11]) + int(f[12])) / hz
    return d


def count_trace(path, offset):
    """Descriptor counts by trace event name from byte offset on; returns (counts, new offset)."""
    c = {}
    try:
        with open(path, 'rb') as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return c, offset
    end = data.rfind(b'\n') + 1
    for m in re.finditer(rb'(vtd_inv_desc\w*|vtd_dmar_fault)', data[:end]):
        k = m.group(1).decode()
        c[k] = c.get(k, 0) + 1
    return c, offset + end


class Ctl:
    """The guest's control port (/dev/ttyS1, a unix socket on the host)."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.buf = b''

    def cmd(self, c, timeout=120, out=None):
        self.s.sendall(c.encode() + b'\n')
        t0 = time.time()
        lines = []
        while True:
            i = self.buf.find(b'\n')
            if i >= 0:
                line = self.buf[:i].decode(errors='replace').rstrip('\r')
                self.buf = self.buf[i + 1:]
                if line == f'ok {c}':
                    return lines
                if line.startswith(f'err {c}'):
                    raise RuntimeError(f'guest control: {line}')
                if out is not None:
                    out.write(line + '\n')
                else:
                    lines.append(line)
                continue
            left = timeout - (time.time() - t0)
            if left <= 0:
                raise RuntimeError(f'guest control: no answer to {c!r} within {timeout} s')
            self.s.settimeout(left)
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                raise RuntimeError(f'guest control: no answer to {c!r} within {timeout} s')
            if not d:
                raise RuntimeError('guest control: port closed')
            self.buf += d


def load_cmd(ld, ports, dur):
    if ld == 'mc':
        return ['memcaslap', '-s', f'127.0.0.1:{ports["mc"]}', '-T', '1', '-c', '8', '-t', f'{dur}s']
    if ld in ('redis_set', 'redis_get'):
        return ['redis-benchmark', '-h', '127.0.0.1', '-p', str(ports['redis']), '-c', '8',
                '-n', str(1500 * dur), '-q', '-t', ld.split('_')[1]]
    f = {'ng1k': '1k.bin', 'ng1m': '1m.bin'}[ld]
    return ['wrk', '-t1', '-c8', f'-d{dur}s', '--timeout', '10s',
            f'http://127.0.0.1:{ports["http"]}/{f}']


def parse_load(ld, out, elapsed):
    """Requests per second and request count, or (None, None) when the output has no figure."""
    if ld == 'mc':
        m = re.findall(r'TPS:\s*(\d+)', out)
        ops = re.findall(r'Ops:\s*(\d+)', out)
        if m:
            return float(m[-1]), int(ops[-1]) if ops else None
    elif ld.startswith('redis'):
        m = re.search(r'(?:GET|SET): ([\d.]+) requests per second', out)
        if m:
            return float(m.group(1)), None
    else:
        m = re.search(r'Requests/sec:\s*([\d.]+)', out)
        n = re.search(r'(\d+) requests in', out)
        if m and 'Socket errors' not in out:
            return float(m.group(1)), int(n.group(1)) if n else None
    return None, None


def run_one(a, tag, mode, nic, cm):
    global qemu_proc
    out = a.outdir
    console = f'{out}/{tag}.console'
    qtrace = f'{out}/{tag}.qemu.trace'
    for f in (console, qtrace):
        if os.path.exists(f):
            os.unlink(f)
    sockdir = a.sockdir
    ctlpath = f'{sockdir}/{tag}.ctl'
    ports = {'mc': free_port(), 'redis': free_port(), 'http': free_port()}
    fwd = (f'user,id=n0,hostfwd=tcp:127.0.0.1:{ports["mc"]}-:11211,'
           f'hostfwd=tcp:127.0.0.1:{ports["redis"]}-:6379,hostfwd=tcp:127.0.0.1:{ports["http"]}-:80')
    append = (f'console=ttyS0 no_timer_check intel_iommu=on {MODE_ARGS[mode]} panic=-1 '
              'quiet loglevel=4')
    cmd = ['nice', '-n', '10', a.qemu, '-accel', 'tcg', '-machine', 'q35,kernel-irqchip=split',
           '-cpu', 'max', '-smp', '1', '-m', '2G',
           '-device', f'intel-iommu,intremap=on,caching-mode={cm}',
           '-name', f'iovaq-apps-{tag},debug-threads=on',
           '-nodefaults', '-vga', 'none', '-display', 'none', '-no-reboot', '-monitor', 'none',
           '-serial', f'file:{console}',
           '-chardev', f'socket,id=ctl,path={ctlpath},server=on,wait=off', '-serial', 'chardev:ctl',
           '-netdev', fwd, '-device', NIC_ARGS[nic],
           '-kernel', a.kernel, '-initrd', a.initrd, '-append', append]
    if a.qemu_trace:
        cmd[4:4] = ['-trace', 'enable=vtd_inv_desc*', '-trace', 'enable=vtd_dmar_fault', '-D', qtrace]
    res = {'tag': tag, 'mode': mode, 'nic': nic, 'cm': cm, 'qemu_trace': a.qemu_trace,
           'guest_trace': a.guest_trace, 'perf': a.perf, 'dur': a.dur, 'cmd': cmd, 'loads': {}, 'ok': False}
    t0 = time.time()
    qemu_proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(f'{out}/{tag}.stdout', 'w'),
                                 stderr=subprocess.STDOUT)
    q = qemu_proc
    try:
        txt = ''
        while time.time() - t0 < a.boot_timeout:
            if q.poll() is not None:
                break
            try:
                txt = open(console, errors='replace').read()
            except FileNotFoundError:
                txt = ''
            # Whole lines only: QEMU writes the console a byte at a time.
            if re.search(r'iovaq-apps: (READY|FAIL) [^\n]*\n', txt):
                break
            time.sleep(0.5)
        m = re.search(r'iovaq-apps: READY uptime=([\d.]+)', txt)
        if not m:
            f = re.search(r'iovaq-apps: FAIL (.*)', txt)
            why = f.group(1) if f else (f'QEMU exited ({q.returncode})' if q.poll() is not None
                                        else f'no READY within {a.boot_timeout} s')
            res['error'] = f'boot: {why}'
            return res
        res['boot_host_s'] = round(time.time() - t0, 1)
        res['boot_guest_s'] = float(m.group(1))
        nicl = re.search(r'iovaq-apps: nic (.*)', txt).group(1)
        res['nic_info'] = dict(kv.split('=', 1) for kv in nicl.split())
        res['batching_disallowed'] = 'iovaq-apps: batching-disallowed=1' in txt
        res['dmesg'] = re.findall(r'iovaq-apps: dmesg (.*)', txt)
        gt = res['nic_info'].get('group_type', 'none')
        res['effective'] = TYPE_MODE.get(gt, gt)
        if res['nic_info'].get('iommu_group', 'none') == 'none':
            res['error'] = 'boot: the NIC has no IOMMU group (not behind the IOMMU)'
            return res
        if res['effective'] != mode:
            log(f'{tag}: asked for {mode}, the NIC\'s domain is {gt} ({res["effective"]})'
                + (' — the kernel printed "batching disallowed"' if res['batching_disallowed'] else ''))
        ctl = None
        if a.guest_trace:
            if not re.search(r'iovaq-apps: READY .*control=1', txt):
                res['error'] = 'boot: the guest has no control port (/dev/ttyS1) for --guest-trace'
                return res
            ctl = Ctl(ctlpath)
        _, toff = count_trace(qtrace, 0)
        res['boot_inv'] = _
        for ld in a.loads:
            lc = load_cmd(ld, ports, a.dur)
            if ctl:
                ctl.cmd('trace-start')
            pdata = f'{out}/{tag}.{ld}.perf.data'
            if a.perf:
                perf_start(q.pid, pdata)
            c0 = thread_cpu(q.pid)
            ts = time.time()
            try:
                p = subprocess.run(['nice', '-n', '10'] + lc, capture_output=True, text=True,
                                   timeout=a.dur + 60)
                lout = p.stdout + p.stderr
                rc = p.returncode
            except subprocess.TimeoutExpired as e:
                part = e.stdout or b''
                if isinstance(part, bytes):
                    part = part.decode(errors='replace')
                lout = f'TIMEOUT after {a.dur + 60} s\n' + part
                rc = 'timeout'
            el = time.time() - ts
            c1 = thread_cpu(q.pid)
            prc = perf_stop() if a.perf else None
            r = {'cmd': ' '.join(lc), 'rc': rc, 'elapsed_s': round(el, 2),
                 'qemu_cpu_s': {k: round(c1[k] - c0.get(k, 0), 2) for k in c1
                                if c1[k] - c0.get(k, 0) >= 0.01},
                 'loadavg': open('/proc/loadavg').read().split()[0]}
            rps, n = parse_load(ld, lout, el)
            if ld.startswith('redis'):
                n = 1500 * a.dur
            r['rps'], r['requests'] = rps, n
            if ld == 'ng1m' and rps is not None:
                r['MiB_s'] = rps
            if a.perf:
                try:
                    if prc not in (0, -signal.SIGINT, 130):
                        raise RuntimeError(f'perf record exited {prc}: ' +
                                           open(pdata + '.log').read().strip()[-300:])
                    r['perf'] = perf_summary(pdata)
                    r['perf']['data'] = os.path.basename(pdata)
                except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
                    r['perf_error'] = str(e)
                    log(f'{tag}: {ld}: perf: {e}')
            if a.qemu_trace:
                time.sleep(1)  # QEMU's log backend writes asynchronously
                c, toff = count_trace(qtrace, toff)
                r['inv'] = c
                if n:
                    r['inv_per_req'] = {k: round(v / n, 3) for k, v in c.items()}
            if ctl:
                st = ctl.cmd('trace-stop')
                r['guest_trace_stat'] = st
                tpath = f'{out}/{tag}.{ld}.iommu.trace'
                saved = ctl.cmd('trace-save', timeout=300)
                want = int(re.search(r'bytes=(\d+)', ' '.join(saved)).group(1))
                # Through nginx and the NIC: after trace-stop, so the fetch is not in the trace.
                url = f'http://127.0.0.1:{ports["http"]}/iommu.trace'
                with urllib.request.urlopen(url, timeout=300) as resp, open(tpath, 'wb') as tf:
                    shutil.copyfileobj(resp, tf)
                got = os.path.getsize(tpath)
                if got != want:
                    raise RuntimeError(f'guest trace: fetched {got} bytes of {want}')
                r['guest_trace'] = os.path.basename(tpath)
            open(f'{out}/{tag}.{ld}.out', 'w').write(lout)
            res['loads'][ld] = r
            if rps is None:
                log(f'{tag}: {ld}: no figure (exit {rc}); output in {out}/{tag}.{ld}.out')
        res['ok'] = all(v['rps'] is not None for v in res['loads'].values())
        return res
    except Exception as e:  # a failed step is reported in the JSON, never left half-running
        res['error'] = f'{type(e).__name__}: {e}'
        return res
    finally:
        kill_qemu()
        res['wall_s'] = round(time.time() - t0, 1)
        try:
            os.unlink(ctlpath)
        except FileNotFoundError:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('outdir')
    ap.add_argument('--modes', default='strict,lazy,pt')
    ap.add_argument('--nics', default='virtio')
    ap.add_argument('--cm', default='off', help='caching modes, e.g. off or off,on')
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--first-rep', type=int, default=0,
                    help='number of the first repetition (to add repetitions to a series)')
    ap.add_argument('--loads', default=','.join(LOADS))
    ap.add_argument('--dur', type=int, default=8, help='seconds per load')
    ap.add_argument('--boot-timeout', type=int, default=300)
    ap.add_argument('--qemu-trace', action='store_true')
    ap.add_argument('--guest-trace', action='store_true')
    ap.add_argument('--perf', action='store_true',
                    help='sample QEMU with perf (cpu-clock) on the host during each load')
    ap.add_argument('--tag-prefix', default='')
    ap.add_argument('--kernel', required=True)
    ap.add_argument('--initrd', required=True)
    a = ap.parse_args()
    a.modes = a.modes.split(',')
    a.loads = [x for x in a.loads.split(',') if x]
    for m in a.modes:
        if m not in MODE_ARGS:
            ap.error(f'unknown mode {m}')
    for ld in a.loads:
        if ld not in LOADS:
            ap.error(f'unknown load {ld}')
    for n in a.nics.split(','):
        if n not in NIC_ARGS:
            ap.error(f'unknown NIC {n}')
    tools = {'mc': 'memcaslap', 'redis_set': 'redis-benchmark', 'redis_get': 'redis-benchmark',
             'ng1k': 'wrk', 'ng1m': 'wrk'}
    for ld in a.loads:
        if not shutil.which(tools[ld]):
            log(f'step \'tools\': {tools[ld]} missing (run scripts/setup-vm.sh)')
            return 1
    if a.perf and not shutil.which('perf'):
        log("step 'tools': perf missing (Debian: linux-perf; scripts/setup-vm.sh installs it)")
        return 1
    a.qemu = shutil.which('qemu-system-x86_64')
    if not a.qemu:
        log("step 'tools': qemu-system-x86_64 missing (run scripts/setup-vm.sh)")
        return 1
    os.makedirs(a.outdir, exist_ok=True)
    import tempfile
    a.sockdir = tempfile.mkdtemp(prefix='iovaq-apps-')
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    bad = 0
    try:
        for rep in range(a.first_rep, a.first_rep + a.reps):
            for nic in a.nics.split(','):
                for cm in a.cm.split(','):
                    order = a.modes[rep % len(a.modes):] + a.modes[:rep % len(a.modes)]
                    for mode in order:
                        tag = f'{a.tag_prefix}{nic}-cm{cm}-{mode}-r{rep}'
                        res = run_one(a, tag, mode, nic, cm)
                        json.dump(res, open(f'{a.outdir}/{tag}.json', 'w'), indent=1)
                        figs = ' '.join(f'{k}={v["rps"]}' for k, v in res['loads'].items())
                        log(f'{tag}: {"ok" if res["ok"] else "FAILED " + res.get("error", "")}'
                            f' effective={res.get("effective")} boot={res.get("boot_host_s")}s {figs}')
                        bad += not res['ok']
    finally:
        kill_qemu()
        shutil.rmtree(a.sockdir, ignore_errors=True)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
