"""The malloc family reached through an explicitly opened libc, for
test_python_dlsym.py: ctypes.CDLL("libc.so.6"), ctypes.CDLL(find_library("c"))
and cffi's ffi.dlopen("c") each look malloc up by name in libc alone (dlsym
on the library's handle), past every interposer. Between snapshots 1 and
2: leaks of known size on marked lines, and blocks that are then freed
through the same libc handles between snapshots 2 and 3.
argv: N (blocks per line). Prints the sizes as JSON."""
import ctypes
import ctypes.util
import json
import sys

import cffi
import mlsnap

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200
SIZES = {"ctypes_libc": 5000, "ctypes_find_library": 3000, "cffi_malloc": 7000, "cffi_calloc": (100, 33),
         "ctypes_realloc": 6000, "freed": 9000}


def prototypes(lib):
    lib.malloc.restype = ctypes.c_void_p
    lib.malloc.argtypes = [ctypes.c_size_t]
    lib.realloc.restype = ctypes.c_void_p
    lib.realloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    lib.free.argtypes = [ctypes.c_void_p]
    return lib


libc = prototypes(ctypes.CDLL("libc.so.6"))
libc_found = prototypes(ctypes.CDLL(ctypes.util.find_library("c")))
ffi = cffi.FFI()
ffi.cdef("void *malloc(size_t); void *calloc(size_t, size_t); void free(void *);")
clib = ffi.dlopen("c")

# first calls have one-time costs of their own (cffi's thread-local state
# takes 4 bytes of dynamic TLS from malloc on its first call): before snapshot 1
for lib in (libc, libc_found):
    lib.free(lib.realloc(lib.malloc(1), 2))
clib.free(clib.calloc(1, 1))
clib.free(clib.malloc(1))

kept = []
mlsnap.snapshot(1)
for _ in range(N):
    kept.append(libc.malloc(5000))  # LEAK:ctypes_libc
for _ in range(N):
    kept.append(libc_found.malloc(3000))  # LEAK:ctypes_find_library
for _ in range(N):
    kept.append(clib.malloc(7000))  # LEAK:cffi_malloc
for _ in range(N):
    kept.append(clib.calloc(100, 33))  # LEAK:cffi_calloc
for _ in range(N):
    p = libc.malloc(100)
    kept.append(libc.realloc(p, 6000))  # LEAK:ctypes_realloc
scratch = [libc.malloc(9000) for _ in range(N)]  # MARK:ctypes_freed
cscratch = [clib.malloc(9000) for _ in range(N)]  # MARK:cffi_freed
mlsnap.snapshot(2)
for p in scratch:
    libc.free(p)
for p in cscratch:
    clib.free(p)
mlsnap.snapshot(3)
print(json.dumps({"n": N, "sizes": SIZES, "null": sum(1 for p in kept if not p)}))
