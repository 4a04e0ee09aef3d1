/* The direct weight gradient's sweep through one filter row, for unit column stride:
   for taps s < taps and columns j < n,
       acc[s * pitch + j] += gy_i_t[j] * x_i_t[j + s * tap_step]
   for images i < images and rows t < rows in that order, where gy_i_t is the row
   gy + i * gy_image + t * gy_row and x_i_t the row x + i * x_image + t * x_row. Each
   element gains its terms one by one in the order (i, t), as the plain loop adds them.

   Tiles of TILE vectors of columns keep the sums of up to GROUP taps in registers while
   all the rows pass: a vector of gy, loaded once, meets every tap of the group, and
   each sum's chain of multiply-adds runs in a register instead of through memory,
   where each row had to wait for the last row's store. GCC and clang map the vectors
   onto the build's registers (vector_bytes.h); other compilers get the plain loop. */
#ifndef FASTCONV_WEIGHT_TAPS_H
#define FASTCONV_WEIGHT_TAPS_H

#include <stddef.h>
#include <string.h>

#include "vector_bytes.h"

/* The bytes of a vector of columns: the caller pads its rows to whole vectors. */
#define FASTCONV_WEIGHT_TAPS_BYTES FASTCONV_VECTOR_BYTES

/* The plain loop over columns j_lo .. n - 1: the vector kernel's tail, and all the
   columns for other compilers. */
#define FASTCONV_WEIGHT_TAPS_PLAIN(type)                                                     \
    static inline void fastconv_weight_taps_plain_##type(                                    \
            type* acc, ptrdiff_t pitch, const type* gy, ptrdiff_t gy_image,                  \
            ptrdiff_t gy_row, const type* x, ptrdiff_t x_image, ptrdiff_t x_row,             \
            ptrdiff_t tap_step, ptrdiff_t images, ptrdiff_t rows, ptrdiff_t taps,            \
            ptrdiff_t j_lo, ptrdiff_t n) {                                                   \
        ptrdiff_t s, i, t, j;                                                                \
        for (s = 0; s < taps; s++)                                                           \
            for (i = 0; i < images; i++)                                                     \
                for (t = 0; t < rows; t++) {                                                 \
                    const type* g = gy + i * gy_image + t * gy_row;                          \
                    const type* from = x + i * x_image + t * x_row + s * tap_step;           \
                    for (j = j_lo; j < n; j++)                                               \
                        acc[s * pitch + j] += g[j] * from[j];                                \
                }                                                                            \
    }
FASTCONV_WEIGHT_TAPS_PLAIN(float)
FASTCONV_WEIGHT_TAPS_PLAIN(double)

#if defined(__GNUC__) || defined(__clang__)

/* Taps whose sums a tile holds, and vectors of columns per tap: 6 sums, 2 vectors of
   gy and one of x, within the 16 registers of AVX2. */
#define FASTCONV_WEIGHT_TAPS_GROUP 3
#define FASTCONV_WEIGHT_TAPS_TILE 2

/* Unrolls the loops over a tile's taps and vectors, so that its sums are named
   registers (see spread_taps.h). */
#define FASTCONV_UNROLL_WEIGHT_TILE _Pragma("GCC unroll 3")

/* name##_tile: ``taps`` x ``vectors`` sums (constants once inlined) from column j. */
#define FASTCONV_WEIGHT_TAPS(type, lanes_type, name)                                         \
    static inline __attribute__((always_inline)) void name##_tile(                           \
            type* acc, ptrdiff_t pitch, const type* gy, ptrdiff_t gy_image,                  \
            ptrdiff_t gy_row, const type* x, ptrdiff_t x_image, ptrdiff_t x_row,             \
            ptrdiff_t tap_step, ptrdiff_t images, ptrdiff_t rows, ptrdiff_t j, int taps,     \
            int vectors) {                                                                   \
        enum { LANES = sizeof(lanes_type) / sizeof(type) };                                  \
        lanes_type sums[FASTCONV_WEIGHT_TAPS_GROUP][FASTCONV_WEIGHT_TAPS_TILE];              \
        lanes_type g[FASTCONV_WEIGHT_TAPS_TILE], from;                                       \
        ptrdiff_t i, t;                                                                      \
        int s, v;                                                                            \
        FASTCONV_UNROLL_WEIGHT_TILE                                                          \
        for (s = 0; s < taps; s++)                                                           \
            FASTCONV_UNROLL_WEIGHT_TILE                                                      \
            for (v = 0; v < vectors; v++)                                                    \
                memcpy(&sums[s][v], acc + s * pitch + j + v * LANES, sizeof from);           \
        for (i = 0; i < images; i++)                                                         \
            for (t = 0; t < rows; t++) {                                                     \
                const type* g_row = gy + i * gy_image + t * gy_row + j;                      \
                const type* x_row_at = x + i * x_image + t * x_row + j;                      \
                FASTCONV_UNROLL_WEIGHT_TILE                                                  \
                for (v = 0; v < vectors; v++)                                                \
                    memcpy(&g[v], g_row + v * LANES, sizeof from);                           \
                FASTCONV_UNROLL_WEIGHT_TILE                                                  \
                for (s = 0; s < taps; s++)                                                   \
                    FASTCONV_UNROLL_WEIGHT_TILE                                              \
                    for (v = 0; v < vectors; v++) {                                          \
                        memcpy(&from, x_row_at + s * tap_step + v * LANES, sizeof from);     \
                        sums[s][v] += g[v] * from;                                           \
                    }                                                                        \
            }                                                                                \
        FASTCONV_UNROLL_WEIGHT_TILE                                                          \
        for (s = 0; s < taps; s++)                                                           \
            FASTCONV_UNROLL_WEIGHT_TILE                                                      \
            for (v = 0; v < vectors; v++)                                                    \
                memcpy(acc + s * pitch + j + v * LANES, &sums[s][v], sizeof from);           \
    }                                                                                        \
    /* name##_columns: every column of ``taps`` taps (a constant once inlined). */           \
    static inline __attribute__((always_inline)) void name##_columns(                        \
            type* acc, ptrdiff_t pitch, const type* gy, ptrdiff_t gy_image,                  \
            ptrdiff_t gy_row, const type* x, ptrdiff_t x_image, ptrdiff_t x_row,             \
            ptrdiff_t tap_step, ptrdiff_t images, ptrdiff_t rows, ptrdiff_t n, int taps) {   \
        enum { LANES = sizeof(lanes_type) / sizeof(type),                                    \
               STEP = FASTCONV_WEIGHT_TAPS_TILE * LANES };                                   \
        ptrdiff_t j = 0;                                                                     \
        for (; j + STEP <= n; j += STEP)                                                     \
            name##_tile(acc, pitch, gy, gy_image, gy_row, x, x_image, x_row, tap_step,       \
                        images, rows, j, taps, FASTCONV_WEIGHT_TAPS_TILE);                   \
        for (; j + LANES <= n; j += LANES)                                                   \
            name##_tile(acc, pitch, gy, gy_image, gy_row, x, x_image, x_row, tap_step,       \
                        images, rows, j, taps, 1);                                           \
        fastconv_weight_taps_plain_##type(acc, pitch, gy, gy_image, gy_row, x, x_image,      \
                                          x_row, tap_step, images, rows, taps, j, n);        \
    }                                                                                        \
    static inline void name(type* acc, ptrdiff_t pitch, const type* gy, ptrdiff_t gy_image,  \
                            ptrdiff_t gy_row, const type* x, ptrdiff_t x_image,              \
                            ptrdiff_t x_row, ptrdiff_t tap_step, ptrdiff_t images,           \
                            ptrdiff_t rows, ptrdiff_t taps, ptrdiff_t n) {                   \
        ptrdiff_t s;                                                                         \
        /* Each group of up to GROUP taps in its own sweep, its size made a constant. */     \
        for (s = 0; s < taps; s += FASTCONV_WEIGHT_TAPS_GROUP) {                             \
            type* at = acc + s * pitch;                                                      \
            const type* from = x + s * tap_step;                                             \
            switch (taps - s < FASTCONV_WEIGHT_TAPS_GROUP ? taps - s                         \
                                                          : FASTCONV_WEIGHT_TAPS_GROUP) {    \
            case 3:                                                                          \
                name##_columns(at, pitch, gy, gy_image, gy_row, from, x_image, x_row,        \
                               tap_step, images, rows, n, 3);                                \
                break;                                                                       \
            case 2:                                                                          \
                name##_columns(at, pitch, gy, gy_image, gy_row, from, x_image, x_row,        \
                               tap_step, images, rows, n, 2);                                \
                break;                                                                       \
            default:                                                                         \
                name##_columns(at, pitch, gy, gy_image, gy_row, from, x_image, x_row,        \
                               tap_step, images, rows, n, 1);                                \
            }                                                                                \
        }                                                                                    \
    }

typedef float fastconv_weight_taps_f32_lanes __attribute__((vector_size(FASTCONV_VECTOR_BYTES)));
typedef double fastconv_weight_taps_f64_lanes __attribute__((vector_size(FASTCONV_VECTOR_BYTES)));
FASTCONV_WEIGHT_TAPS(float, fastconv_weight_taps_f32_lanes, fastconv_weight_taps_f32)
FASTCONV_WEIGHT_TAPS(double, fastconv_weight_taps_f64_lanes, fastconv_weight_taps_f64)

#else

#define FASTCONV_WEIGHT_TAPS(type, name)                                                     \
    static inline void name(type* acc, ptrdiff_t pitch, const type* gy, ptrdiff_t gy_image,  \
                            ptrdiff_t gy_row, const type* x, ptrdiff_t x_image,              \
                            ptrdiff_t x_row, ptrdiff_t tap_step, ptrdiff_t images,           \
                            ptrdiff_t rows, ptrdiff_t taps, ptrdiff_t n) {                   \
        fastconv_weight_taps_plain_##type(acc, pitch, gy, gy_image, gy_row, x, x_image,      \
                                          x_row, tap_step, images, rows, taps, 0, n);        \
    }
FASTCONV_WEIGHT_TAPS(float, fastconv_weight_taps_f32)
FASTCONV_WEIGHT_TAPS(double, fastconv_weight_taps_f64)

#endif

#endif
