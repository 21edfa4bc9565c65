"""mlsnap — for the Python programs the tests run under the ledger: ask this
process's ledger for snapshot `seq` through the real signal path (SIGUSR2,
written by memledger's own thread) and wait until the file is complete (it
appears under its final name only once written)."""
import gzip
import os
import signal
import time


def open_text(path):
    """A snapshot's text: gzip-compressed as the library writes it."""
    with open(path, "rb") as f:
        packed = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt") if packed else open(path)


def snapshot(seq, timeout=120):
    """Snapshot `seq` of this process: memledger.<pid>.<seq>.snap, or where
    that number or a later one is taken already (an earlier process with
    this pid), the number after the highest taken, as the library does."""
    d = os.environ.get("MEMLEDGER_DIR", ".")
    prefix = "memledger.%d." % os.getpid()
    taken = [int(f[len(prefix):-5]) for f in os.listdir(d)
             if f.startswith(prefix) and f.endswith(".snap") and f[len(prefix):-5].isdigit()]
    path = os.path.join(d, "%s%d.snap" % (prefix, max([seq - 1] + taken) + 1))
    os.kill(os.getpid(), signal.SIGUSR2)
    deadline = time.time() + timeout
    while not os.path.exists(path):
        if time.time() > deadline:
            raise SystemExit("snapshot %s never appeared" % path)
        time.sleep(0.002)
    return path
