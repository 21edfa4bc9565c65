/* cuda_runtime.c — the CUDA runtime (libcudart from the toolkit) on
 * whatever libcuda.so.1 the loader finds: cudaMalloc and cudaFree, with
 * the runtime's error for each. On the stand-in driver the runtime stops
 * at the driver's private tables (see docs/cuda.md); the test compares the
 * outcome with and without memledger and reads the stand-in's trace. */
#include <dlfcn.h>
#include <stdio.h>

int main(void)
{
    void *rt = dlopen(ML_CUDART_PATH, RTLD_NOW | RTLD_LOCAL);
    if (!rt) {
        fprintf(stderr, "dlopen %s: %s\n", ML_CUDART_PATH, dlerror());
        return 3;
    }
    int (*cuda_malloc)(void **, size_t) = (int (*)(void **, size_t))dlsym(rt, "cudaMalloc");
    int (*cuda_free)(void *) = (int (*)(void *))dlsym(rt, "cudaFree");
    const char *(*error_string)(int) = (const char *(*)(int))dlsym(rt, "cudaGetErrorString");
    if (!cuda_malloc || !cuda_free || !error_string)
        return 3;
    void *p = NULL;
    int r = cuda_malloc(&p, 1 << 20);
    printf("cudaMalloc %d %s\n", r, error_string(r));
    if (r == 0) {
        r = cuda_free(p);
        printf("cudaFree %d %s\n", r, error_string(r));
    }
    return 0;
}
