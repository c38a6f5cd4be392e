#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""Hot-unplug a device from a running QEMU when its guest asks for it (docs/vm-testbed.md).

    tests/vm/qmp-unplug.py CONSOLE QMP_SOCKET DEVICE_ID [TIMEOUT_S]

Waits for the line "iovaq-vm: hotplug: device_del now" in the guest's serial console file,
then sends QMP device_del for DEVICE_ID over the unix socket and waits for QEMU's
DEVICE_DELETED event, which comes once the guest has released and removed the device.
Exit 0 when it came; 1 otherwise (no request from the guest, no socket, device_del refused,
no event within TIMEOUT_S seconds, default 240). Run by tests/vm/run-vm.sh
(IOVAQ_VM_HOTPLUG=1), beside QEMU.
"""
import json
import os
import socket
import sys
import time

REQUEST = b"iovaq-vm: hotplug: device_del now"


def log(msg):
    print(f"qmp-unplug.py: {msg}", flush=True)


def wait_request(console, deadline):
    while time.monotonic() < deadline:
        try:
            with open(console, "rb") as f:
                if REQUEST in f.read():
                    return True
        except FileNotFoundError:
            pass
        time.sleep(0.2)
    return False


class Qmp:
    def __init__(self, path, deadline):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        while True:
            try:
                self.s.connect(path)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.buf = b""
        self.deadline = deadline
        self.events = []

    def msg(self):
        while b"\n" not in self.buf:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message from QEMU")
            self.s.settimeout(left)
            data = self.s.recv(65536)
            if not data:
                raise EOFError("QEMU closed the QMP socket")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, **args):
        req = {"execute": name}
        if args:
            req["arguments"] = args
        self.s.sendall(json.dumps(req).encode() + b"\n")
        while True:
            m = self.msg()
            if "return" in m or "error" in m:
                return m
            self.events.append(m)


def main():
    if len(sys.argv) < 4:
        log("usage: qmp-unplug.py CONSOLE QMP_SOCKET DEVICE_ID [TIMEOUT_S]")
        return 2
    console, path, dev = sys.argv[1:4]
    deadline = time.monotonic() + float(sys.argv[4] if len(sys.argv) > 4 else 240)
    if not wait_request(console, deadline):
        log("the guest never asked for the unplug")
        return 1
    try:
        q = Qmp(path, deadline)
        q.msg()  # the greeting
        r = q.cmd("qmp_capabilities")
        if "error" in r:
            log(f"qmp_capabilities: {r['error']}")
            return 1
        t0 = time.monotonic()
        r = q.cmd("device_del", id=dev)
        if "error" in r:
            log(f"device_del {dev}: {r['error'].get('desc', r['error'])}")
            return 1
        log(f"device_del {dev} sent")
        events = list(q.events)
        while True:
            for m in events:
                if m.get("event") == "DEVICE_DELETED" and m.get("data", {}).get("device") == dev:
                    log(f"DEVICE_DELETED {dev} after {time.monotonic() - t0:.1f} s")
                    return 0
            events = [q.msg()]
    except (OSError, EOFError, TimeoutError, ValueError) as e:
        log(f"no DEVICE_DELETED for {dev}: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
