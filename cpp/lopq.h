// Locally optimized product quantization on an inverted multi-index.
//
// Kalantidis & Avrithis, "Locally Optimized Product Quantization for
// Approximate Nearest Neighbor Search", CVPR 2014 (LOPQ, its multi-index
// variant, as in the authors' reference code yahoo/lopq), on the inverted
// multi-index of Babenko & Lempitsky, "The inverted multi-index", CVPR 2012.
//
// Model, for vectors of dimension D split into two halves of h = D / 2:
//   * coarse: a product quantizer of the two halves, V centroids each,
//     C[s] (V, h) for half s = 0, 1; a vector's cell is the pair (c0, c1);
//   * local: for every coarse centroid v of every half s, the mean mu[s][v]
//     (h,) of the residuals assigned to it and an orthogonal rotation
//     R[s][v] (h, h) (eigenvalue allocation of their covariance, computed by
//     the caller); the local frame of half s of x is
//         p_s = (x_s - C[s][c_s] - mu[s][c_s]) R[s][c_s]      (row vectors);
//   * fine: M sub-quantizers (M / 2 per half) of Ks codewords, sub-vectors of
//     D / M dimensions of the concatenated local frames [p_0, p_1].
// Reconstruction: x_s = C[s][c_s] + mu[s][c_s] + q_s R[s][c_s]^T, q the
// concatenated fine codewords. R being orthogonal, ||y - x_hat||^2 equals the
// distance between y's local frame and q: asymmetric distances are exact.
//
// Codes are (n, 2 + M), uint8 when V <= 256 and Ks <= 256 (the _u8 methods),
// else uint16 (_u16): columns [c0, c1, f_1 .. f_M]. Arrays are row-major
// float32; ids int64; distances squared L2 float32, nearest first, ties by
// the smaller id.
#pragma once

#include <cstdint>
#include <vector>

#include "internal/inverted_lists.h"
#include "internal/nearest.h"
#include "modes.h"

namespace benchpq {

class LOPQ {
 public:
  /// D: dimension; V: coarse centroids per half (1 .. 4096); M: fine
  /// sub-quantizers, even, D % M == 0; Ks: codewords per sub-quantizer (1 .. 65536).
  LOPQ(int64_t D, int64_t V, int64_t M, int64_t Ks);

  int64_t D() const { return D_; }
  int64_t V() const { return V_; }
  int64_t M() const { return M_; }
  int64_t Ks() const { return Ks_; }
  int64_t half() const { return h_; }
  int64_t dsub() const { return dsub_; }

  // -- training, in stages (the caller computes the local rotations in between) --

  /// k-means of each half of x (n, D) into V centroids: niter iterations, init
  /// KMEANS_INIT_PLUSPLUS, _RANDOM or _GREEDY_PLUSPLUS (greedy seeds of both
  /// halves on one row sample, then Lloyd from them), at most
  /// max_points_per_centroid * V sampled rows (<= 0: all). objective: out
  /// (2, niter) float64. Requires n >= V.
  void train_coarse(const float* x, int64_t n, int niter, int init, uint64_t seed,
                    int64_t max_points_per_centroid, double* objective);
  /// coarse (n, 2) int32: the nearest coarse centroid of each half of x (n, D).
  void assign(const float* x, int64_t n, int32_t* coarse) const;
  /// out (n, D): x minus the coarse centroids of its cell, half by half.
  void residuals(const float* x, int64_t n, const int32_t* coarse, float* out) const;
  /// Local means (2, V, h) and rotations (2, V, h, h), row-major, p = r R.
  void set_local(const float* means, const float* rotations);
  /// out (n, D): the local frames [p_0, p_1] of x (n, D) in the cells coarse (n, 2).
  void project(const float* x, int64_t n, const int32_t* coarse, float* out) const;
  /// The fine sub-quantizers, by ProductQuantizer::train on projected (n, D),
  /// same arguments (KMEANS_INIT_GREEDY_PLUSPLUS: every sub-space seeded
  /// here on one row sample, then hot-started). objective: out (M, niter)
  /// float64. Requires n >= Ks.
  void train_fine(const float* projected, int64_t n, int niter, int init, uint64_t seed,
                  int64_t max_points_per_centroid, double* objective);

  // -- state (for pickling) --
  void set_coarse(const float* centroids);  ///< (2, V, h)
  void get_coarse(float* out) const;
  void get_local(float* means, float* rotations) const;
  void set_codewords(const float* codewords);  ///< (M, Ks, D / M)
  void get_codewords(float* out) const;

  // -- codes --
  void encode_u8(const float* x, int64_t n, uint8_t* codes) const;
  void encode_u16(const float* x, int64_t n, uint16_t* codes) const;
  void decode_u8(const uint8_t* codes, int64_t n, float* x) const;
  void decode_u16(const uint16_t* codes, int64_t n, float* x) const;

  // -- the multi-index --

  /// The index is built in passes over the codes (n, 2 + M), which may come in
  /// chunks (a caller can then drop each chunk's pages from memory): inverted
  /// lists over the V * V cells, cell id c0 * V + c1, ids ascending in a list.
  /// begin_index(counts): empty lists sized by counts (V * V,) int64, the codes
  /// of each cell; fill_index_*(codes, m, first): append the m codes (m, 2 + M)
  /// of ids first .. first + m - 1, chunks in id order, whose cells were counted;
  /// end_index(): checks that every list was filled exactly (otherwise empties
  /// the index and throws); a fill never writes outside its list.
  void begin_index(const int64_t* counts);
  void fill_index_u8(const uint8_t* codes, int64_t m, int64_t first);
  void fill_index_u16(const uint16_t* codes, int64_t m, int64_t first);
  void end_index();
  int64_t ntotal() const { return lists_.size(); }
  /// offsets (V * V + 1,) int64: list of cell c is [offsets[c], offsets[c + 1]).
  void get_offsets(int64_t* out) const;

  /// k-NN of queries (nq, D). For each query the multi-sequence algorithm
  /// visits cells in increasing coarse distance and stops before the next cell
  /// once quota candidates were gathered (quota <= 0: no limit) or max_cells
  /// cells were traversed, empty ones included (<= 0: no limit); with
  /// exact_quota the last cell is cut so that exactly min(quota, ...) codes
  /// are scanned (as faiss's max_codes). Every candidate is ranked by its
  /// exact asymmetric distance (the query's residual in the cell's local
  /// frame against the fine codes). Writes distances, ids (nq, k) (missing:
  /// +inf, -1), candidates (nq,) codes scanned and cells (nq,) cells
  /// traversed. Parallel over queries.
  ///
  /// With inner_product, the same search for the largest inner products:
  /// cells are visited in decreasing <y_0, C[0][c0]> + <y_1, C[1][c1]> and
  /// candidates ranked by -<y, x_hat>, x_hat the reconstruction, which is
  /// sum_s <y_s, C[s][c_s] + mu[s][c_s]> + <y_s R[s][c_s], q_s> (R orthogonal):
  /// one table of -<(y_s R)_m, codeword> per visited centroid and half, with
  /// the cell's constant folded into its first sub-table. distances are then
  /// -<y, x_hat>, ascending.
  void search(const float* queries, int64_t nq, int64_t k, int64_t quota, int64_t max_cells,
              bool exact_quota, bool inner_product, float* distances, int64_t* ids,
              int64_t* candidates, int64_t* cells) const;

 private:
  void prepare_fine();
  void project_half(const float* x, int64_t s, int64_t c, float* out,
                    bool centred = true) const;
  void half_table(const float* y, int64_t s, int64_t c, bool inner_product, float* frame,
                  float* table) const;
  void nearest_cells(const float* x, int64_t nb, int32_t* cells) const;
  template <typename CodeT> void encode(const float* x, int64_t n, CodeT* codes) const;
  template <typename CodeT> void decode(const CodeT* codes, int64_t n, float* x) const;
  template <typename CodeT> void fill_index(const CodeT* codes, int64_t m, int64_t first);
  template <typename FineT>
  void search_impl(const FineT* list_codes, const float* queries, int64_t nq, int64_t k,
                   int64_t quota, int64_t max_cells, bool exact_quota, bool inner_product,
                   float* distances, int64_t* ids, int64_t* candidates, int64_t* cells) const;

  int64_t D_, V_, M_, Ks_, h_, dsub_;
  std::vector<float> coarse_;     // (2, V, h)
  std::vector<float> means_;      // (2, V, h)
  std::vector<float> rotations_;  // (2, V, h, h)
  std::vector<float> codewords_;  // (M, Ks, dsub)
  NearestCodeword coarse_nearest_[2];
  std::vector<NearestCodeword> fine_nearest_;
  InvertedLists lists_;  // the inverted multi-index, cell c0 * V + c1
};

}  // namespace benchpq
