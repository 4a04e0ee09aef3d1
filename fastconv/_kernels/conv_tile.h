/* The register tiles of the direct convolution's forward pass.

   A tile is CHANNELS output channels times VECTORS vectors of output pixels.
   Its sums stay in registers while every tap (input channel, filter row, filter column)
   of a chunk adds into them: each tap loads VECTORS vectors of input pixels and
   multiplies each by the tap's weight of every channel, so one load serves CHANNELS
   multiply-adds. Every sum takes its taps in the order given, one after
   the other, so the result does not depend on the vector width.

   GCC and clang get vector extensions sized to the build's widest registers; other
   compilers get one pixel per vector, which is the same arithmetic done lane by lane. */
#ifndef FASTCONV_CONV_TILE_H
#define FASTCONV_CONV_TILE_H

#include <stddef.h>
#include <string.h>

#include "vector_bytes.h"

/* Two tiles. The wide one: with AVX-512's 32 registers, 8 channels x 3 vectors of sums
   leave room for the input vectors (3 measured ~5% faster than 2 on C10 and C1 of
   benchmarks/bench_conv.py); narrower builds have 16 registers, for 6 x 2. The narrow
   one, for layers whose output channels per group fill less than half a wide tile
   (depthwise): 1 channel x 8 vectors, each tap's input loads serving one channel only. */
#define FASTCONV_TILE_BYTES FASTCONV_VECTOR_BYTES
#if defined(__AVX512F__)
#define FASTCONV_WIDE_TILE_CHANNELS 8
#define FASTCONV_WIDE_TILE_VECTORS 3
#else
#define FASTCONV_WIDE_TILE_CHANNELS 6
#define FASTCONV_WIDE_TILE_VECTORS 2
#endif
#define FASTCONV_NARROW_TILE_VECTORS 8

#if defined(__GNUC__) || defined(__clang__)
typedef float fastconv_tile_f32 __attribute__((vector_size(FASTCONV_TILE_BYTES)));
typedef double fastconv_tile_f64 __attribute__((vector_size(FASTCONV_TILE_BYTES)));
#define FASTCONV_TILE_UNROLL _Pragma("GCC unroll 16")
#else
typedef float fastconv_tile_f32;
typedef double fastconv_tile_f64;
#define FASTCONV_TILE_UNROLL
#endif

/* Adds the taps of one chunk into tiles of output pixels, for CHANNELS channels.

   acc:     (CHANNELS, plane) sums; a channel's plane is a grid of rows of pitch
            ``row_pitch``, of which the first OW are output pixels: either a multiple of
            the vector's lanes, or ``input_pitch``, where a vector may span two rows
            (the input's rows lie end to end alike).
   vectors: how many vectors of the grid to compute, from its start.
   start:   CHANNELS values to start the sums from (the bias), or NULL to add to
            what ``acc`` holds.
   input:   the chunk's zero-padded input; output pixel (oh, ow) reads its tap t at
            ``input[oh * input_pitch + ow + offsets[t]]``.
   weights: (taps, CHANNELS) the taps' weights, channel fastest. */
#define FASTCONV_CONV_TILES(type, lanes_type, CHANNELS, VECTORS, name)                 \
    static inline void name(type* acc, ptrdiff_t plane, ptrdiff_t row_pitch,            \
                            ptrdiff_t vectors, const type* start, const type* input,     \
                            ptrdiff_t input_pitch, const ptrdiff_t* offsets,             \
                            ptrdiff_t taps, const type* weights) {                       \
        enum { LANES = sizeof(lanes_type) / sizeof(type), CH = CHANNELS, VE = VECTORS }; \
        lanes_type sum[CH][VE], pixels[VE];                                             \
        const type* base[VE];                                                           \
        ptrdiff_t q, j, k, v, t, position[VE];                                          \
        for (q = 0; q < vectors; q += VE) {                                             \
            FASTCONV_TILE_UNROLL                                                        \
            for (v = 0; v < VE; v++) {                                                  \
                /* Vectors past the last start over at the grid's first: their sums */  \
                /* are computed and never stored. */                                     \
                j = (q + v < vectors ? q + v : 0) * LANES;                              \
                position[v] = j;                                                        \
                base[v] = input + (j / row_pitch) * input_pitch + j % row_pitch;       \
            }                                                                           \
            FASTCONV_TILE_UNROLL                                                        \
            for (k = 0; k < CH; k++) {                                                  \
                FASTCONV_TILE_UNROLL                                                    \
                for (v = 0; v < VE; v++) {                                              \
                    if (start != NULL) {                                                \
                        sum[k][v] = (lanes_type) {0} + start[k];                        \
                    } else {                                                            \
                        memcpy(&sum[k][v], acc + k * plane + position[v], sizeof(lanes_type)); \
                    }                                                                   \
                }                                                                       \
            }                                                                           \
            for (t = 0; t < taps; t++) {                                                \
                FASTCONV_TILE_UNROLL                                                    \
                for (v = 0; v < VE; v++) {                                              \
                    memcpy(&pixels[v], base[v] + offsets[t], sizeof(lanes_type));       \
                }                                                                       \
                FASTCONV_TILE_UNROLL                                                    \
                for (k = 0; k < CH; k++) {                                              \
                    FASTCONV_TILE_UNROLL                                                \
                    for (v = 0; v < VE; v++) {                                          \
                        sum[k][v] += weights[t * CH + k] * pixels[v];                   \
                    }                                                                   \
                }                                                                       \
            }                                                                           \
            FASTCONV_TILE_UNROLL                                                        \
            for (v = 0; v < VE; v++) {                                                  \
                if (q + v < vectors) {                                                  \
                    FASTCONV_TILE_UNROLL                                                \
                    for (k = 0; k < CH; k++) {                                          \
                        memcpy(acc + k * plane + position[v], &sum[k][v], sizeof(lanes_type)); \
                    }                                                                   \
                }                                                                       \
            }                                                                           \
        }                                                                               \
    }

FASTCONV_CONV_TILES(float, fastconv_tile_f32, FASTCONV_WIDE_TILE_CHANNELS,
                    FASTCONV_WIDE_TILE_VECTORS, fastconv_wide_tiles_f32)
FASTCONV_CONV_TILES(double, fastconv_tile_f64, FASTCONV_WIDE_TILE_CHANNELS,
                    FASTCONV_WIDE_TILE_VECTORS, fastconv_wide_tiles_f64)
FASTCONV_CONV_TILES(float, fastconv_tile_f32, 1, FASTCONV_NARROW_TILE_VECTORS,
                    fastconv_narrow_tiles_f32)
FASTCONV_CONV_TILES(double, fastconv_tile_f64, 1, FASTCONV_NARROW_TILE_VECTORS,
                    fastconv_narrow_tiles_f64)

/* The wide tiles, or the narrow ones when ``channels`` is 1. */
#define FASTCONV_CONV_TILES_OF(type, name, wide, narrow)                                \
    static inline void name(ptrdiff_t channels, type* acc, ptrdiff_t plane,              \
                            ptrdiff_t row_pitch, ptrdiff_t vectors, const type* start,   \
                            const type* input, ptrdiff_t input_pitch,                    \
                            const ptrdiff_t* offsets, ptrdiff_t taps,                    \
                            const type* weights) {                                       \
        if (channels == 1) {                                                            \
            narrow(acc, plane, row_pitch, vectors, start, input, input_pitch, offsets,  \
                   taps, weights);                                                      \
        } else {                                                                        \
            wide(acc, plane, row_pitch, vectors, start, input, input_pitch, offsets,    \
                 taps, weights);                                                        \
        }                                                                               \
    }

FASTCONV_CONV_TILES_OF(float, fastconv_conv_tiles_f32, fastconv_wide_tiles_f32,
                       fastconv_narrow_tiles_f32)
FASTCONV_CONV_TILES_OF(double, fastconv_conv_tiles_f64, fastconv_wide_tiles_f64,
                       fastconv_narrow_tiles_f64)

#endif
