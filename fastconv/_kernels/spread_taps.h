/* Pool Skip's forward sweep over a row of output pixels for one block of output
   channels and one filter row: for each pixel p < pixels, with t from starts[p] to
   starts[p + 1] - 1, row[p * pitch + s * pitch + l] += scales[t] *
   slab[offsets[t] - s * LANES + l] for s < taps, l < LANES.

   The filters are laid out in blocks of LANES output channels (one vector), and a
   block's rows for a chunk of input channels (a slab of up to SLAB_BYTES, in
   pool_skip.py) stay in the core's cache while the maxima of a band's rows pass through
   them, row after row. Each row of the slab holds the taps' vectors end to end, the
   first tap's last (the filter's columns reversed); the accumulator holds the taps'
   pixels ``pitch`` elements apart (channels last). Up to 4 taps at a time stay in
   registers while a pixel's list passes, in two sums: the entries t = starts[p],
   starts[p] + 2, ... added to the accumulator's value, the others to zero, then the
   second sum to the first. The two chains of multiply-adds hide each other's latency;
   the order is fixed by the lists alone. GCC and clang map the vectors onto the build's
   registers (vector_bytes.h); other compilers get plain loops in the same order. */
#ifndef FASTCONV_SPREAD_TAPS_H
#define FASTCONV_SPREAD_TAPS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vector_bytes.h"

/* The output channels of one block: one vector of the build. */
#define FASTCONV_TAP_LANES(type) ((ptrdiff_t) (FASTCONV_VECTOR_BYTES / sizeof(type)))

#if defined(__GNUC__) || defined(__clang__)

/* name##_group: ``width`` taps from tap s (a constant 1 to 4 once inlined) of one
   pixel, through rows t0 .. t1 - 1. */
#define FASTCONV_SPREAD_TAPS(type, lanes_type, name)                                         \
    static inline __attribute__((always_inline)) void name##_group(                          \
            type* acc, ptrdiff_t pitch, const type* slab, const int32_t* offsets,            \
            const type* scales, ptrdiff_t t0, ptrdiff_t t1, ptrdiff_t s, int width) {        \
        enum { LANES = sizeof(lanes_type) / sizeof(type) };                                  \
        lanes_type even[4], odd[4], row;                                                     \
        ptrdiff_t t;                                                                         \
        int j;                                                                               \
        for (j = 0; j < width; j++) {                                                        \
            memcpy(&even[j], acc + (s + j) * pitch, sizeof row);                             \
            odd[j] = (lanes_type) {0};                                                       \
        }                                                                                    \
        for (t = t0; t + 1 < t1; t += 2) {                                                   \
            const type* from = slab + offsets[t] - s * LANES;                                \
            const type* next = slab + offsets[t + 1] - s * LANES;                            \
            type scale = scales[t], next_scale = scales[t + 1];                              \
            for (j = 0; j < width; j++) {                                                    \
                memcpy(&row, from - j * LANES, sizeof row);                                  \
                even[j] += scale * row;                                                      \
                memcpy(&row, next - j * LANES, sizeof row);                                  \
                odd[j] += next_scale * row;                                                  \
            }                                                                                \
        }                                                                                    \
        if (t < t1)                                                                          \
            for (j = 0; j < width; j++) {                                                    \
                memcpy(&row, slab + offsets[t] - (s + j) * LANES, sizeof row);               \
                even[j] += scales[t] * row;                                                  \
            }                                                                                \
        for (j = 0; j < width; j++) {                                                        \
            even[j] += odd[j];                                                               \
            memcpy(acc + (s + j) * pitch, &even[j], sizeof row);                             \
        }                                                                                    \
    }                                                                                        \
    static inline void name(type* row, ptrdiff_t pitch, const type* slab,                    \
                            const ptrdiff_t* starts, const int32_t* offsets,                 \
                            const type* scales, ptrdiff_t pixels, ptrdiff_t taps) {          \
        ptrdiff_t p, s;                                                                      \
        for (p = 0; p < pixels; p++) {                                                       \
            ptrdiff_t t0 = starts[p], t1 = starts[p + 1];                                    \
            type* acc = row + p * pitch;                                                     \
            if (t0 == t1)                                                                    \
                continue;                                                                    \
            for (s = 0; s + 4 <= taps; s += 4)                                               \
                name##_group(acc, pitch, slab, offsets, scales, t0, t1, s, 4);               \
            switch (taps - s) {                                                              \
            case 3:                                                                          \
                name##_group(acc, pitch, slab, offsets, scales, t0, t1, s, 3);               \
                break;                                                                       \
            case 2:                                                                          \
                name##_group(acc, pitch, slab, offsets, scales, t0, t1, s, 2);               \
                break;                                                                       \
            case 1:                                                                          \
                name##_group(acc, pitch, slab, offsets, scales, t0, t1, s, 1);               \
                break;                                                                       \
            }                                                                                \
        }                                                                                    \
    }

typedef float fastconv_taps_f32 __attribute__((vector_size(FASTCONV_VECTOR_BYTES)));
typedef double fastconv_taps_f64 __attribute__((vector_size(FASTCONV_VECTOR_BYTES)));
FASTCONV_SPREAD_TAPS(float, fastconv_taps_f32, fastconv_spread_row_f32)
FASTCONV_SPREAD_TAPS(double, fastconv_taps_f64, fastconv_spread_row_f64)

#else

#define FASTCONV_SPREAD_TAPS(type, name)                                                     \
    static inline void name(type* row, ptrdiff_t pitch, const type* slab,                    \
                            const ptrdiff_t* starts, const int32_t* offsets,                 \
                            const type* scales, ptrdiff_t pixels, ptrdiff_t taps) {          \
        ptrdiff_t lanes = FASTCONV_TAP_LANES(type), p, s, l, t;                              \
        for (p = 0; p < pixels; p++)                                                         \
            for (s = 0; s < taps && starts[p] < starts[p + 1]; s++)                          \
                for (l = 0; l < lanes; l++) {                                                \
                    type* at = row + (p + s) * pitch + l;                                    \
                    type even = *at, odd = 0;                                                \
                    for (t = starts[p]; t < starts[p + 1]; t++)                              \
                        if ((t - starts[p]) % 2)                                             \
                            odd += scales[t] * slab[offsets[t] - s * lanes + l];             \
                        else                                                                 \
                            even += scales[t] * slab[offsets[t] - s * lanes + l];            \
                    *at = even + odd;                                                        \
                }                                                                            \
    }
FASTCONV_SPREAD_TAPS(float, fastconv_spread_row_f32)
FASTCONV_SPREAD_TAPS(double, fastconv_spread_row_f64)

#endif

#endif
