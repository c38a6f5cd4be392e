# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""Every ctypes struct and constant of iovaq._ffi against the C headers, as a C compiler sees
them (bindings/layout/layout.c; ctest passes the built program in IOVAQ_LAYOUT)."""

import ctypes
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import SRC
from iovaq import _ffi


def _layout_text():
    exe = os.environ.get("IOVAQ_LAYOUT")
    if exe:
        return subprocess.run([exe], check=True, capture_output=True, text=True).stdout
    cc = os.environ.get("CC", "cc")
    if not shutil.which(cc):
        pytest.skip("no IOVAQ_LAYOUT and no C compiler to build bindings/layout/layout.c")
    inc = os.environ.get("IOVAQ_INCLUDE_DIR", os.path.join(SRC, "include"))
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "layout")
        subprocess.run([cc, "-std=gnu11", "-I", inc, "-o", exe,
                        os.path.join(SRC, "bindings", "layout", "layout.c")], check=True)
        return subprocess.run([exe], check=True, capture_output=True, text=True).stdout


def parse(text):
    structs, fields, consts = {}, {}, {}
    for line in text.splitlines():
        w = line.split()
        if w[0] == "struct":
            structs[w[1]] = (int(w[2]), int(w[3]))
            fields[w[1]] = []
        elif w[0] == "field":
            fields[w[1]].append((w[2], int(w[3]), int(w[4])))
        elif w[0] == "const":
            consts[w[1]] = int(w[2])
        else:
            raise ValueError("bad layout line %r" % line)
    return structs, fields, consts


@pytest.fixture(scope="module")
def layout():
    return parse(_layout_text())


def test_every_c_struct_is_declared(layout):
    structs, _, _ = layout
    assert sorted(structs) == sorted(_ffi.STRUCTS)


@pytest.mark.parametrize("name", sorted(_ffi.STRUCTS))
def test_struct_layout(layout, name):
    structs, fields, _ = layout
    cls = _ffi.STRUCTS[name]
    size, align = structs[name]
    assert ctypes.sizeof(cls) == size
    assert ctypes.alignment(cls) == align
    assert [f[0] for f in cls._fields_] == [f[0] for f in fields[name]]
    for fname, off, fsize in fields[name]:
        desc = getattr(cls, fname)
        assert (fname, desc.offset, desc.size) == (fname, off, fsize)


def test_constants(layout):
    _, _, consts = layout
    mine = {k: v for k, v in vars(_ffi).items() if k.startswith("IOVAQ_")}
    assert sorted(mine) == sorted(consts)
    for k, v in consts.items():
        assert mine[k] == v, k


def test_layout_parser_rejects_garbage():
    with pytest.raises(ValueError):
        parse("bogus line")
