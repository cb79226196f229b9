// LD_PRELOAD malloc counter for memory-bench: counts malloc/calloc/realloc/posix_memalign/aligned_alloc
// calls of every thread; SIGUSR2 writes "allocs=N frees=M" to the file named by MALLOC_COUNT_FILE
// (appending), so a run's allocations per call are (after - before) / calls.
// cc -O2 -shared -fPIC -o malloc-count.so malloc-count.c
#define _GNU_SOURCE
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static atomic_ulong allocs, frees;

void *malloc(size_t n) { atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed); return __libc_realloc(p, n); }
void free(void *p) { if (p) atomic_fetch_add_explicit(&frees, 1, memory_order_relaxed); __libc_free(p); }
int posix_memalign(void **out, size_t align, size_t n) {
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    void *p = __libc_memalign(align, n);
    if (!p) return 12;
    *out = p;
    return 0;
}
void *aligned_alloc(size_t align, size_t n) { atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed); return __libc_memalign(align, n); }
void *memalign(size_t align, size_t n) { atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed); return __libc_memalign(align, n); }

static char *put(char *p, unsigned long v) {
    char tmp[24]; int i = 0;
    do { tmp[i++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (i) *p++ = tmp[--i];
    return p;
}

static void dump(int sig) {
    (void)sig;
    const char *path = getenv("MALLOC_COUNT_FILE");
    if (!path) return;
    char line[96], *p = line;
    memcpy(p, "allocs=", 7); p = put(p + 7, atomic_load(&allocs));
    memcpy(p, " frees=", 7); p = put(p + 7, atomic_load(&frees));
    *p++ = '\n';
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) { (void)!write(fd, line, (size_t)(p - line)); close(fd); }
}

__attribute__((constructor)) static void init(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = dump;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, 0);
}
