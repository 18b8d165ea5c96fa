// Shared declarations of benchpq's native layer: thread control and what the build is.
//
// The headers at the top of cpp/ declare the API seen from Python through
// cppyy; cpp/internal/ holds what the sources share, which cppyy reads only
// where a public header includes it (nearest.h). The loops and the OpenMP
// pragmas live in the .cpp files and in internal headers no public header
// includes, compiled by the system compiler (cppyy's JIT cannot compile OpenMP).
#pragma once

#include <cstdint>

namespace benchpq {

/// Set the number of OpenMP threads used by every later call (omp_set_num_threads).
void set_num_threads(int n);

/// The number of OpenMP threads a parallel region would use (omp_get_max_threads).
int get_num_threads();

/// The SIMD level the library's kernels were compiled for: 0 portable (no
/// intrinsics), 1 AVX2 with FMA, 2 AVX-512 (F, BW). Every level gives the same
/// results; the loader checks that the build it asked for is the one it loaded.
int simd_level();

/// Whether the library was built with OpenMP (false: every call runs on one thread).
bool openmp_enabled();

}  // namespace benchpq
