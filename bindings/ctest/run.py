#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""Runs the bindings' test suites for ctest (label "bindings"; bindings/CMakeLists.txt).

  run.py python --lib LIB --layout EXE --src TOP --work DIR [--sanitize S] [--build-dir B --cmake C]
  run.py rust   --lib LIB --layout EXE --src TOP --work DIR [--sanitize S]

python: pytest (Debian's python3-pytest) over bindings/python/tests, with an interpreter that
has pytest ($IOVAQ_PYTHON, /usr/bin/python3, this one, python3 on PATH).
rust: cargo test --offline --locked over bindings/rust, CARGO_TARGET_DIR inside the build tree.

With --sanitize address,undefined (the asan configuration) the library under test needs the
ASan runtime loaded first: the Python interpreter and the Rust test programs run with
LD_PRELOAD of the libasan that the library links, PYTHONMALLOC=malloc, UBSan reports fatal,
and LeakSanitizer on. LSan reports go to files: a leak fails the test if any frame of its
stack is in libiovaq or the bindings; leaks of the interpreter itself are only counted.
Rust doc-tests are not run there (rustdoc starts them without the preload).

Exit status: 0 pass, 1 fail, 77 skipped (reason on stderr).
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

SKIP = 77


def skip(msg):
    print("bindings: SKIP: " + msg, file=sys.stderr)
    sys.exit(SKIP)


def python_with_pytest():
    cands = [os.environ.get("IOVAQ_PYTHON"), "/usr/bin/python3", sys.executable,
             shutil.which("python3")]
    for py in cands:
        if py and os.path.exists(py):
            r = subprocess.run([py, "-c", "import pytest"], capture_output=True)
            if r.returncode == 0:
                return py
    return None


def asan_runtime(lib):
    out = subprocess.run(["ldd", lib], capture_output=True, text=True).stdout
    for line in out.splitlines():
        m = re.match(r"\s*(libasan\.so\S*)\s+=>\s+(\S+)", line)
        if m:
            return m.group(2)
    return None


OURS = re.compile(r"(libiovaq\.so|\bin iovaq_|\bin _ZN5iovaq|\biovaq::|\biovaq_sys::|"
                  r"bindings/rust/|bindings/python/)")


def sanitizer_env(args, env, logdir):
    if not args.sanitize:
        return env
    if "thread" in args.sanitize:
        skip("TSan cannot host the interpreter or the Rust test programs; the plain and asan "
             "configurations run the bindings")
    rt = asan_runtime(args.lib)
    if not rt:
        skip("%s does not link a shared libasan (IOVAQ_SANITIZE=%s with this compiler): "
             "nothing to preload" % (args.lib, args.sanitize))
    env = dict(env)
    env["IOVAQ_ASAN_PRELOAD"] = rt
    env["ASAN_OPTIONS"] = "detect_leaks=1:log_path=%s/asan:abort_on_error=0" % logdir
    env["LSAN_OPTIONS"] = "exitcode=0"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return env


def check_sanitizer_logs(logdir):
    ours, foreign, other = [], 0, []
    for path in sorted(glob.glob(os.path.join(logdir, "asan.*"))):
        text = open(path, errors="replace").read()
        if "ERROR: AddressSanitizer" in text or "runtime error:" in text:
            other.append(path)
        for block in re.split(r"\n(?=(?:Direct|Indirect) leak of )", text):
            if not re.match(r"(Direct|Indirect) leak of ", block):
                continue
            if OURS.search(block):
                ours.append(block.split("\n\n")[0])
            else:
                foreign += 1
    for p in other:
        print("bindings: sanitizer report in %s:" % p)
        print(open(p, errors="replace").read()[-6000:])
    for b in ours:
        print("bindings: leak through libiovaq or the bindings:\n" + b)
    if foreign:
        print("bindings: %d leak record(s) of the host program itself (not ours), ignored" % foreign)
    return not ours and not other


def run_python(args):
    py = python_with_pytest()
    if not py:
        skip("no python3 with pytest (Debian: python3-pytest; scripts/setup.sh installs it)")
    os.makedirs(args.work, exist_ok=True)
    logdir = tempfile.mkdtemp(prefix="san.", dir=args.work)
    env = dict(os.environ)
    env.update(IOVAQ_LIBRARY=args.lib, IOVAQ_LAYOUT=args.layout, PYTHONDONTWRITEBYTECODE="1",
               IOVAQ_INCLUDE_DIR=os.path.join(args.src, "include"))
    if args.build_dir and args.cmake and not args.sanitize:
        env.update(IOVAQ_BUILD_DIR=args.build_dir, IOVAQ_CMAKE=args.cmake)
    env = sanitizer_env(args, env, logdir)
    if args.sanitize:
        env["PYTHONMALLOC"] = "malloc"
        env["LD_PRELOAD"] = env["IOVAQ_ASAN_PRELOAD"]
    cmd = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
           os.path.join(args.src, "bindings", "python", "tests")]
    print("bindings: " + " ".join(cmd), flush=True)
    rc = subprocess.run(cmd, env=env, cwd=args.work).returncode
    ok = check_sanitizer_logs(logdir) if args.sanitize else True
    return 0 if rc == 0 and ok else 1


def run_rust(args):
    cargo = shutil.which("cargo")
    if not cargo:
        skip("cargo not found on PATH (the Rust toolchain is needed for bindings/rust)")
    os.makedirs(args.work, exist_ok=True)
    logdir = tempfile.mkdtemp(prefix="san.", dir=args.work)
    libdir = os.path.dirname(os.path.abspath(args.lib))
    env = dict(os.environ)
    env.update(IOVAQ_LIB_DIR=libdir, IOVAQ_LAYOUT=args.layout,
               IOVAQ_INCLUDE_DIR=os.path.join(args.src, "include"),
               CARGO_TARGET_DIR=os.path.join(args.work, "target"),
               LD_LIBRARY_PATH=libdir + (":" + env["LD_LIBRARY_PATH"]
                                         if env.get("LD_LIBRARY_PATH") else ""))
    env.setdefault("CARGO_TERM_COLOR", "never")
    cmd = [cargo, "test", "--offline", "--locked", "--manifest-path",
           os.path.join(args.src, "bindings", "rust", "Cargo.toml")]
    env = sanitizer_env(args, env, logdir)
    if args.sanitize:
        host = re.search(r"^host: (\S+)", subprocess.run(
            ["rustc", "-vV"], capture_output=True, text=True, env=env).stdout, flags=re.M)
        if not host:
            skip("cannot tell rustc's host triple")
        var = "CARGO_TARGET_%s_RUNNER" % host.group(1).upper().replace("-", "_")
        env[var] = "env LD_PRELOAD=" + env["IOVAQ_ASAN_PRELOAD"]
        cmd += ["--all-targets"]  # no doc-tests: rustdoc would run them without the preload
    cmd += ["--", "--test-threads=2"]
    print("bindings: " + " ".join(cmd), flush=True)
    rc = subprocess.run(cmd, env=env, cwd=args.work).returncode
    ok = check_sanitizer_logs(logdir) if args.sanitize else True
    return 0 if rc == 0 and ok else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["python", "rust"])
    ap.add_argument("--lib", required=True)
    ap.add_argument("--layout", required=True)
    ap.add_argument("--src", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--sanitize", default="")
    ap.add_argument("--build-dir")
    ap.add_argument("--cmake")
    args = ap.parse_args()
    return run_python(args) if args.what == "python" else run_rust(args)


if __name__ == "__main__":
    sys.exit(main())
