"""For one CPython (argv[1]: a pyenv version such as 3.11, or 'debian' for
/usr/bin/python3), programs/py_leaks.py runs under the ledger and leaks at
four known lines: bytes kept in a list, dict cycles with gc disabled, a
closure capturing a large object, and bytes kept from a threading.Thread.
In the diff of its two snapshots, the stacks whose innermost frame in the
script is each LEAK line must add up to what the script leaked there
(within 10%), in the python domain; the allocation freed in the loop
(MARK:churn) must show no growth at all. The python header lines must say
what the interpreter is and that gc was disabled."""
import json
import os
import sys

from mltest import *

spec = sys.argv[1] if len(sys.argv) > 1 else "debian"
python = python_for(spec)
SCRIPT = os.path.join(SOURCE, "programs", "py_leaks.py")
d = snapdir()
p = run_under([python, SCRIPT, "20"], d)
sizes = json.loads(p.stdout.strip().splitlines()[-1])
n = sizes["iter"]
check(not [l for l in p.stderr.splitlines() if l.startswith("memledger:")],
      "memledger complained:\n" + p.stderr)
pid = int(sorted(f for f in os.listdir(d) if f.endswith(".snap"))[0].split(".")[1])
base, head = snap_path(d, pid, 1), snap_path(d, pid, 2)
report = diff_json(base, head)
B, H = read_snapshot(base), read_snapshot(head)

expect = {"bytes": ("leak_bytes", sizes["bytes"]), "cycle": ("leak_cycle", sizes["cycle"]),
          "closure": ("make_callback", sizes["closure"]), "thread": ("thread_work", sizes["thread"])}
for site, (function, size) in expect.items():
    line = marker_line(SCRIPT, site)
    stacks, grown = growth_at(report, SCRIPT, line)
    truth = n * size
    check(stacks, "%s: no growing stack has %s:%d as its innermost script frame" % (site, SCRIPT, line))
    check(within(grown, truth), "%s: grew %d bytes at line %d, the script leaked %d" % (site, grown, line, truth))
    big = max(stacks, key=lambda s: s["growth_bytes"])
    check(big["domain"] == "python", "%s: biggest stack is in domain %s, not python" % (site, big["domain"]))
    f0 = script_frames(big, SCRIPT)[0]
    check(f0["function"] == function, "%s: innermost script frame is in %s, not %s" % (site, f0["function"], function))
    # the Python frame is the caller of native interpreter frames, never the other way round
    check(big["frames"][0]["kind"] == "native", "%s: innermost frame is not native" % site)
    print("ok: %s at line %d grew %d bytes (leaked %d, %+.2f%%)" % (site, line, grown, truth,
                                                                   100.0 * (grown - truth) / truth))

churn = marker_line(SCRIPT, "churn", tag="MARK")
stacks, grown = growth_at(report, SCRIPT, churn)
check(not stacks, "churn line %d (freed in the loop) shows growth: %s" % (churn, json.dumps(stacks)[:2000]))

# the thread's stack ends in threading's own frames, not the main thread's
thread_line = marker_line(SCRIPT, "thread")
big = max(growth_at(report, SCRIPT, thread_line)[0], key=lambda s: s["growth_bytes"])
names = [f["function"] for f in big["frames"] if f["kind"] == "python"]
check("one_round" not in names, "the thread's stack holds the main thread's frames: %s" % names)
check(any(nm.endswith("_bootstrap_inner") for nm in names), "the thread's stack lacks threading's frames: %s" % names)

want_version = subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                              stdout=subprocess.PIPE, text=True).stdout.strip()
check(header(H, "python_version") == [want_version],
      "python_version %s, the interpreter is %s" % (header(H, "python_version"), want_version))
check(header(H, "python_frames") == ["on"], "python_frames %s" % header(H, "python_frames"))
check(header(H, "python_pymem") == ["raw", "mem", "obj"], "python_pymem %s" % header(H, "python_pymem"))
gc1, gc2 = header(B, "python_gc"), header(H, "python_gc")
check(gc1 and gc2 and gc2[0] == "0", "python_gc should say disabled: %s" % gc2)
# with gc off nothing is collected: generation 0 counts every leaked container
check(int(gc2[1]) - int(gc1[1]) >= 2 * n, "gc generation 0 count went %s -> %s over %d cycles and closures"
      % (gc1[1], gc2[1], n))
print("ok: CPython %s (%s), gc off, generation 0 count %s -> %s" % (want_version, python, gc1[1], gc2[1]))
