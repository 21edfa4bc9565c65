"""Where the eval loop's code is (the python_eval header line: offsets of
_PyEval_EvalFrameDefault and of the part GCC moved out of line, .cold).
A return address in either is an eval frame, replaced by Python frames.
For each CPython in argv: where the full symbol table names a .cold part
bigger than a few instructions (one a call can return into), memledger
must have found exactly it; for Debian's stripped python3, which names
none, nearly every jump from the hot part to code outside it must land in
the part memledger found (the cold blocks are only reached that way)."""
import glob
import os
import re
import subprocess
import sys

from mltest import *


def eval_header(python):
    d = snapdir()
    run_under([python, "-c", "pass"], d, extra_env={"MEMLEDGER_AT_EXIT": "1"})
    snaps = [f for f in os.listdir(d) if f.endswith(".snap")]
    check(len(snaps) == 1, "expected the exit snapshot, got %s" % snaps)
    h = header(read_snapshot(os.path.join(d, snaps[0])), "python_eval")
    check(h and len(h) == 4, "python_eval header: %s" % h)
    return [int(x, 16) if x != "-" else None for x in h]


def eval_module(python, spec):
    if spec == "debian":
        return os.path.realpath(python)
    libs = glob.glob(os.path.join(os.path.dirname(os.path.dirname(python)), "lib", "libpython%s*.so.1.0" % spec))
    return libs[0] if libs else os.path.realpath(python)


results = []
for spec in sys.argv[1:]:
    python = python_for(spec)
    hot, hot_size, cold, cold_size = eval_header(python)
    module = eval_module(python, spec)
    nm = subprocess.run(["nm", "-S", module], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    syms = {m.group(3): (int(m.group(1), 16), int(m.group(2), 16))
            for m in re.finditer(r"^([0-9a-f]+) ([0-9a-f]+) [tT] (_PyEval_EvalFrameDefault(?:\.cold)?)$", nm, re.M)}
    if "_PyEval_EvalFrameDefault" in syms:
        check(syms["_PyEval_EvalFrameDefault"] == (hot, hot_size),
              "%s: hot part %x+%x, the symbol table says %x+%x" % ((spec, hot, hot_size) + syms["_PyEval_EvalFrameDefault"]))
        want = syms.get("_PyEval_EvalFrameDefault.cold")
        if want and want[1] > 64:
            check((cold, cold_size) == want, "%s: cold part %s, the symbol table says %x+%x" % ((spec, (cold, cold_size)) + want))
            results.append("%s: cold part %x+%x as the symbol table says" % (spec, cold, cold_size))
        else:
            check(cold is None or (cold, cold_size) == want, "%s: found a cold part %s the symbol table lacks"
                  % (spec, (cold, cold_size)))
            results.append("%s: no cold part a call can return into (%s)" % (spec, "%x bytes" % want[1] if want else "none"))
        continue
    # stripped: the hot part's jumps that leave it
    dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "--start-address=0x%x" % hot,
                          "--stop-address=0x%x" % (hot + hot_size), module], stdout=subprocess.PIPE, text=True).stdout
    targets = [int(t, 16) for t in re.findall(r"\tj[a-z]+\s+([0-9a-f]+)\b", dis)]
    out = [t for t in targets if not hot <= t < hot + hot_size]
    check(out, "%s: no jump leaves the hot part; nothing to check" % spec)
    check(cold is not None, "%s: %d jumps leave the hot part, but no cold part was found" % (spec, len(out)))
    inside = [t for t in out if cold <= t < cold + cold_size]
    check(len(inside) >= 0.95 * len(out), "%s: only %d of %d outward jumps land in the cold part %x+%x"
          % (spec, len(inside), len(out), cold, cold_size))
    results.append("%s: %d of %d outward jumps land in the cold part found, %x+%x" % (spec, len(inside), len(out),
                                                                                      cold, cold_size))
print("ok:\n  " + "\n  ".join(results))
