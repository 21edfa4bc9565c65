"""py_profile_hook — runs a Python script with a C profile function that
does nothing installed (PyEval_SetProfile), to show what per-call frame
events cost the interpreter by themselves: the floor of any profiler that
keeps a shadow stack from them. The function is CPython's own
PyErr_Occurred, which ignores its arguments and returns 0 while no error
is set: a C-level no-op, called on every Python call and return.

    python3 scripts/workloads/py_profile_hook.py scripts/workloads/py_alloc_loop.py 100000 80
"""
import ctypes
import runpy
import sys

if len(sys.argv) < 2:
    sys.exit(__doc__)
api = ctypes.pythonapi
api.PyEval_SetProfile.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
api.PyEval_SetProfile(ctypes.cast(api.PyErr_Occurred, ctypes.c_void_p), None)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
