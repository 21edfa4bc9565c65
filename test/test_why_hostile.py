"""`memledger why` on hostile objects (programs/py_why_hostile.py under
Debian's python3, default settings, gc disabled, a million live objects):
dict keys whose __hash__ and __repr__ block and whose __eq__ and
__getattribute__ raise, a dict subclass whose __iter__, keys,
__getitem__ and __repr__ raise, a leak at the end of a 10,000-hop chain, and an
unreachable cycle that only a walk of every object can call unreachable.
  1. With a 30 ms pause limit the search stops cleanly: it says where it
     stopped, the pause stays near the limit, the answer is well formed.
  2. With the default limits it completes: the hostile dict and its key
     (shown by type and address, never by repr), the chain (its middle left
     out, the count of hops exact), the cycle.
Either way the program is unharmed: it runs on, no hostile method was
called (the program records any call, and a call to __hash__ or
__repr__ would block the search for an hour), and it prints what it always prints."""
import json
import os
import subprocess
import time

from mltest import *

python = python_for("debian")
SCRIPT = os.path.join(SOURCE, "programs", "py_why_hostile.py")
ITER, OBJECTS, CHAIN = 10, 1000000, 10000
d = snapdir()
stop = os.path.join(d, "stop")
env = dict(os.environ, MEMLEDGER_DIR=d, LD_PRELOAD=LIB, PYTHONPATH=os.path.join(SOURCE, "programs"))
proc = subprocess.Popen([python, SCRIPT, str(ITER), stop, str(OBJECTS)], env=env,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
try:
    first = proc.stdout.readline()
    check(first == "ready\n", "the program did not get ready: %r" % first)
    base = snap_path(d, proc.pid, 1)
    t0 = time.time()
    short = json.loads(cli("why", proc.pid, "--base", base, "-n", "3", "--max-pause", "30ms",
                           "--format", "json").stdout)
    t1 = time.time()
    full = json.loads(cli("why", proc.pid, "--base", base, "-n", "3", "--format", "json").stdout)
    t2 = time.time()
    check(proc.poll() is None, "the program ended during why")
finally:
    open(stop, "w").close()
out, err = proc.communicate(timeout=300)

want = json.dumps({"hostile_calls": [], "objects": OBJECTS, "chain": CHAIN, "payloads": ITER, "gc_enabled": False},
                  sort_keys=True)
check(proc.returncode == 0 and err == "", "the program exited %d:\n%s" % (proc.returncode, err))
check(out == want + "\n", "the program's output changed (a hostile method ran?):\n%r\nwanted\n%r" % (out, want))
check(sorted(f for f in os.listdir(d) if f != "stop") ==
      ["memledger.%d.%d.snap" % (proc.pid, i) for i in (1, 2, 3)], "files left: %s" % os.listdir(d))


def stack_at(report, marker):
    line = marker_line(SCRIPT, marker)
    found = [s for s in report["stacks"] if s["user_frame"] is not None and
             s["frames"][s["user_frame"]]["line"] == line and s["frames"][s["user_frame"]]["file"] == SCRIPT]
    check(found, "%s: no stack at line %d" % (marker, line))
    return found[0]


# 1. the short pause: stopped, said so, within bounds
check(short["max_pause_ms"] == 30 and short["stopped"] and "pause limit" in " ".join(short["stopped"]),
      "a 30 ms pause did not stop the search: %s" % short["stopped"])
# the limit is checked every 256 objects walked and 65536 listed; naming what was found comes after
check(short["pause_ms"] < 30 + 200, "paused %.1f ms with a 30 ms limit" % short["pause_ms"])
for s in short["stacks"]:
    for r in s["retainers"]:
        check(r["root"]["kind"] in ("unknown", "module_global"), "short search: %s" % r)

# 2. default limits: complete
py = full["python"]
check(full["stopped"] == [], "the search stopped: %s" % full["stopped"])
check(py["objects"] >= OBJECTS and py["gc_enabled"] is False, "python: %s" % py)
check(full["pause_ms"] <= full["max_pause_ms"], "paused %.1f ms, limit %d" % (full["pause_ms"], full["max_pause_ms"]))

s = stack_at(full, "hostile")
for r in s["retainers"]:
    h = [(x["type"], x["via"], x["name"]) for x in r["path"]]
    check(r["root"] == {"kind": "module_global", "module": "__main__", "name": "hostile_map"} and
          h[1][:2] == ("HostileDict", "key") and h[1][2].startswith("<Hostile object at 0x") and
          r["path"][2]["type"] == "bytearray" and r["path"][2]["via"] == "native", "hostile: %s" % r)

s = stack_at(full, "chain")
check(s["live_blocks"] == ITER, "chain: %d live blocks" % s["live_blocks"])
for r in s["retainers"]:
    h = [(x["type"], x["via"], x["name"]) for x in r["path"]]
    el = [x for x in r["path"] if x["via"] == "elided"]
    check(r["root"]["kind"] == "module_global" and r["root"]["name"] == "chain_head", "chain: %s" % r["root"])
    check(len(el) == 1 and h[0] == ("module", "global", "chain_head") and h[1] == ("Node", "attribute", "next") and
          h[-1] == ("Node", "attribute", "payload") and r["object"] == "bytes", "chain: %s" % h)
    named = len(r["path"]) - 1
    elided = int(el[0]["name"].split()[0])
    # the global, CHAIN // ITER next-hops per request up to the payload's, and the payload
    check(named == 24 and (named + elided - 2) % (CHAIN // ITER) == 0 and
          CHAIN // ITER <= named + elided - 2 <= CHAIN, "chain: %d hops named, %d left out" % (named, elided))
    check("... (%d hops) ..." % elided in r["text"], "chain text: %s" % r["text"])

s = stack_at(full, "cycle")
for r in s["retainers"]:
    check(r["root"]["kind"] == "unreachable_cycle" and r["path"][0]["via"] == "key" and
          r["path"][0]["name"] == "'payload'", "cycle: %s" % r)

print("ok: %d objects: a 30 ms limit stopped after %.1f ms of pause (%s); default limits: complete, pause %.1f ms, "
      "search %.1f ms (native scan %.1f ms), %d objects walked; commands took %.1f s and %.1f s; no hostile call"
      % (py["objects"], short["pause_ms"], short["stopped"][0], full["pause_ms"], full["run_ms"], full["scan_ms"],
         py["objects_walked"], t1 - t0, t2 - t1))
