// Data-sized dense products for rotations (OPQ, LOPQ, ITQ): y = x R and x^T y.
//
// Row-major float32. The D x D decompositions (SVD, eigen) stay in numpy;
// these are the loops over the n data rows, parallel over rows with OpenMP.
#pragma once

#include <cstdint>

namespace benchpq {

/// out (n, d_out) = x (n, d) . R (d, d_out).
void matmul(const float* x, int64_t n, int64_t d, const float* R, int64_t d_out, float* out);

/// out (d, d2) float64 = x^T (d, n) . y (n, d2): partial sums in float32 over
/// blocks of rows, added in float64 so the result does not depend on n's size.
void cross_product(const float* x, const float* y, int64_t n, int64_t d, int64_t d2,
                   double* out);

}  // namespace benchpq
