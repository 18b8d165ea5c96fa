// Iterative quantization (Gong & Lazebnik, "Iterative quantization: a
// Procrustean approach to learning binary codes", CVPR 2011): the data-sized
// loops. The D x D linear algebra (eigendecomposition of the covariance,
// the Procrustes SVD) is done by the caller (numpy).
//
// Bit layout of packed codes (shared with hamming.h, bkmeans.h): bit j of a
// code (j = 0 .. nbits-1) is bit (j % 8) of byte (j / 8), least significant
// bit first, i.e. numpy.packbits(bits, bitorder="little"); read as
// little-endian 64-bit words, bit j is bit (j % 64) of word (j / 64).
// An ITQ bit is 1 when its projection is >= 0.
#pragma once

#include <cstdint>

namespace benchpq {

/// Mean (d,) and covariance (d, d) of x (n, d) float32, both float64; the
/// covariance is normalised by n - 1 (by 1 when n == 1). Sums run in a fixed
/// order: results do not depend on the number of threads. Requires n >= 1.
void itq_mean_cov(const float* x, int64_t n, int64_t d, double* mean, double* cov);

/// out (n, b) float32 = (x - mean) W, x (n, d), mean (d,), W (d, b), all float32.
void itq_project(const float* x, int64_t n, int64_t d, const float* mean, const float* W,
                 int64_t b, float* out);

/// One ITQ iteration on the projected data V (n, b) and rotation R (b, b):
/// Z = V R, B = sign(Z) (+1 where Z >= 0, else -1); writes cross (b, b)
/// float64 = V^T B (so that the next rotation is the Procrustes solution
/// U W^T of cross = U S W^T) unless cross is null, and returns the
/// quantization loss ||B - Z||_F^2 (float64). Thread-count independent.
double itq_step(const float* V, int64_t n, int64_t b, const float* R, double* cross);

/// codes (n, b / 8) uint8: bit j = ((x - mean) P)_j >= 0, packed as described
/// above. x (n, d), mean (d,), P (d, b) float32; b must be a multiple of 8.
void itq_encode(const float* x, int64_t n, int64_t d, const float* mean, const float* P,
                int64_t b, uint8_t* codes);

}  // namespace benchpq
