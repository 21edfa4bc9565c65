/* demangle.h — C++ symbol names made readable (at::empty_cpu(...) rather
 * than _ZN2at9empty_cpu...), through the C++ runtime's own demangler.
 * CLI-side only: the library stores names as the ELF file has them. */
#ifndef ML_DEMANGLE_H
#define ML_DEMANGLE_H

/* Returns a fresh string: the demangled name, or a copy of `name` when it
 * is not a mangled C++ name. NULL only when out of memory. */
char *ml_demangle(const char *name);

#endif
