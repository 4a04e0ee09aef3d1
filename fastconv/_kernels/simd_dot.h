/* Dot products of several rows with one row, summed in vector lanes in an order fixed
   by the source.

   C forbids reassociating floating-point additions, so a plain dot-product loop is one
   chain of dependent additions, one element at a time. Here each row's products go
   into the lanes of a 32-byte vector (8 floats or 4 doubles): GCC and clang map it
   onto whatever registers the build targets (one AVX register, two SSE ones), and its
   lanes are then added pairwise, halving their number each time. The order is the
   same on every build, call and thread count. Other compilers get the plain loop. */
#ifndef FASTCONV_SIMD_DOT_H
#define FASTCONV_SIMD_DOT_H

#include <stddef.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)

typedef float fastconv_f32_lanes __attribute__((vector_size(32)));
typedef float fastconv_f32_half __attribute__((vector_size(16)));
typedef double fastconv_f64_lanes __attribute__((vector_size(32)));
typedef double fastconv_f64_half __attribute__((vector_size(16)));

#define FASTCONV_LOAD(lanes, pointer) memcpy(&(lanes), (pointer), sizeof(lanes))

/* out[i] = sum over t < rows and k < n of a[i][t * a_pitch + k] * b[t * b_pitch + k] for
   i < count (1 to 8): count rows against the same rows of b, each vector of b loaded
   once for all of them, so a multiply-add loads little more than its vector of a, and
   count running sums in flight hide the multiply-add's latency. With count a constant
   after inlining, the loops over i unroll and the sums stay in registers. */
#define FASTCONV_DOT_GROUP(type, lanes_type, half_type, name)                           \
    static inline __attribute__((always_inline)) void name(                            \
            const type* const* a, ptrdiff_t a_pitch, const type* b, ptrdiff_t b_pitch, \
            ptrdiff_t rows, ptrdiff_t n, int count, type* out) {                        \
        enum { LANES = sizeof(lanes_type) / sizeof(type) };                            \
        lanes_type sums[8], x, y;                                                       \
        half_type low, high;                                                            \
        type lane[LANES / 2], tails[8];                                                 \
        ptrdiff_t t, k, width, j;                                                       \
        int i;                                                                          \
        for (i = 0; i < count; i++) {                                                   \
            memset(&sums[i], 0, sizeof sums[i]);                                        \
            tails[i] = 0;                                                               \
        }                                                                               \
        for (t = 0; t < rows; t++) {                                                    \
            const type* b_row = b + t * b_pitch;                                        \
            for (k = 0; k + LANES <= n; k += LANES) {                                   \
                FASTCONV_LOAD(y, b_row + k);                                            \
                for (i = 0; i < count; i++) {                                           \
                    FASTCONV_LOAD(x, a[i] + t * a_pitch + k);                           \
                    sums[i] += x * y;                                                   \
                }                                                                       \
            }                                                                           \
            for (; k < n; k++) {                                                        \
                for (i = 0; i < count; i++) {                                           \
                    tails[i] += a[i][t * a_pitch + k] * b_row[k];                       \
                }                                                                       \
            }                                                                           \
        }                                                                               \
        /* Each sum's upper half added to its lower half with a vector addition, */     \
        /* then the lanes pairwise on scalars.                                    */    \
        for (i = 0; i < count; i++) {                                                   \
            memcpy(&low, &sums[i], sizeof low);                                         \
            memcpy(&high, (const char*) &sums[i] + sizeof low, sizeof high);            \
            low += high;                                                                \
            memcpy(lane, &low, sizeof low);                                             \
            for (width = LANES / 4; width > 0; width /= 2) {                            \
                for (j = 0; j < width; j++) {                                           \
                    lane[j] += lane[j + width];                                         \
                }                                                                       \
            }                                                                           \
            out[i] = lane[0] + tails[i];                                                \
        }                                                                               \
    }

FASTCONV_DOT_GROUP(float, fastconv_f32_lanes, fastconv_f32_half, fastconv_dot_group_f32_n)
FASTCONV_DOT_GROUP(double, fastconv_f64_lanes, fastconv_f64_half, fastconv_dot_group_f64_n)

#else

#define FASTCONV_DOT_GROUP(type, name)                                                  \
    static inline void name(const type* const* a, ptrdiff_t a_pitch, const type* b,    \
                            ptrdiff_t b_pitch, ptrdiff_t rows, ptrdiff_t n, int count, \
                            type* out) {                                                \
        ptrdiff_t t, k;                                                                 \
        int i;                                                                          \
        for (i = 0; i < count; i++) {                                                   \
            type total = 0;                                                             \
            for (t = 0; t < rows; t++) {                                                \
                for (k = 0; k < n; k++) {                                               \
                    total += a[i][t * a_pitch + k] * b[t * b_pitch + k];                \
                }                                                                       \
            }                                                                           \
            out[i] = total;                                                             \
        }                                                                               \
    }

FASTCONV_DOT_GROUP(float, fastconv_dot_group_f32_n)
FASTCONV_DOT_GROUP(double, fastconv_dot_group_f64_n)

#endif

/* fastconv_dot_group_*_n with count (1 to 8) made a constant in each call. */
#define FASTCONV_DOT_GROUP_DISPATCH(type, body, name)                                   \
    static inline void name(const type* const* a, ptrdiff_t a_pitch, const type* b,    \
                            ptrdiff_t b_pitch, ptrdiff_t rows, ptrdiff_t n, int count, \
                            type* out) {                                                \
        switch (count) {                                                                \
        case 8: body(a, a_pitch, b, b_pitch, rows, n, 8, out); break;                   \
        case 7: body(a, a_pitch, b, b_pitch, rows, n, 7, out); break;                   \
        case 6: body(a, a_pitch, b, b_pitch, rows, n, 6, out); break;                   \
        case 5: body(a, a_pitch, b, b_pitch, rows, n, 5, out); break;                   \
        case 4: body(a, a_pitch, b, b_pitch, rows, n, 4, out); break;                   \
        case 3: body(a, a_pitch, b, b_pitch, rows, n, 3, out); break;                   \
        case 2: body(a, a_pitch, b, b_pitch, rows, n, 2, out); break;                   \
        default: body(a, a_pitch, b, b_pitch, rows, n, 1, out); break;                  \
        }                                                                               \
    }

FASTCONV_DOT_GROUP_DISPATCH(float, fastconv_dot_group_f32_n, fastconv_dot_group_f32)
FASTCONV_DOT_GROUP_DISPATCH(double, fastconv_dot_group_f64_n, fastconv_dot_group_f64)

#endif
