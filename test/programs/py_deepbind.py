"""A library opened with RTLD_DEEPBIND from Python (ctypes), for
test_deepbind.py --python: between two snapshots the library (mldeep) keeps
10 x 3000 bytes (malloc) and 5 x 7 x 100 (calloc), and frees 8 blocks of
5000 that the script allocated with the process's malloc. Usage:
py_deepbind.py LIBRARY"""
import ctypes
import json
import os
import sys

import mlsnap

mlsnap.snapshot(1)
lib = ctypes.CDLL(sys.argv[1], mode=os.RTLD_DEEPBIND | os.RTLD_LOCAL)
lib.deep_malloc.restype = lib.deep_calloc.restype = ctypes.c_void_p
libc = ctypes.CDLL(None)  # the process's malloc, the one native code calls
libc.malloc.restype = ctypes.c_void_p
got = sum(bool(lib.deep_malloc(3000)) for _ in range(10))
got += sum(bool(lib.deep_calloc(7, 100)) for _ in range(5))
for _ in range(8):
    block = libc.malloc(5000)  # MARK:script_block
    lib.deep_free(ctypes.c_void_p(block))
mlsnap.snapshot(2)
print(json.dumps({"kept": got, "lib_kept": lib.deep_kept()}))
