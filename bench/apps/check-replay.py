#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""Check that "iovaq-bench replay TRACE --json" printed the keys its documentation lists.

  bench/apps/check-replay.py REPLAY.json [TRACE-STATS.json] [--doc docs/bench-schema.md]

The documented keys are the first column (`key` in backticks) of every table in the sections
of the doc whose heading names "replay" (docs/bench-schema.md, "replay --json"): a dotted path
(`trace.events`, `window_ns.p99`), "[]" marking an array (`argv[]`, `runs[].policy`), braces
listing siblings (`window_ns.{p50,p99}`). A key that a record table lists relative to its
record (`policy` in a table of runs) is looked for in the document and in every object of the
document's arrays of objects (the runs): each such object must have it. The bench/apps smoke
run (smoke.sh) uses this, so that the check follows the documentation rather than a second
list. With TRACE-STATS.json (bench/apps/trace-stats.py's output for the same trace) the
replay's event, map and unmap counts must equal the reference reader's.

Exit 0 when every key is there, 1 otherwise (each missing key on stderr), 2 on bad usage or
when the doc lists no replay keys.
"""
import json
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MISSING = object()


def documented_keys(doc):
    keys, on = [], False
    for line in open(doc):
        h = re.match(r'^(#+)\s+(.*)', line)
        if h:
            on = 'replay' in h.group(2).lower()
            continue
        m = re.match(r'^\|\s*`([^`]+)`\s*\|', line)
        if on and m:
            k = m.group(1)
            b = re.match(r'^(.*)\{([^}]*)\}(.*)$', k)
            if b:
                keys += [b.group(1) + x.strip() + b.group(3) for x in b.group(2).split(',')]
            else:
                keys.append(k)
    return keys


def resolve(obj, path):
    """True when every branch of obj along path (dots, [] = each element) has the key."""
    if not path:
        return True
    seg, rest = path[0], path[1:]
    arr = seg.endswith('[]')
    name = seg[:-2] if arr else seg
    if name:
        if not isinstance(obj, dict) or name not in obj:
            return False
        obj = obj[name]
    if arr:
        if not isinstance(obj, list):
            return False
        return all(resolve(x, rest) for x in obj) if rest else True
    return resolve(obj, rest)


def record_bases(doc):
    """The document and every object inside an array of objects, one or two levels down."""
    bases = [doc]
    for v in doc.values() if isinstance(doc, dict) else []:
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            bases.append(v)
        elif isinstance(v, dict):
            for w in v.values():
                if isinstance(w, list) and w and all(isinstance(x, dict) for x in w):
                    bases.append(w)
    return bases


def main():
    args = sys.argv[1:]
    doc = os.path.join(REPO, 'docs', 'bench-schema.md')
    if '--doc' in args:
        i = args.index('--doc')
        doc = args[i + 1]
        del args[i:i + 2]
    if not 1 <= len(args) <= 2:
        print(__doc__, file=sys.stderr)
        return 2
    keys = documented_keys(doc)
    if not keys:
        print(f'check-replay.py: {doc} documents no replay keys (no table in a section '
              'whose heading names "replay")', file=sys.stderr)
        return 2
    try:
        out = json.load(open(args[0]))
    except (OSError, ValueError) as e:
        print(f'check-replay.py: {args[0]}: not one JSON document: {e}', file=sys.stderr)
        return 1
    bad = []
    bases = record_bases(out)
    for k in keys:
        path = k.split('.')
        ok = False
        for b in bases:
            if isinstance(b, list):
                ok = all(resolve(x, path) for x in b)
            else:
                ok = resolve(b, path)
            if ok:
                break
        if not ok:
            bad.append(k)
    for k in bad:
        print(f'check-replay.py: {args[0]}: documented key {k!r} missing', file=sys.stderr)
    runs = sum(len(b) for b in bases if isinstance(b, list))
    print(f'check-replay.py: {len(keys) - len(bad)} of {len(keys)} documented keys present '
          f'({doc}; {runs} records)', file=sys.stderr)
    if len(args) == 2:
        ref = json.load(open(args[1]))
        tr = out.get('trace', {}) if isinstance(out, dict) else {}
        for k in ('events', 'maps', 'unmaps'):
            if k in tr and tr[k] != ref[k]:
                bad.append(f'trace.{k}')
                print(f'check-replay.py: trace.{k} = {tr[k]}, trace-stats.py counted {ref[k]}',
                      file=sys.stderr)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
