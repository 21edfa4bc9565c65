"""CI thresholds and exit codes. On growth_phases's snapshots, whose growth
is known to the byte (largest stack 409600 B, largest line 819200 B, all
stacks 950272 B), --fail-above and --fail-total-above one byte (or one
thousandth of a percent) under the growth exit 1, at the growth exit 0
("more than" is strict). The report says which limit was crossed, in
every format. Bad usage and unreadable or malformed snapshots exit 2 with
a message naming the file (and the line, where there is one)."""
import json
import os

from mltest import *

LARGEST_STACK, LARGEST_LINE, TOTAL = 409600, 819200, 950272

snaps = growth_phases_snapshots()
d = os.path.dirname(snaps[0])
r = diff_json(*snaps)
check(r["stacks"][0]["growth_bytes"] == LARGEST_STACK, "largest stack grew %d" % r["stacks"][0]["growth_bytes"])
check(r["growth_bytes"] == TOTAL, "total growth %d" % r["growth_bytes"])
base_live, head_live = r["total"]["base_live_bytes"], r["total"]["head_live_bytes"]
check(head_live - base_live == TOTAL, "live bytes grew %d" % (head_live - base_live))


def diff_rc(*args, fmt="json"):
    p = cli("diff", *snaps, "--format", fmt, *args, expect_rc=None)
    check(p.returncode in (0, 1), "diff %s exited %d: %s" % (args, p.returncode, p.stderr))
    return p


# --fail-above: any single row (a stack; a group with --group-by)
for limit, want in ((LARGEST_STACK - 1, 1), (LARGEST_STACK, 0), ("399KiB", 1), ("400KiB", 0)):
    p = diff_rc("--fail-above", limit)
    check(p.returncode == want, "--fail-above %s exited %d, expected %d" % (limit, p.returncode, want))
    j = json.loads(p.stdout)
    check(j["passed"] == (want == 0) and j["thresholds"]["fail_above"]["crossed"] == (want == 1), p.stdout[:300])
    if want:
        check("threshold crossed" in p.stderr and "--fail-above" in p.stderr, p.stderr)
for limit, want in ((LARGEST_LINE - 1, 1), (LARGEST_LINE, 0)):
    p = diff_rc("--group-by", "line", "--fail-above", limit)
    check(p.returncode == want, "--group-by line --fail-above %s exited %d" % (limit, p.returncode))

# --fail-total-above SIZE: live bytes of the selected stacks, last minus first
for limit, want in ((TOTAL - 1, 1), (TOTAL, 0)):
    p = diff_rc("--fail-total-above", limit)
    check(p.returncode == want, "--fail-total-above %d exited %d, expected %d" % (limit, p.returncode, want))
    check(json.loads(p.stdout)["thresholds"]["fail_total_above"]["crossed"] == (want == 1), p.stdout[:300])
# --fail-total-above PCT of the base: the exact percentage is TOTAL/base*100;
# limits are kept in thousandths of a percent
milli = TOTAL * 100000 // base_live            # floor of the percentage, in thousandths
exact = TOTAL * 100000 % base_live == 0
under = milli - 1 if exact else milli        # strictly below the growth
over = milli if exact else milli + 1         # at or just above it
for m, want in ((under, 1), (over, 0)):
    pct = "%d.%03d%%" % (m // 1000, m % 1000)
    p = diff_rc("--fail-total-above", pct)
    check(p.returncode == want, "--fail-total-above %s (growth is %.5f%%) exited %d, expected %d"
          % (pct, TOTAL * 100.0 / base_live, p.returncode, want))
    check(json.loads(p.stdout)["thresholds"]["fail_total_above"]["percent"] == m / 1000.0, "percent echoed")
# both at once: either crossing fails
check(diff_rc("--fail-above", "1GiB", "--fail-total-above", "1").returncode == 1, "the total alone fails")
check(diff_rc("--fail-above", "1GiB", "--fail-total-above", "1GiB").returncode == 0, "neither crossed")

# every format says so
p = diff_rc("--fail-above", LARGEST_STACK - 1, fmt="markdown")
check(p.stdout.startswith("### memledger: ❌") and "409599 B (400.0 KiB) limit" in p.stdout, p.stdout[:300])
p = diff_rc("--fail-above", LARGEST_STACK, fmt="markdown")
check(p.stdout.startswith("### memledger: ✅ within limits"), p.stdout[:300])
p = diff_rc("--fail-above", LARGEST_STACK - 1, "--color", "never", fmt="text")
check("FAIL --fail-above 409599 B (400.0 KiB): the largest growth, #1, is +400.0 KiB" in p.stdout, p.stdout[-400:])
p = diff_rc("--fail-total-above", TOTAL, "--color", "never", fmt="text")
check("pass --fail-total-above 950272 B (928.0 KiB)" in p.stdout, p.stdout[-400:])

# bad usage: exit 2
for args in (["--fail-above", "lots"], ["--fail-above", "10%"], ["--fail-total-above", "%"],
             ["--fail-total-above", "1.0001%"], ["--min-growth", "-1"], ["--group-by", "file"],
             ["--format", "xml"], ["--domain", "gpu"], ["--include", ""], ["--color", "sometimes"]):
    p = cli("diff", *snaps, *args, expect_rc=2)
    check("Try 'memledger diff --help'" in p.stderr, "%s: %s" % (args, p.stderr))
cli("diff", snaps[0], expect_rc=2)

# unreadable or malformed snapshots: exit 2, naming the file (and line)
with open_snapshot(snaps[2]) as f:
    good = f.read()
lines = good.splitlines(True)
stack_line = next(i for i, l in enumerate(lines) if l.startswith("s\t"))
cases = {
    "truncated.snap": (good[: len(good) // 2], None),
    "no_end.snap": ("".join(l for l in lines if not l.startswith("end\t")), None),
    "bad_frame_ref.snap": ("".join(lines[:stack_line]) + lines[stack_line].rsplit("\t", 1)[0] + "\t999999\n" +
                           "".join(lines[stack_line + 1:]), stack_line + 1),
    "bad_number.snap": ("".join(lines[:stack_line]) + lines[stack_line].replace("\tmalloc\t", "\tmalloc\t12x", 1) +
                        "".join(lines[stack_line + 1:]), stack_line + 1),
    "not_a_snapshot.snap": ("hello\n", 1),
    "empty.snap": ("", None),
}
for name, (text, line) in cases.items():
    bad = os.path.join(d, name)
    with open(bad, "w") as f:
        f.write(text)
    for args in (["diff", snaps[0], bad, "--fail-above", "1GiB"], ["diff", bad, snaps[0]],
                 ["diff", snaps[0], snaps[1], bad, "--format", "markdown"]):
        p = cli(*args, expect_rc=2)
        check(bad in p.stderr, "%s: the message does not name the file: %r" % (name, p.stderr))
        if line:
            check("%s:%d:" % (bad, line) in p.stderr, "%s: no line %d in %r" % (name, line, p.stderr))
        check(p.stdout == "", "%s: a report was printed for a bad input" % name)
missing = os.path.join(d, "missing.snap")
p = cli("diff", snaps[0], missing, expect_rc=2)
check(missing in p.stderr and "No such file" in p.stderr, p.stderr)
p = cli("diff", snaps[0], d, expect_rc=2)  # a directory
check(d in p.stderr, p.stderr)
print("ok: --fail-above %d/%d -> 1/0, --fail-total-above %d/%d -> 1/0 and %s%%/%s%% -> 1/0; bad inputs -> 2"
      % (LARGEST_STACK - 1, LARGEST_STACK, TOTAL - 1, TOTAL, under / 1000, over / 1000))
