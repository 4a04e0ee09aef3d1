/* The x86-64 instruction-set level that both the CPU and the operating system support.
 *
 * 0: the baseline (SSE2), 1: AVX2 + FMA, 2: AVX-512 F/CD/BW/DQ/VL (x86-64-v4).
 * A level needs the CPU's feature bits (CPUID) and the OS's promise to save the wider
 * registers on a context switch (XCR0, read with XGETBV once CPUID reports OSXSAVE).
 * Other architectures report 0: their baseline (NEON on aarch64) is the only build.
 * macOS enables the AVX-512 state only on first use, so XCR0 cannot tell there, and
 * AVX2 is its highest level.
 */
#ifndef FASTCONV_CPU_FEATURES_H
#define FASTCONV_CPU_FEATURES_H

#if defined(__x86_64__) || defined(_M_X64)

#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
static void fastconv_cpuid(int leaf, int subleaf, unsigned int out[4]) {
    int regs[4];
    __cpuidex(regs, leaf, subleaf);
    for (int i = 0; i < 4; i++) out[i] = (unsigned int)regs[i];
}
static unsigned long long fastconv_xcr0(void) { return _xgetbv(0); }
#else
#include <cpuid.h>
static void fastconv_cpuid(int leaf, int subleaf, unsigned int out[4]) {
    __cpuid_count(leaf, subleaf, out[0], out[1], out[2], out[3]);
}
static unsigned long long fastconv_xcr0(void) {
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif

#define FASTCONV_BIT(word, n) (((word) >> (n)) & 1u)

static int fastconv_x86_level(void) {
    unsigned int r[4];  /* eax, ebx, ecx, edx */
    fastconv_cpuid(0, 0, r);
    if (r[0] < 7) return 0;
    fastconv_cpuid(1, 0, r);
    int fma = FASTCONV_BIT(r[2], 12), osxsave = FASTCONV_BIT(r[2], 27);
    int avx = FASTCONV_BIT(r[2], 28);
    if (!(fma && osxsave && avx)) return 0;
    unsigned long long xcr0 = fastconv_xcr0();
    if ((xcr0 & 0x6) != 0x6) return 0;  /* SSE and AVX register state */
    fastconv_cpuid(7, 0, r);
    if (!FASTCONV_BIT(r[1], 5)) return 0;  /* AVX2 */
    int avx512 = FASTCONV_BIT(r[1], 16) && FASTCONV_BIT(r[1], 17)    /* F, DQ */
                 && FASTCONV_BIT(r[1], 28) && FASTCONV_BIT(r[1], 30) /* CD, BW */
                 && FASTCONV_BIT(r[1], 31);                          /* VL */
    int zmm_state = (xcr0 & 0xE6) == 0xE6;  /* opmask, upper ZMM0-15, ZMM16-31 */
#if defined(__APPLE__)
    zmm_state = 0;
#endif
    return (avx512 && zmm_state) ? 2 : 1;
}

#else

static int fastconv_x86_level(void) { return 0; }

#endif

#endif
