#ifndef CKERNELS_H
#define CKERNELS_H
#include <stddef.h>

/// Dot products of four consecutive rows (`stride` floats apart, `n` a multiple of 8) with `q`.
void mk_dot4(const float *rows, size_t stride, const float *q, size_t n, float out[4]);
/// Squared euclidean distances of four consecutive rows to `q`.
void mk_squared_distance4(const float *rows, size_t stride, const float *q, size_t n, float out[4]);

#endif
