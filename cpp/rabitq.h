// RaBitQ (Gao & Long, "RaBitQ: Quantizing High-Dimensional Vectors with a
// Theoretical Error Bound for Approximate Nearest Neighbor Search", SIGMOD
// 2024) and its multi-bit extension (Gao, Gou, Xu, Yang, Long, Wong,
// "Practical and Asymptotically Optimal Quantization of High-Dimensional
// Vectors in Euclidean Space for Approximate Nearest Neighbor Search", SIGMOD
// 2025): the data-sized loops. The centre and the random rotation are drawn by
// the caller (numpy).
//
// Frame: a vector x (d,) is centred and rotated, r' = (x - c) R, with R the
// first d rows (d, dp) of a random orthogonal (dp, dp) matrix, dp = d rounded
// up to a multiple of 64 (x zero-padded to dp dimensions).
//
// Code of a vector, bits B per dimension (1 .. 8): the grid point
// y in {-(2^B - 1)/2, ..., (2^B - 1)/2}^dp (half-integers) nearest to t r'/|r'|
// for the rescaling t > 0 that maximises cos(y, r') (the 2025 paper's search
// over the critical values of t; B = 1: y = sign(r') / 2, the 2024 code). The
// unsigned code u = y + (2^B - 1)/2 is stored as B bit-planes, most
// significant first, each dp bits packed least significant bit first
// (numpy.packbits(..., bitorder="little")): plane 0 is the sign of r', the
// 1-bit RaBitQ code. After the planes, three float32 factors:
//   norm = |r'| = |x - c|,  cos = <y, r'> / (|y| |r'|) = <o_bar, o>,  ynorm = |y|.
// A code row is dp * B / 8 + 12 bytes.
//
// Estimator (unbiased over the random rotation): for a query q with rotated
// residual q' = (q - c) R,
//   <x - c, q - c> ~ norm * <y, q'> / (cos * ynorm),
//   |x - q|^2      ~ norm^2 + |q'|^2 - 2 <x - c, q - c>  (not clamped at 0).
// <y, q'> is summed exactly in float: y_j = sum_b 2^(b-1) s_bj with s = +-1
// the bit of plane b, and sum_j s_bj q'_j read from a table of the 256 signed
// sums of each group of 8 dimensions. Every sum has one order, written in the
// source: results are the same on every SIMD path and thread count.
#pragma once

#include <cstdint>

namespace benchpq {

/// Bytes of one code row: dp * bits / 8 plus the three float32 factors.
int64_t rabitq_row_bytes(int64_t dp, int64_t bits);

/// out (n, dp) float32 = (x - centre) R for x (n, d), centre (d,), R (d, dp) float32.
void rabitq_rotate(const float* x, int64_t n, int64_t d, const float* centre, const float* R,
                   int64_t dp, float* out);

/// codes (n, rabitq_row_bytes(dp, bits)) uint8 of x (n, d) float32 (layout above).
/// Requires dp a multiple of 64 and 1 <= bits <= 8. Parallel over rows.
void rabitq_encode(const float* x, int64_t n, int64_t d, const float* centre, const float* R,
                   int64_t dp, int64_t bits, uint8_t* codes);

/// out (n, d) float32: c + norm * cos * (y / ynorm) R^T, the projection of the
/// vector on its quantized direction o_bar (the reconstruction of least error
/// along o_bar).
void rabitq_decode(const uint8_t* codes, int64_t n, int64_t d, const float* centre,
                   const float* R, int64_t dp, int64_t bits, float* out);

/// The k codes of least estimated squared distance to each query (nq, d):
/// distances (nq, k) float32, ids (nq, k) int64, nearest first, ties by the
/// smaller id. Parallel over queries. Requires 1 <= k <= n.
/// With inner_product, the k codes of largest estimated inner product
/// <x - c, q - centre> instead, distances its negation, ascending; called with
/// a zero centre (q' = q R), that is the estimate of <x - c, q> (the caller
/// adds <c, q>).
void rabitq_search(const uint8_t* codes, int64_t n, int64_t bits, const float* queries,
                   int64_t nq, int64_t d, const float* centre, const float* R, int64_t dp,
                   int64_t k, bool inner_product, float* distances, int64_t* ids);

/// The estimator for given (query, code) pairs: for query i and code ids[i, j],
/// inner[i, j] the estimated <x - c, q - c> and distances[i, j] the estimated
/// squared distance (the values rabitq_search ranks by). ids (nq, m) int64 in
/// [0, n).
void rabitq_estimate(const uint8_t* codes, int64_t n, int64_t bits, const float* queries,
                     int64_t nq, int64_t d, const float* centre, const float* R, int64_t dp,
                     const int64_t* ids, int64_t m, float* inner, float* distances);

}  // namespace benchpq
