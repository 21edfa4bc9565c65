"""Native code under Python, for test_python_native.py: a ctypes call to
libc's malloc that is never freed, Python -> C -> Python -> allocation
through a ctypes callback, and a leak from a thread Python never ran on.
argv: the pyhelper library, ITER. Snapshot 1 after a warm-up round,
snapshot 2 after ITER rounds."""
import ctypes
import json
import sys

import mlsnap

helper = ctypes.CDLL(sys.argv[1])
ITER = int(sys.argv[2]) if len(sys.argv) > 2 else 20
MALLOC, CALLBACK, THREAD = 123456, 54321, 77777

# The process's malloc, as every native library reaches it (the global
# symbol scope). ctypes.CDLL("libc.so.6").malloc is tracked as well
# (test_python_dlsym.py); see docs/python.md.
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
helper.ml_test_native_thread_leak.restype = ctypes.c_void_p
helper.ml_test_native_thread_leak.argtypes = [ctypes.c_size_t]
CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)
helper.ml_test_call.argtypes = [CB, ctypes.c_int]

keep = []


def ctypes_malloc():
    return libc.malloc(MALLOC)  # LEAK:ctypes_malloc


def inner(x):
    keep.append(bytearray(CALLBACK))  # LEAK:callback
    return x


inner_cb = CB(inner)


def outer():
    return helper.ml_test_call(inner_cb, 7)  # MARK:outer


def native_thread():
    return helper.ml_test_native_thread_leak(THREAD)  # MARK:native_thread


def one_round(n):
    for _ in range(n):
        ctypes_malloc()
        outer()
        native_thread()


one_round(1)
mlsnap.snapshot(1)
one_round(ITER)
mlsnap.snapshot(2)
print(json.dumps({"iter": ITER, "malloc": MALLOC, "callback": CALLBACK, "thread": THREAD}))
