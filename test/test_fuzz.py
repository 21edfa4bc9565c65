"""libFuzzer on the snapshot reader and on diff/top: builds the targets in
test/fuzz with clang (libFuzzer + ASan + UBSan), replays every input in
test/fuzz/regressions (bugs found before: each must now pass clean), then
fuzzes each target for SECONDS from the seed corpus in test/fuzz/corpus
(new inputs go to a scratch directory, not into the repository). A crash,
leak, timeout or sanitizer report fails the test and leaves the input
under the build directory: copy it into test/fuzz/regressions/.
Usage: test_fuzz.py SECONDS (0: replay the corpus and regressions only).
Exits 77 (skipped) when no clang is installed."""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

from mltest import *

seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
cc = shutil.which("clang-14") or shutil.which("clang")
cxx = shutil.which("clang++-14") or shutil.which("clang++")
if not cc or not cxx:
    print("SKIP: no clang here (scripts/setup-deps test installs it)")
    sys.exit(77)
FUZZ = os.path.join(SOURCE, "fuzz")
out = os.path.join(BUILD, "fuzz")
for step in (["cmake", "-S", FUZZ, "-B", out, "-DCMAKE_C_COMPILER=" + cc, "-DCMAKE_CXX_COMPILER=" + cxx,
              "-DCMAKE_BUILD_TYPE="],
             ["cmake", "--build", out, "-j2"]):
    p = subprocess.run(step, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    check(p.returncode == 0, "%s failed:\n%s" % (" ".join(step[:2]), p.stdout[-5000:]))

corpus = os.path.join(FUZZ, "corpus")
regressions = sorted(glob.glob(os.path.join(FUZZ, "regressions", "*")))
seeds = sorted(glob.glob(os.path.join(corpus, "*")))
# without inputs libFuzzer would fuzz forever in the replay step
check(seeds and regressions, "no seed corpus or regression inputs under %s" % FUZZ)
artifacts = tempfile.mkdtemp(prefix="artifacts.", dir=out)
OPTS = ["-dict=" + os.path.join(FUZZ, "snapshot.dict"), "-close_fd_mask=3", "-timeout=10",
        "-rss_limit_mb=2048", "-max_len=65536", "-artifact_prefix=" + artifacts + "/"]
for target in ("fuzz_snapshot", "fuzz_diff"):
    exe = os.path.join(out, target)
    # every known bad input, one run each
    p = subprocess.run([exe] + OPTS + ["-runs=0"] + regressions + seeds,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    check(p.returncode == 0, "%s fails on a regression or corpus input:\n%s" % (target, p.stdout[-8000:]))
    if seconds:
        scratch = tempfile.mkdtemp(prefix="corpus.%s." % target, dir=out)
        p = subprocess.run([exe] + OPTS + ["-max_total_time=%d" % seconds, scratch, corpus],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=seconds + 600)
        found = os.listdir(artifacts)
        check(p.returncode == 0 and not found,
              "%s found a problem (inputs in %s: %s; copy them to test/fuzz/regressions):\n%s"
              % (target, artifacts, found, p.stdout[-8000:]))
        runs = [l for l in p.stdout.splitlines() if l.startswith("Done ")]
        print("ok: %s: %s" % (target, runs[-1] if runs else "done"))
        shutil.rmtree(scratch, ignore_errors=True)
os.rmdir(artifacts)  # empty: nothing found
print("ok: %d regression inputs and the seed corpus pass both targets%s"
      % (len(regressions), "; fuzzed %d s each" % seconds if seconds else ""))
