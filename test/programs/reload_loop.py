"""reload_loop.py — loads two plugins in turn through ctypes and unloads
each, ROUNDS times; every round leaks 2 blocks through the plugin's own code
(plugin A: 2 x 100 bytes, plugin B: 2 x 200). After each unload it counts the
descriptors open on the plugin files (memledger's, the loader closes its
own); every 50 rounds, and once at the end, it takes a snapshot through
memledger's API. Prints one JSON line: the most descriptors seen after an
unload, and those left after the last snapshot.
Usage: reload_loop.py PLUGIN_A PLUGIN_B ROUNDS"""
import _ctypes
import ctypes
import json
import os
import sys
import time

plugins, rounds = sys.argv[1:3], int(sys.argv[3])
ledger = ctypes.CDLL(None)  # the preloaded library's API
ledger.memledger_snapshot.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def plugin_fds():
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.path.realpath(os.readlink("/proc/self/fd/" + fd)) in real
        except OSError:
            pass
    return n


real = {os.path.realpath(p) for p in plugins}
most = 0
for i in range(rounds):
    lib = ctypes.CDLL(plugins[i % 2])
    lib.plugin_leak(2, ctypes.c_size_t(100 if i % 2 == 0 else 200))
    _ctypes.dlclose(lib._handle)
    del lib
    time.sleep(0.002)  # memledger's thread catches up with the unload
    most = max(most, plugin_fds())
    if i % 50 == 49 and ledger.memledger_snapshot(None, 0) != 0:
        sys.exit("snapshot failed")
if ledger.memledger_snapshot(None, 0) != 0:
    sys.exit("snapshot failed")
print(json.dumps({"rounds": rounds, "most_fds": most, "fds_left": plugin_fds()}))
