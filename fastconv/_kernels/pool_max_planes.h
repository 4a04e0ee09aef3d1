/* Max pooling of small planes, a vector of planes at a time.

   The row-wise kernels put a vector along an output row; where the rows hold fewer
   outputs than a vector has lanes (7 x 7 maps, 4 x 4 windows on 14 x 14), they run
   mostly one output at a time. Here each lane takes a plane instead. A block of
   LANES planes is first copied into a scratch with the planes innermost (element
   (position, lane) at position * LANES + lane), so that one vector load reads one
   position of every plane of the block. Each window then folds its taps in
   row-major order by the rule of the two-pass kernel in _pool_max.pyx (a larger or
   NaN value wins, ties keep the first), and the block's maxima and positions are
   copied back plane by plane.

   A position is a code ih * W + iw in integer lanes as wide as the values, so that
   every select is one masked move; the caller keeps planes below 2**31 elements and
   a block's scratch small enough for the caches. GCC and clang only (vector types):
   elsewhere the LANES macros are 0 and the caller keeps the row-wise kernels. */
#ifndef FASTCONV_POOL_MAX_PLANES_H
#define FASTCONV_POOL_MAX_PLANES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vector_bytes.h"

/* The pooling window's geometry, as _geometry.pxd's Geometry holds it. */
typedef struct {
    ptrdiff_t H, W, OH, OW, R, S;
    ptrdiff_t stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w;
} fastconv_pool_window;

#if defined(__GNUC__) || defined(__clang__)

/* The planes a block holds: a vector's lanes. */
#define FASTCONV_POOL_PLANES_LANES_F32 (FASTCONV_VECTOR_BYTES / 4)
#define FASTCONV_POOL_PLANES_LANES_F64 (FASTCONV_VECTOR_BYTES / 8)

/* name: pools ``count`` (1 to LANES) planes of H * W from x into y (OH * OW each) and,
   unless argmax is NULL, their positions. ``scratch`` holds
   (H * W + 2 * OH * OW) * LANES elements: the block's planes, then its maxima and their
   codes. */
#define FASTCONV_MAX_POOL_PLANES(type, code_scalar, name)                                   \
    typedef type name##_values __attribute__((vector_size(FASTCONV_VECTOR_BYTES)));         \
    typedef code_scalar name##_codes __attribute__((vector_size(FASTCONV_VECTOR_BYTES)));   \
    /* Position by position, the planes' elements side by side: called with a constant */ \
    /* count, the loop over them is one vector (a gather where there is one), which */      \
    /* ran 1.2-1.6x faster than plane by plane. */                                          \
    static inline __attribute__((always_inline)) void name##_gather(                        \
            type* planes, const type* x, ptrdiff_t plane, ptrdiff_t count) {                \
        enum { LANES = FASTCONV_VECTOR_BYTES / sizeof(type) };                              \
        ptrdiff_t p, lane;                                                                  \
        for (p = 0; p < plane; p++)                                                         \
            for (lane = 0; lane < count; lane++)                                            \
                planes[p * LANES + lane] = x[lane * plane + p];                             \
    }                                                                                       \
    static inline void name(const type* x, ptrdiff_t count, const fastconv_pool_window* g,  \
                            type* scratch, type* y, int64_t* argmax) {                      \
        enum { LANES = FASTCONV_VECTOR_BYTES / sizeof(type) };                              \
        const ptrdiff_t plane = g->H * g->W, outputs = g->OH * g->OW;                       \
        type* planes = scratch;                                                             \
        type* maxima = planes + plane * LANES;                                              \
        code_scalar* codes = (code_scalar*) (maxima + outputs * LANES);                     \
        name##_values best = {0}, value;                                                    \
        name##_codes code = {0}, take;                                                      \
        ptrdiff_t lane, oh, ow, r, s, ih, iw, o;                                            \
        int first;                                                                          \
        /* Lanes past count hold zeros, folded like the others and never stored. */        \
        if (count < LANES) {                                                                \
            memset(planes, 0, plane * LANES * sizeof(type));                                \
            name##_gather(planes, x, plane, count);                                         \
        } else {                                                                            \
            name##_gather(planes, x, plane, LANES);                                         \
        }                                                                                   \
        for (oh = 0; oh < g->OH; oh++) {                                                    \
            for (ow = 0; ow < g->OW; ow++) {                                                \
                first = 1;                                                                  \
                for (r = 0; r < g->R; r++) {                                                \
                    ih = oh * g->stride_h - g->pad_top + r * g->dilation_h;                 \
                    if (ih < 0 || ih >= g->H)                                               \
                        continue;                                                           \
                    for (s = 0; s < g->S; s++) {                                            \
                        iw = ow * g->stride_w - g->pad_left + s * g->dilation_w;            \
                        if (iw < 0 || iw >= g->W)                                           \
                            continue;                                                       \
                        memcpy(&value, planes + (ih * g->W + iw) * LANES, sizeof value);    \
                        if (first) {                                                        \
                            best = value;                                                   \
                            code = (name##_codes) {0} + (code_scalar) (ih * g->W + iw);     \
                            first = 0;                                                      \
                            continue;                                                       \
                        }                                                                   \
                        take = (name##_codes) (value > best) | (name##_codes) (value != value); \
                        best = (name##_values) (((name##_codes) value & take)               \
                                                | ((name##_codes) best & ~take));           \
                        code = (((name##_codes) {0} + (code_scalar) (ih * g->W + iw)) & take) \
                               | (code & ~take);                                            \
                    }                                                                       \
                }                                                                           \
                o = oh * g->OW + ow;                                                        \
                memcpy(maxima + o * LANES, &best, sizeof best);                             \
                memcpy(codes + o * LANES, &code, sizeof code);                              \
            }                                                                               \
        }                                                                                   \
        for (lane = 0; lane < count; lane++) {                                              \
            for (o = 0; o < outputs; o++)                                                   \
                y[lane * outputs + o] = maxima[o * LANES + lane];                           \
            if (argmax != NULL)                                                             \
                for (o = 0; o < outputs; o++)                                               \
                    argmax[lane * outputs + o] = codes[o * LANES + lane];                   \
        }                                                                                   \
    }

FASTCONV_MAX_POOL_PLANES(float, int32_t, fastconv_max_pool_planes_f32)
FASTCONV_MAX_POOL_PLANES(double, int64_t, fastconv_max_pool_planes_f64)

#else

#define FASTCONV_POOL_PLANES_LANES_F32 0
#define FASTCONV_POOL_PLANES_LANES_F64 0
#define FASTCONV_POOL_PLANES_UNAVAILABLE(type, name)                                        \
    static inline void name(const type* x, ptrdiff_t count, const fastconv_pool_window* g,  \
                            type* scratch, type* y, int64_t* argmax) {                      \
        (void) x; (void) count; (void) g; (void) scratch; (void) y; (void) argmax;          \
    }
FASTCONV_POOL_PLANES_UNAVAILABLE(float, fastconv_max_pool_planes_f32)
FASTCONV_POOL_PLANES_UNAVAILABLE(double, fastconv_max_pool_planes_f64)

#endif

#endif
