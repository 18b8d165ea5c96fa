#include "common.h"

#include "internal/parallel.h"
#include "internal/simd.h"

namespace benchpq {

void set_num_threads(int n) { omp_set_num_threads(n < 1 ? 1 : n); }

int get_num_threads() { return omp_get_max_threads(); }

int simd_level() { return BENCHPQ_SIMD_LEVEL; }

bool openmp_enabled() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace benchpq
