/* The width of the build's widest vector registers, in bytes: the vectors that the
   kernels written with GCC's and clang's vector types are made of, 64 with AVX-512,
   32 with AVX, 16 otherwise (SSE2, or another target's 16-byte vectors). */
#ifndef FASTCONV_VECTOR_BYTES_H
#define FASTCONV_VECTOR_BYTES_H

#if defined(__AVX512F__)
#define FASTCONV_VECTOR_BYTES 64
#elif defined(__AVX__)
#define FASTCONV_VECTOR_BYTES 32
#else
#define FASTCONV_VECTOR_BYTES 16
#endif

#endif
