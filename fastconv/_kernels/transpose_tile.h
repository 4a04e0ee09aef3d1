/* Transposition through square tiles transposed in registers: Pool Skip's layout
   changes between channels first and channels last, and its forward's output, which
   accumulates channels last and is added to x's planes.

   A tile is LANES rows of LANES elements, one vector each (LANES pixels of LANES
   channels, say). log2(LANES) steps transpose it; the step of bit h swaps bit h of
   the row and the column index, with two shuffles for each pair of rows that differ
   in that bit (one vpermt2ps or vpermt2pd each on AVX-512). The tile's columns then
   leave as whole vectors, where the plain loop reads or writes one element at a time
   a whole row apart.

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

/* dst[j * dst_pitch + i] = src[i * src_pitch + j] for columns p_lo <= j < P of rows
   i < m_lo and for every column of rows m_lo <= i < M (what whole tiles leave). */
#define FASTCONV_TRANSPOSE_PLAIN(type)                                                       \
    static inline void fastconv_transpose_plain_##type(                                      \
            type* dst, ptrdiff_t dst_pitch, const type* src, ptrdiff_t src_pitch,            \
            ptrdiff_t m_lo, ptrdiff_t M, ptrdiff_t p_lo, ptrdiff_t P) {                      \
        ptrdiff_t i, j;                                                                      \
        for (i = 0; i < M; i++)                                                              \
            for (j = i < m_lo ? p_lo : 0; j < P; j++)                                        \
                dst[j * dst_pitch + i] = src[i * src_pitch + j];                             \
    }
FASTCONV_TRANSPOSE_PLAIN(float)
FASTCONV_TRANSPOSE_PLAIN(double)

#if defined(__GNUC__) && !defined(__clang__)

/* name##_masks: the shuffles of each step; name##_tile: the LANES rows transposed in
   place, in registers once inlined and unrolled. */
#define FASTCONV_TILE(type, lanes_type, index_type, name)                                    \
    enum { name##_LANES = sizeof(lanes_type) / sizeof(type) };                               \
    enum { name##_STEPS = name##_LANES == 16 ? 4 : name##_LANES == 8 ? 3 :                   \
                          name##_LANES == 4 ? 2 : 1 };                                       \
    /* Step s, of bit h = 2^s: row i (bit h clear) takes its own columns without bit h */    \
    /* and row i + h's with it, each from column c ^ h; row i + h the other halves. */       \
    static inline void name##_masks(index_type* low, index_type* high) {                     \
        int s, c, h;                                                                         \
        for (s = 0; s < name##_STEPS; s++)                                                   \
            for (c = 0; c < name##_LANES; c++) {                                             \
                h = 1 << s;                                                                  \
                low[s][c] = c & h ? name##_LANES + (c ^ h) : c;                              \
                high[s][c] = c & h ? name##_LANES + c : c ^ h;                               \
            }                                                                                \
    }                                                                                        \
    static inline __attribute__((always_inline)) void name##_tile(                           \
            lanes_type* rows, const index_type* low, const index_type* high) {               \
        lanes_type a, b;                                                                     \
        int s, i, h;                                                                         \
        _Pragma("GCC unroll 8")                                                              \
        for (s = 0; s < name##_STEPS; s++)                                                   \
            _Pragma("GCC unroll 16")                                                         \
            for (i = 0; i < name##_LANES; i++)                                               \
                if (!(i & (1 << s))) {                                                       \
                    h = 1 << s;                                                              \
                    a = __builtin_shuffle(rows[i], rows[i + h], low[s]);                     \
                    b = __builtin_shuffle(rows[i], rows[i + h], high[s]);                    \
                    rows[i] = a;                                                             \
                    rows[i + h] = b;                                                         \
                }                                                                            \
    }

/* name: dst[j * dst_pitch + i] = src[i * src_pitch + j] for i < M, j < P; whole tiles
   for the first M - M % LANES rows and P - P % LANES columns, the plain loop the rest. */
#define FASTCONV_TRANSPOSE(type, lanes_type, index_type, tile, name)                         \
    static inline void name(type* dst, ptrdiff_t dst_pitch, const type* src,                 \
                            ptrdiff_t src_pitch, ptrdiff_t M, ptrdiff_t P) {                 \
        enum { LANES = tile##_LANES };                                                       \
        ptrdiff_t M_tiles = M - M % LANES, P_tiles = P - P % LANES, i0, j0;                  \
        index_type low[tile##_STEPS], high[tile##_STEPS];                                    \
        lanes_type rows[LANES];                                                              \
        int t;                                                                               \
        tile##_masks(low, high);                                                             \
        for (i0 = 0; i0 < M_tiles; i0 += LANES)                                              \
            for (j0 = 0; j0 < P_tiles; j0 += LANES) {                                        \
                _Pragma("GCC unroll 16")                                                     \
                for (t = 0; t < LANES; t++)                                                  \
                    memcpy(&rows[t], src + (i0 + t) * src_pitch + j0, sizeof rows[t]);       \
                tile##_tile(rows, low, high);                                                \
                _Pragma("GCC unroll 16")                                                     \
                for (t = 0; t < LANES; t++)                                                  \
                    memcpy(dst + (j0 + t) * dst_pitch + i0, &rows[t], sizeof rows[t]);       \
            }                                                                                \
        fastconv_transpose_plain_##type(dst, dst_pitch, src, src_pitch, M_tiles, M,          \
                                        P_tiles, P);                                         \
    }

/* name: y[k * pitch + p] = x[k * pitch + p] + (pixels[p][k] + bias[k]) for k < K,
   p < P (bias NULL adds 0), the same sums as the plain loop's. Whole tiles take the
   first K - K % LANES channels of the first P - P % LANES pixels; the plain loop the
   rest. */
#define FASTCONV_ADD_PIXELS(type, lanes_type, index_type, tile, name)                        \
    static inline void name(type* y, const type* x, ptrdiff_t pitch,                         \
                            const type* const* pixels, ptrdiff_t P, const type* bias,        \
                            ptrdiff_t K) {                                                   \
        enum { LANES = tile##_LANES };                                                       \
        ptrdiff_t P_tiles = P - P % LANES, K_tiles = K - K % LANES, k0, p0, at;              \
        index_type low[tile##_STEPS], high[tile##_STEPS];                                    \
        lanes_type rows[LANES], x_row;                                                       \
        int t;                                                                               \
        tile##_masks(low, high);                                                             \
        for (k0 = 0; k0 < K_tiles; k0 += LANES)                                              \
            for (p0 = 0; p0 < P_tiles; p0 += LANES) {                                        \
                _Pragma("GCC unroll 16")                                                     \
                for (t = 0; t < LANES; t++)                                                  \
                    memcpy(&rows[t], pixels[p0 + t] + k0, sizeof rows[t]);                   \
                tile##_tile(rows, low, high);                                                \
                _Pragma("GCC unroll 16")                                                     \
                for (t = 0; t < LANES; t++) {                                                \
                    at = (k0 + t) * pitch + p0;                                              \
                    memcpy(&x_row, x + at, sizeof x_row);                                    \
                    x_row += rows[t] + (bias ? bias[k0 + t] : 0);                            \
                    memcpy(y + at, &x_row, sizeof x_row);                                    \
                }                                                                            \
            }                                                                                \
        fastconv_add_pixels_plain_##type(y, x, pitch, pixels, P_tiles, P, bias, K_tiles, K); \
    }

typedef float fastconv_tile_f32 __attribute__((vector_size(FASTCONV_VECTOR_BYTES)));
typedef int32_t fastconv_tile_i32 __attribute__((vector_size(FASTCONV_VECTOR_BYTES)));
typedef double fastconv_tile_f64 __attribute__((vector_size(FASTCONV_VECTOR_BYTES)));
typedef int64_t fastconv_tile_i64 __attribute__((vector_size(FASTCONV_VECTOR_BYTES)));
FASTCONV_TILE(float, fastconv_tile_f32, fastconv_tile_i32, fastconv_tile_f32)
FASTCONV_TILE(double, fastconv_tile_f64, fastconv_tile_i64, fastconv_tile_f64)
FASTCONV_TRANSPOSE(float, fastconv_tile_f32, fastconv_tile_i32, fastconv_tile_f32,
                   fastconv_transpose_f32)
FASTCONV_TRANSPOSE(double, fastconv_tile_f64, fastconv_tile_i64, fastconv_tile_f64,
                   fastconv_transpose_f64)
FASTCONV_ADD_PIXELS(float, fastconv_tile_f32, fastconv_tile_i32, fastconv_tile_f32,
                    fastconv_add_pixels_f32)
FASTCONV_ADD_PIXELS(double, fastconv_tile_f64, fastconv_tile_i64, fastconv_tile_f64,
                    fastconv_add_pixels_f64)

#else

#define FASTCONV_TRANSPOSE(type, name)                                                       \
    static inline void name(type* dst, ptrdiff_t dst_pitch, const type* src,                 \
                            ptrdiff_t src_pitch, ptrdiff_t M, ptrdiff_t P) {                 \
        fastconv_transpose_plain_##type(dst, dst_pitch, src, src_pitch, 0, M, 0, P);         \
    }
FASTCONV_TRANSPOSE(float, fastconv_transpose_f32)
FASTCONV_TRANSPOSE(double, fastconv_transpose_f64)

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
