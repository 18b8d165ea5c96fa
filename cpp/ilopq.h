// Locally optimized product quantization on a single inverted file (I-LOPQ).
//
// Kalantidis & Avrithis, "Locally Optimized Product Quantization for
// Approximate Nearest Neighbor Search", CVPR 2014, its single-index variant:
// an IVF coarse quantizer of nlist k-means centroids C[c] (D,), and per cell c
// a local mean mu[c] (D,), an orthogonal rotation R[c] (D, D) and M local
// sub-quantizers of Ks codewords (codewords[c] (M, Ks, D / M)), all fitted on
// that cell's residuals by the caller (cells with too few training residuals
// get pooled parameters). The local frame of x in cell c is
//     p = (x - C[c] - mu[c]) R[c]                                 (row vectors)
// and the reconstruction x_hat = C[c] + mu[c] + q R[c]^T, q the concatenated
// codewords of the code. R[c] being orthogonal, ||y - x_hat||^2 equals the
// distance between y's local frame and q: asymmetric distances are exact.
//
// Codes are (n, 1 + M), uint8 when nlist <= 256 and Ks <= 256 (the _u8
// methods), else uint16 (_u16): columns [c, f_1 .. f_M]. Arrays are row-major
// float32; ids int64; distances squared L2 float32, nearest first, ties by the
// smaller id.
#pragma once

#include <cstdint>
#include <vector>

#include "internal/inverted_lists.h"
#include "internal/nearest.h"

namespace benchpq {

class IVFLOPQ {
 public:
  /// D: dimension; nlist: cells (1 .. 65536); M: sub-quantizers, D % M == 0;
  /// Ks: codewords per sub-quantizer (1 .. 65536).
  IVFLOPQ(int64_t D, int64_t nlist, int64_t M, int64_t Ks);

  // -- model --
  void set_coarse(const float* centroids);  ///< (nlist, D)
  /// Per cell: means (nlist, D), rotations (nlist, D, D) (p = r R), codewords
  /// (nlist, M, Ks, D / M).
  void set_local(const float* means, const float* rotations, const float* codewords);
  /// cells (n,) int32: the nearest coarse centroid of each row of x (n, D).
  void assign(const float* x, int64_t n, int32_t* cells) const;
  /// out (n, D): the local frames of x (n, D) in the cells given (n,).
  void project(const float* x, int64_t n, const int32_t* cells, float* out) const;

  // -- codes --
  void encode_u8(const float* x, int64_t n, uint8_t* codes) const;
  void encode_u16(const float* x, int64_t n, uint16_t* codes) const;
  void decode_u8(const uint8_t* codes, int64_t n, float* x) const;
  void decode_u16(const uint16_t* codes, int64_t n, float* x) const;

  // -- the inverted file, built in passes (see internal/inverted_lists.h) --
  void begin_index(const int64_t* counts);  ///< (nlist,) codes per cell
  void fill_index_u8(const uint8_t* codes, int64_t m, int64_t first);
  void fill_index_u16(const uint16_t* codes, int64_t m, int64_t first);
  void end_index();  ///< throws (and empties the index) unless the fills matched the counts
  int64_t ntotal() const { return lists_.size(); }
  void get_offsets(int64_t* out) const;  ///< (nlist + 1,)

  /// k-NN of queries (nq, D): cells visited in increasing coarse distance until
  /// nprobe cells were visited (<= 0: no limit) or quota candidates gathered
  /// (<= 0: no limit; whole cells, or exactly quota codes with exact_quota, the
  /// last cell cut as faiss's max_codes). Candidates are ranked by the exact
  /// asymmetric distance in their cell's local frame (one table per visited
  /// cell). distances, ids (nq, k) (missing: +inf, -1); candidates (nq,) codes
  /// scanned; cells (nq,) cells visited. Parallel over queries.
  ///
  /// With inner_product, the search for the largest inner products: cells in
  /// decreasing <y, C[c]>, candidates ranked by -<y, x_hat> = -<y, C[c] + mu[c]>
  /// - <y R[c], q> (one table of -<(y R[c])_m, codeword> per visit, the cell's
  /// constant folded into its first sub-table); distances are -<y, x_hat>.
  void search(const float* queries, int64_t nq, int64_t k, int64_t nprobe, int64_t quota,
              bool exact_quota, bool inner_product, float* distances, int64_t* ids,
              int64_t* candidates, int64_t* cells) const;

 private:
  void project_one(const float* x, int64_t c, float* out) const;
  template <typename CodeT> void encode(const float* x, int64_t n, CodeT* codes) const;
  template <typename CodeT> void decode(const CodeT* codes, int64_t n, float* x) const;
  template <typename CodeT> void fill_index(const CodeT* codes, int64_t m, int64_t first);
  template <typename FineT>
  void search_impl(const FineT* list_codes, const float* queries, int64_t nq, int64_t k,
                   int64_t nprobe, int64_t quota, bool exact_quota, bool inner_product,
                   float* distances, int64_t* ids, int64_t* candidates, int64_t* cells) const;

  int64_t D_, nlist_, M_, Ks_, dsub_;
  std::vector<float> coarse_;     // (nlist, D)
  std::vector<float> means_;      // (nlist, D)
  std::vector<float> rotations_;  // (nlist, D, D)
  std::vector<float> codewords_;  // (nlist, M, Ks, dsub)
  NearestCodeword coarse_nearest_;
  std::vector<NearestCodeword> fine_nearest_;  // (nlist * M)
  InvertedLists lists_;
};

}  // namespace benchpq
