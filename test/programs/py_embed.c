/* py_embed.c — an embedder: loads the libpython named by argv[1] with
 * dlopen after the program started (so memledger meets it late), starts
 * the interpreter, and runs the script argv[2] as a file. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: py_embed LIBPYTHON SCRIPT [ARG]\n");
        return 2;
    }
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
        fprintf(stderr, "py_embed: %s\n", dlerror());
        return 2;
    }
    void (*init)(void) = (void (*)(void))dlsym(h, "Py_Initialize");
    int (*run)(const char *) = (int (*)(const char *))dlsym(h, "PyRun_SimpleString");
    int (*fini)(void) = (int (*)(void))dlsym(h, "Py_FinalizeEx");
    if (!init || !run || !fini) {
        fprintf(stderr, "py_embed: %s lacks the embedding API\n", argv[1]);
        return 2;
    }
    init();
    char code[8192];
    const char *slash = strrchr(argv[2], '/');
    int dir = slash ? (int)(slash - argv[2]) : 1;
    snprintf(code, sizeof code,
             "import sys\nsys.path.insert(0, '%.*s')\nsys.argv = ['%s', '%s']\n"
             "exec(compile(open(sys.argv[0]).read(), sys.argv[0], 'exec'))\n",
             dir, slash ? argv[2] : ".", argv[2], argc > 3 ? argv[3] : "");
    int r = run(code);
    return fini() == 0 && r == 0 ? 0 : 1;
}
