"""A storm of 1,000 snapshot signals under load, with the disk "full"
(RLIMIT_FSIZE below a snapshot's size, SIGXFSZ at its default action) for
300 of them: the program ends with its own exit status; every snapshot file
is complete and readable; no temporary file is left; one line on stderr
says why snapshots could not be written; and every snapshot reports, in its
`problem snapshots_failed` header, exactly how many before it could not be
written — the sequence numbers they took are the gaps."""
import json
import os
import re

from mltest import *

d = snapdir()
p = run_under([os.path.join(PROGRAMS, "storm")], d, check_rc=False)
check(p.returncode == 42, "exit status %d, expected the program's 42\n%s" % (p.returncode, p.stderr))
result = json.loads(p.stdout.strip().splitlines()[-1])
check(not leftover_temp_files(d), "temporary files left: %s" % leftover_temp_files(d))
snaps = snapshots_of(d)
seqs = [int(s.split(".")[-2]) for s in snaps]
check(seqs and seqs[-1] == result["last_seq"], "last snapshot %s, program saw %d" % (seqs[-1:], result["last_seq"]))
failed_total = 0
for path, seq in zip(snaps, seqs):
    snap = read_snapshot(path)  # complete: magic line to end record
    failed = int(header(snap, "problem", "snapshots_failed")[0])
    missing = sum(1 for s in range(1, seq) if s not in seqs)
    check(failed == missing, "%s: reports %d failed snapshots, but %d sequence numbers before it have no file"
          % (path, failed, missing))
    failed_total = failed
for path in snaps[:: max(1, len(snaps) // 20)] + snaps[-1:]:
    cli("top", path, "-n", "1")  # the CLI reads them too
check(failed_total > 0, "no snapshot failed while the file size limit was low: the test proves nothing")
lines = p.stderr.splitlines()
check(len(lines) == 1 and re.match(r"memledger: cannot write snapshot \d+ into %s \(MEMLEDGER_DIR\): File too large; "
                                   r"the program runs on$" % re.escape(d), lines[0]),
      "expected one line about the failed snapshots, got %r" % p.stderr)
print("ok: 1000 signals -> %d snapshots written, %d failed and reported; exit status 42 kept"
      % (len(snaps), failed_total))
