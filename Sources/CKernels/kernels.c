// The embedding index's inner loops in C. Four rows share each load of the query, which is what bounds a
// scan that is not memory-bound; the AVX builds use FMA and wider registers. The portable build uses vector
// extensions, which clang keeps in registers (eight 4-wide accumulators, two per row) where the Swift SIMD
// version did not (measured: ~3x slower scan).
#include "CKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// MARK: - Portable (SSE2 baseline on x86-64, NEON on arm64)

typedef float v4 __attribute__((vector_size(16), aligned(4)));

static inline float hsum4(v4 v) { return (v[0] + v[1]) + (v[2] + v[3]); }

static void dot_rows_portable(const float *rows, size_t count, size_t stride, const float *q, size_t n,
                              float *out) {
    size_t r = 0;
    for (; r + 4 <= count; r += 4) {
        const float *r0 = rows + r * stride, *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;
        v4 a0 = {0}, b0 = {0}, a1 = {0}, b1 = {0}, a2 = {0}, b2 = {0}, a3 = {0}, b3 = {0};
        for (size_t i = 0; i < n; i += 8) {
            v4 x = *(const v4 *)(q + i), y = *(const v4 *)(q + i + 4);
            a0 += *(const v4 *)(r0 + i) * x; b0 += *(const v4 *)(r0 + i + 4) * y;
            a1 += *(const v4 *)(r1 + i) * x; b1 += *(const v4 *)(r1 + i + 4) * y;
            a2 += *(const v4 *)(r2 + i) * x; b2 += *(const v4 *)(r2 + i + 4) * y;
            a3 += *(const v4 *)(r3 + i) * x; b3 += *(const v4 *)(r3 + i + 4) * y;
        }
        out[r] = hsum4(a0 + b0); out[r + 1] = hsum4(a1 + b1); out[r + 2] = hsum4(a2 + b2); out[r + 3] = hsum4(a3 + b3);
    }
    for (; r < count; r++) {
        const float *r0 = rows + r * stride;
        v4 a = {0}, b = {0};
        for (size_t i = 0; i < n; i += 8) {
            a += *(const v4 *)(r0 + i) * *(const v4 *)(q + i);
            b += *(const v4 *)(r0 + i + 4) * *(const v4 *)(q + i + 4);
        }
        out[r] = hsum4(a + b);
    }
}

static void squared_distance_rows_portable(const float *rows, size_t count, size_t stride, const float *q,
                                           size_t n, float *out) {
    size_t r = 0;
    for (; r + 4 <= count; r += 4) {
        const float *r0 = rows + r * stride, *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;
        v4 a0 = {0}, b0 = {0}, a1 = {0}, b1 = {0}, a2 = {0}, b2 = {0}, a3 = {0}, b3 = {0};
        for (size_t i = 0; i < n; i += 8) {
            v4 x = *(const v4 *)(q + i), y = *(const v4 *)(q + i + 4), d, e;
            d = *(const v4 *)(r0 + i) - x; e = *(const v4 *)(r0 + i + 4) - y; a0 += d * d; b0 += e * e;
            d = *(const v4 *)(r1 + i) - x; e = *(const v4 *)(r1 + i + 4) - y; a1 += d * d; b1 += e * e;
            d = *(const v4 *)(r2 + i) - x; e = *(const v4 *)(r2 + i + 4) - y; a2 += d * d; b2 += e * e;
            d = *(const v4 *)(r3 + i) - x; e = *(const v4 *)(r3 + i + 4) - y; a3 += d * d; b3 += e * e;
        }
        out[r] = hsum4(a0 + b0); out[r + 1] = hsum4(a1 + b1); out[r + 2] = hsum4(a2 + b2); out[r + 3] = hsum4(a3 + b3);
    }
    for (; r < count; r++) {
        const float *r0 = rows + r * stride;
        v4 a = {0}, b = {0};
        for (size_t i = 0; i < n; i += 8) {
            v4 d = *(const v4 *)(r0 + i) - *(const v4 *)(q + i), e = *(const v4 *)(r0 + i + 4) - *(const v4 *)(q + i + 4);
            a += d * d; b += e * e;
        }
        out[r] = hsum4(a + b);
    }
}

#if defined(__x86_64__)

// MARK: - AVX2 + FMA: four rows, two 8-wide accumulators each

#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static void dot_rows_avx2(const float *rows, size_t count, size_t stride, const float *q, size_t n,
                               float *out) {
    size_t r = 0;
    for (; r + 4 <= count; r += 4) {
        const float *r0 = rows + r * stride, *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;
        __m256 a0 = _mm256_setzero_ps(), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0, a3 = a0, b3 = a0;
        for (size_t i = 0; i < n; i += 16) {
            __m256 x = _mm256_loadu_ps(q + i), y = _mm256_loadu_ps(q + i + 8);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + i), x, a0); b0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + i + 8), y, b0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(r1 + i), x, a1); b1 = _mm256_fmadd_ps(_mm256_loadu_ps(r1 + i + 8), y, b1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(r2 + i), x, a2); b2 = _mm256_fmadd_ps(_mm256_loadu_ps(r2 + i + 8), y, b2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(r3 + i), x, a3); b3 = _mm256_fmadd_ps(_mm256_loadu_ps(r3 + i + 8), y, b3);
        }
        out[r] = hsum8(_mm256_add_ps(a0, b0)); out[r + 1] = hsum8(_mm256_add_ps(a1, b1));
        out[r + 2] = hsum8(_mm256_add_ps(a2, b2)); out[r + 3] = hsum8(_mm256_add_ps(a3, b3));
    }
    for (; r < count; r++) {
        const float *r0 = rows + r * stride;
        __m256 a = _mm256_setzero_ps(), b = a;
        for (size_t i = 0; i < n; i += 16) {
            a = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + i), _mm256_loadu_ps(q + i), a);
            b = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + i + 8), _mm256_loadu_ps(q + i + 8), b);
        }
        out[r] = hsum8(_mm256_add_ps(a, b));
    }
}

AVX2 static void squared_distance_rows_avx2(const float *rows, size_t count, size_t stride, const float *q,
                                            size_t n, float *out) {
    size_t r = 0;
    for (; r + 4 <= count; r += 4) {
        const float *r0 = rows + r * stride, *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;
        __m256 a0 = _mm256_setzero_ps(), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0, a3 = a0, b3 = a0, d, e;
        for (size_t i = 0; i < n; i += 16) {
            __m256 x = _mm256_loadu_ps(q + i), y = _mm256_loadu_ps(q + i + 8);
            d = _mm256_sub_ps(_mm256_loadu_ps(r0 + i), x); e = _mm256_sub_ps(_mm256_loadu_ps(r0 + i + 8), y);
            a0 = _mm256_fmadd_ps(d, d, a0); b0 = _mm256_fmadd_ps(e, e, b0);
            d = _mm256_sub_ps(_mm256_loadu_ps(r1 + i), x); e = _mm256_sub_ps(_mm256_loadu_ps(r1 + i + 8), y);
            a1 = _mm256_fmadd_ps(d, d, a1); b1 = _mm256_fmadd_ps(e, e, b1);
            d = _mm256_sub_ps(_mm256_loadu_ps(r2 + i), x); e = _mm256_sub_ps(_mm256_loadu_ps(r2 + i + 8), y);
            a2 = _mm256_fmadd_ps(d, d, a2); b2 = _mm256_fmadd_ps(e, e, b2);
            d = _mm256_sub_ps(_mm256_loadu_ps(r3 + i), x); e = _mm256_sub_ps(_mm256_loadu_ps(r3 + i + 8), y);
            a3 = _mm256_fmadd_ps(d, d, a3); b3 = _mm256_fmadd_ps(e, e, b3);
        }
        out[r] = hsum8(_mm256_add_ps(a0, b0)); out[r + 1] = hsum8(_mm256_add_ps(a1, b1));
        out[r + 2] = hsum8(_mm256_add_ps(a2, b2)); out[r + 3] = hsum8(_mm256_add_ps(a3, b3));
    }
    for (; r < count; r++) {
        const float *r0 = rows + r * stride;
        __m256 a = _mm256_setzero_ps(), b = a;
        for (size_t i = 0; i < n; i += 16) {
            __m256 d = _mm256_sub_ps(_mm256_loadu_ps(r0 + i), _mm256_loadu_ps(q + i));
            __m256 e = _mm256_sub_ps(_mm256_loadu_ps(r0 + i + 8), _mm256_loadu_ps(q + i + 8));
            a = _mm256_fmadd_ps(d, d, a); b = _mm256_fmadd_ps(e, e, b);
        }
        out[r] = hsum8(_mm256_add_ps(a, b));
    }
}

// MARK: - AVX-512F: four rows, one 16-wide accumulator each (n is a multiple of 16)

#define AVX512 __attribute__((target("avx512f")))

AVX512 static void dot_rows_avx512(const float *rows, size_t count, size_t stride, const float *q, size_t n,
                                   float *out) {
    size_t r = 0;
    for (; r + 4 <= count; r += 4) {
        const float *r0 = rows + r * stride, *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t i = 0; i < n; i += 16) {
            __m512 x = _mm512_loadu_ps(q + i);
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(r0 + i), x, a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(r1 + i), x, a1);
            a2 = _mm512_fmadd_ps(_mm512_loadu_ps(r2 + i), x, a2);
            a3 = _mm512_fmadd_ps(_mm512_loadu_ps(r3 + i), x, a3);
        }
        out[r] = _mm512_reduce_add_ps(a0); out[r + 1] = _mm512_reduce_add_ps(a1);
        out[r + 2] = _mm512_reduce_add_ps(a2); out[r + 3] = _mm512_reduce_add_ps(a3);
    }
    for (; r < count; r++) {
        const float *r0 = rows + r * stride;
        __m512 a = _mm512_setzero_ps();
        for (size_t i = 0; i < n; i += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(r0 + i), _mm512_loadu_ps(q + i), a);
        out[r] = _mm512_reduce_add_ps(a);
    }
}

AVX512 static void squared_distance_rows_avx512(const float *rows, size_t count, size_t stride, const float *q,
                                                size_t n, float *out) {
    size_t r = 0;
    for (; r + 4 <= count; r += 4) {
        const float *r0 = rows + r * stride, *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, d;
        for (size_t i = 0; i < n; i += 16) {
            __m512 x = _mm512_loadu_ps(q + i);
            d = _mm512_sub_ps(_mm512_loadu_ps(r0 + i), x); a0 = _mm512_fmadd_ps(d, d, a0);
            d = _mm512_sub_ps(_mm512_loadu_ps(r1 + i), x); a1 = _mm512_fmadd_ps(d, d, a1);
            d = _mm512_sub_ps(_mm512_loadu_ps(r2 + i), x); a2 = _mm512_fmadd_ps(d, d, a2);
            d = _mm512_sub_ps(_mm512_loadu_ps(r3 + i), x); a3 = _mm512_fmadd_ps(d, d, a3);
        }
        out[r] = _mm512_reduce_add_ps(a0); out[r + 1] = _mm512_reduce_add_ps(a1);
        out[r + 2] = _mm512_reduce_add_ps(a2); out[r + 3] = _mm512_reduce_add_ps(a3);
    }
    for (; r < count; r++) {
        const float *r0 = rows + r * stride;
        __m512 a = _mm512_setzero_ps();
        for (size_t i = 0; i < n; i += 16) {
            __m512 d = _mm512_sub_ps(_mm512_loadu_ps(r0 + i), _mm512_loadu_ps(q + i));
            a = _mm512_fmadd_ps(d, d, a);
        }
        out[r] = _mm512_reduce_add_ps(a);
    }
}

int mk_cpu_supports(mk_level level) {
    __builtin_cpu_init();
    switch (level) {
    case MK_PORTABLE: return 1;
    case MK_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case MK_AVX512: return __builtin_cpu_supports("avx512f");
    }
    return 0;
}

mk_rows_kernel mk_dot_rows(mk_level level) {
    switch (level) {
    case MK_PORTABLE: return dot_rows_portable;
    case MK_AVX2: return dot_rows_avx2;
    case MK_AVX512: return dot_rows_avx512;
    }
    return 0;
}

mk_rows_kernel mk_squared_distance_rows(mk_level level) {
    switch (level) {
    case MK_PORTABLE: return squared_distance_rows_portable;
    case MK_AVX2: return squared_distance_rows_avx2;
    case MK_AVX512: return squared_distance_rows_avx512;
    }
    return 0;
}

#else

int mk_cpu_supports(mk_level level) { return level == MK_PORTABLE; }
mk_rows_kernel mk_dot_rows(mk_level level) { return level == MK_PORTABLE ? dot_rows_portable : 0; }
mk_rows_kernel mk_squared_distance_rows(mk_level level) {
    return level == MK_PORTABLE ? squared_distance_rows_portable : 0;
}

#endif
