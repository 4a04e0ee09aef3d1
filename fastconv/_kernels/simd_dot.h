/* Dot products summed in vector lanes, in an order fixed by the source.

   C forbids reassociating floating-point additions, so a plain dot-product loop is one
   chain of dependent additions, one element at a time. Here the products go into the
   lanes of a 64-byte vector (16 floats or 8 doubles): GCC and clang map it onto
   whatever registers the build targets (one AVX-512 register, two AVX ones, four SSE
   ones), and the lanes are then added pairwise, halving their number each time. The
   order is the same on every build, call and thread count. Other compilers get the
   plain loop. */
#ifndef FASTCONV_SIMD_DOT_H
#define FASTCONV_SIMD_DOT_H

#include <stddef.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)

typedef float fastconv_f32_lanes __attribute__((vector_size(64)));
typedef float fastconv_f32_half __attribute__((vector_size(32)));
typedef float fastconv_f32_quarter __attribute__((vector_size(16)));
typedef double fastconv_f64_lanes __attribute__((vector_size(64)));
typedef double fastconv_f64_half __attribute__((vector_size(32)));
typedef double fastconv_f64_quarter __attribute__((vector_size(16)));

#define FASTCONV_LOAD(lanes, pointer) memcpy(&(lanes), (pointer), sizeof(lanes))

/* sum over t < rows and k < n of a[t * a_pitch + k] * b[t * b_pitch + k]. Four running
   vectors: a multiply-add waits for the previous one into the same vector, so one
   vector alone would run at a quarter of the hardware's rate. */
#define FASTCONV_DOT_ROWS(type, lanes_type, half_type, quarter_type, name)              \
    static inline type name(const type* a, ptrdiff_t a_pitch, const type* b,           \
                            ptrdiff_t b_pitch, ptrdiff_t rows, ptrdiff_t n) {          \
        enum { LANES = sizeof(lanes_type) / sizeof(type) };                            \
        lanes_type s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, x0, y0, x1, y1, x2, y2, x3, y3; \
        half_type low, high;                                                            \
        quarter_type low_quarter, high_quarter;                                         \
        type lane[LANES / 4], tail = 0;                                                 \
        ptrdiff_t t, k, width, i;                                                       \
        for (t = 0; t < rows; t++) {                                                    \
            const type* a_row = a + t * a_pitch;                                        \
            const type* b_row = b + t * b_pitch;                                        \
            for (k = 0; k + 4 * LANES <= n; k += 4 * LANES) {                           \
                FASTCONV_LOAD(x0, a_row + k);                                           \
                FASTCONV_LOAD(y0, b_row + k);                                           \
                FASTCONV_LOAD(x1, a_row + k + LANES);                                   \
                FASTCONV_LOAD(y1, b_row + k + LANES);                                   \
                FASTCONV_LOAD(x2, a_row + k + 2 * LANES);                               \
                FASTCONV_LOAD(y2, b_row + k + 2 * LANES);                               \
                FASTCONV_LOAD(x3, a_row + k + 3 * LANES);                               \
                FASTCONV_LOAD(y3, b_row + k + 3 * LANES);                               \
                s0 += x0 * y0;                                                          \
                s1 += x1 * y1;                                                          \
                s2 += x2 * y2;                                                          \
                s3 += x3 * y3;                                                          \
            }                                                                           \
            for (; k + LANES <= n; k += LANES) {                                        \
                FASTCONV_LOAD(x0, a_row + k);                                           \
                FASTCONV_LOAD(y0, b_row + k);                                           \
                s0 += x0 * y0;                                                          \
            }                                                                           \
            for (; k < n; k++) {                                                        \
                tail += a_row[k] * b_row[k];                                            \
            }                                                                           \
        }                                                                               \
        s0 = (s0 + s1) + (s2 + s3);                                                     \
        /* Add the lanes' upper half to the lower half, twice with vector additions, */ \
        /* then on scalars.                                                          */ \
        memcpy(&low, &s0, sizeof low);                                                  \
        memcpy(&high, (const char*) &s0 + sizeof low, sizeof high);                     \
        low += high;                                                                    \
        memcpy(&low_quarter, &low, sizeof low_quarter);                                 \
        memcpy(&high_quarter, (const char*) &low + sizeof low_quarter, sizeof high_quarter); \
        low_quarter += high_quarter;                                                    \
        memcpy(lane, &low_quarter, sizeof low_quarter);                                 \
        for (width = LANES / 8; width > 0; width /= 2) {                                \
            for (i = 0; i < width; i++) {                                               \
                lane[i] += lane[i + width];                                             \
            }                                                                           \
        }                                                                               \
        return lane[0] + tail;                                                          \
    }

FASTCONV_DOT_ROWS(float, fastconv_f32_lanes, fastconv_f32_half, fastconv_f32_quarter,
                  fastconv_dot_rows_f32)
FASTCONV_DOT_ROWS(double, fastconv_f64_lanes, fastconv_f64_half, fastconv_f64_quarter,
                  fastconv_dot_rows_f64)

#else

#define FASTCONV_DOT_ROWS(type, name)                                                   \
    static inline type name(const type* a, ptrdiff_t a_pitch, const type* b,           \
                            ptrdiff_t b_pitch, ptrdiff_t rows, ptrdiff_t n) {          \
        type total = 0;                                                                 \
        ptrdiff_t t, k;                                                                 \
        for (t = 0; t < rows; t++) {                                                    \
            for (k = 0; k < n; k++) {                                                   \
                total += a[t * a_pitch + k] * b[t * b_pitch + k];                       \
            }                                                                           \
        }                                                                               \
        return total;                                                                   \
    }

FASTCONV_DOT_ROWS(float, fastconv_dot_rows_f32)
FASTCONV_DOT_ROWS(double, fastconv_dot_rows_f64)

#endif

#endif
