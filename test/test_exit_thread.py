"""A thread calls exit(7) while a snapshot is being written (it waits for
the temporary file to appear first): the process exits 7, the snapshot in
flight is finished (complete, under its final name) rather than cut off, no
temporary file is left, and with MEMLEDGER_AT_EXIT=1 the exit snapshot
follows it, complete too. Repeated, since the race differs each time."""
import os

from mltest import *

ROUNDS = 6
caught = 0
for r in range(ROUNDS):
    at_exit = r % 2 == 1
    d = snapdir()
    p = run_under([os.path.join(PROGRAMS, "exit_thread")], d, check_rc=False,
                  extra_env={"MEMLEDGER_AT_EXIT": "1"} if at_exit else None)
    check(p.returncode == 7, "round %d: exit status %d, expected the program's 7\n%s" % (r, p.returncode, p.stderr))
    check(not leftover_temp_files(d), "round %d: temporary files left: %s" % (r, leftover_temp_files(d)))
    check(p.stderr == "", "round %d: stderr %r" % (r, p.stderr))
    snaps = snapshots_of(d)
    for s in snaps:
        read_snapshot(s)  # complete: magic line to end record
        cli("top", s, "-n", "1")
    triggers = [header(read_snapshot(s), "trigger")[0] for s in snaps]
    if "caught 1" in p.stdout:
        caught += 1
        # the snapshot exit() interrupted was finished, not abandoned
        check(triggers[:1] == ["signal"], "round %d: the snapshot in flight is missing: %s" % (r, triggers))
    check(triggers.count("exit") == (1 if at_exit else 0), "round %d: triggers %s" % (r, triggers))
    check(len(triggers) <= 2, "round %d: triggers %s" % (r, triggers))
check(caught >= ROUNDS // 2, "exit() raced a write in only %d of %d rounds: the test proves little" % (caught, ROUNDS))
print("ok: %d rounds exited 7 (%d while a snapshot was being written); every snapshot complete, no temporary file"
      % (ROUNDS, caught))
