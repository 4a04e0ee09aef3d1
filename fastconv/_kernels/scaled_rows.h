/* Multiply-adds of many rows into one accumulator row:
   acc[k] += scales[t] * rows[t][shift + k] for t < count in turn, k < n.

   The accumulator is taken a tile of up to 8 vectors at a time and held in registers
   while all count rows pass through it, so it is read and written once per call, and
   the 8 vectors' sums are independent chains of multiply-adds that hide their
   latency. Each element still gains its rows one by one in the order t: the sums are
   the same as a plain loop's, on every build and tile size. GCC and clang map the
   vectors onto the build's registers (vector_bytes.h); other compilers get the plain
   loop. */
#ifndef FASTCONV_SCALED_ROWS_H
#define FASTCONV_SCALED_ROWS_H

#include <stddef.h>
#include <string.h>

#include "vector_bytes.h"

/* The plain loop over elements k_lo .. n - 1: the vector kernel's tail, and the whole
   row for other compilers. */
#define FASTCONV_ADD_SCALED_ROWS_PLAIN(type)                                                \
    static inline void fastconv_add_scaled_rows_plain_##type(                               \
            type* acc, const type* const* rows, ptrdiff_t shift, const type* scales,        \
            ptrdiff_t count, ptrdiff_t k_lo, ptrdiff_t n) {                                 \
        ptrdiff_t k, t;                                                                     \
        for (k = k_lo; k < n; k++) {                                                        \
            type total = acc[k];                                                            \
            for (t = 0; t < count; t++)                                                     \
                total += scales[t] * rows[t][shift + k];                                    \
            acc[k] = total;                                                                 \
        }                                                                                   \
    }
FASTCONV_ADD_SCALED_ROWS_PLAIN(float)
FASTCONV_ADD_SCALED_ROWS_PLAIN(double)

#if defined(__GNUC__) || defined(__clang__)

typedef float fastconv_scaled_f32 __attribute__((vector_size(FASTCONV_VECTOR_BYTES)));
typedef double fastconv_scaled_f64 __attribute__((vector_size(FASTCONV_VECTOR_BYTES)));

/* name##_tile: ``vectors`` vectors of acc from element k, through all the rows; called
   with a constant ``vectors``, its loops over them unroll and the sums stay in
   registers. */
#define FASTCONV_ADD_SCALED_ROWS(type, lanes_type, name)                                    \
    static inline __attribute__((always_inline)) void name##_tile(                          \
            type* acc, const type* const* rows, ptrdiff_t shift, const type* scales,        \
            ptrdiff_t count, ptrdiff_t k, int vectors) {                                    \
        enum { LANES = sizeof(lanes_type) / sizeof(type) };                                 \
        lanes_type sums[8], row;                                                            \
        ptrdiff_t t;                                                                        \
        int j;                                                                              \
        for (j = 0; j < vectors; j++)                                                       \
            memcpy(&sums[j], acc + k + j * LANES, sizeof row);                              \
        for (t = 0; t < count; t++) {                                                       \
            const type* from = rows[t] + shift + k;                                         \
            type scale = scales[t];                                                         \
            for (j = 0; j < vectors; j++) {                                                 \
                memcpy(&row, from + j * LANES, sizeof row);                                 \
                sums[j] += scale * row;                                                     \
            }                                                                               \
        }                                                                                   \
        for (j = 0; j < vectors; j++)                                                       \
            memcpy(acc + k + j * LANES, &sums[j], sizeof row);                              \
    }                                                                                       \
    static inline void name(type* acc, const type* const* rows, ptrdiff_t shift,            \
                            const type* scales, ptrdiff_t count, ptrdiff_t n) {             \
        enum { LANES = sizeof(lanes_type) / sizeof(type) };                                 \
        ptrdiff_t k = 0;                                                                    \
        for (; k + 8 * LANES <= n; k += 8 * LANES)                                          \
            name##_tile(acc, rows, shift, scales, count, k, 8);                             \
        if (k + 4 * LANES <= n) {                                                           \
            name##_tile(acc, rows, shift, scales, count, k, 4);                             \
            k += 4 * LANES;                                                                 \
        }                                                                                   \
        for (; k + LANES <= n; k += LANES)                                                  \
            name##_tile(acc, rows, shift, scales, count, k, 1);                             \
        fastconv_add_scaled_rows_plain_##type(acc, rows, shift, scales, count, k, n);       \
    }

FASTCONV_ADD_SCALED_ROWS(float, fastconv_scaled_f32, fastconv_add_scaled_rows_f32)
FASTCONV_ADD_SCALED_ROWS(double, fastconv_scaled_f64, fastconv_add_scaled_rows_f64)

#else

#define FASTCONV_ADD_SCALED_ROWS(type, name)                                                \
    static inline void name(type* acc, const type* const* rows, ptrdiff_t shift,            \
                            const type* scales, ptrdiff_t count, ptrdiff_t n) {             \
        fastconv_add_scaled_rows_plain_##type(acc, rows, shift, scales, count, 0, n);       \
    }

FASTCONV_ADD_SCALED_ROWS(float, fastconv_add_scaled_rows_f32)
FASTCONV_ADD_SCALED_ROWS(double, fastconv_add_scaled_rows_f64)

#endif

#endif
