#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""Check and summarise guest IOMMU traces (the format in docs/apps-testbed.md).

  bench/apps/trace-stats.py TRACE...

One JSON object per file on stdout: events, maps, unmaps, bytes mapped and unmapped, sizes in
pages (histogram), the most mappings live at once, unmaps of ranges not mapped within the
trace (mapped before it started: expected at its start), maps of an IOVA that was still
mapped, the span in seconds and events per second. A line that is not a map or unmap event in
that format is reported as FILE:LINE: why on stderr, and the exit status is 1.
"""
import collections
import json
import re
import sys

LINE = re.compile(
    r'^\s*(?P<task>.+?)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+(?P<flags>\S+)\s+(?P<ts>\d+\.\d+): '
    r'(?P<ev>map|unmap): IOMMU: iova=0x(?P<start>[0-9a-f]+) - 0x(?P<end>[0-9a-f]+) '
    r'(?:paddr=0x(?P<paddr>[0-9a-f]+) )?size=(?P<size>\d+)(?: unmapped_size=(?P<usize>\d+))?$')
PAGE = 4096


def stats(path):
    bad = 0
    s = collections.Counter()
    hist = collections.Counter()
    live = {}
    max_live = 0
    t0 = t1 = None
    with open(path, errors='replace') as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip('\n')
            if not line.strip():
                continue
            m = LINE.match(line)
            if not m:
                print(f'{path}:{n}: not an iommu map/unmap event: {line[:120]!r}', file=sys.stderr)
                bad += 1
                continue
            ev = m['ev']
            start, end, size = int(m['start'], 16), int(m['end'], 16), int(m['size'])
            if end - start != size:
                print(f'{path}:{n}: iova range is {end - start} bytes, size says {size}',
                      file=sys.stderr)
                bad += 1
                continue
            if (ev == 'map') != (m['paddr'] is not None) or (ev == 'unmap') != (m['usize'] is not None):
                print(f'{path}:{n}: {ev} with the fields of the other event', file=sys.stderr)
                bad += 1
                continue
            ts = float(m['ts'])
            t0 = ts if t0 is None else t0
            t1 = ts
            s['events'] += 1
            if ev == 'map':
                s['maps'] += 1
                s['bytes_mapped'] += size
                hist[(size + PAGE - 1) // PAGE] += 1
                if start in live:
                    s['remaps_of_live_iova'] += 1
                live[start] = size
                max_live = max(max_live, len(live))
            else:
                s['unmaps'] += 1
                s['bytes_unmapped'] += int(m['usize'])
                if live.pop(start, None) is None:
                    s['unmaps_not_mapped_in_trace'] += 1
    span = (t1 - t0) if t0 is not None else 0.0
    out = {'file': path, 'events': s['events'], 'maps': s['maps'], 'unmaps': s['unmaps'],
           'bytes_mapped': s['bytes_mapped'], 'bytes_unmapped': s['bytes_unmapped'],
           'map_pages_hist': {str(k): v for k, v in sorted(hist.items())},
           'max_live_mappings': max_live, 'live_at_end': len(live),
           'unmaps_not_mapped_in_trace': s['unmaps_not_mapped_in_trace'],
           'remaps_of_live_iova': s['remaps_of_live_iova'], 'span_s': round(span, 6),
           'events_per_s': round(s['events'] / span, 1) if span > 0 else None,
           'bad_lines': bad}
    return out, bad


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    rc = 0
    for p in sys.argv[1:]:
        try:
            out, bad = stats(p)
        except OSError as e:
            print(f'{p}: {e.strerror}', file=sys.stderr)
            rc = 1
            continue
        print(json.dumps(out))
        rc |= 1 if bad else 0
    return rc


if __name__ == '__main__':
    sys.exit(main())
