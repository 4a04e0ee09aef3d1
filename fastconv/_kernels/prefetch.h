/* Software prefetching of a byte range, for kernels that stream arrays larger than
   the caches: the loads of one row alone leave the core waiting on memory. */
#ifndef FASTCONV_PREFETCH_H
#define FASTCONV_PREFETCH_H

#include <stddef.h>

#if defined(__GNUC__) || defined(__clang__)
#define FASTCONV_PREFETCH(address, for_writing) __builtin_prefetch((address), (for_writing))
#else
#define FASTCONV_PREFETCH(address, for_writing) ((void) (address))
#endif

/* Asks for bytes ``offset .. offset + bytes`` of an array of ``size`` bytes at ``base``
   to be brought into the caches, for reading or for writing; what lies past the array
   is left out. */
static inline void fastconv_prefetch_read(const char* base, ptrdiff_t size, ptrdiff_t offset,
                                          ptrdiff_t bytes) {
    ptrdiff_t end = offset + bytes < size ? offset + bytes : size;
    for (; offset < end; offset += 64)
        FASTCONV_PREFETCH(base + offset, 0);
}

static inline void fastconv_prefetch_write(char* base, ptrdiff_t size, ptrdiff_t offset,
                                           ptrdiff_t bytes) {
    ptrdiff_t end = offset + bytes < size ? offset + bytes : size;
    for (; offset < end; offset += 64)
        FASTCONV_PREFETCH(base + offset, 1);
}

#endif
