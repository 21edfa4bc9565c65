# cython: language_level=3
# cyleak.pyx — a Cython module for test_python_cython.py: a function that
# keeps what it allocates, a method that does too, and a function that
# calls back into Python (Python -> Cython -> Python).
keep = []


def grab(n):
    keep.append(bytearray(n))
    return len(keep)


def call(f, x):
    return f(x)


cdef class Holder:
    def add_item(self, n):
        keep.append(bytes(n))
