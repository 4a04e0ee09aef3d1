/* Pool Skip's two gradients through a maximum, from one read of the gradient rows it
   reached: for t < count in turn and k < n, with g = rows[t][shift + k],
       acc[k] += scales[t] * g                   (the weight gradient's row)
       parts[t * LANES + k % LANES] += weights[k] * g   (the input gradient's dot
                                                         product, in LANES lanes)
   where LANES is one vector of the build. All count rows meet the same filter row
   ``weights`` and accumulate into the same row ``acc``: one input channel's maxima.

   The accumulator and the weights are taken a tile of up to TILE vectors at a time and
   held in registers while all count rows pass, so they are read (and acc written) once
   per call, and each vector of a gradient row, loaded once, feeds both multiply-adds.
   The tile's vectors are independent chains of multiply-adds into acc; a row's dot
   product adds its even vectors and its odd ones in two chains, then one to the
   other, into its lanes. Each acc element gains its rows one by one in the order t,
   and each lane's sum runs in an order fixed by n and the build: the same on every
   call and thread count. GCC and clang map the vectors onto the build's registers
   (vector_bytes.h); other compilers get the plain loop. */
#ifndef FASTCONV_GRADIENT_ROWS_H
#define FASTCONV_GRADIENT_ROWS_H

#include <stddef.h>
#include <string.h>

#include "vector_bytes.h"

/* The lanes of one row's partial dot product: one vector of the build. */
#define FASTCONV_GRADIENT_LANES(type) ((ptrdiff_t) (FASTCONV_VECTOR_BYTES / sizeof(type)))

/* Vectors of acc and of weights a tile holds: both fit in the registers with room to
   spare, 32 of them with AVX-512 and 16 otherwise. */
#if FASTCONV_VECTOR_BYTES == 64
#define FASTCONV_GRADIENT_TILE 8
#else
#define FASTCONV_GRADIENT_TILE 4
#endif

/* The plain loop over elements k_lo .. n - 1: the vector kernel's tail, and the whole
   row for other compilers. */
#define FASTCONV_GRADIENT_ROWS_PLAIN(type)                                                  \
    static inline void fastconv_gradient_rows_plain_##type(                                 \
            type* acc, const type* weights, const type* const* rows, ptrdiff_t shift,       \
            const type* scales, ptrdiff_t count, ptrdiff_t k_lo, ptrdiff_t n,               \
            type* parts) {                                                                  \
        ptrdiff_t lanes = FASTCONV_GRADIENT_LANES(type), k, t;                              \
        for (k = k_lo; k < n; k++) {                                                        \
            type total = acc[k];                                                            \
            for (t = 0; t < count; t++) {                                                   \
                type g = rows[t][shift + k];                                                \
                total += scales[t] * g;                                                     \
                parts[t * lanes + k % lanes] += weights[k] * g;                             \
            }                                                                               \
            acc[k] = total;                                                                 \
        }                                                                                   \
    }
FASTCONV_GRADIENT_ROWS_PLAIN(float)
FASTCONV_GRADIENT_ROWS_PLAIN(double)

#if defined(__GNUC__) || defined(__clang__)

/* Keeps a loaded vector in a register: left alone, GCC folds its load into each of
   the two multiply-adds that use it, and loads it twice. */
#if defined(__x86_64__) || defined(__i386__)
#define FASTCONV_IN_REGISTER(value) __asm__("" : "+v"(value))
#elif defined(__aarch64__)
#define FASTCONV_IN_REGISTER(value) __asm__("" : "+w"(value))
#else
#define FASTCONV_IN_REGISTER(value) ((void) 0)
#endif

/* The sum of a row's LANES partial sums: the upper half of the lanes added to the
   lower half, and again, down to one lane (halves of 64 bytes, of 32, of 16), in the
   same order on every call. */
#define FASTCONV_HALVE(type, bytes, part)                                                   \
    do {                                                                                    \
        typedef type half_type __attribute__((vector_size((bytes) / 2)));                   \
        half_type low, high;                                                                \
        memcpy(&low, (part), sizeof low);                                                   \
        memcpy(&high, (part) + sizeof low / sizeof(type), sizeof high);                     \
        low += high;                                                                        \
        memcpy((part), &low, sizeof low);                                                   \
    } while (0)
#define FASTCONV_LANES_TOTAL_VECTOR(type)                                                   \
    static inline type fastconv_lanes_total_##type(type* part) {                            \
        if (FASTCONV_VECTOR_BYTES >= 64)                                                    \
            FASTCONV_HALVE(type, 64, part);                                                 \
        if (FASTCONV_VECTOR_BYTES >= 32)                                                    \
            FASTCONV_HALVE(type, 32, part);                                                 \
        FASTCONV_HALVE(type, 16, part);                                                     \
        if (sizeof(type) == 4)                                                              \
            part[0] += part[1];                                                             \
        return part[0];                                                                     \
    }
FASTCONV_LANES_TOTAL_VECTOR(float)
FASTCONV_LANES_TOTAL_VECTOR(double)

/* Unrolls the loops over a tile's vectors, so that its sums and weights are named
   registers. Left to itself, GCC kept them on the stack in the AVX2 build and copied
   them in 16-byte halves: 1.3-1.5x slower on 256 channels. */
#define FASTCONV_UNROLL_TILE _Pragma("GCC unroll 8")

typedef float fastconv_gradient_f32 __attribute__((vector_size(FASTCONV_VECTOR_BYTES)));
typedef double fastconv_gradient_f64 __attribute__((vector_size(FASTCONV_VECTOR_BYTES)));

/* name##_tile: ``vectors`` vectors from element k, through all the rows; called with a
   constant ``vectors``, its loops over them unroll and the sums stay in registers. */
#define FASTCONV_GRADIENT_ROWS(type, lanes_type, name)                                      \
    static inline __attribute__((always_inline)) void name##_tile(                          \
            type* acc, const type* weights, const type* const* rows, ptrdiff_t shift,       \
            const type* scales, ptrdiff_t count, ptrdiff_t k, type* parts, int vectors) {   \
        enum { LANES = sizeof(lanes_type) / sizeof(type) };                                 \
        lanes_type sums[FASTCONV_GRADIENT_TILE], w[FASTCONV_GRADIENT_TILE], row, even, odd; \
        ptrdiff_t t;                                                                        \
        int j;                                                                              \
        FASTCONV_UNROLL_TILE                                                                \
        for (j = 0; j < vectors; j++) {                                                     \
            memcpy(&sums[j], acc + k + j * LANES, sizeof row);                              \
            memcpy(&w[j], weights + k + j * LANES, sizeof row);                             \
        }                                                                                   \
        for (t = 0; t < count; t++) {                                                       \
            const type* from = rows[t] + shift + k;                                         \
            type scale = scales[t];                                                         \
            memcpy(&even, parts + t * LANES, sizeof row);                                   \
            odd = (lanes_type) {0};                                                         \
            FASTCONV_UNROLL_TILE                                                            \
            for (j = 0; j < vectors; j++) {                                                 \
                memcpy(&row, from + j * LANES, sizeof row);                                 \
                FASTCONV_IN_REGISTER(row);                                                  \
                sums[j] += scale * row;                                                     \
                if (j % 2)                                                                  \
                    odd += w[j] * row;                                                      \
                else                                                                        \
                    even += w[j] * row;                                                     \
            }                                                                               \
            if (vectors > 1)                                                                \
                even += odd;                                                                \
            memcpy(parts + t * LANES, &even, sizeof row);                                   \
        }                                                                                   \
        FASTCONV_UNROLL_TILE                                                                \
        for (j = 0; j < vectors; j++)                                                       \
            memcpy(acc + k + j * LANES, &sums[j], sizeof row);                              \
    }                                                                                       \
    static inline void name(type* acc, const type* weights, const type* const* rows,        \
                            ptrdiff_t shift, const type* scales, ptrdiff_t count,           \
                            ptrdiff_t n, type* parts) {                                     \
        enum { LANES = sizeof(lanes_type) / sizeof(type) };                                 \
        ptrdiff_t k = 0;                                                                    \
        for (; k + FASTCONV_GRADIENT_TILE * LANES <= n; k += FASTCONV_GRADIENT_TILE * LANES) \
            name##_tile(acc, weights, rows, shift, scales, count, k, parts,                 \
                        FASTCONV_GRADIENT_TILE);                                            \
        if (FASTCONV_GRADIENT_TILE > 4 && k + 4 * LANES <= n) {                             \
            name##_tile(acc, weights, rows, shift, scales, count, k, parts, 4);             \
            k += 4 * LANES;                                                                 \
        }                                                                                   \
        for (; k + LANES <= n; k += LANES)                                                  \
            name##_tile(acc, weights, rows, shift, scales, count, k, parts, 1);             \
        fastconv_gradient_rows_plain_##type(acc, weights, rows, shift, scales, count, k, n, \
                                            parts);                                         \
    }

FASTCONV_GRADIENT_ROWS(float, fastconv_gradient_f32, fastconv_gradient_rows_f32)
FASTCONV_GRADIENT_ROWS(double, fastconv_gradient_f64, fastconv_gradient_rows_f64)

#else

/* The sum of a row's LANES partial sums, halved as above. */
#define FASTCONV_LANES_TOTAL(type)                                                          \
    static inline type fastconv_lanes_total_##type(type* part) {                            \
        ptrdiff_t width, j;                                                                 \
        for (width = FASTCONV_GRADIENT_LANES(type) / 2; width > 0; width /= 2)              \
            for (j = 0; j < width; j++)                                                     \
                part[j] += part[j + width];                                                 \
        return part[0];                                                                     \
    }
FASTCONV_LANES_TOTAL(float)
FASTCONV_LANES_TOTAL(double)

#define FASTCONV_GRADIENT_ROWS(type, name)                                                  \
    static inline void name(type* acc, const type* weights, const type* const* rows,        \
                            ptrdiff_t shift, const type* scales, ptrdiff_t count,           \
                            ptrdiff_t n, type* parts) {                                     \
        fastconv_gradient_rows_plain_##type(acc, weights, rows, shift, scales, count, 0, n, \
                                            parts);                                         \
    }

FASTCONV_GRADIENT_ROWS(float, fastconv_gradient_rows_f32)
FASTCONV_GRADIENT_ROWS(double, fastconv_gradient_rows_f64)

#endif

#endif
