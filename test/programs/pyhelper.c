/* pyhelper.c — a small shared library the Python tests reach through
 * ctypes: C that calls back into Python, C that leaks, and a thread Python
 * never ran on. Built like user code (-O0 -g, frame pointers). */
#include <pthread.h>
#include <stdlib.h>

/* Calls cb(x) from C: Python -> C -> Python. */
int ml_test_call(int (*cb)(int), int x)
{
    int r = cb(x); /* MARK:callback_call */
    return r + 1;
}

static void *native_thread(void *arg)
{
    return malloc((size_t)arg); /* LEAK:native_thread */
}

/* Starts a thread with no Python thread state, which leaks n bytes, and
 * waits for it. Returns the leaked block's address. */
void *ml_test_native_thread_leak(size_t n)
{
    pthread_t t;
    void *p = NULL;
    if (pthread_create(&t, NULL, native_thread, (void *)n) != 0)
        return NULL;
    pthread_join(t, &p);
    return p;
}
