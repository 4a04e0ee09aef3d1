/* Bit scans the C standard lacks. */
#ifndef FASTCONV_BITS_H
#define FASTCONV_BITS_H

#include <stdint.h>

#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
/* The index of the lowest set bit of a non-zero word. */
static __inline int fastconv_lowest_bit(uint64_t word) {
    unsigned long index;
    _BitScanForward64(&index, word);
    return (int) index;
}
#else
/* The index of the lowest set bit of a non-zero word. */
static inline int fastconv_lowest_bit(uint64_t word) {
    return __builtin_ctzll(word);
}
#endif

#endif
