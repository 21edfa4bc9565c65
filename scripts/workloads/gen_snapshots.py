#!/usr/bin/env python3
"""gen_snapshots — synthetic, valid memledger snapshots (docs/format.md), for
benchmarks and for tests of stack matching at scale.

    gen_snapshots.py OUTDIR [--stacks N] [--depth D] [--seed S] [--summary FILE]

Writes OUTDIR/base.snap and OUTDIR/head.snap, as two *different* processes
would: other pids, other load addresses, modules and frames numbered in
another order. So `memledger diff` can only pair their stacks by the
address-free identity (build-id + offset, or file/function/line).

Shape: N stacks of D frames over a shared call tree (outer frames shared by
many stacks, inner ones drawn from per-level pools, the innermost three
spelling the stack's number, so every stack is distinct) across 24 shared
objects. A third of the stacks are Python allocations whose frames mix
Python and interpreter frames, a few are CUDA. Between base and head: every
10th stack grows, every 7th shrinks, 1% disappear and 1% are new. --summary
writes what a correct diff must report, as JSON.
"""
import argparse
import json
import os
import random

LEVEL_POOL = 1500  # distinct frames per call depth for the inner levels


def esc(s):
    if s is None:
        return "-"
    if s == "-":
        return "\\-"
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


class Universe:
    """Frames and modules both snapshots draw from, keyed by identity."""

    def __init__(self, rng, depth):
        self.rng = rng
        self.depth = depth
        self.modules = []  # (build_id, path, size)
        for i in range(24):
            bid = "%040x" % rng.getrandbits(160)
            self.modules.append((bid, "/usr/lib/x86_64-linux-gnu/libsynth%02d.so.1" % i, 0x400000))
        self.modules.append(("%040x" % rng.getrandbits(160), "/srv/app/bin/service", 0x800000))
        self.frames = {}  # key -> frame tuple

    def native(self, level, slot):
        key = ("n", level, slot)
        f = self.frames.get(key)
        if f is None:
            m = (level * 7 + slot) % len(self.modules)
            off = 0x1000 + ((level * 7919 + slot * 104729) % 0x3f0000)
            fn = "fn_l%d_s%d" % (level, slot) if slot % 9 else None  # some stripped frames
            src = "src/level%d.c" % level if slot % 3 == 0 else None
            f = ("native", m, off, fn, src, (slot % 500) + 1 if src else None)
            self.frames[key] = f
        return f

    def python(self, level, slot):
        key = ("p", level, slot)
        f = self.frames.get(key)
        if f is None:
            f = ("python", None, None, "handler_%d_%d" % (level, slot),
                 "/srv/app/pkg/mod%d.py" % (slot % 97), (slot * 13) % 900 + 1)
            self.frames[key] = f
        return f

    def stack(self, i):
        """Frames of stack i, innermost first, and its domain."""
        python = i % 3 == 1
        domain = "python" if python else ("cuda" if i % 50 == 7 else "malloc")
        frames = []
        digits = (i % 64, (i // 64) % 64, (i // 4096) % 64)
        for level in range(self.depth):
            if level < 3:
                slot = digits[level] + 64 * (i // 262144)
            else:
                shared = i >> min(17, max(0, level - 3))  # outer levels: shared by more stacks
                slot = (shared * 2654435761 + level) % LEVEL_POOL
            if python and level % 4 == 2:
                frames.append(self.python(level, slot))
            else:
                frames.append(self.native(level, slot))
        return domain, frames


def write(path, u, pid, stacks, rng, seq):
    """stacks: list of (domain, frames, live_bytes, live_count)."""
    order = list(range(len(u.modules)))
    rng.shuffle(order)  # another process saw its modules in another order
    mod_index = {m: i for i, m in enumerate(order)}
    biases = {m: 0x7f0000000000 + rng.randrange(1 << 28) * 0x1000 for m in order}
    used = {}
    for _, frames, _, _ in stacks:
        for f in frames:
            used.setdefault(f, None)
    flist = list(used)
    rng.shuffle(flist)
    findex = {f: i for i, f in enumerate(flist)}
    totals = {}
    for d, _, b, c in stacks:
        t = totals.setdefault(d, [0, 0])
        t[0] += b
        t[1] += c
    out = ["memledger-snapshot\t1", "pid\t%d" % pid, "ppid\t1", "exe\t/srv/app/bin/service",
           "cmdline\t/srv/app/bin/service\t--synthetic", "time\t%d.000000000" % (1700000000 + seq * 60),
           "seq\t%d" % seq, "trigger\tsignal", "rss\t%d" % (sum(t[0] for t in totals.values()) + (64 << 20)),
           "peak_rss\t%d" % (sum(t[0] for t in totals.values()) + (80 << 20)), "sample_bytes\t0",
           "depth\t%d" % u.depth, "stacks\t%d\t262144\t0" % len(stacks)]
    for d in ("malloc", "python", "cuda", "cuda.managed", "cuda.host", "cuda.vmm"):
        b, c = totals.get(d, (0, 0))
        out.append("domain\t%s\t%d\t%d\t%d\t%d" % (d, b, c, b * 2, c * 2))
    for i, m in enumerate(order):
        bid, mpath, size = u.modules[m]
        out.append("module\t%d\t%s\t%x\t%x\tloaded\t%s" % (i, bid, biases[m], size, esc(mpath)))
    for i, f in enumerate(flist):
        kind, m, off, fn, src, line = f
        if kind == "native":
            out.append("frame\t%d\tnative\t%d\t%x\t%s\t%s\t%s" % (i, mod_index[m], off, esc(fn), esc(src),
                                                                 line if line else "-"))
        else:
            out.append("frame\t%d\tpython\t-\t-\t%s\t%s\t%d" % (i, esc(fn), esc(src), line))
    for sid, (d, frames, b, c) in enumerate(stacks):
        out.append("stack\t%d\t%s\t%d\t%d\t%d\t%d\t%s" % (sid + 1, d, b, c, b * 2, c * 2,
                                                         " ".join(str(findex[f]) for f in frames)))
    out.append("end\t%d\t%d" % (len(stacks), len(flist)))
    tmp = path + ".tmp"
    with open(tmp, "w") as fp:
        fp.write("\n".join(out) + "\n")
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--stacks", type=int, default=100000)
    ap.add_argument("--depth", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--summary", help="write the expected diff figures here (JSON)")
    a = ap.parse_args()
    if a.depth < 4:
        ap.error("--depth must be at least 4")
    rng = random.Random(a.seed)
    u = Universe(rng, a.depth)
    n = a.stacks
    base, head = [], []
    grown = grown_bytes = grown_count = 0
    n_new = max(1, n // 100)
    for i in range(n + n_new):
        domain, frames = u.stack(i)
        size = 16 << (i % 12)
        count = 1 + i % 40
        in_base = i < n and i % 100 != 99
        in_head = i < n and i % 100 != 98 or i >= n
        b = (size * count, count) if in_base else (0, 0)
        h = b
        if not in_base:
            h = (size * count, count)
        elif i % 10 == 3:
            h = (b[0] + size * (1 + i % 5), b[1] + 1 + i % 5)
        elif i % 7 == 5:
            h = (b[0] // 2, b[1] // 2)
        if not in_head:
            h = (0, 0)
        if in_base:
            base.append((domain, frames, b[0], b[1]))
        if in_head:
            head.append((domain, frames, h[0], h[1]))
        if h[0] - b[0] > 0 or h[1] - b[1] > 0:
            grown += 1
            grown_bytes += h[0] - b[0]
            grown_count += h[1] - b[1]
    os.makedirs(a.outdir, exist_ok=True)
    write(os.path.join(a.outdir, "base.snap"), u, 4242, base, rng, 1)
    write(os.path.join(a.outdir, "head.snap"), u, 5353, head, rng, 2)
    summary = {"base_stacks": len(base), "head_stacks": len(head), "grown_stacks": grown,
               "growth_bytes": grown_bytes, "growth_count": grown_count,
               "base_live": sum(s[2] for s in base), "head_live": sum(s[2] for s in head)}
    if a.summary:
        with open(a.summary, "w") as fp:
            json.dump(summary, fp)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
