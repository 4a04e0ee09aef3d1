/* Pool Skip's forward sweep over a row of input pixels for one block of output channels:
   for each pixel p < pixels, with t from starts[p] to starts[p + 1] - 1,
       acc[i * row_step + (p + j) * pitch + l] +=
           scales[t] * slab[offsets[t] + i * slab_row - j * LANES + l]
   for filter rows i < rows, taps j < taps and lanes l < LANES.

   The filters are laid out in blocks of LANES output channels (one vector), and a
   block's rows for a chunk of input channels (a slab sized by SLAB_BYTES and
   LIST_LENGTH, in pool_skip.py) stay in the core's cache while the maxima of a band's
   rows pass through them. Each filter row of the slab holds the taps' vectors end to
   end, the first tap's last (the filter's columns reversed), and the next filter row
   lies slab_row elements on; the accumulator holds the taps' pixels ``pitch`` elements
   apart (channels last) and the rows they reach ``row_step`` elements apart.

   A pixel's list passes once for all its taps: up to 3 filter rows times 3 taps stay in
   registers while it passes, so each maximum's value is read once for up to nine
   multiply-adds, and the accumulator's rows are read and written once per pixel rather
   than once per filter row. Nine independent sums hide the multiply-adds' latency. The
   order is fixed by the lists alone. GCC and clang map the vectors onto the build's
   registers (vector_bytes.h); other compilers get plain loops in the same order. */
#ifndef FASTCONV_SPREAD_TAPS_H
#define FASTCONV_SPREAD_TAPS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vector_bytes.h"

/* The filter rows and taps of one pass over a pixel's list, at most. */
#define FASTCONV_SPREAD_GROUP 3

#if defined(__GNUC__) || defined(__clang__)

/* Unrolls the loops over a group's rows and taps, so that its sums are named
   registers. Left to itself, GCC kept them in an array on the stack in the AVX2 build
   (16 registers), copied in 16-byte halves at each pixel: 1.1-1.5x slower. */
#define FASTCONV_UNROLL_GROUP _Pragma("GCC unroll 3")

/* name##_pixels: ``rows`` x ``width`` taps (constants 1 to 3 once inlined) of each
   pixel, ``acc`` and ``slab`` pointing at the group's first row and tap; each pixel's
   sums stay in registers while its list passes. */
#define FASTCONV_SPREAD_TAPS(type, lanes_type, name)                                         \
    static inline __attribute__((always_inline)) void name##_pixels(                         \
            type* acc, ptrdiff_t pitch, ptrdiff_t row_step, const type* slab,                \
            ptrdiff_t slab_row, const ptrdiff_t* starts, const int32_t* offsets,             \
            const type* scales, ptrdiff_t pixels, int rows, int width) {                     \
        enum { LANES = sizeof(lanes_type) / sizeof(type), G = FASTCONV_SPREAD_GROUP };        \
        lanes_type sums[G * G], tap;                                                         \
        ptrdiff_t p, t;                                                                      \
        int i, j;                                                                            \
        for (p = 0; p < pixels; p++) {                                                       \
            type* at = acc + p * pitch;                                                      \
            if (starts[p] == starts[p + 1])                                                  \
                continue;                                                                    \
            FASTCONV_UNROLL_GROUP                                                            \
            for (i = 0; i < rows; i++)                                                       \
                FASTCONV_UNROLL_GROUP                                                        \
                for (j = 0; j < width; j++)                                                  \
                    memcpy(&sums[i * G + j], at + i * row_step + j * pitch, sizeof tap);     \
            for (t = starts[p]; t < starts[p + 1]; t++) {                                    \
                const type* from = slab + offsets[t];                                        \
                type scale = scales[t];                                                      \
                FASTCONV_UNROLL_GROUP                                                        \
                for (i = 0; i < rows; i++)                                                   \
                    FASTCONV_UNROLL_GROUP                                                    \
                    for (j = 0; j < width; j++) {                                            \
                        memcpy(&tap, from + i * slab_row - j * LANES, sizeof tap);           \
                        sums[i * G + j] += scale * tap;                                      \
                    }                                                                        \
            }                                                                                \
            FASTCONV_UNROLL_GROUP                                                            \
            for (i = 0; i < rows; i++)                                                       \
                FASTCONV_UNROLL_GROUP                                                        \
                for (j = 0; j < width; j++)                                                  \
                    memcpy(at + i * row_step + j * pitch, &sums[i * G + j], sizeof tap);     \
        }                                                                                    \
    }                                                                                        \
    /* name##_widths: name##_pixels with ``width`` made a constant too. */                  \
    static inline __attribute__((always_inline)) void name##_widths(                         \
            type* acc, ptrdiff_t pitch, ptrdiff_t row_step, const type* slab,                \
            ptrdiff_t slab_row, const ptrdiff_t* starts, const int32_t* offsets,             \
            const type* scales, ptrdiff_t pixels, int rows, int width) {                     \
        switch (width) {                                                                     \
        case 3:                                                                              \
            name##_pixels(acc, pitch, row_step, slab, slab_row, starts, offsets, scales,     \
                          pixels, rows, 3);                                                  \
            break;                                                                           \
        case 2:                                                                              \
            name##_pixels(acc, pitch, row_step, slab, slab_row, starts, offsets, scales,     \
                          pixels, rows, 2);                                                  \
            break;                                                                           \
        default:                                                                             \
            name##_pixels(acc, pitch, row_step, slab, slab_row, starts, offsets, scales,     \
                          pixels, rows, 1);                                                  \
        }                                                                                    \
    }                                                                                        \
    static inline void name(type* acc, ptrdiff_t pitch, ptrdiff_t row_step, const type* slab, \
                            ptrdiff_t slab_row, const ptrdiff_t* starts,                     \
                            const int32_t* offsets, const type* scales, ptrdiff_t pixels,    \
                            int rows, int taps) {                                            \
        enum { LANES = sizeof(lanes_type) / sizeof(type), G = FASTCONV_SPREAD_GROUP };        \
        int i, j;                                                                            \
        /* Each group of up to G x G taps in its own sweep, its sizes made constants. */     \
        for (i = 0; i < rows; i += G)                                                        \
            for (j = 0; j < taps; j += G) {                                                  \
                type* at = acc + i * row_step + j * pitch;                                   \
                const type* from = slab + i * slab_row - j * LANES;                          \
                int width = taps - j < G ? taps - j : G;                                     \
                switch (rows - i < G ? rows - i : G) {                                       \
                case 3:                                                                      \
                    name##_widths(at, pitch, row_step, from, slab_row, starts, offsets,      \
                                  scales, pixels, 3, width);                                 \
                    break;                                                                   \
                case 2:                                                                      \
                    name##_widths(at, pitch, row_step, from, slab_row, starts, offsets,      \
                                  scales, pixels, 2, width);                                 \
                    break;                                                                   \
                default:                                                                     \
                    name##_widths(at, pitch, row_step, from, slab_row, starts, offsets,      \
                                  scales, pixels, 1, width);                                 \
                }                                                                            \
            }                                                                                \
    }

typedef float fastconv_taps_f32 __attribute__((vector_size(FASTCONV_VECTOR_BYTES)));
typedef double fastconv_taps_f64 __attribute__((vector_size(FASTCONV_VECTOR_BYTES)));
FASTCONV_SPREAD_TAPS(float, fastconv_taps_f32, fastconv_spread_rows_f32)
FASTCONV_SPREAD_TAPS(double, fastconv_taps_f64, fastconv_spread_rows_f64)

#else

#define FASTCONV_SPREAD_TAPS(type, name)                                                     \
    static inline void name(type* acc, ptrdiff_t pitch, ptrdiff_t row_step, const type* slab, \
                            ptrdiff_t slab_row, const ptrdiff_t* starts,                     \
                            const int32_t* offsets, const type* scales, ptrdiff_t pixels,    \
                            int rows, int taps) {                                            \
        ptrdiff_t lanes = FASTCONV_VECTOR_BYTES / sizeof(type), p, l, t;                     \
        int i, j;                                                                            \
        for (p = 0; p < pixels; p++)                                                         \
            for (i = 0; i < rows; i++)                                                       \
                for (j = 0; j < taps; j++)                                                   \
                    for (l = 0; l < lanes; l++) {                                            \
                        type* at = acc + i * row_step + (p + j) * pitch + l;                 \
                        for (t = starts[p]; t < starts[p + 1]; t++)                          \
                            *at += scales[t] * slab[offsets[t] + i * slab_row - j * lanes + l]; \
                    }                                                                        \
    }
FASTCONV_SPREAD_TAPS(float, fastconv_spread_rows_f32)
FASTCONV_SPREAD_TAPS(double, fastconv_spread_rows_f64)

#endif

#endif
