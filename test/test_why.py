"""`memledger why` names what keeps each leak alive, in a program that runs
under the ledger with default settings and gc disabled (programs/py_why.py;
argv[1]: a pyenv version such as 3.11, or 'debian' for /usr/bin/python3,
which also keeps torch CPU tensors). For the stack of each LEAK line, every
sampled block's retention path must start at the right root and name each
holder: the module-level list and its index, the closure variable of the
function kept in a list, the dict keyed by request id and the key, the
unreachable self-referencing dict (with gc disabled and its counts), the
Registry instance's dict attribute and the tensor's native ownership, the
object attribute, the class attribute, the local variable. The figures are
exact: each stack grew by ITER x the block's size and holds ITER live
blocks (the warm-up request's come from another line of main, so another
stack). The program keeps running, prints exactly what it prints without
`why`, and no file but the snapshots is left behind."""
import json
import os
import subprocess
import sys
import time

from mltest import *

spec = sys.argv[1] if len(sys.argv) > 1 else "debian"
python = python_for(spec)
torch = spec == "debian"
if torch and subprocess.run([python, "-c", "import torch"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL).returncode != 0:
    fail("python3-torch is not installed (scripts/setup-deps test installs it)")
SCRIPT = os.path.join(SOURCE, "programs", "py_why.py")
ITER = 10
d = snapdir()
stop = os.path.join(d, "stop")
env = dict(os.environ, MEMLEDGER_DIR=d, LD_PRELOAD=LIB,
           PYTHONPATH=os.path.join(SOURCE, "programs"))
proc = subprocess.Popen([python, SCRIPT, str(ITER), stop] + (["--torch"] if torch else []), env=env,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
try:
    first = proc.stdout.readline()
    check(first == "ready\n", "the program did not get ready: %r\n%s" % (first, proc.stderr.read() if
                                                                        proc.poll() is not None else ""))
    base = snap_path(d, proc.pid, 1)
    t0 = time.time()
    p = cli("why", proc.pid, "--base", base, "-n", "12", "--format", "json")
    wall = time.time() - t0
    report = json.loads(p.stdout)
    check(proc.poll() is None, "the program ended during why")
    text = cli("why", proc.pid, "--base", base, "-n", "12").stdout
finally:
    open(stop, "w").close()
out, err = proc.communicate(timeout=300)

# the program ran on, unharmed: its output is what it always prints
sizes = {"list": 100000, "closure": 120000, "session": 140000, "cycle": 160000, "attr": 180000,
         "classattr": 90000, "local": 80000}
want = json.dumps({"requests": 2 * ITER + 1, "intact": True, "gc_enabled": False, "sizes": sizes}, sort_keys=True)
check(proc.returncode == 0, "the program exited %d:\n%s" % (proc.returncode, err))
check(out == want + "\n", "the program's output changed:\n%r\nwanted\n%r" % (out, want))
check(err == "", "the program's stderr is not empty:\n%s" % err)
left = sorted(f for f in os.listdir(d) if f != "stop")
check(left == ["memledger.%d.%d.snap" % (proc.pid, i) for i in (1, 2, 3)],
      "files left in MEMLEDGER_DIR: %s" % left)

py = report["python"]
check(py["searched"] and not py["gc_enabled"] and len(py["gc_counts"]) == 3,
      "python section: %s" % py)
check(report["stopped"] == [], "the search stopped: %s" % report["stopped"])
check(0 < report["pause_ms"] <= report["max_pause_ms"] and report["pause_ms"] <= report["run_ms"],
      "pause %.1f ms, run %.1f ms, limit %d ms" % (report["pause_ms"], report["run_ms"], report["max_pause_ms"]))


def leak_stack(marker):
    """The stack whose user frame is the LEAK marker's line (the one that grew most)."""
    line = marker_line(SCRIPT, marker)
    found = [s for s in report["stacks"] if s["user_frame"] is not None and
             s["frames"][s["user_frame"]]["file"] == SCRIPT and s["frames"][s["user_frame"]]["line"] == line]
    check(found, "%s: no stack explained at %s:%d; stacks: %s" % (marker, SCRIPT, line,
          [(s["frames"][s["user_frame"]]["function"], s["growth_bytes"]) for s in report["stacks"]]))
    return max(found, key=lambda s: s["growth_bytes"])


def hops(r):
    return [(h["type"], h["via"], h["name"]) for h in r["path"]]


# each leak: its block size (the figures are exact), domain, and what every retainer must say
expect = {
    "list": (sizes["list"] + 33, "python"),       # a bytes object: its header and the data
    "closure": (sizes["closure"] + 1, "python"),  # a bytearray's buffer: the data and a NUL
    "session": (sizes["session"] + 1, "python"),
    "cycle": (sizes["cycle"] + 1, "python"),
    "attr": (sizes["attr"] + 1, "python"),
    "classattr": (sizes["classattr"] + 33, "python"),
    "local": (sizes["local"] + 33, "python"),
}
if torch:
    expect["tensor"] = (128 * 256 * 4, "malloc")  # float32 storage from c10's CPU allocator

for marker, (size, domain) in expect.items():
    s = leak_stack(marker)
    check(s["domain"] == domain, "%s: domain %s, not %s" % (marker, s["domain"], domain))
    check(s["growth_bytes"] == ITER * size and s["growth_count"] == ITER,
          "%s: grew %d bytes in %d blocks, the program kept %d x %d" % (marker, s["growth_bytes"],
                                                                      s["growth_count"], ITER, size))
    check(s["live_blocks"] == ITER and s["sampled"] == 3 and len(s["retainers"]) == 3,
          "%s: %d live blocks, %d sampled, %d retainers" % (marker, s["live_blocks"], s["sampled"],
                                                             len(s["retainers"])))
    for r in s["retainers"]:
        check(r["block"]["size"] == size and r["block"]["domain"] == domain,
              "%s: sampled block %s" % (marker, r["block"]))
        root, h = r["root"], hops(r)
        natives = [x for x in r["path"] if x["via"] == "native"]
        what = "%s: %s\n  root %s\n  path %s" % (marker, r["text"], root, h)
        if marker == "list":
            check(root == {"kind": "module_global", "module": "__main__", "name": "history"}, what)
            check(len(h) == 2 and h[0] == ("module", "global", "history") and h[1][:2] == ("list", "index") and
                  0 < int(h[1][2]) <= ITER and r["object"] == "bytes", what)
        elif marker == "closure":
            check(root["kind"] == "module_global" and root["name"] == "callbacks", what)
            check(h[1][:2] == ("list", "index") and h[2] == ("function", "closure", "buf") and
                  r["path"][2]["function"] == "make_handler.<locals>.handler", what)
            check(natives and natives[0]["type"] == "bytearray" and len(natives) == 1, what)
        elif marker == "session":
            check(root["kind"] == "module_global" and root["name"] == "sessions", what)
            check(h[1][:2] == ("dict", "key") and h[1][2].startswith("'req-") and h[1][2].endswith("'"), what)
            check(natives and natives[0]["type"] == "bytearray", what)
        elif marker == "cycle":
            check(root["kind"] == "unreachable_cycle" and root["type"] == "dict" and
                  root["gc_enabled"] is False and root["gc_counts"] == py["gc_counts"], what)
            check(h[0] == ("dict", "key", "'payload'") and natives and natives[0]["type"] == "bytearray", what)
        elif marker == "attr":
            check(root["kind"] == "module_global" and root["name"] == "holders", what)
            check(h[1][:2] == ("list", "index") and h[2] == ("Holder", "attribute", "buf"), what)
            check(natives and natives[0]["type"] == "bytearray", what)
        elif marker == "tensor":
            check(root["kind"] == "module_global" and root["name"] == "REGISTRY", what)
            check(h[1] == ("Registry", "attribute", "tensors") and h[2][:2] == ("dict", "key") and
                  0 < int(h[2][2]) <= ITER, what)
            # THPVariable -> TensorImpl -> StorageImpl -> the data
            check(len(natives) == 3 and natives[0]["type"] == "Tensor" and
                  all(n["type"] == "native block" and n["domain"] == "malloc" for n in natives[1:]), what)
        elif marker == "classattr":
            check(root == {"kind": "class_attribute", "module": "__main__", "name": "Cache", "attribute": "entries"},
                  what)
            check(h[1] == ("Cache", "class attribute", "entries") and h[2][:2] == ("list", "index") and
                  r["object"] == "bytes", what)
        elif marker == "local":
            check(root["kind"] == "frame_local" and root["name"] == "inflight" and root["function"] == "main" and
                  root["file"] == SCRIPT and isinstance(root["line"], int), what)
            check(len(h) == 1 and h[0][:2] == ("list", "index") and r["object"] == "bytes", what)

# the text form says the same
for needle in ["__main__.history[", "closure variable 'buf' of make_handler.<locals>.handler()",
               "__main__.sessions['req-", "unreachable: part of a reference cycle", "gc disabled",
               ".buf (bytearray) -> native pointer at +0x", "__main__.Cache.entries[",
               "[local variable in main at %s:" % SCRIPT, "paused the program's Python threads"] + \
        (["__main__.REGISTRY.tensors[", "(Tensor) -> native pointer at +0x"] if torch else []):
    check(needle in text, "the text report lacks %r:\n%s" % (needle, text))
print("ok: %s: why named the holder of %d leaks (%s); pause %.1f ms, search %.1f ms (native scan %.1f ms), "
      "%d objects tracked, %d walked; %.1f s for the command" % (
          spec, len(expect), ", ".join(expect), report["pause_ms"], report["run_ms"], report["scan_ms"],
          py["objects"], py["objects_walked"], wall))
