// Product quantization (Jegou, Douze, Schmid, "Product quantization for
// nearest neighbor search", IEEE TPAMI 33(1), 2011).
//
// A D-dimensional vector is cut into M sub-vectors of Ds = D / M dimensions;
// each is replaced by the index of its nearest codeword in a sub-codebook of
// Ks codewords learnt by k-means. Codes are (n, M) uint8 when Ks <= 256,
// uint16 otherwise (Ks <= 65536); the _u8 / _u16 methods take that type.
// Distances are squared L2 (float32), ids int64, results nearest first with
// ties broken by the smaller id.
#pragma once

#include <cstdint>
#include <vector>

#include "internal/nearest.h"

namespace benchpq {

class ProductQuantizer {
 public:
  /// D: dimension; M: sub-quantizers (D % M == 0); Ks: codewords per sub-quantizer.
  ProductQuantizer(int64_t D, int64_t M, int64_t Ks);

  int64_t D() const { return D_; }
  int64_t M() const { return M_; }
  int64_t Ks() const { return Ks_; }
  int64_t dsub() const { return dsub_; }

  /// Learn the M sub-codebooks by k-means on x (n, D) float32: niter Lloyd
  /// iterations, init KMEANS_INIT_* (GIVEN: start from the current codebooks), on a subsample of at most
  /// max_points_per_centroid * Ks rows (<= 0: all rows; the same rows for
  /// every sub-space). objective: out (M, niter) float64, zero after the
  /// iterations a sub-space ran.
  void train(const float* x, int64_t n, int niter, int init, uint64_t seed,
             int64_t max_points_per_centroid, double* objective);

  /// The rows (sorted ascending) that train(x, n, ..., seed, max_points_per_centroid, ...)
  /// of a quantizer with Ks codewords subsamples, written to rows (at least
  /// Ks * max_points_per_centroid slots); returns their number, 0 when train()
  /// uses every row. Training on exactly these rows without subsampling gives
  /// the same codebooks, so a caller can transform only them (OPQ rotates only
  /// the rows its final PQ trains on).
  static int64_t train_rows(int64_t n, int64_t Ks, uint64_t seed, int64_t max_points_per_centroid,
                            int64_t* rows);

  /// Replace the codebooks with codewords (M, Ks, Ds) float32.
  void set_codewords(const float* codewords);
  /// Copy the codebooks into out (M, Ks, Ds) float32.
  void get_codewords(float* out) const;

  /// codes (n, M): nearest codeword of each sub-vector of x (n, D).
  void encode_u8(const float* x, int64_t n, uint8_t* codes) const;
  void encode_u16(const float* x, int64_t n, uint16_t* codes) const;

  /// x (n, D): concatenated codewords of codes (n, M).
  void decode_u8(const uint8_t* codes, int64_t n, float* x) const;
  void decode_u16(const uint16_t* codes, int64_t n, float* x) const;

  /// Per-codeword sums of the rows of y (n, d) float32 by the codes (n, M):
  /// out (M, Ks, d) float64, out[m, c] = sum of y_i over the i with codes[i, m] == c.
  /// x^T decode(codes) = sum_m out[m]^T codewords[m] (the cross product of OPQ's
  /// rotation update) then costs M * Ks * d * Ds multiply-adds instead of n * d * D.
  void sum_by_code_u8(const float* y, int64_t n, int64_t d, const uint8_t* codes, double* out) const;
  void sum_by_code_u16(const float* y, int64_t n, int64_t d, const uint16_t* codes,
                       double* out) const;

  /// ADC lookup tables (nq, M, Ks): squared distance of each query sub-vector to each codeword.
  void adc_tables(const float* queries, int64_t nq, float* tables) const;
  /// Inner-product tables (nq, M, Ks): the negated inner product of each query sub-vector
  /// and each codeword (summed and ranked as distances: the largest inner products first).
  void adc_ip_tables(const float* queries, int64_t nq, float* tables) const;

  /// Asymmetric distance search: the k nearest of the n codes for each query
  /// (nq, D); distances, ids out (nq, k). Requires 1 <= k <= n.
  void search_adc_u8(const float* queries, int64_t nq, const uint8_t* codes, int64_t n, int64_t k,
                     float* distances, int64_t* ids) const;
  void search_adc_u16(const float* queries, int64_t nq, const uint16_t* codes, int64_t n,
                      int64_t k, float* distances, int64_t* ids) const;

  /// Maximum inner-product search through the same tables, each entry the negated inner
  /// product of a query sub-vector and a codeword: distances (nq, k) are -<q, decoded x>,
  /// ascending (the largest inner products first), ties by the smaller id.
  void search_adc_ip_u8(const float* queries, int64_t nq, const uint8_t* codes, int64_t n,
                        int64_t k, float* distances, int64_t* ids) const;
  void search_adc_ip_u16(const float* queries, int64_t nq, const uint16_t* codes, int64_t n,
                         int64_t k, float* distances, int64_t* ids) const;

  /// Symmetric distance search: queries given by their codes (nq, M); the
  /// distance is the sum of codeword-to-codeword squared distances.
  void search_sdc_u8(const uint8_t* query_codes, int64_t nq, const uint8_t* codes, int64_t n,
                     int64_t k, float* distances, int64_t* ids) const;
  void search_sdc_u16(const uint16_t* query_codes, int64_t nq, const uint16_t* codes, int64_t n,
                      int64_t k, float* distances, int64_t* ids) const;

  /// Whether the symmetric tables (M, Ks, Ks) are precomputed (they are when
  /// they take at most sdc_table_limit_bytes; otherwise SDC computes each
  /// query's rows on the fly).
  bool has_sdc_tables() const { return !sdc_.empty(); }
  static constexpr int64_t sdc_table_limit_bytes = int64_t(64) << 20;

 private:
  void prepare();
  static bool subsamples(int64_t n, int64_t Ks, int64_t max_points_per_centroid) {
    return max_points_per_centroid > 0 && n > Ks * max_points_per_centroid;
  }
  template <typename CodeT> void encode(const float* x, int64_t n, CodeT* codes) const;
  template <typename CodeT> void decode(const CodeT* codes, int64_t n, float* x) const;
  template <typename CodeT>
  void sum_by_code(const float* y, int64_t n, int64_t d, const CodeT* codes, double* out) const;
  template <typename CodeT>
  void search_adc(const float* queries, int64_t nq, const CodeT* codes, int64_t n, int64_t k,
                  float* distances, int64_t* ids, bool inner_product) const;
  template <typename CodeT>
  void search_sdc(const CodeT* query_codes, int64_t nq, const CodeT* codes, int64_t n, int64_t k,
                  float* distances, int64_t* ids) const;
  void subspace_table(const float* sub, int64_t m, float* out) const;
  void subspace_ip_table(const float* sub, int64_t m, float* out) const;  // -<sub, c_j>

  int64_t D_, M_, Ks_, dsub_;
  std::vector<float> codewords_;          // (M, Ks, Ds)
  std::vector<NearestCodeword> nearest_;  // per sub-space, for encoding
  std::vector<float> sdc_;                // (M, Ks, Ks) or empty
};

}  // namespace benchpq
