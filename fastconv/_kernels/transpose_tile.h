/* Channels last to channels first through square tiles transposed in registers: Pool
   Skip's forward adds its output pixels, accumulated channels last, to x's planes.

   A tile is LANES pixels of LANES channels, one vector per pixel. log2(LANES) steps
   transpose it; the step of bit h swaps bit h of the row and the column index, with
   two shuffles for each pair of rows that differ in that bit (one vpermt2ps or
   vpermt2pd each on AVX-512). The tile's channels then leave as whole vectors along
   their planes, where the plain loop gathers one element per load from pixels K
   elements apart.

   The shuffles need GCC's __builtin_shuffle; other compilers get the plain loop. */
#ifndef FASTCONV_TRANSPOSE_TILE_H
#define FASTCONV_TRANSPOSE_TILE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vector_bytes.h"

/* y[k * pitch + p] = x[k * pitch + p] + (pixels[p][k] + bias[k]) for pixels p_lo <= p < P
   of channels k < k_lo and for every pixel of channels k_lo <= k < K (what whole
   tiles leave); bias NULL adds 0. */
#define FASTCONV_ADD_PIXELS_PLAIN(type)                                                      \
    static inline void fastconv_add_pixels_plain_##type(                                     \
            type* y, const type* x, ptrdiff_t pitch, const type* const* pixels,              \
            ptrdiff_t p_lo, ptrdiff_t P, const type* bias, ptrdiff_t k_lo, ptrdiff_t K) {    \
        ptrdiff_t k, p;                                                                      \
        for (k = 0; k < K; k++) {                                                            \
            type b = bias ? bias[k] : 0;                                                     \
            for (p = k < k_lo ? p_lo : 0; p < P; p++)                                        \
                y[k * pitch + p] = x[k * pitch + p] + (pixels[p][k] + b);                    \
        }                                                                                    \
    }
FASTCONV_ADD_PIXELS_PLAIN(float)
FASTCONV_ADD_PIXELS_PLAIN(double)

#if defined(__GNUC__) && !defined(__clang__)

/* name: y[k * pitch + p] = x[k * pitch + p] + (pixels[p][k] + bias[k]) for k < K,
   p < P (bias NULL adds 0), the same sums as the plain loop's. Whole tiles take the
   first K - K % LANES channels of the first P - P % LANES pixels; the plain loop the
   rest. */
#define FASTCONV_ADD_PIXELS(type, lanes_type, index_type, name)                              \
    static inline void name(type* y, const type* x, ptrdiff_t pitch,                         \
                            const type* const* pixels, ptrdiff_t P, const type* bias,        \
                            ptrdiff_t K) {                                                   \
        enum { LANES = sizeof(lanes_type) / sizeof(type) };                                  \
        enum { STEPS = LANES == 16 ? 4 : LANES == 8 ? 3 : LANES == 4 ? 2 : 1 };              \
        ptrdiff_t P_tiles = P - P % LANES, K_tiles = K - K % LANES, k0, p0;                  \
        index_type low[STEPS], high[STEPS];                                                  \
        lanes_type rows[LANES], x_row, a, b;                                                 \
        int s, h, i, j, c;                                                                   \
        /* Step s, of bit h = 2^s: row i (bit h clear) takes its own columns without */     \
        /* bit h and row i + h's with it, each from column c ^ h; row i + h the other */    \
        /* halves. */                                                                        \
        for (s = 0; s < STEPS; s++)                                                          \
            for (c = 0; c < LANES; c++) {                                                    \
                h = 1 << s;                                                                  \
                low[s][c] = c & h ? LANES + (c ^ h) : c;                                     \
                high[s][c] = c & h ? LANES + c : c ^ h;                                      \
            }                                                                                \
        for (k0 = 0; k0 < K_tiles; k0 += LANES)                                              \
            for (p0 = 0; p0 < P_tiles; p0 += LANES) {                                        \
                _Pragma("GCC unroll 16")                                                     \
                for (i = 0; i < LANES; i++)                                                  \
                    memcpy(&rows[i], pixels[p0 + i] + k0, sizeof rows[i]);                   \
                /* Unrolled, the rows stay in registers. */                                  \
                _Pragma("GCC unroll 8")                                                      \
                for (s = 0; s < STEPS; s++)                                                  \
                    _Pragma("GCC unroll 16")                                                 \
                    for (i = 0; i < LANES; i++)                                              \
                        if (!(i & (1 << s))) {                                               \
                            h = 1 << s;                                                      \
                            a = __builtin_shuffle(rows[i], rows[i + h], low[s]);             \
                            b = __builtin_shuffle(rows[i], rows[i + h], high[s]);            \
                            rows[i] = a;                                                     \
                            rows[i + h] = b;                                                 \
                        }                                                                    \
                _Pragma("GCC unroll 16")                                                     \
                for (j = 0; j < LANES; j++) {                                                \
                    ptrdiff_t at = (k0 + j) * pitch + p0;                                    \
                    memcpy(&x_row, x + at, sizeof x_row);                                    \
                    x_row += rows[j] + (bias ? bias[k0 + j] : 0);                            \
                    memcpy(y + at, &x_row, sizeof x_row);                                    \
                }                                                                            \
            }                                                                                \
        fastconv_add_pixels_plain_##type(y, x, pitch, pixels, P_tiles, P, bias, K_tiles, K); \
    }

typedef float fastconv_tile_f32 __attribute__((vector_size(FASTCONV_VECTOR_BYTES)));
typedef int32_t fastconv_tile_i32 __attribute__((vector_size(FASTCONV_VECTOR_BYTES)));
typedef double fastconv_tile_f64 __attribute__((vector_size(FASTCONV_VECTOR_BYTES)));
typedef int64_t fastconv_tile_i64 __attribute__((vector_size(FASTCONV_VECTOR_BYTES)));
FASTCONV_ADD_PIXELS(float, fastconv_tile_f32, fastconv_tile_i32, fastconv_add_pixels_f32)
FASTCONV_ADD_PIXELS(double, fastconv_tile_f64, fastconv_tile_i64, fastconv_add_pixels_f64)

#else

#define FASTCONV_ADD_PIXELS(type, name)                                                      \
    static inline void name(type* y, const type* x, ptrdiff_t pitch,                         \
                            const type* const* pixels, ptrdiff_t P, const type* bias,        \
                            ptrdiff_t K) {                                                   \
        fastconv_add_pixels_plain_##type(y, x, pitch, pixels, 0, P, bias, 0, K);             \
    }
FASTCONV_ADD_PIXELS(float, fastconv_add_pixels_f32)
FASTCONV_ADD_PIXELS(double, fastconv_add_pixels_f64)

#endif

#endif
