/* OpenMP entry points that also exist when fastconv is built without OpenMP. */
#ifndef FASTCONV_OPENMP_SHIM_H
#define FASTCONV_OPENMP_SHIM_H

#ifdef _OPENMP
#include <omp.h>
#define FASTCONV_HAS_OPENMP 1
#else
#define FASTCONV_HAS_OPENMP 0
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_num_threads(void) { return 1; }
static inline void omp_set_num_threads(int n) { (void)n; }
#endif

#endif
