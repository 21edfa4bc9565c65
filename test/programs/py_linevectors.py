"""Line-table test vectors from the running CPython, for test_pylines.py:
for every code object of a sample module (loops, branches, expressions
over many lines, comprehensions, a class, a jump of 300 lines, a function
of 400 statements), print its line table in memledger's format number
(0 lnotab, 1 3.10 linetable, 2 3.11+ locations) and, for each instruction
address, the line CPython itself gives it: co_lines() (3.10+) or
dis.findlinestarts (3.8, 3.9). -1: no line."""
import dis
import sys

SRC = '''
def simple(a):
    x = a + 1
    return x


def branchy(n):
    total = 0
    for i in range(n):
        if i % 3 == 0:
            total += i
        elif i % 3 == 1:
            total -= i
        else:
            total *= 2
    return total


def multiline(a,
              b):
    return (a +
            b +
            len([x
                 for x in range(10)]))


class Holder:
    def method(self):
        try:
            return {k: v for k, v in zip("ab", "cd")}
        finally:
            self.done = True
''' + "\n" * 300 + '''
def far_away(z):
    y = z * 2
    return y
''' + "\ndef long_one(q):\n" + "".join("    q = q + %d\n" % i for i in range(400)) + "    return q\n"

FORMAT = 0 if sys.version_info < (3, 10) else 1 if sys.version_info < (3, 11) else 2


def lines_of(code):
    n = len(code.co_code)
    if FORMAT == 0:
        starts = list(dis.findlinestarts(code))
        out = []
        for addr in range(0, n, 2):
            line = code.co_firstlineno
            for a, l in starts:
                if a <= addr:
                    line = l
            out.append((addr, line))
        return out
    out = {}
    for start, end, line in code.co_lines():
        for addr in range(start, end, 2):
            out[addr] = -1 if line is None else line
    return sorted(out.items())


def walk(code):
    table = code.co_lnotab if FORMAT == 0 else code.co_linetable
    print("table %d %d %s %s" % (FORMAT, code.co_firstlineno, table.hex() or "-", code.co_name))
    print("at -1 %d" % code.co_firstlineno)
    for addr, line in lines_of(code):
        print("at %d %d" % (addr, line))
    for c in code.co_consts:
        if hasattr(c, "co_code"):
            walk(c)


walk(compile(SRC, "sample.py", "exec"))
