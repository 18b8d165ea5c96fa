// Shared declarations of benchpq's native layer: thread control.
//
// Headers declare the API seen from Python through cppyy; the loops and the
// OpenMP pragmas live in the .cpp files, compiled by the system compiler
// (cppyy's JIT cannot compile OpenMP).
#pragma once

#include <cstdint>

namespace benchpq {

/// Set the number of OpenMP threads used by every later call (omp_set_num_threads).
void set_num_threads(int n);

/// The number of OpenMP threads a parallel region would use (omp_get_max_threads).
int get_num_threads();

}  // namespace benchpq
