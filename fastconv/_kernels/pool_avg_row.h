/* The first pass of average pooling for windows 2 or 3 columns wide at column stride 2
   (2x2 stride 2, 3x3 stride 2 and their kin): each window row's sum in float64.

   Sum j is x[2j] + x[2j + 1] (+ x[2j + 2]), added in that order as the generic sweep
   of _pool_avg.pyx adds them. The sweep starts from 0, this from the first tap: the
   two differ only in the sign of a zero sum, which the second pass, also starting from
   0, does not keep. So the averages are the same.

   A 16-byte vector of sums' taps comes from two 16-byte loads: a shuffle of the two
   takes their even values, another their odd ones, and tap 2 is the odd values of the
   same loads one element further on, which read nothing past it. The shuffles stay
   inside the 16 bytes, one cheap instruction on every x86 core, and the sums come out
   in order. (The compiler's own vectorisation of the strided loads uses shuffles
   across 16-byte lanes, which cost several micro-operations on AMD Zen 1 and 2.) Each
   tap is then widened to float64: a float32 vector's taps fill a 32-byte vector.

   Builds with AVX-512 take 64-byte vectors where the sums fill one: there each of the
   shuffles, across the whole vector, is one instruction (vpermt2ps or vpermt2pd), on
   every core that has AVX-512.

   The shuffles need GCC's __builtin_shuffle; other compilers get
   FASTCONV_AVG_ROW_MIN_LANES 0 and the caller keeps the generic sweep. */
#ifndef FASTCONV_POOL_AVG_ROW_H
#define FASTCONV_POOL_AVG_ROW_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)

/* The fewest sums a call must ask for: one 16-byte vector's. */
#define FASTCONV_AVG_ROW_MIN_LANES_F32 4
#define FASTCONV_AVG_ROW_MIN_LANES_F64 2

/* Sets sums[j] for j_lo <= j < j_hi (at least LANES of them) from ``taps`` (2 or 3)
   values x[2j + t]. The last vector is moved back to end at j_hi, so it redoes a few
   sums of the one before, with the same result. */
#define FASTCONV_AVG_ROW_SUMS(type, lanes_type, index_type, sum_type, name)                  \
    /* The taps the shuffle ``mask`` takes from the loads at x, widened, into *taps */       \
    /* (by pointer: a vector wider than the build's would change the calling */              \
    /* convention). */                                                                       \
    static inline void name##_taps(sum_type* taps, const type* x, index_type mask) {         \
        lanes_type a, b;                                                                     \
        memcpy(&a, x, sizeof a);                                                             \
        memcpy(&b, x + sizeof a / sizeof(type), sizeof b);                                   \
        *taps = __builtin_convertvector(__builtin_shuffle(a, b, mask), sum_type);            \
    }                                                                                        \
    static inline void name(const type* x, ptrdiff_t taps, ptrdiff_t j_lo, ptrdiff_t j_hi,   \
                            double* sums) {                                                  \
        enum { LANES = sizeof(lanes_type) / sizeof(type) };                                  \
        index_type even, odd;                                                                \
        sum_type total, tap;                                                                 \
        ptrdiff_t j, i;                                                                      \
        for (i = 0; i < LANES; i++) {                                                        \
            even[i] = 2 * i;                                                                 \
            odd[i] = 2 * i + 1;                                                              \
        }                                                                                    \
        for (j = j_lo; j < j_hi; j += LANES) {                                               \
            if (j > j_hi - LANES)                                                            \
                j = j_hi - LANES;                                                            \
            name##_taps(&total, x + 2 * j, even);                                            \
            name##_taps(&tap, x + 2 * j, odd);                                               \
            total += tap;                                                                    \
            if (taps == 3) {                                                                 \
                name##_taps(&tap, x + 2 * j + 1, odd);                                       \
                total += tap;                                                                \
            }                                                                                \
            memcpy(sums + j, &total, sizeof total);                                          \
        }                                                                                    \
    }

/* The kernels on vectors of BYTES bytes of input: a float32 vector's sums fill twice
   as many bytes of float64. */
#define FASTCONV_AVG_ROW_WIDTH(BYTES)                                                        \
    typedef float fastconv_avg_row_f32_##BYTES __attribute__((vector_size(BYTES)));          \
    typedef int32_t fastconv_avg_row_i32_##BYTES __attribute__((vector_size(BYTES)));        \
    typedef double fastconv_avg_row_sum_f32_##BYTES __attribute__((vector_size(2 * BYTES))); \
    typedef double fastconv_avg_row_f64_##BYTES __attribute__((vector_size(BYTES)));         \
    typedef int64_t fastconv_avg_row_i64_##BYTES __attribute__((vector_size(BYTES)));        \
    FASTCONV_AVG_ROW_SUMS(float, fastconv_avg_row_f32_##BYTES,                               \
                          fastconv_avg_row_i32_##BYTES, fastconv_avg_row_sum_f32_##BYTES,    \
                          fastconv_avg_row_sums_f32_##BYTES)                                 \
    FASTCONV_AVG_ROW_SUMS(double, fastconv_avg_row_f64_##BYTES,                              \
                          fastconv_avg_row_i64_##BYTES, fastconv_avg_row_f64_##BYTES,        \
                          fastconv_avg_row_sums_f64_##BYTES)

FASTCONV_AVG_ROW_WIDTH(16)
#if defined(__AVX512F__)
FASTCONV_AVG_ROW_WIDTH(64)
#endif

/* The entry points: 64-byte vectors where the build has them and the sums fill one,
   else 16-byte ones. */
#if defined(__AVX512F__)
#define FASTCONV_AVG_ROW_IF_64(test, call) if (test) { call; return; }
#else
#define FASTCONV_AVG_ROW_IF_64(test, call)
#endif
#define FASTCONV_AVG_ROW_ENTRY(type, suffix)                                                 \
    static inline void fastconv_avg_row_sums_##suffix(const type* x, ptrdiff_t taps,         \
                                                      ptrdiff_t j_lo, ptrdiff_t j_hi,        \
                                                      double* sums) {                        \
        FASTCONV_AVG_ROW_IF_64(j_hi - j_lo >= 64 / (ptrdiff_t) sizeof(type),                 \
            fastconv_avg_row_sums_##suffix##_64(x, taps, j_lo, j_hi, sums))                  \
        fastconv_avg_row_sums_##suffix##_16(x, taps, j_lo, j_hi, sums);                      \
    }
FASTCONV_AVG_ROW_ENTRY(float, f32)
FASTCONV_AVG_ROW_ENTRY(double, f64)

#else

#define FASTCONV_AVG_ROW_MIN_LANES_F32 0
#define FASTCONV_AVG_ROW_MIN_LANES_F64 0
#define FASTCONV_AVG_ROW_UNAVAILABLE(type, suffix)                                           \
    static inline void fastconv_avg_row_sums_##suffix(const type* x, ptrdiff_t taps,         \
                                                      ptrdiff_t j_lo, ptrdiff_t j_hi,        \
                                                      double* sums) {                        \
        (void) x; (void) taps; (void) j_lo; (void) j_hi; (void) sums;                        \
    }
FASTCONV_AVG_ROW_UNAVAILABLE(float, f32)
FASTCONV_AVG_ROW_UNAVAILABLE(double, f64)

#endif

#endif
