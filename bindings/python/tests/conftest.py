# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""Shared fixtures. The library under test comes from IOVAQ_LIBRARY (ctest sets it to the
build's libiovaq.so.0), else pkg-config, as for any user of the package."""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # bindings/python: the package itself

import iovaq  # noqa: E402

SRC = os.path.abspath(os.path.join(HERE, "..", "..", ".."))


@pytest.fixture
def backend():
    with iovaq.Backend.open_sim(seed=1) as be:
        yield be


@pytest.fixture
def space():
    ap = [(0, (1 << 32) - 1)]
    with iovaq.Space(ap, reserved=[(iovaq.IOVAQ_X86_MSI_START, iovaq.IOVAQ_X86_MSI_LAST)]) as sp:
        yield sp


def pytest_report_header(config):
    return "libiovaq %s from %s" % (iovaq.version(), iovaq.load().path)
