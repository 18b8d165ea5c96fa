// Nearest-codeword search with the norm trick, the kernel shared by k-means
// assignment and PQ encoding.
#pragma once

#include <cstdint>
#include <vector>

namespace benchpq {

/// A set of k codewords of dimension d, prepared for blocked nearest search.
///
/// argmin_j ||x - c_j||^2 = argmin_j (||c_j||^2 - 2 x.c_j): the codewords are
/// stored transposed (d, kp), scaled by -2 (exact in floating point) and
/// padded to a multiple of 16 columns (padding norms are +inf), so that a
/// block of rows is scored against 16 codewords at a time in a small
/// GEMM-like register kernel. Ties go to the smaller codeword index.
class NearestCodeword {
 public:
  NearestCodeword() = default;
  /// codewords: (k, d) float32, row-major.
  NearestCodeword(const float* codewords, int64_t k, int64_t d);

  /// For the n rows x_i = x + i * ldx (d floats each): idx[i] = nearest codeword.
  /// Serial; callers parallelise over blocks of rows.
  void nearest(const float* x, int64_t n, int64_t ldx, int32_t* idx) const;

  /// out[j] = l2sqr(x, c_j, d) for the k codewords (an ADC table row), bit for bit:
  /// eight codewords at a time, each with l2sqr's own lanes, order and final sum.
  void distances(const float* x, float* out) const;

  int64_t k() const { return k_; }
  int64_t d() const { return d_; }

 private:
  int64_t k_ = 0, d_ = 0, kp_ = 0;
  std::vector<float> ct_;     // (d, kp): -2 * codewords, transposed, zero padding
  std::vector<float> norms_;  // (kp): ||c_j||^2, +inf padding
};

/// Squared L2 distance between two d-vectors (plain loop, vectorised by the compiler).
float l2sqr(const float* a, const float* b, int64_t d);

/// Inner product of two d-vectors, with l2sqr's lanes and order of sums.
float inner(const float* a, const float* b, int64_t d);

/// out[j] = -inner(x, c_j, d) for the k codewords (k, d) row-major: an inner-product
/// table row, summed and ranked as distances (the largest inner products first).
void negated_inner_products(const float* x, const float* codewords, int64_t k, int64_t d,
                            float* out);

}  // namespace benchpq
