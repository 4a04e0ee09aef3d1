/* Copying a finished block of output to memory with non-temporal (streaming) stores.

   A plain store to a line that is not in the cache first reads the line from memory
   (a read for ownership), so writing an output larger than the caches moves its bytes
   twice. Streaming stores write whole lines without reading them. Kernels whose output
   exceeds FASTCONV_STREAM_ABOVE_BYTES build it a block of at most
   FASTCONV_STREAM_BLOCK_BYTES at a time in a scratch that stays in the cache, and
   stream each block out with this copy. Smaller outputs are stored in place: they may
   still be in the cache when the next operation reads them, and streaming evicts them.

   x86-64 has 16-byte streaming stores in its baseline (SSE2) and 32-byte ones with
   AVX; other targets copy with memcpy. The fence makes the streamed bytes visible to
   other threads in order with later stores, as plain stores are. */
#ifndef FASTCONV_STREAM_H
#define FASTCONV_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FASTCONV_STREAM_ABOVE_BYTES (4 * 1024 * 1024)
#define FASTCONV_STREAM_BLOCK_BYTES (1024 * 1024)

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

/* The widest streaming store of the build: where both exist, 32-byte stores streamed
   faster than 16-byte ones (AMD Zen 1, copying blocks of 37 KiB to a 19 MiB output:
   about 7 %). */
#if defined(__AVX__)
typedef __m256i fastconv_stream_t;
#define FASTCONV_STREAM_STORE(to, from) \
    _mm256_stream_si256((__m256i*) (to), _mm256_loadu_si256((const __m256i*) (from)))
#else
typedef __m128i fastconv_stream_t;
#define FASTCONV_STREAM_STORE(to, from) \
    _mm_stream_si128((__m128i*) (to), _mm_loadu_si128((const __m128i*) (from)))
#endif

static inline void fastconv_stream_copy(void* destination, const void* source, size_t bytes) {
    enum { WIDTH = sizeof(fastconv_stream_t) };
    char* to = (char*) destination;
    const char* from = (const char*) source;
    /* Plain stores up to the first aligned address and after the last one. */
    size_t head = (WIDTH - ((uintptr_t) to & (WIDTH - 1))) & (WIDTH - 1);
    if (head > bytes)
        head = bytes;
    memcpy(to, from, head);
    to += head;
    from += head;
    bytes -= head;
    for (; bytes >= WIDTH; bytes -= WIDTH, to += WIDTH, from += WIDTH)
        FASTCONV_STREAM_STORE(to, from);
    memcpy(to, from, bytes);
    _mm_sfence();
}

#else

static inline void fastconv_stream_copy(void* destination, const void* source, size_t bytes) {
    memcpy(destination, source, bytes);
}

#endif

#endif
