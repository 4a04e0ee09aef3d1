/* Max and average pooling of small planes, a vector of planes at a time.

   The row-wise kernels put a vector along an output row; where the rows hold fewer
   outputs than a vector has lanes (7 x 7 maps, 4 x 4 windows on 14 x 14), they run
   mostly one output at a time. Here each lane takes a plane instead. A block of
   LANES planes is first copied into a scratch with the planes innermost (element
   (position, lane) at position * LANES + lane), so that one vector load reads one
   position of every plane of the block. Each window then takes its in-bounds taps in
   row-major order, and the block's results are copied back plane by plane.

   Max pooling folds the taps by the rule of the two-pass kernel in _pool_max.pyx (a
   larger or NaN value wins, ties keep the first). A position is a code ih * W + iw in
   integer lanes as wide as the values, so that every select is one masked move; the
   caller keeps planes below 2**31 elements.

   Average pooling adds, in float64 lanes, each window row's taps from 0 and then the
   row sums from 0, and divides by row_divisor[oh] * col_divisor[ow]: the two-pass
   kernel's sums in its order, so the averages are the same to the bit. Its gradient
   adds each output's share to its window's elements in the order of _pool_avg.pyx's
   spread_row, each addition in float64 rounded to the element's type, so it too is
   the same to the bit.

   The caller keeps a block's scratch small enough for the caches. GCC and clang only
   (vector types): elsewhere the LANES macros are 0 and the caller keeps the row-wise
   kernels. */
#ifndef FASTCONV_POOL_PLANES_H
#define FASTCONV_POOL_PLANES_H

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

/* Window (oh, ow)'s in-bounds taps in row-major order: the statements ROW_START
   before each row's taps, TAP for each with ``position`` set, ROW_END after them. */
#define FASTCONV_POOL_PLANES_TAPS(g, oh, ow, ROW_START, TAP, ROW_END)                      \
    for (r = 0; r < (g)->R; r++) {                                                          \
        ih = (oh) * (g)->stride_h - (g)->pad_top + r * (g)->dilation_h;                     \
        if (ih < 0 || ih >= (g)->H)                                                         \
            continue;                                                                       \
        ROW_START;                                                                          \
        for (s = 0; s < (g)->S; s++) {                                                      \
            iw = (ow) * (g)->stride_w - (g)->pad_left + s * (g)->dilation_w;                \
            if (iw < 0 || iw >= (g)->W)                                                     \
                continue;                                                                   \
            position = ih * (g)->W + iw;                                                    \
            TAP;                                                                            \
        }                                                                                   \
        ROW_END;                                                                            \
    }

/* The kernels of one type. ``scratch`` holds (H * W + 2 * (OH + 1) * OW) * LANES
   elements: the block's input planes (or input gradients), then its outputs (or output
   gradients), then the maxima's codes (as wide as values) or a row's float64 shares.
   name##_max pools ``count`` (1 to LANES) planes of H * W from x into y (OH * OW each)
   and, unless argmax is NULL, their positions; name##_average averages them;
   name##_average_backward spreads each output's gradient over its window, divided by
   its divisor, into grad_x (zeros elsewhere). */
#define FASTCONV_POOL_PLANES(type, code_scalar, name)                                      \
    enum { name##_LANES = FASTCONV_VECTOR_BYTES / sizeof(type) };                           \
    typedef type name##_values __attribute__((vector_size(FASTCONV_VECTOR_BYTES)));         \
    typedef code_scalar name##_codes __attribute__((vector_size(FASTCONV_VECTOR_BYTES)));   \
    typedef double name##_sums __attribute__((vector_size(name##_LANES * sizeof(double)))); \
    /* Position by position, the planes' elements side by side: called with a constant */ \
    /* count, the loop over them is one vector (a gather where there is one), which */      \
    /* ran 1.2-1.6x faster than plane by plane. */                                          \
    static inline __attribute__((always_inline)) void name##_gather_lanes(                  \
            type* planes, const type* x, ptrdiff_t plane, ptrdiff_t count) {                \
        ptrdiff_t p, lane;                                                                  \
        for (p = 0; p < plane; p++)                                                         \
            for (lane = 0; lane < count; lane++)                                            \
                planes[p * name##_LANES + lane] = x[lane * plane + p];                      \
    }                                                                                       \
    /* Lanes past count hold zeros, taken like the others and never stored. */              \
    static inline void name##_gather(type* planes, const type* x, ptrdiff_t plane,          \
                                     ptrdiff_t count) {                                     \
        if (count < name##_LANES) {                                                         \
            memset(planes, 0, plane * name##_LANES * sizeof(type));                         \
            name##_gather_lanes(planes, x, plane, count);                                   \
        } else {                                                                            \
            name##_gather_lanes(planes, x, plane, name##_LANES);                            \
        }                                                                                   \
    }                                                                                       \
    /* The inverse: ``count`` planes of ``size`` back from the block, plane by plane. */    \
    static inline void name##_scatter(type* out, const type* planes, ptrdiff_t size,        \
                                      ptrdiff_t count) {                                    \
        ptrdiff_t p, lane;                                                                  \
        for (lane = 0; lane < count; lane++)                                                \
            for (p = 0; p < size; p++)                                                      \
                out[lane * size + p] = planes[p * name##_LANES + lane];                     \
    }                                                                                       \
    static inline void name##_max(const type* x, ptrdiff_t count,                           \
                                  const fastconv_pool_window* g, type* scratch, type* y,    \
                                  int64_t* argmax) {                                        \
        enum { LANES = name##_LANES };                                                      \
        const ptrdiff_t plane = g->H * g->W, outputs = g->OH * g->OW;                       \
        type* planes = scratch;                                                             \
        type* maxima = planes + plane * LANES;                                              \
        code_scalar* codes = (code_scalar*) (maxima + outputs * LANES);                     \
        name##_values best = {0}, value;                                                    \
        name##_codes code = {0}, take, at;                                                  \
        ptrdiff_t lane, oh, ow, r, s, ih, iw, position, o;                                  \
        int first;                                                                          \
        name##_gather(planes, x, plane, count);                                             \
        for (oh = 0; oh < g->OH; oh++) {                                                    \
            for (ow = 0; ow < g->OW; ow++) {                                                \
                first = 1;                                                                  \
                FASTCONV_POOL_PLANES_TAPS(g, oh, ow, (void) 0, {                            \
                    memcpy(&value, planes + position * LANES, sizeof value);                \
                    at = (name##_codes) {0} + (code_scalar) position;                       \
                    if (first) {                                                            \
                        best = value;                                                       \
                        code = at;                                                          \
                        first = 0;                                                          \
                    } else {                                                                \
                        take = (name##_codes) (value > best)                                \
                               | (name##_codes) (value != value);                           \
                        best = (name##_values) (((name##_codes) value & take)               \
                                                | ((name##_codes) best & ~take));           \
                        code = (at & take) | (code & ~take);                                \
                    }                                                                       \
                }, (void) 0)                                                                \
                o = oh * g->OW + ow;                                                        \
                memcpy(maxima + o * LANES, &best, sizeof best);                             \
                memcpy(codes + o * LANES, &code, sizeof code);                              \
            }                                                                               \
        }                                                                                   \
        name##_scatter(y, maxima, outputs, count);                                          \
        /* The codes widen to int64 on the way. */                                          \
        if (argmax != NULL)                                                                 \
            for (lane = 0; lane < count; lane++)                                            \
                for (o = 0; o < outputs; o++)                                               \
                    argmax[lane * outputs + o] = codes[o * LANES + lane];                   \
    }                                                                                       \
    static inline void name##_average(const type* x, ptrdiff_t count,                       \
                                      const fastconv_pool_window* g,                        \
                                      const double* row_divisor, const double* col_divisor, \
                                      type* scratch, type* y) {                             \
        enum { LANES = name##_LANES };                                                      \
        const ptrdiff_t plane = g->H * g->W, outputs = g->OH * g->OW;                       \
        type* planes = scratch;                                                             \
        type* averages = planes + plane * LANES;                                            \
        name##_values value;                                                                \
        name##_sums window_sum, row_sum;                                                    \
        ptrdiff_t oh, ow, r, s, ih, iw, position, o;                                        \
        name##_gather(planes, x, plane, count);                                             \
        for (oh = 0; oh < g->OH; oh++) {                                                    \
            for (ow = 0; ow < g->OW; ow++) {                                                \
                window_sum = (name##_sums) {0};                                             \
                FASTCONV_POOL_PLANES_TAPS(g, oh, ow, row_sum = (name##_sums) {0}, {         \
                    memcpy(&value, planes + position * LANES, sizeof value);                \
                    row_sum += __builtin_convertvector(value, name##_sums);                 \
                }, window_sum += row_sum)                                                   \
                value = __builtin_convertvector(                                            \
                    window_sum / (row_divisor[oh] * col_divisor[ow]), name##_values);       \
                o = oh * g->OW + ow;                                                        \
                memcpy(averages + o * LANES, &value, sizeof value);                         \
            }                                                                               \
        }                                                                                   \
        name##_scatter(y, averages, outputs, count);                                        \
    }                                                                                       \
    static inline void name##_average_backward(const type* grad_y, ptrdiff_t count,         \
                                               const fastconv_pool_window* g,               \
                                               const double* row_divisor,                   \
                                               const double* col_divisor, type* scratch,    \
                                               type* grad_x) {                              \
        enum { LANES = name##_LANES };                                                      \
        const ptrdiff_t plane = g->H * g->W, outputs = g->OH * g->OW;                       \
        type* grads = scratch;                                                              \
        type* shares = grads + plane * LANES;                                               \
        double* scales = (double*) (shares + outputs * LANES);                              \
        name##_values value;                                                                \
        name##_sums share;                                                                  \
        ptrdiff_t oh, ow, r, s, ih, iw, position;                                           \
        memset(grads, 0, plane * LANES * sizeof(type));                                     \
        name##_gather(shares, grad_y, outputs, count);                                      \
        for (oh = 0; oh < g->OH; oh++) {                                                    \
            for (ow = 0; ow < g->OW; ow++) {                                                \
                memcpy(&value, shares + (oh * g->OW + ow) * LANES, sizeof value);           \
                share = __builtin_convertvector(value, name##_sums)                         \
                        / (row_divisor[oh] * col_divisor[ow]);                              \
                memcpy(scales + ow * LANES, &share, sizeof share);                          \
            }                                                                               \
            /* Row by row, kernel column by column, then along the outputs: the order */    \
            /* of the two-pass kernel's additions. */                                       \
            for (r = 0; r < g->R; r++) {                                                    \
                ih = oh * g->stride_h - g->pad_top + r * g->dilation_h;                     \
                if (ih < 0 || ih >= g->H)                                                   \
                    continue;                                                               \
                for (s = 0; s < g->S; s++) {                                                \
                    for (ow = 0; ow < g->OW; ow++) {                                        \
                        iw = ow * g->stride_w - g->pad_left + s * g->dilation_w;            \
                        if (iw < 0 || iw >= g->W)                                           \
                            continue;                                                       \
                        position = ih * g->W + iw;                                          \
                        memcpy(&value, grads + position * LANES, sizeof value);             \
                        memcpy(&share, scales + ow * LANES, sizeof share);                  \
                        value = __builtin_convertvector(                                    \
                            __builtin_convertvector(value, name##_sums) + share,            \
                            name##_values);                                                 \
                        memcpy(grads + position * LANES, &value, sizeof value);             \
                    }                                                                       \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
        name##_scatter(grad_x, grads, plane, count);                                        \
    }

FASTCONV_POOL_PLANES(float, int32_t, fastconv_pool_planes_f32)
FASTCONV_POOL_PLANES(double, int64_t, fastconv_pool_planes_f64)

#else

#define FASTCONV_POOL_PLANES_LANES_F32 0
#define FASTCONV_POOL_PLANES_LANES_F64 0
#define FASTCONV_POOL_PLANES_UNAVAILABLE(type, name)                                       \
    static inline void name##_max(const type* x, ptrdiff_t count,                           \
                                  const fastconv_pool_window* g, type* scratch, type* y,    \
                                  int64_t* argmax) {                                        \
        (void) x; (void) count; (void) g; (void) scratch; (void) y; (void) argmax;          \
    }                                                                                       \
    static inline void name##_average(const type* x, ptrdiff_t count,                       \
                                      const fastconv_pool_window* g,                        \
                                      const double* row_divisor, const double* col_divisor, \
                                      type* scratch, type* y) {                             \
        (void) x; (void) count; (void) g; (void) row_divisor; (void) col_divisor;           \
        (void) scratch; (void) y;                                                           \
    }                                                                                       \
    static inline void name##_average_backward(const type* grad_y, ptrdiff_t count,         \
                                               const fastconv_pool_window* g,               \
                                               const double* row_divisor,                   \
                                               const double* col_divisor, type* scratch,    \
                                               type* grad_x) {                              \
        (void) grad_y; (void) count; (void) g; (void) row_divisor; (void) col_divisor;      \
        (void) scratch; (void) grad_x;                                                      \
    }
FASTCONV_POOL_PLANES_UNAVAILABLE(float, fastconv_pool_planes_f32)
FASTCONV_POOL_PLANES_UNAVAILABLE(double, fastconv_pool_planes_f64)

#endif

#endif
