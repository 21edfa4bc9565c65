"""A library unloaded and a different one loaded at the same base (both are
linked at one address, which the loader takes: the program checks it),
then the first again, at that base too: each plugin's leaks are charged to
its own code, named from its own file (the first plugin is named even after
it was unloaded), in stacks of its own (a return address of B that equals
one of A's never joins A's stack), each load its own module entry, with the
same stacks from the fast unwinder as from libunwind. With libc-dlclose the
plugins are unloaded through the dlclose found by dlsym on libc's own handle
(past every interposer): memledger hands out its own there, so the unloads
are seen all the same."""
import json
import os
import sys

from mltest import *

# "libc-dlclose": the plugins are unloaded through libc's own dlclose, found
# by dlsym on libc's handle (memledger hands out its dlclose there too)
how = sys.argv[1:]

a, b = os.path.join(PROGRAMS, "libplugin_a.so"), os.path.join(PROGRAMS, "libplugin_b.so")
results = {}
for mode in ("libunwind", "auto"):
    d = snapdir()
    p = run_under([os.path.join(PROGRAMS, "reload"), a, b] + how, d, extra_env={"MEMLEDGER_UNWIND": mode})
    bases = json.loads(p.stdout.strip().splitlines()[-1])
    check(bases["a_base"] == bases["b_base"] == bases["a2_base"],
          "%s: the plugins were not loaded at one base: %s" % (mode, bases))
    snap = [f for f in os.listdir(d) if f.endswith(".snap")]
    check(len(snap) == 1, "%s: snapshots %s" % (mode, snap))
    with open_snapshot(os.path.join(d, snap[0])) as f:
        mods = [l.split("\t") for l in f if l.startswith("module\t") and "libplugin_" in l]
    # three loads, three module entries, at one place: A (unloaded), B (unloaded), A
    spans = [(m[3], m[4]) for m in mods]
    check([os.path.basename(m[6].rstrip("\n")) for m in mods] == ["libplugin_a.so", "libplugin_b.so", "libplugin_a.so"]
          and [m[5] for m in mods] == ["unloaded", "unloaded", "loaded"],
          "%s: module entries %s" % (mode, [(m[5], m[6].rstrip()) for m in mods]))
    check(len(set(m[3] for m in mods)) == 1, "%s: the plugins' module entries are not at one base: %s" % (mode, spans))
    # no stack mixes the two plugins' frames, though their addresses coincide
    for st in read_snapshot(os.path.join(d, snap[0]))["stacks"]:
        libs = {os.path.basename(f["module"]) for f in st["frames"] if "libplugin_" in (f["module"] or "")}
        check(len(libs) <= 1, "%s: a stack holds frames of both plugins: %s" % (mode, [
            (f["function"], f["line"], f["module"]) for f in st["frames"]]))
    t = top_json(os.path.join(d, snap[0]))
    got = {}
    for s in t["stacks"]:
        for f in s["frames"]:
            if (f.get("module") or "").endswith(("libplugin_a.so", "libplugin_b.so")):
                key = (os.path.basename(f["module"]), f["function"], f["line"],
                       tuple(g["function"] for g in s["frames"]))
                got[key] = got.get(key, (0, 0))
                got[key] = (got[key][0] + s["live_bytes"], got[key][1] + s["live_count"])
                break
    results[mode] = got
    per_plugin = {}
    for (mod, fn, line, _), (nb, nc) in got.items():
        p = per_plugin.setdefault(mod, [0, 0, set()])
        p[0] += nb
        p[1] += nc
        p[2].add((fn, line))
    src = os.path.join(SOURCE, "programs", "plugin.c")
    check(per_plugin.get("libplugin_a.so", [0, 0])[:2] == [111 * 1000, 1000],
          "%s: plugin A holds %s" % (mode, per_plugin.get("libplugin_a.so")))
    check(per_plugin.get("libplugin_b.so", [0, 0])[:2] == [222 * 500, 500],
          "%s: plugin B holds %s" % (mode, per_plugin.get("libplugin_b.so")))
    check(per_plugin["libplugin_a.so"][2] == {("plugin_leak", marker_line(src, "plugin_a"))},
          "%s: plugin A named %s" % (mode, per_plugin["libplugin_a.so"][2]))
    check(per_plugin["libplugin_b.so"][2] == {("inner", marker_line(src, "plugin_b"))},
          "%s: plugin B named %s" % (mode, per_plugin["libplugin_b.so"][2]))
check(results["auto"] == results["libunwind"],
      "stacks differ between unwinders:\n%s\n%s" % (results["auto"], results["libunwind"]))
print("ok: plugins A, B, A loaded at one base (%#x)%s: each one's leaks at its own line, in its own stacks, "
      "same stacks from both unwinders" % (bases["a_base"], " and unloaded with libc's own dlclose" if how else ""))
