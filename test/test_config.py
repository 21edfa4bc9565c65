"""Every MEMLEDGER_* variable given nonsense (empty, negative, huge, a wrong
unit, control characters): the program runs to its own end with its own
output and exit status, stderr holds exactly one line, naming the variable,
and the default is used, as the snapshots it writes show. The table must
have a row for every variable src/common/config.c knows, so a new setting cannot
be added without one."""
import os
import re
import subprocess

from mltest import *

PROG = os.path.join(PROGRAMS, "leak_sites")  # takes snapshots 1 and 2 with SIGUSR2, exits 0
HUGE = "9" * 100000
GENERIC = ["", "-1", "18446744073709551616000", "7 parsecs", "\x01\n", HUGE]


def expect_snapshots(n):
    return lambda snaps: check(len(snaps) == n, "expected %d snapshots, got %d" % (n, len(snaps)))


def expect_header(key, *fields, at=0):
    def f(snaps):
        for s in snaps:
            got = header(read_snapshot(s), key)
            check(got is not None and got[at:at + len(fields)] == list(fields),
                  "%s: header %s is %s, expected %s" % (s, key, got, list(fields)))
    return f


def expect_triggers(trigger):
    return lambda snaps: [check(header(read_snapshot(s), "trigger") == [trigger],
                                "%s was not written on %s" % (s, trigger)) for s in snaps]


def expect_cmdline_kept(snaps):
    for s in snaps:
        cmd = header(read_snapshot(s), "cmdline")
        check(cmd and cmd[0] == PROG, "%s: cmdline %s should be the program's" % (s, cmd))


# variable -> (nonsense values, what the default looks like in the snapshots)
TABLE = {
    "MEMLEDGER_ENABLE": (GENERIC + ["2", "maybe"], expect_snapshots(2)),
    "MEMLEDGER_DIR": (["", "/" + "d" * 5000], expect_snapshots(2)),  # -> the current directory
    "MEMLEDGER_SIGNAL": (GENERIC + ["KILL", "SIGSEGV", "RTMIN+99", "65"], expect_snapshots(2)),
    "MEMLEDGER_SAMPLE_BYTES": (GENERIC + ["16EiB", "1.5", "0x10", "512 KB B"], expect_header("sample_bytes", "0")),
    "MEMLEDGER_DEPTH": (GENERIC + ["0", "257", "64KiB", "1e3", " 5"], expect_header("depth", "256")),
    "MEMLEDGER_STACKS": (GENERIC + ["1000", "16777217", "1M"], expect_header("stacks", "4194304", at=1)),
    "MEMLEDGER_AT_EXIT": (GENERIC + ["2", "exit"], expect_snapshots(2)),
    "MEMLEDGER_EXIT_STALL": (GENERIC + ["0", "500ms", "nan", "5 min", "1e400"], expect_snapshots(2)),
    "MEMLEDGER_INTERVAL": (GENERIC + ["nan", "inf", "1e400", "99999999999999999999h", "5 min"],
                           expect_triggers("signal")),
    "MEMLEDGER_UNWIND": (GENERIC + ["dwarf", "FP"], expect_header("unwind", "mode", "auto")),
    "MEMLEDGER_REDACT_CMDLINE": (GENERIC + ["2", "redact"], expect_cmdline_kept),
    # a program that is not CPython runs as it would with the default (1)
    "MEMLEDGER_PYTHON": (GENERIC + ["2", "python"], expect_snapshots(2)),
    # the default, auto, in a program that never touches CUDA ("off" would
    # show as off)
    "MEMLEDGER_CUDA": (GENERIC + ["OFF", "hook", "cupti "], expect_header("cuda", "backend", "unused")),
}

# the table covers every variable config.c knows
with open(os.path.join(SOURCE, "..", "src", "common", "config.c")) as f:
    known = set(re.findall(r'"(MEMLEDGER_[A-Z_]+)"', f.read()))
check(known == set(TABLE), "config.c knows %s but the table has %s" % (sorted(known), sorted(TABLE)))


def run_with(var, value):
    d = snapdir("mltest.config.")
    env = dict(os.environ, LD_PRELOAD=LIB, MEMLEDGER_DIR=d)
    env[var] = value
    if var == "MEMLEDGER_DIR":
        env["ML_TEST_SNAPDIR"] = d  # where the program looks for its snapshots
    p = subprocess.run([PROG], env=env, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120)
    return d, p


runs = 0
for var, row in sorted(TABLE.items()):
    values = row[0] if row else ["", "-1", "7 parsecs", HUGE]
    for value in values:
        shown = value if len(value) < 40 else value[:20] + "..."
        d, p = run_with(var, value)
        out, err = p.stdout.decode(), p.stderr.decode(errors="replace")
        check(p.returncode == 0 and "iterations 25" in out,
              "%s=%r: the program did not run to its end (exit %d)\n%s%s" % (var, shown, p.returncode, out,
                                                                              err[:2000]))
        lines = err.splitlines()
        if row is None:
            check(lines == [], "%s=%r (reserved): unexpected stderr %r" % (var, shown, err))
        else:
            check(len(lines) == 1, "%s=%r: expected one line on stderr, got %r" % (var, shown, err[:500]))
            check(lines[0].startswith("memledger: " + var + "=") and len(lines[0]) < 400,
                  "%s=%r: the line does not name the variable: %r" % (var, shown, lines[0][:200]))
            row[1](snapshots_of(d))
        runs += 1

# a MEMLEDGER_ name that is no setting (a typo) is named too
d, p = run_with("MEMLEDGER_DEPHT", "12")
check(p.returncode == 0 and p.stderr.decode().splitlines() ==
      ["memledger: MEMLEDGER_DEPHT is not a memledger setting (see docs/config.md); ignored"], p.stderr)
print("ok: %d nonsense settings over %d variables: one line each, defaults used, every run complete"
      % (runs, len(TABLE)))
