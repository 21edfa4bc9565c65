"""Every CLI command given input it must refuse, never a crash, never a
sanitizer report (this test runs in the ASan/UBSan configuration too):
- top and diff (in either position) on a missing file, a directory, an empty
  file, a real snapshot truncated after every line and in the middle of
  lines, with one field corrupted in every record kind, with another format
  version, and hostile files (huge numbers, out-of-range references,
  duplicate header keys, NUL bytes, bad escapes, an overlong line, a
  million fields): exit status 2 and an error naming the file and the line;
- run and snapshot given bad arguments: exit status 2 and a clear message.
A file that is valid but strange (numbers at the int64 limit, a thousand
duplicate stacks) is read with exit status 0."""
import os
import random
import re
import subprocess

from mltest import *

d = snapdir()
run_under([os.path.join(PROGRAMS, "leak_sites")], d)
good, good2 = snapshots_of(d)
with open_snapshot(good) as f:
    text = f.read()
lines = text.split("\n")[:-1]
bad_dir = snapdir("mltest.bad.")
cases = 0


def refuse(content, line, why="", name="bad.snap"):
    """top and diff must exit 2 naming the file and `line` (None: any line)."""
    global cases
    path = os.path.join(bad_dir, name)
    if content is not None:
        with open(path, "wb") as f:
            f.write(content if isinstance(content, bytes) else content.encode())
    for args in (["top", path], ["diff", path, good], ["diff", good, path], ["diff", good, good2, path, "--format", "json"]):
        p = subprocess.run([CLI] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        err = p.stderr.decode(errors="replace")
        check(p.returncode == 2, "%s (%s): exit %d, expected 2\n%s" % (" ".join(args[:1]), why, p.returncode, err[-3000:]))
        where = "%s:%d:" % (path, line) if line is not None else path + ":"
        check(err.startswith("memledger: " + where) and err.count("\n") == 1,
              "%s (%s): error does not name %s: %r" % (args[0], why, where, err[:300]))
        check(p.stdout == b"" or args[0] == "diff", "%s (%s): printed a report for a bad file" % (args[0], why))
    cases += 1


def accept(content, why):
    global cases
    path = os.path.join(bad_dir, "strange.snap")
    with open(path, "w") as f:
        f.write(content)
    for args in (["top", path, "--format", "json"], ["diff", path, path], ["diff", good, path, "--format", "json"]):
        p = subprocess.run([CLI] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        check(p.returncode == 0, "%s (%s): exit %d\n%s" % (args[0], why, p.returncode, p.stderr.decode()[-2000:]))
    cases += 1


# missing, a directory, empty
p = cli("top", os.path.join(bad_dir, "missing.snap"), expect_rc=2)
check("missing.snap: No such file or directory" in p.stderr, p.stderr)
p = cli("diff", good, os.path.join(bad_dir, "missing.snap"), expect_rc=2)
check("missing.snap: No such file or directory" in p.stderr, p.stderr)
refuse(None, None, "a directory", name="")
refuse("", 1, "empty")

# truncated after every line (the end record is missing) and inside lines
for n in range(1, len(lines)):
    refuse("\n".join(lines[:n]) + "\n", n + 1, "truncated after line %d" % n)
rng = random.Random(7)
for _ in range(40):
    cut = rng.randrange(1, len(text) - 1)
    if text[cut - 1] == "\n":
        continue
    refuse(text[:cut], text[:cut].count("\n") + 1, "truncated at byte %d" % cut)

# wrong version, not a snapshot
check(text.startswith("memledger-snapshot\t2\n"), "the library should write version 2")
refuse(text.replace("memledger-snapshot\t2\n", "memledger-snapshot\t3\n", 1), 1, "version 3")
refuse(text.replace("memledger-snapshot\t2\n", "memledger-snapshot\t0x2\n", 1), 1, "version 0x2")
refuse(text.replace("memledger-snapshot\t2\n", "memledger-snapshot\t0\n", 1), 1, "version 0")

# the file as the library writes it, gzip-compressed: cut short anywhere, or
# with a byte changed, it is refused (naming the file), never half read
with open(good, "rb") as f:
    packed = f.read()
check(packed[:2] == b"\x1f\x8b", "the library should write gzip-compressed snapshots")
for cut in sorted(set([2, 10, len(packed) // 3, len(packed) // 2, len(packed) - 9, len(packed) - 1] +
                      [rng_cut for rng_cut in random.Random(3).sample(range(3, len(packed) - 1), 10)])):
    refuse(packed[:cut], None, "compressed, cut at byte %d of %d" % (cut, len(packed)))
for at in random.Random(5).sample(range(20, len(packed) - 20), 10):
    flipped = packed[:at] + bytes([packed[at] ^ 0x5a]) + packed[at + 1:]
    refuse(flipped, None, "compressed, byte %d changed" % at)
refuse(b"\x1f\x8b" + b"\0" * 50, None, "a gzip header and nothing")
refuse("\x89PNG\r\n\x1a\n" + "\0" * 100, 1, "binary")


# one corrupted field in each kind of record
def corrupt(kind, field, value):
    for i, l in enumerate(lines):
        f = l.split("\t")
        if f[0] == kind and len(f) > field:
            f[field] = value
            return "\n".join(lines[:i] + ["\t".join(f)] + lines[i + 1:]) + "\n", i + 1
    fail("no %s record" % kind)


for kind, field, value in (("pid", 1, "-5"), ("pid", 1, "1x"), ("time", 1, "nan"), ("time", 1, "inf"),
                           ("time", 1, "-1"), ("seq", 1, "99999999999"), ("stacks", 2, "many"),
                           ("domain", 1, "gpu"), ("domain", 2, "-1"), ("domain", 3, "9223372036854775808"),
                           ("module", 1, "7"), ("module", 3, "zz"), ("module", 5, "gone"),
                           ("module", 2, "ABCD"), ("module", 6, "bad\\escape"), ("frame", 1, "99"),
                           ("frame", 2, "java"), ("frame", 3, "100000"), ("frame", 4, "-"), ("frame", 7, "-3"),
                           ("frame", 5, "x\\"), ("s", 1, "heap"), ("s", 2, "-1"),
                           ("s", 3, "18446744073709551616"), ("s", 6, "1 2"), ("s", 6, "1x"), ("s", 6, ""),
                           ("s", 6, "99999999"), ("s", 6, "-1"), ("N", 1, "99999999"), ("N", 1, "-1"), ("N", 1, ""),
                           ("n", 1, "99999999"), ("n", 2, "0"), ("n", 2, "99999999"), ("n", 2, "x"), ("end", 1, "0"),
                           ("end", 2, "x"), ("end", 3, "0")):
    content, line = corrupt(kind, field, value)
    refuse(content, line, "%s field %d = %r" % (kind, field, value))

# inline records (inlined functions): only right after their own native frame
fr = next(i for i, l in enumerate(lines) if l.startswith("frame\t") and l.split("\t")[2] == "native")
fi = lines[fr].split("\t")[1]
nodes_at = next(i for i, l in enumerate(lines) if l.startswith(("N\t", "n\t")))


def with_line(at, extra):
    return "\n".join(lines[:at] + [extra] + lines[at:]) + "\n"


accept(with_line(fr + 1, "inline\t%s\tinlined_fn\t/src/x.c\t12" % fi), "an inline record after its frame")
accept(with_line(fr + 1, "inline\t%s\t-\t-\t-" % fi), "an inline record of unknown names")
refuse(with_line(fr + 1, "inline\t%d\tf\t-\t1" % (int(fi) + 1)), fr + 2, "inline record for another frame")
refuse(with_line(fr + 1, "inline\t%s\tf\t-" % fi), fr + 2, "inline record of 4 fields")
refuse(with_line(fr + 1, "inline\t%s\tf\t-\t-7" % fi), fr + 2, "inline record with a bad line")
refuse(with_line(nodes_at, "inline\t0\tf\t-\t1"), nodes_at + 1, "inline record among the nodes")
refuse(with_line(fr, "inline\t%s\tf\t-\t1" % fi), fr + 1, "inline record before its frame")

# hostile
header_end = next(i for i, l in enumerate(lines) if l.startswith("module\t"))
for key in ("exe", "cmdline", "trigger", "pid", "time", "stacks"):
    dup = next(l for l in lines if l.startswith(key + "\t"))
    refuse("\n".join(lines[:header_end] + [dup] + lines[header_end:]) + "\n", header_end + 1, "duplicate " + key)
dom = next(l for l in lines if l.startswith("domain\tmalloc\t"))
refuse("\n".join(lines[:header_end] + [dom] + lines[header_end:]) + "\n", header_end + 1, "duplicate domain")
refuse("\n".join(lines[:3] + ["pid\t1\0" + "2"] + lines[3:]) + "\n", 4, "NUL byte")
refuse("\n".join(lines[:3] + ["note\t" + "x" * (65 << 20)] + lines[3:]) + "\n", 4, "a 65 MiB line")
refuse("\n".join(lines[:3] + ["note" + "\tx" * 1000000] + lines[3:]) + "\n", 4, "a million fields")
refuse("\n".join(lines[:3] + ["Bad-Key\t1"] + lines[3:]) + "\n", 4, "a bad header key")
refuse(text + "s\tmalloc\t1\t1\t1\t1\t-\n", len(lines) + 1, "data after the end record")
refuse("\n".join(lines[:-1] + ["end\t18446744073709551616\t1\t1"]) + "\n", len(lines), "end count overflow")
refuse("\n".join(lines[:-1] + ["end\t1\t1"]) + "\n", len(lines), "a version 1 end record in version 2")

# valid but strange: figures at the int64 limit (their sums must not
# overflow), the same stack a thousand times, a module with no frames
big = str(2**63 - 1)
stack_line = next(l for l in lines if l.startswith("s\t"))
f = stack_line.split("\t")
huge = "\t".join(f[:2] + [big, big, big, big] + f[6:])
body = [l for l in lines if not l.startswith("s\t") and not l.startswith("end\t")]
nframes = sum(1 for l in lines if l.startswith("frame\t"))
nnodes = sum(1 for l in lines if l.startswith(("N\t", "n\t")))
accept("\n".join(body + [huge] * 1000 + ["end\t1000\t%d\t%d" % (nframes, nnodes)]) + "\n", "int64-limit figures x1000")

# the longest command line the writer records (8 KiB of /proc/self/cmdline:
# thousands of empty arguments) is read back
d2 = snapdir()
run_under([os.path.join(PROGRAMS, "leak_sites")] + [""] * 6000, d2)
for s in snapshots_of(d2):
    check(len(header(read_snapshot(s), "cmdline")) > 4096, "the command line was cut short")
    cli("top", s)
cases += 1

# run and snapshot: bad arguments
for args, pattern in ((["run"], "no command given"), (["run", "--dir", os.path.join(bad_dir, "nope"), "--", "true"],
                                                        "is not a directory"),
                      (["run", "--sample", "lots", "--", "true"], "is not a size"),
                      (["run", "--depth", "0", "--", "true"], "is not a number from 1"),
                      (["run", "--signal", "KILL", "--", "true"], "is not a signal"),
                      (["snapshot"], "expected one PID"), (["snapshot", "-5"], "unknown option"), (["snapshot", "0"], "is not a process id"),
                      (["snapshot", "99999999999"], "is not a process id"),
                      (["snapshot", "1", "--timeout", "soon"], "is not a duration"),
                      (["top"], "expected one snapshot file"), (["diff", good], "expected at least two"),
                      (["top", good, "--domain", "gpu"], "is not a domain"),
                      (["diff", good, good, "--format", "xml"], "--format must be")):
    p = cli(*args, expect_rc=2)
    check(re.search(re.escape(pattern), p.stderr), "%s: %r" % (" ".join(args), p.stderr))
    cases += 1
p = subprocess.run([CLI, "snapshot", str(os.getpid())], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
check(p.returncode == 2 and "does not have libmemledger.so loaded" in p.stderr, p.stderr)
print("ok: %d bad inputs refused with exit 2 and file:line (or a clear message); strange but valid files read" % cases)
