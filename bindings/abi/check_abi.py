#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""ABI coverage of the bindings (ctest bindings_abi).

Fails unless
 1. every symbol libiovaq.so exports is an iovaq_* function bound to a version node of the
    linker version script, and every name the script lists explicitly is exported;
 2. every exported function is declared in Python (iovaq._ffi.PROTOTYPES) and used by the
    Python object API (iovaq/_api.py), and declared in Rust (iovaq-sys extern block) and used
    by the safe crate (iovaq/src/lib.rs) -- or is listed in skipped.txt with a reason;
 3. every struct defined and every constant (#define or enumerator) in include/iovaq/*.h is
    printed by bindings/layout/layout.c (or listed in skipped.txt), whose output the Python
    and Rust layout tests compare, in both directions, with their own declarations.

usage: check_abi.py --lib libiovaq.so --map src/libiovaq.map --src TOP
"""

import argparse
import glob
import os
import re
import subprocess
import sys


def exported(lib):
    out = subprocess.run(["readelf", "--dyn-syms", "--wide", lib], check=True,
                         capture_output=True, text=True).stdout
    syms = {}
    for line in out.splitlines():
        w = line.split()
        if len(w) < 8 or not w[0].endswith(":") or w[6] == "UND":
            continue
        if w[4] not in ("GLOBAL", "WEAK"):
            continue
        name, _, ver = w[7].partition("@")
        syms[name] = (w[3], ver.lstrip("@"))
    return syms


def map_nodes(path):
    text = re.sub(r"/\*.*?\*/", "", open(path).read(), flags=re.S)
    nodes = re.findall(r"^\s*([A-Za-z0-9_.]+)\s*\{", text, flags=re.M)
    explicit = set()
    for body in re.findall(r"global:(.*?)(?:local:|\})", text, flags=re.S):
        for name in re.findall(r"([A-Za-z0-9_*]+)\s*;", body):
            if "*" not in name:
                explicit.add(name)
    return set(nodes), explicit


def h_structs_all(src):
    found = set()
    for h in glob.glob(os.path.join(src, "include", "iovaq", "*.h")):
        found |= set(re.findall(r"^struct (iovaq_\w+) \{", open(h).read(), flags=re.M))
    return found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--map", required=True)
    ap.add_argument("--src", required=True)
    a = ap.parse_args()
    errors, notes = [], []

    # 1. exports against the version script
    syms = exported(a.lib)
    nodes, explicit = map_nodes(a.map)
    funcs = set()
    for name, (kind, ver) in sorted(syms.items()):
        if name in nodes and kind == "OBJECT":
            continue  # the version node's own symbol
        if not name.startswith("iovaq_") or name.startswith("iovaq__"):
            errors.append("exported symbol %s is not public API (iovaq_*)" % name)
        if ver not in nodes:
            errors.append("%s has version '%s', not a node of %s" % (name, ver, a.map))
        if kind != "FUNC":
            errors.append("%s is exported as %s, not a function: bind it or hide it" % (name, kind))
        funcs.add(name)
    for name in sorted(explicit - set(syms)):
        errors.append("%s is listed in %s but not exported" % (name, a.map))
    if not funcs:
        errors.append("no exported functions found in %s" % a.lib)

    # 2. bound in both languages
    py = os.path.join(a.src, "bindings", "python")
    sys.path.insert(0, py)
    sys.dont_write_bytecode = True  # nothing written into the source tree
    from iovaq import _ffi  # noqa: E402 - declarations only; loads no library
    py_decl = set(_ffi.PROTOTYPES)
    py_api = open(os.path.join(py, "iovaq", "_api.py")).read()
    py_used = {n for n in py_decl if re.search(r"\b%s\b" % n, py_api)}
    rs_sys = open(os.path.join(a.src, "bindings", "rust", "iovaq-sys", "src", "lib.rs")).read()
    extern = "".join(re.findall(r'extern "C" \{(.*?)\n\}', rs_sys, flags=re.S))
    rs_decl = set(re.findall(r"\bpub fn (iovaq_\w+)\s*\(", extern))
    rs_api = open(os.path.join(a.src, "bindings", "rust", "iovaq", "src", "lib.rs")).read()
    rs_used = {n for n in rs_decl if re.search(r"\bsys::%s\b" % n, rs_api)}

    skipped = {}
    with open(os.path.join(a.src, "bindings", "abi", "skipped.txt")) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            w = line.split(None, 2)
            if len(w) < 3 or w[1] not in ("python", "rust", "both"):
                errors.append("skipped.txt: bad line %r (SYMBOL python|rust|both REASON)" % line)
                continue
            skipped[w[0]] = (w[1], w[2])

    def skip(name, lang):
        s = skipped.get(name)
        return s is not None and s[0] in (lang, "both")

    for name in sorted(funcs):
        for lang, decl, used in (("python", py_decl, py_used), ("rust", rs_decl, rs_used)):
            if skip(name, lang):
                if name in used:
                    errors.append("%s is listed as skipped in %s but is bound" % (name, lang))
                continue
            if name not in decl:
                errors.append("%s is exported but not declared in %s" % (name, lang))
            elif name not in used:
                errors.append("%s is declared in %s but its safe API never calls it" % (name, lang))
    for name in sorted(set(skipped) - funcs):
        if name.startswith("iovaq_") and name not in h_structs_all(a.src):
            notes.append("skipped.txt lists %s, which this library does not export" % name)
    for lang, decl in (("python", py_decl), ("rust", rs_decl)):
        for name in sorted(decl - funcs):
            errors.append("%s declares %s, which the library does not export" % (lang, name))

    # 3. structs and constants reach layout.c
    lay = open(os.path.join(a.src, "bindings", "layout", "layout.c")).read()
    lay_structs = set(re.findall(r"\bS\((iovaq_\w+)\)", lay))
    lay_consts = set(re.findall(r"\bC\((IOVAQ_\w+)\)", lay))
    h_structs, h_consts = set(), set()
    for h in glob.glob(os.path.join(a.src, "include", "iovaq", "*.h")):
        text = re.sub(r"/\*.*?\*/", "", open(h).read(), flags=re.S)
        h_structs |= set(re.findall(r"^struct (iovaq_\w+) \{", text, flags=re.M))
        for m in re.finditer(r"^#define (IOVAQ_[A-Z0-9_]+)(\(?)(.*)$", text, flags=re.M):
            name, fn, val = m.group(1), m.group(2), m.group(3).strip()
            if fn or not val or name.endswith("_H") or val.startswith('"') or name == "IOVAQ_API":
                continue
            h_consts.add(name)
        for body in re.findall(r"\benum\b[^{;]*\{(.*?)\}", text, flags=re.S):
            h_consts |= set(re.findall(r"^\s*(IOVAQ_[A-Z0-9_]+)\s*(?:=|,|$)", body, flags=re.M))
    for n in sorted(h_structs - lay_structs):
        if n in skipped:
            continue
        errors.append("struct %s is not in bindings/layout/layout.c (nor in the bindings)" % n)
    for n in sorted(h_consts - lay_consts):
        if n in skipped:
            continue
        errors.append("constant %s is not in bindings/layout/layout.c (nor in the bindings)" % n)
    for n in sorted(lay_structs - h_structs):
        errors.append("layout.c prints struct %s, which no public header defines" % n)

    for n in notes:
        print("check_abi: note: " + n)
    if errors:
        for e in errors:
            print("check_abi: FAIL: " + e)
        return 1
    print("check_abi: %d exported functions, each bound in Python and Rust (%d skipped); "
          "%d structs and %d constants in layout.c" % (
              len(funcs), len([n for n in funcs if n in skipped]), len(h_structs), len(h_consts)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
