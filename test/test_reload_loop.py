"""A service that loads and unloads plugins in a loop: memledger keeps a
plugin's file open only while it needs it (the rule service reading its CFI,
a snapshot naming its frames), not one open file per load ever made; the
snapshots still name every load's leaking frames, with exact bytes."""
import json
import os
import sys

from mltest import *

ROUNDS = 200
a, b = os.path.join(PROGRAMS, "libplugin_a.so"), os.path.join(PROGRAMS, "libplugin_b.so")
d = snapdir()
p = run_under([sys.executable, os.path.join(SOURCE, "programs", "reload_loop.py"), a, b, str(ROUNDS)], d)
r = json.loads(p.stdout.strip().splitlines()[-1])
check(r["fds_left"] == 0, "descriptors left open on unloaded plugins after the last snapshot: %s" % r)
check(r["most_fds"] < ROUNDS // 4, "descriptors pile up on plugin files while reloading: %s" % r)

last = snapshots_of(d)[-1]
t = top_json(last)
held = {}
for s in t["stacks"]:
    for f in s["frames"]:
        mod = os.path.basename(f.get("module") or "")
        if mod in ("libplugin_a.so", "libplugin_b.so"):
            key = (mod, f["function"])
            held[key] = held.get(key, 0) + s["live_bytes"]
            break
want = {("libplugin_a.so", "plugin_leak"): ROUNDS // 2 * 2 * 100, ("libplugin_b.so", "inner"): ROUNDS // 2 * 2 * 200}
check(held == want, "plugin frames and bytes: %s, expected %s" % (held, want))
print("ok: %d loads, at most %d descriptors on plugin files at once, none left; every load's frames named"
      % (ROUNDS, r["most_fds"]))
