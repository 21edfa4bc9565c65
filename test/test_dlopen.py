"""A library loaded with dlopen leaks and is unloaded (twice, with another
library loaded and unloaded in between): its frames are still named from
the file after it is gone — function, file and line inside the unloaded
library — with exact bytes per load, and the snapshot marks the modules
unloaded."""
import json
import os

from mltest import *

SRC = os.path.join(SOURCE, "programs", "mlplugin.c")
A, B = (os.path.join(PROGRAMS, "libmlplugin_%s.so" % v) for v in "ab")
d = snapdir()
p = run_under([os.path.join(PROGRAMS, "dlopen_leak"), A, B], d)
check(json.loads(p.stdout.strip().splitlines()[-1])["leaked"] == 20, p.stdout)
first, second = snapshots_of(d)
line = marker_line(SRC, "plugin")

# the raw file: each load of a plugin is its own module entry, all unloaded
snap = read_snapshot(second)
for lib, loads in ((A, 2), (B, 1)):
    mods = [m for m in snap["modules"] if m["path"] == lib]
    check(len(mods) == loads, "%s: %d module entries, expected %d" % (lib, len(mods), loads))
    check(all(m["state"] == "unloaded" for m in mods), "%s is not marked unloaded" % lib)
    check(all(m["build_id"] for m in mods), "%s has no build-id" % lib)

r = diff_json(first, second)
got = {}
for fn, lib in (("plugin_leak_a", A), ("plugin_leak_b", B)):
    for s in stacks_at(r, fn):
        f0 = innermost(s)
        check(f0["file"] and f0["file"].endswith("/mlplugin.c") and f0["line"] == line,
              "%s: named %s:%s, expected mlplugin.c:%d" % (fn, f0["file"], f0["line"], line))
        check(f0["module"] == lib, "%s: module %s, expected %s" % (fn, f0["module"], lib))
        check(any(f["function"] == "main" for f in s["frames"]), "%s: main not on the stack" % fn)
        got.setdefault(fn, []).append((s["growth_bytes"], s["growth_count"]))
# plugin a leaked from two call sites in main (first and second load): two stacks
check(sorted(got.get("plugin_leak_a", [])) == [(3 * 4321, 3), (10 * 4321, 10)],
      "plugin_leak_a grew %s, expected 10 x 4321 and 3 x 4321" % got.get("plugin_leak_a"))
check(got.get("plugin_leak_b") == [(7 * 1234, 7)], "plugin_leak_b grew %s, expected 7 x 1234" % got.get("plugin_leak_b"))
check(not leftover_temp_files(d), "temporary files left behind")
print("ok: leaks in unloaded libraries named at mlplugin.c:%d with exact bytes (a: 10+3 x 4321, b: 7 x 1234)" % line)
