"""`cmake --install` puts the library, the CLI, the header and a pkg-config
file under the prefix, and pkg-config finds them there; the installed CLI
finds the installed library for `memledger run`."""
import os
import subprocess
import tempfile

from mltest import *

prefix = snapdir("mlinstall.")
subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix], check=True, stdout=subprocess.DEVNULL)
libdir = [d for d in ("lib", "lib64", "lib/x86_64-linux-gnu") if os.path.exists(os.path.join(prefix, d, "libmemledger.so"))]
check(libdir, "libmemledger.so not installed under %s" % prefix)
lib = os.path.join(prefix, libdir[0])
for f in ("bin/memledger", "include/memledger.h", os.path.join(libdir[0], "pkgconfig", "memledger.pc")):
    check(os.path.exists(os.path.join(prefix, f)), "%s not installed" % f)
env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(lib, "pkgconfig"))
flags = subprocess.run(["pkg-config", "--cflags", "--libs", "memledger"], env=env, stdout=subprocess.PIPE,
                       text=True, check=True).stdout
incs = [os.path.normpath(f[2:]) for f in flags.split() if f.startswith("-I")]
libs = [os.path.normpath(f[2:]) for f in flags.split() if f.startswith("-L")]
check(incs == [os.path.join(prefix, "include")] and libs == [lib] and "-lmemledger" in flags.split(),
      "pkg-config says %r" % flags)
d = snapdir()
p = subprocess.run([os.path.join(prefix, "bin", "memledger"), "run", "--dir", d, "--at-exit", "--",
                    os.path.join(PROGRAMS, "leak_sites")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
check(p.returncode == 0, "installed memledger run failed: %s" % p.stderr)
check(len([f for f in os.listdir(d) if f.endswith(".snap")]) == 3, "installed library wrote no snapshots")
print("ok: installed under %s" % prefix)
