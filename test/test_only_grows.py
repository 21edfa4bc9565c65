"""The leak signal. growth_phases has, after warm-up, a cache that fills and
then stops, a steady churn and a real leak, each reached from two entry
points (serve_get, serve_post), and takes three snapshots: after warm-up
and after each of two rounds of 100 requests. The diff of the three marks
only the leak as "only grows", with its exact bytes; the cache grew in one
interval of two; the churn does not appear. The same figures hold grouped
by line and by function (keyed on the innermost frame of user code:
cache_put, not the C library's strdup under it), with --include, --exclude,
--min-growth and --domain, and across two different processes."""
import os

from mltest import *

SRC = os.path.join(SOURCE, "programs", "growth_phases.c")
LEAK, CACHE = 4096, 8192
ROUND = 100  # requests per round, half through each entry point
LEAK_PER_STACK = 2 * (ROUND // 2) * LEAK          # 409600: two rounds
CACHE_PER_STACK = (64 - 48) // 2 * CACHE          # 65536: slots 48..63, filled in round 1 only
LEAK_LINE, CACHE_LINE = marker_line(SRC, "leak"), marker_line(SRC, "cache")


def site(stack):
    """(function, line) of the stack's innermost frame of user code."""
    f = stack["frames"][stack["user_frame"]]
    return f["function"], f["line"]


def entry(stack):
    names = [f["function"] for f in stack["frames"]]
    return "serve_get" if "serve_get" in names else "serve_post" if "serve_post" in names else None


snaps = growth_phases_snapshots()
r = diff_json(*snaps)

# by stack: four rows, the two leak stacks only grow, the cache stacks grew once
rows = {(site(s), entry(s)): s for s in r["stacks"]}
check(len(r["stacks"]) == 4, "expected 4 growing stacks, got %s" % [(site(s), entry(s)) for s in r["stacks"]])
for ep in ("serve_get", "serve_post"):
    leak = rows.get((("keep_copy", LEAK_LINE), ep))
    check(leak, "no leak stack through %s" % ep)
    check(leak["growth_bytes"] == LEAK_PER_STACK and leak["growth_count"] == ROUND,
          "leak via %s grew %d B in %d, expected %d B in %d" % (ep, leak["growth_bytes"], leak["growth_count"],
                                                                LEAK_PER_STACK, ROUND))
    check(leak["only_grows"] and leak["grew_intervals"] == 2 and leak["intervals"] == 2,
          "leak via %s is not 'only grows': %s" % (ep, leak))
    check(leak["user_frame"] == 0, "keep_copy calls malloc itself: its frame is the innermost")
    cache = rows.get((("cache_put", CACHE_LINE), ep))
    check(cache, "no cache stack through %s" % ep)
    check(cache["growth_bytes"] == CACHE_PER_STACK and cache["growth_count"] == 8,
          "cache via %s grew %d B in %d" % (ep, cache["growth_bytes"], cache["growth_count"]))
    check(not cache["only_grows"] and cache["grew_intervals"] == 1,
          "the cache filled and stopped, yet: %s" % cache)
    # the cache entry is strdup'ed: innermost frame libc's, user code one out
    check(cache["user_frame"] == 1 and "strdup" in cache["frames"][0]["function"] and
          "libc.so" in (cache["frames"][0]["module"] or ""), "cache frames: %s" % cache["frames"][:2])
check(not any("churn" in (f["function"] or "") for s in r["stacks"] for f in s["frames"][:2]),
      "the churn shows growth")
check(r["only_grows"] == 2 and r["grown"] == 4, "summary counts: %d only grow, %d grew" % (r["only_grows"], r["grown"]))
check(r["growth_bytes"] == 2 * LEAK_PER_STACK + 2 * CACHE_PER_STACK,
      "total growth %d, expected %d" % (r["growth_bytes"], 2 * LEAK_PER_STACK + 2 * CACHE_PER_STACK))
check(r["total"]["head_live_bytes"] - r["total"]["base_live_bytes"] == r["growth_bytes"],
      "live bytes moved by more than the growing stacks")
check([s["growth_bytes"] for s in r["stacks"]] == sorted((s["growth_bytes"] for s in r["stacks"]), reverse=True),
      "rows are not sorted by growth")

# the text marks the same rows
text = cli("diff", *snaps, "--color", "never").stdout
marked = [l for l in text.splitlines() if l.rstrip().endswith("only grows")]
check(len(marked) == 2 and all("+409600" in l for l in marked), "text 'only grows' rows:\n" + text)
check("2 only grow" in text and "grew in 1 of 2 intervals" in text, text)
# with two snapshots there are no intervals to compare: no trend column
two = cli("diff", snaps[0], snaps[2], "--color", "never").stdout
check("only grows" not in two and "trend" not in two, two)

# grouped on the innermost user-code frame: one leak row, one cache row
for how in ("line", "function"):
    g = diff_json(*snaps, extra=("--group-by", how))
    check(g["group_by"] == how and len(g["stacks"]) == 2, "--group-by %s: %d rows" % (how, len(g["stacks"])))
    leak, cache = g["stacks"]
    check(site(leak) == ("keep_copy", LEAK_LINE) and leak["growth_bytes"] == 2 * LEAK_PER_STACK and
          leak["stacks"] == 2 and leak["only_grows"], "--group-by %s leak row: %s" % (how, leak))
    check(site(cache) == ("cache_put", CACHE_LINE) and cache["growth_bytes"] == 2 * CACHE_PER_STACK and
          cache["stacks"] == 2 and not cache["only_grows"], "--group-by %s cache row: %s" % (how, cache))

# filters: glob patterns on function, file or module (any frame)
only_cache = diff_json(*snaps, extra=("--include", "cache_*"))
check({site(s)[0] for s in only_cache["stacks"]} == {"cache_put"}, "--include cache_*")
check(only_cache["total"]["head_live_bytes"] - only_cache["total"]["base_live_bytes"] == 2 * CACHE_PER_STACK,
      "--include changes the totals to the selected stacks")
no_leak = diff_json(*snaps, extra=("--exclude", "keep_copy"))
check({site(s)[0] for s in no_leak["stacks"]} == {"cache_put"}, "--exclude keep_copy")
by_file = diff_json(*snaps, extra=("--include", "growth_phases.c", "--exclude", "serve_post"))
check(len(by_file["stacks"]) == 2 and all(entry(s) == "serve_get" for s in by_file["stacks"]),
      "--include on a file's base name with --exclude of a caller")
by_module = diff_json(*snaps, extra=("--exclude", "libc.so*"))  # every stack runs through libc's start code
check(by_module["stacks"] == [], "--exclude on a module kept %d stacks" % len(by_module["stacks"]))

# --min-growth hides the cache rows (64 KiB each) and says so
big = diff_json(*snaps, extra=("--min-growth", "100KiB"))
check(len(big["stacks"]) == 2 and big["hidden_below_min_growth"] == 2, "--min-growth 100KiB: %s" % big["stacks"])
check("2 more grew by less than 100.0 KiB" in cli("diff", *snaps, "--min-growth", "100KiB").stdout, "text says what it hid")

# domains: the program allocates only through malloc
check(len(diff_json(*snaps, extra=("--domain", "malloc"))["stacks"]) == 4, "--domain malloc")
for d in ("python", "cuda"):
    check(diff_json(*snaps, extra=("--domain", d))["stacks"] == [], "--domain %s shows malloc stacks" % d)

# two different processes (other pids, other load addresses): base from one,
# head from the other, stacks matched by build-id + offset
other = growth_phases_snapshots()
x = diff_json(snaps[0], other[2])
check(x["snapshots"][0]["pid"] != x["snapshots"][1]["pid"], "not two processes")
xl = [s for s in x["stacks"] if site(s) == ("keep_copy", LEAK_LINE)]
check(sorted(s["growth_bytes"] for s in xl) == [LEAK_PER_STACK] * 2,
      "across processes the leak stacks grew %s" % [s["growth_bytes"] for s in xl])
check(x["growth_bytes"] == 2 * LEAK_PER_STACK + 2 * CACHE_PER_STACK,
      "across processes total growth %d" % x["growth_bytes"])
print("ok: leak only grows (2 x %d B), cache grew once (2 x %d B), churn quiet; grouping, filters, "
      "two processes" % (LEAK_PER_STACK, CACHE_PER_STACK))
