/* One output row of max pooling, a vector of outputs at a time, for windows 2 or 3
   columns wide at column stride 2 (2x2 stride 2, 3x3 stride 2 and their kin).

   For each of the window's rows, two loads cover the 2 * LANES input columns the
   outputs' first two taps read, and a shuffle of the two takes their even columns (every
   output's tap 0) and one their odd columns (tap 1). Tap 2 is the odd columns of the
   same loads one column further on, which read nothing past it. Each row's taps are
   folded into the row's maximum, then the rows' maxima down the window, each fold by
   the rule of the two-pass kernel in _pool_max.pyx (a larger or NaN value wins, ties
   keep the first). Along the width, then down the height, is the row-major scan, so
   the results are the same.

   The shuffles stay inside 16-byte lanes: one cheap instruction each, where a shuffle
   across lanes costs several on cores with 128-bit units (AMD Zen 1 and 2). They leave
   the outputs in an order that is not theirs, but the same for every tap, so the folds
   pair them right; one permutation per vector puts the maxima and their positions in
   order before the store.

   A position is a code relative to the window of the vector's first output, in integer
   lanes as wide as the values (32-bit for float, 64-bit for double) so that every
   select is one masked move. Tap k of a row carries the constant k + 2 * (its output's
   number in the vector), and a row's maximum adds the row's offset when it is folded
   down the window.

   The build's widest vectors serve rows of at least their LANES outputs; narrower
   rows take the widest vector they fill, down to 16 bytes. The shuffles need GCC's
   __builtin_shuffle; other compilers get FASTCONV_POOL_ROW_MIN_LANES 0 and the caller
   keeps the two-pass kernel. */
#ifndef FASTCONV_POOL_MAX_ROW_H
#define FASTCONV_POOL_MAX_ROW_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)

/* The fewest outputs a row needs for the vector kernel: a 16-byte vector's. */
#define FASTCONV_POOL_ROW_MIN_LANES_F32 4
#define FASTCONV_POOL_ROW_MIN_LANES_F64 2

/* Writes outputs ow_lo .. ow_hi - 1 (at least LANES of them) of one output row, and
   their positions unless ``argmax`` is NULL.

   Output ow's window row r (r < rows) starts at plane[start + r * row_step + 2 * ow],
   its position the same offset (``start`` may be negative: it is the offset of output
   0, whose window may begin in the padding). Every tap of the outputs asked for must
   lie inside the plane. The last vector is moved back to end at ow_hi, so it redoes a
   few outputs of the one before, with the same result. */
#define FASTCONV_MAX_POOL_ROW(type, lanes_type, code_type, KW, name)                       \
    static inline void name##_fold(lanes_type* best, code_type* code, lanes_type tap,       \
                                   code_type tap_code) {                                    \
        code_type take = (tap > *best) | (tap != tap);                                      \
        *best = (lanes_type) (((code_type) tap & take) | ((code_type) *best & ~take));      \
        *code = (tap_code & take) | (*code & ~take);                                        \
    }                                                                                       \
    static inline void name(const type* plane, ptrdiff_t start, ptrdiff_t row_step,         \
                            ptrdiff_t rows, ptrdiff_t ow_lo, ptrdiff_t ow_hi, type* y,      \
                            int64_t* argmax) {                                              \
        /* PER_LANE values in a 16-byte lane: the even-column shuffle takes HALF of */      \
        /* them from each load's lane. */                                                   \
        enum { LANES = sizeof(lanes_type) / sizeof(type), PER_LANE = 16 / sizeof(type),     \
               HALF = PER_LANE / 2 };                                                       \
        typedef __typeof__(((code_type){0})[0]) code_scalar;                                \
        code_type even, odd, in_order, tap_code[KW], code = {0}, row_code;                  \
        lanes_type best = {0}, row_best, a, b;                                              \
        const type* window_row;                                                             \
        ptrdiff_t ow, r, slot, i, k;                                                        \
        /* Constants once the loop is unrolled (a shuffle's mask must be). */               \
        for (slot = 0; slot < LANES; slot++) {                                              \
            ptrdiff_t lane = slot / PER_LANE, q = slot % HALF, from_b = slot % PER_LANE >= HALF; \
            ptrdiff_t output = from_b * (LANES / 2) + lane * HALF + q;                      \
            even[slot] = from_b * LANES + lane * PER_LANE + 2 * q;                          \
            odd[slot] = even[slot] + 1;                                                     \
            for (k = 0; k < KW; k++)                                                        \
                tap_code[k][slot] = k + 2 * output;                                         \
        }                                                                                   \
        /* The inverse, output by output: built slot by slot, it was one indexed store, */  \
        /* which GCC made a scatter to the stack that the loads after it waited for */      \
        /* (about 200 cycles per call). */                                                  \
        for (i = 0; i < LANES; i++) {                                                       \
            ptrdiff_t from_b = i / (LANES / 2), rest = i % (LANES / 2);                     \
            in_order[i] = rest / HALF * PER_LANE + from_b * HALF + rest % HALF;             \
        }                                                                                   \
        for (ow = ow_lo; ow < ow_hi; ow += LANES) {                                         \
            if (ow > ow_hi - LANES)                                                         \
                ow = ow_hi - LANES;                                                         \
            for (r = 0; r < rows; r++) {                                                    \
                window_row = plane + start + r * row_step + 2 * ow;                         \
                memcpy(&a, window_row, sizeof a);                                           \
                memcpy(&b, window_row + LANES, sizeof b);                                   \
                row_best = __builtin_shuffle(a, b, even);                                   \
                row_code = tap_code[0];                                                     \
                name##_fold(&row_best, &row_code, __builtin_shuffle(a, b, odd), tap_code[1]); \
                if (KW == 3) {                                                              \
                    memcpy(&a, window_row + 1, sizeof a);                                   \
                    memcpy(&b, window_row + 1 + LANES, sizeof b);                           \
                    name##_fold(&row_best, &row_code, __builtin_shuffle(a, b, odd),         \
                                tap_code[KW - 1]);                                          \
                }                                                                           \
                if (r == 0) {                                                               \
                    best = row_best;                                                        \
                    code = row_code;                                                        \
                } else {                                                                    \
                    name##_fold(&best, &code, row_best,                                     \
                                row_code + (code_scalar) (r * row_step));                   \
                }                                                                           \
            }                                                                               \
            best = __builtin_shuffle(best, in_order);                                       \
            memcpy(y + ow, &best, sizeof best);                                             \
            if (argmax != NULL) {                                                           \
                code = __builtin_shuffle(code, in_order);                                   \
                /* Lane by lane: the compiler widens in registers (a vector of 64-bit */    \
                /* lanes twice the build's width went through the stack). */                \
                for (i = 0; i < LANES; i++)                                                 \
                    argmax[ow + i] = start + 2 * ow + code[i];                              \
            }                                                                               \
        }                                                                                   \
    }

/* The four kernels (float and double, 2 and 3 columns) at one vector width. */
#define FASTCONV_POOL_ROW_WIDTH(BYTES)                                                      \
    typedef float fastconv_row_f32_##BYTES __attribute__((vector_size(BYTES)));             \
    typedef int32_t fastconv_row_i32_##BYTES __attribute__((vector_size(BYTES)));           \
    typedef double fastconv_row_f64_##BYTES __attribute__((vector_size(BYTES)));            \
    typedef int64_t fastconv_row_i64_##BYTES __attribute__((vector_size(BYTES)));           \
    FASTCONV_MAX_POOL_ROW(float, fastconv_row_f32_##BYTES, fastconv_row_i32_##BYTES, 2,     \
                          fastconv_max_pool_row2_f32_##BYTES)                               \
    FASTCONV_MAX_POOL_ROW(float, fastconv_row_f32_##BYTES, fastconv_row_i32_##BYTES, 3,     \
                          fastconv_max_pool_row3_f32_##BYTES)                               \
    FASTCONV_MAX_POOL_ROW(double, fastconv_row_f64_##BYTES, fastconv_row_i64_##BYTES, 2,    \
                          fastconv_max_pool_row2_f64_##BYTES)                               \
    FASTCONV_MAX_POOL_ROW(double, fastconv_row_f64_##BYTES, fastconv_row_i64_##BYTES, 3,    \
                          fastconv_max_pool_row3_f64_##BYTES)

FASTCONV_POOL_ROW_WIDTH(16)
#if defined(__AVX__)
FASTCONV_POOL_ROW_WIDTH(32)
#endif
#if defined(__AVX512F__)
FASTCONV_POOL_ROW_WIDTH(64)
#endif

/* The widest kernel the row's ow_hi - ow_lo outputs fill. */
#define FASTCONV_POOL_ROW_PICK(type, KW, suffix)                                            \
    static inline void fastconv_max_pool_row##KW##_##suffix(                                \
            const type* plane, ptrdiff_t start, ptrdiff_t row_step, ptrdiff_t rows,         \
            ptrdiff_t ow_lo, ptrdiff_t ow_hi, type* y, int64_t* argmax) {                   \
        ptrdiff_t outputs = ow_hi - ow_lo;                                                  \
        (void) outputs;                                                                     \
        FASTCONV_POOL_ROW_IF_64(outputs >= 64 / (ptrdiff_t) sizeof(type),                   \
            fastconv_max_pool_row##KW##_##suffix##_64(plane, start, row_step, rows, ow_lo,  \
                                                      ow_hi, y, argmax))                    \
        FASTCONV_POOL_ROW_IF_32(outputs >= 32 / (ptrdiff_t) sizeof(type),                   \
            fastconv_max_pool_row##KW##_##suffix##_32(plane, start, row_step, rows, ow_lo,  \
                                                      ow_hi, y, argmax))                    \
        fastconv_max_pool_row##KW##_##suffix##_16(plane, start, row_step, rows, ow_lo,      \
                                                  ow_hi, y, argmax);                        \
    }

#if defined(__AVX512F__)
#define FASTCONV_POOL_ROW_IF_64(test, call) if (test) { call; return; }
#else
#define FASTCONV_POOL_ROW_IF_64(test, call)
#endif
#if defined(__AVX__)
#define FASTCONV_POOL_ROW_IF_32(test, call) if (test) { call; return; }
#else
#define FASTCONV_POOL_ROW_IF_32(test, call)
#endif

FASTCONV_POOL_ROW_PICK(float, 2, f32)
FASTCONV_POOL_ROW_PICK(float, 3, f32)
FASTCONV_POOL_ROW_PICK(double, 2, f64)
FASTCONV_POOL_ROW_PICK(double, 3, f64)

/* The entry point: the kernel of the window's width, ``kernel_w`` 2 or 3. Calling it
   with a literal NULL where there are no indices lets the compiler drop the positions. */
#define FASTCONV_POOL_ROW_ENTRY(type, suffix)                                               \
    static inline void fastconv_max_pool_row_##suffix(                                      \
            const type* plane, ptrdiff_t kernel_w, ptrdiff_t start, ptrdiff_t row_step,     \
            ptrdiff_t rows, ptrdiff_t ow_lo, ptrdiff_t ow_hi, type* y, int64_t* argmax) {   \
        if (kernel_w == 2 && argmax == NULL)                                                \
            fastconv_max_pool_row2_##suffix(plane, start, row_step, rows, ow_lo, ow_hi, y,  \
                                            NULL);                                          \
        else if (kernel_w == 2)                                                             \
            fastconv_max_pool_row2_##suffix(plane, start, row_step, rows, ow_lo, ow_hi, y,  \
                                            argmax);                                        \
        else if (argmax == NULL)                                                            \
            fastconv_max_pool_row3_##suffix(plane, start, row_step, rows, ow_lo, ow_hi, y,  \
                                            NULL);                                          \
        else                                                                                \
            fastconv_max_pool_row3_##suffix(plane, start, row_step, rows, ow_lo, ow_hi, y,  \
                                            argmax);                                        \
    }

FASTCONV_POOL_ROW_ENTRY(float, f32)
FASTCONV_POOL_ROW_ENTRY(double, f64)

#else

#define FASTCONV_POOL_ROW_MIN_LANES_F32 0
#define FASTCONV_POOL_ROW_MIN_LANES_F64 0
#define FASTCONV_POOL_ROW_UNAVAILABLE(type, suffix)                                         \
    static inline void fastconv_max_pool_row_##suffix(                                      \
            const type* plane, ptrdiff_t kernel_w, ptrdiff_t start, ptrdiff_t row_step,     \
            ptrdiff_t rows, ptrdiff_t ow_lo, ptrdiff_t ow_hi, type* y, int64_t* argmax) {   \
        (void) plane; (void) kernel_w; (void) start; (void) row_step; (void) rows;          \
        (void) ow_lo; (void) ow_hi; (void) y; (void) argmax;                                \
    }
FASTCONV_POOL_ROW_UNAVAILABLE(float, f32)
FASTCONV_POOL_ROW_UNAVAILABLE(double, f64)

#endif

#endif
