/* reloc.h — the relocation types that bind a module's calls and pointers
 * to a function, per architecture: a PLT slot, a GOT entry, an absolute
 * pointer. Shared by rebind.c and attach.c, which both find the slots of
 * the malloc family in a module's relocations and point them elsewhere.
 * Constants only. */
#ifndef ML_INIT_RELOC_H
#define ML_INIT_RELOC_H

#include <elf.h>

#if defined(__x86_64__)
#define R_SLOT R_X86_64_JUMP_SLOT
#define R_GLOB R_X86_64_GLOB_DAT
#define R_ABS R_X86_64_64
#elif defined(__aarch64__)
#define R_SLOT R_AARCH64_JUMP_SLOT
#define R_GLOB R_AARCH64_GLOB_DAT
#define R_ABS R_AARCH64_ABS64
#endif

#endif
