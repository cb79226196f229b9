#ifndef CKERNELS_H
#define CKERNELS_H
#include <stddef.h>

// The embedding index's inner loops, in three builds of the same code: portable (C vector extensions,
// SSE2 on x86-64, NEON on arm64), AVX2+FMA and AVX-512F. The AVX ones are compiled with a `target`
// attribute, so the package needs no -march; call them only where `mk_cpu_supports` says so.

/// Instruction sets a kernel can use.
typedef enum {
    MK_PORTABLE = 0,
    MK_AVX2 = 1,
    MK_AVX512 = 2,
} mk_level;

/// True when this CPU can run the kernels of `level` (x86-64 only; elsewhere only MK_PORTABLE).
int mk_cpu_supports(mk_level level);

/// `out[i]` = dot product of row `i` (`stride` floats apart, `count` rows) with `q`, over `n` floats.
/// `n` must be a multiple of 16 and at most `stride`; rows and `q` need no alignment.
typedef void (*mk_rows_kernel)(const float *rows, size_t count, size_t stride, const float *q, size_t n,
                               float *out);

/// The dot-product kernel of `level`, or NULL when `level` is unknown or not built for this architecture.
mk_rows_kernel mk_dot_rows(mk_level level);
/// The squared-euclidean-distance kernel of `level` (same contract as `mk_dot_rows`).
mk_rows_kernel mk_squared_distance_rows(mk_level level);

#endif
