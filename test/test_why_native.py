"""`memledger why` in a C program (programs/why_native.c, no Python): a
block in an exported global array is held by a native global, named by
its symbol and module; a block held by a malloc'd array of pointers that
hangs from a static global is two native pointers from a module's data
(the module named, the array's block and the pointer's offset in it); a
block whose
pointer was dropped is held by nothing. The answer says Python was not
searched and why; the figures are exact; the program runs on unharmed."""
import json
import os
import subprocess

from mltest import *

PROG = os.path.join(PROGRAMS, "why_native")
SRC = os.path.join(SOURCE, "programs", "why_native.c")
ITER = 10
d = snapdir()
stop = os.path.join(d, "stop")
proc = subprocess.Popen([PROG, stop], env=dict(os.environ, MEMLEDGER_DIR=d, LD_PRELOAD=LIB),
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
try:
    check(proc.stdout.readline() == "ready\n", "the program did not get ready")
    r = json.loads(cli("why", proc.pid, "--base", snap_path(d, proc.pid, 1), "-n", "3", "--samples", "4",
                       "--format", "json").stdout)
    text = cli("why", proc.pid, "--base", snap_path(d, proc.pid, 1), "-n", "3").stdout
finally:
    open(stop, "w").close()
out, err = proc.communicate(timeout=60)
# sum of first bytes: leak_table[i] and list data i hold byte i
want = "done %d %d\n" % (2 * sum(range(ITER + 1)), sum(i + 1 for i in range(ITER + 1)))
check(proc.returncode == 0 and out == want and err == "", "the program: rc %d, %r (wanted %r), %s"
      % (proc.returncode, out, want, err))
check(r["python"]["searched"] is False and r["python"]["why_not"] == "no Python interpreter in the process",
      "python: %s" % r["python"])
check(r["pause_ms"] == 0 and r["stopped"] == [], "pause %s, stopped %s" % (r["pause_ms"], r["stopped"]))


def stack(marker):
    line = marker_line(SRC, marker)
    found = [s for s in r["stacks"] if any(f["line"] == line and f["file"] == SRC for f in s["frames"])]
    check(len(found) == 1, "%s: %d stacks at line %d" % (marker, len(found), line))
    return found[0]


for marker, size in (("global", 7000), ("array", 9000), ("lost", 11000)):
    s = stack(marker)
    check(s["growth_bytes"] == ITER * size and s["live_blocks"] == ITER and s["sampled"] == 4,
          "%s: grew %d, %d live blocks, %d sampled" % (marker, s["growth_bytes"], s["live_blocks"], s["sampled"]))
    for ret in s["retainers"]:
        root, path = ret["root"], ret["path"]
        what = "%s: %s" % (marker, json.dumps(ret))
        check(ret["block"]["size"] == size and ret["block"]["domain"] == "malloc", what)
        if marker == "global":
            check(root["kind"] == "native_global" and root["module"] == PROG and root["symbol"] == "leak_table" and
                  root["offset"] % 8 == 0 and 8 <= root["offset"] <= 8 * ITER and path == [], what)
        elif marker == "array":
            # the static `blocks` (in the program's data) -> the array (64 pointers) -> the data
            check(root["kind"] == "native_global" and root["module"] == PROG and root["symbol"] is None and
                  len(path) == 1 and path[0]["via"] == "native" and path[0]["block_size"] == 512 and
                  8 <= int(path[0]["name"], 16) <= 8 * ITER, what)
        else:
            check(root == {"kind": "none"} and path == [], what)
for needle in ["native global leak_table+0x", "nothing  [no reference found", "512 B block, pointer at +0x"]:
    check(needle in text, "the text lacks %r:\n%s" % (needle, text))
print("ok: a native global (leak_table), an array hanging from a static global, a dropped pointer, each named; "
      "search %.1f ms, %d blocks scanned" % (r["run_ms"], r["heap"]["blocks_scanned"]))
