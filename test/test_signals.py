"""The snapshot signal when the program wants it too (docs/config.md, "The
snapshot signal"):
- a program that installs its own handler for SIGUSR2 after memledger
  started (sigaction with SA_SIGINFO and a mask, signal(), SIG_IGN, SIG_DFL,
  SA_RESETHAND) keeps getting snapshots, its handler runs for each signal
  with the mask and siginfo the kernel would have given it, and sigaction
  reads back what it installed; SIG_DFL does not end the process;
- a program that blocks the signal in every one of its threads still gets
  its snapshots (memledger's thread keeps it open);
- a Python program's signal.signal handler for SIGUSR2 runs too."""
import json
import os
import subprocess

from mltest import *

PROG = os.path.join(PROGRAMS, "signals")

d = snapdir()
p = run_under([PROG, "own"], d)
r = json.loads(p.stdout.strip().splitlines()[-1])
want = {"found_default": 1, "info_calls": 3, "mask_ok": 1, "info_ok": 1, "reads_back": 1,
        "signal_returns_prev": 1, "plain_calls": 2, "reset_after_one": 1, "usr1_calls": 1, "snapshots": 8}
check(r == want, "own handler: got %s, expected %s" % (r, want))
check(len(snapshots_of(d)) == 8 and not leftover_temp_files(d), "snapshots: %s" % os.listdir(d))
check(p.stderr == "", p.stderr)
print("ok: the program's own handlers ran 3 + 2 times with the kernel's mask; 8 snapshots; SIG_DFL survived")

d = snapdir()
p = run_under([PROG, "block"], d)
r = json.loads(p.stdout.strip().splitlines()[-1])
check(r == {"snapshots": 2, "pending_in_program": 0}, "blocked everywhere: %s" % r)
check(len(snapshots_of(d)) == 2, "snapshots: %s" % os.listdir(d))
print("ok: SIGUSR2 blocked in every program thread: both snapshots written")

# Python: the handler a script installs with signal.signal runs, and the
# snapshot is written too
d = snapdir()
script = r'''
import os, signal, sys, time
calls = []
signal.signal(signal.SIGUSR2, lambda s, f: calls.append(s))
for seq in (1, 2):
    os.kill(os.getpid(), signal.SIGUSR2)
    path = os.path.join(os.environ["MEMLEDGER_DIR"], "memledger.%d.%d.snap" % (os.getpid(), seq))
    for _ in range(6000):
        if os.path.exists(path):
            break
        time.sleep(0.01)
    else:
        sys.exit("snapshot %d never came" % seq)
print(len(calls), signal.getsignal(signal.SIGUSR2) is not signal.SIG_DFL)
'''
p = run_under(["/usr/bin/python3", "-c", script], d)
check(p.stdout.split() == ["2", "True"], "python handler calls: %r %r" % (p.stdout, p.stderr))
check(len(snapshots_of(d)) == 2, "python snapshots: %s" % os.listdir(d))
print("ok: Python's signal.signal handler ran for both signals; both snapshots written")
