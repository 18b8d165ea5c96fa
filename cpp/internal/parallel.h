// OpenMP when the compiler has it; otherwise the few runtime calls the core
// makes, answered for one thread. The pragmas need nothing: a compiler without
// -fopenmp ignores them, and the build is single-threaded.
#pragma once

#ifdef _OPENMP
#include <omp.h>
#else
inline int omp_get_max_threads() { return 1; }
inline int omp_get_num_threads() { return 1; }
inline int omp_get_thread_num() { return 0; }
inline void omp_set_num_threads(int) {}
#endif
