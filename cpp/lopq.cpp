#include "lopq.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <utility>

#include "internal/adc_scan.h"
#include "internal/parallel.h"
#include "internal/rng.h"
#include "internal/sampling.h"
#include "internal/simd.h"
#include "internal/topk.h"
#include "kmeans.h"
#include "multisequence.h"
#include "pq.h"

namespace benchpq {
namespace {

constexpr int64_t kBlock = 64;  // vectors per encoding work item

// The rows (copied, (ns, D)) k-means would train k centroids on: a sample of
// k * max_points_per_centroid rows when that is fewer than n, else all.
std::vector<float> seeding_sample(const float* x, int64_t n, int64_t D, int64_t k,
                                  int64_t max_points_per_centroid, uint64_t seed) {
  if (max_points_per_centroid > 0 && n > k * max_points_per_centroid)
    return gather_rows(x, n, D, sample_rows(n, k * max_points_per_centroid, seed));
  return std::vector<float>(x, x + n * D);
}

}  // namespace

LOPQ::LOPQ(int64_t D, int64_t V, int64_t M, int64_t Ks)
    : D_(D), V_(V), M_(M), Ks_(Ks), h_(D / 2), dsub_(M > 0 ? D / M : 0) {
  if (D < 2 || M < 2 || M % 2 != 0 || M > D || D % M != 0 || V < 1 || V > 4096 || Ks < 1 ||
      Ks > 65536)
    throw std::invalid_argument(
        "LOPQ: need M even, 2 <= M <= D, D % M == 0, 1 <= V <= 4096, 1 <= Ks <= 65536");
  coarse_.assign(2 * V_ * h_, 0.0f);
  means_.assign(2 * V_ * h_, 0.0f);
  rotations_.assign(2 * V_ * h_ * h_, 0.0f);
  for (int64_t sv = 0; sv < 2 * V_; ++sv)
    for (int64_t t = 0; t < h_; ++t) rotations_[(sv * h_ + t) * h_ + t] = 1.0f;
  codewords_.assign(M_ * Ks_ * dsub_, 0.0f);
  set_coarse(coarse_.data());
  prepare_fine();
  lists_.reset(V_ * V_);
}

// -- training ---------------------------------------------------------------

void LOPQ::train_coarse(const float* x, int64_t n, int niter, int init, uint64_t seed,
                        int64_t max_points_per_centroid, double* objective) {
  if (n < V_ || niter < 1)
    throw std::invalid_argument("LOPQ::train_coarse: need n >= V, niter >= 1");
  std::vector<float> half(n * h_);
  std::fill(objective, objective + 2 * niter, 0.0);
  int kinit = init;
  if (init == KMEANS_INIT_GREEDY_PLUSPLUS) {  // seeds of both halves, on one row sample
    const std::vector<float> sample =
        seeding_sample(x, n, D_, V_, max_points_per_centroid, splitmix64(seed));
    const int64_t ns = static_cast<int64_t>(sample.size()) / D_;
#pragma omp parallel for schedule(static, 1)
    for (int64_t s = 0; s < 2; ++s)
      greedy_kmeanspp(sample.data() + s * h_, ns, h_, D_, V_, 0, splitmix64(seed * 2 + s + 101),
                      coarse_.data() + s * V_ * h_);
    kinit = KMEANS_INIT_GIVEN;
  }
  for (int64_t s = 0; s < 2; ++s) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(half.data() + i * h_, x + i * D_ + s * h_, h_ * sizeof(float));
    kmeans(half.data(), n, h_, V_, niter, kinit, splitmix64(seed * 2 + s + 1), max_points_per_centroid,
           coarse_.data() + s * V_ * h_, objective + s * niter);
  }
  set_coarse(coarse_.data());
}

// cells (nb, 2): the nearest coarse centroid of each half of the nb <= kBlock vectors x (nb, D).
void LOPQ::nearest_cells(const float* x, int64_t nb, int32_t* cells) const {
  int32_t idx[2][kBlock];
  for (int64_t s = 0; s < 2; ++s) coarse_nearest_[s].nearest(x + s * h_, nb, D_, idx[s]);
  for (int64_t i = 0; i < nb; ++i) {
    cells[i * 2] = idx[0][i];
    cells[i * 2 + 1] = idx[1][i];
  }
}

void LOPQ::assign(const float* x, int64_t n, int32_t* coarse) const {
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < (n + kBlock - 1) / kBlock; ++b) {
    const int64_t i0 = b * kBlock;
    nearest_cells(x + i0 * D_, std::min(kBlock, n - i0), coarse + i0 * 2);
  }
}

void LOPQ::residuals(const float* x, int64_t n, const int32_t* coarse, float* out) const {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t s = 0; s < 2; ++s) {
      const float* c = coarse_.data() + (s * V_ + coarse[i * 2 + s]) * h_;
      const float* xi = x + i * D_ + s * h_;
      float* o = out + i * D_ + s * h_;
      for (int64_t t = 0; t < h_; ++t) o[t] = xi[t] - c[t];
    }
}

void LOPQ::set_local(const float* means, const float* rotations) {
  std::memcpy(means_.data(), means, means_.size() * sizeof(float));
  std::memcpy(rotations_.data(), rotations, rotations_.size() * sizeof(float));
}

void LOPQ::get_local(float* means, float* rotations) const {
  std::memcpy(means, means_.data(), means_.size() * sizeof(float));
  std::memcpy(rotations, rotations_.data(), rotations_.size() * sizeof(float));
}

// out (h) = (x_s - C[s][c] - mu[s][c]) R[s][c], or x_s R[s][c] when not centred; x
// points at half s of a vector.
void LOPQ::project_half(const float* x, int64_t s, int64_t c, float* out, bool centred) const {
  const float* cen = coarse_.data() + (s * V_ + c) * h_;
  const float* mu = means_.data() + (s * V_ + c) * h_;
  const float* R = rotations_.data() + (s * V_ + c) * h_ * h_;
  std::fill(out, out + h_, 0.0f);
  for (int64_t t = 0; t < h_; ++t) {
    const float r = centred ? x[t] - cen[t] - mu[t] : x[t];
    const float* row = R + t * h_;
    for (int64_t j = 0; j < h_; ++j) out[j] = fmadd(r, row[j], out[j]);
  }
}

void LOPQ::half_table(const float* y, int64_t s, int64_t c, bool inner_product, float* frame,
                      float* table) const {
  const int64_t Mh = M_ / 2;
  if (!inner_product) {
    project_half(y, s, c, frame);
    for (int64_t m = 0; m < Mh; ++m)
      fine_nearest_[s * Mh + m].distances(frame + m * dsub_, table + m * Ks_);
    return;
  }
  project_half(y, s, c, frame, /*centred=*/false);
  for (int64_t m = 0; m < Mh; ++m)
    negated_inner_products(frame + m * dsub_, codewords_.data() + (s * Mh + m) * Ks_ * dsub_,
                           Ks_, dsub_, table + m * Ks_);
  const float offset = inner(y, coarse_.data() + (s * V_ + c) * h_, h_) +
                       inner(y, means_.data() + (s * V_ + c) * h_, h_);
  for (int64_t j = 0; j < Ks_; ++j) table[j] -= offset;
}

void LOPQ::project(const float* x, int64_t n, const int32_t* coarse, float* out) const {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t s = 0; s < 2; ++s)
      project_half(x + i * D_ + s * h_, s, coarse[i * 2 + s], out + i * D_ + s * h_);
}

void LOPQ::train_fine(const float* projected, int64_t n, int niter, int init, uint64_t seed,
                      int64_t max_points_per_centroid, double* objective) {
  ProductQuantizer pq(D_, M_, Ks_);
  if (init == KMEANS_INIT_GREEDY_PLUSPLUS) {
    const std::vector<float> sample =
        seeding_sample(projected, n, D_, Ks_, max_points_per_centroid, splitmix64(seed + 7));
    const int64_t ns = static_cast<int64_t>(sample.size()) / D_;
    std::vector<float> seeds(M_ * Ks_ * dsub_);
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t m = 0; m < M_; ++m)
      greedy_kmeanspp(sample.data() + m * dsub_, ns, dsub_, D_, Ks_, 0, splitmix64(seed + 1 + m),
                      seeds.data() + m * Ks_ * dsub_);
    pq.set_codewords(seeds.data());
    init = KMEANS_INIT_GIVEN;
  }
  pq.train(projected, n, niter, init, seed, max_points_per_centroid, objective);
  pq.get_codewords(codewords_.data());
  prepare_fine();
}

// -- state ----------------------------------------------------------------------

void LOPQ::set_coarse(const float* centroids) {
  if (centroids != coarse_.data())
    std::memcpy(coarse_.data(), centroids, coarse_.size() * sizeof(float));
  for (int64_t s = 0; s < 2; ++s)
    coarse_nearest_[s] = NearestCodeword(coarse_.data() + s * V_ * h_, V_, h_);
}

void LOPQ::get_coarse(float* out) const {
  std::memcpy(out, coarse_.data(), coarse_.size() * sizeof(float));
}

void LOPQ::set_codewords(const float* codewords) {
  std::memcpy(codewords_.data(), codewords, codewords_.size() * sizeof(float));
  prepare_fine();
}

void LOPQ::get_codewords(float* out) const {
  std::memcpy(out, codewords_.data(), codewords_.size() * sizeof(float));
}

void LOPQ::prepare_fine() {
  fine_nearest_.clear();
  for (int64_t m = 0; m < M_; ++m)
    fine_nearest_.emplace_back(codewords_.data() + m * Ks_ * dsub_, Ks_, dsub_);
}

// -- codes ------------------------------------------------------------------------

template <typename CodeT>
void LOPQ::encode(const float* x, int64_t n, CodeT* codes) const {
  const int64_t width = 2 + M_;
#pragma omp parallel
  {
    std::vector<float> frame(kBlock * D_);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < (n + kBlock - 1) / kBlock; ++b) {
      const int64_t i0 = b * kBlock, nb = std::min(kBlock, n - i0);
      int32_t cells[2 * kBlock];
      nearest_cells(x + i0 * D_, nb, cells);
      for (int64_t i = 0; i < nb; ++i)
        for (int64_t s = 0; s < 2; ++s) {
          codes[(i0 + i) * width + s] = static_cast<CodeT>(cells[i * 2 + s]);
          project_half(x + (i0 + i) * D_ + s * h_, s, cells[i * 2 + s],
                       frame.data() + i * D_ + s * h_);
        }
      int32_t fine[kBlock];
      for (int64_t m = 0; m < M_; ++m) {
        fine_nearest_[m].nearest(frame.data() + m * dsub_, nb, D_, fine);
        for (int64_t i = 0; i < nb; ++i)
          codes[(i0 + i) * width + 2 + m] = static_cast<CodeT>(fine[i]);
      }
    }
  }
}

template <typename CodeT>
void LOPQ::decode(const CodeT* codes, int64_t n, float* x) const {
  const int64_t width = 2 + M_;
#pragma omp parallel
  {
    std::vector<float> q(D_);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const CodeT* code = codes + i * width;
      for (int64_t m = 0; m < M_; ++m)
        std::memcpy(q.data() + m * dsub_, codewords_.data() + (m * Ks_ + code[2 + m]) * dsub_,
                    dsub_ * sizeof(float));
      for (int64_t s = 0; s < 2; ++s) {
        const int64_t c = code[s];
        const float* cen = coarse_.data() + (s * V_ + c) * h_;
        const float* mu = means_.data() + (s * V_ + c) * h_;
        const float* R = rotations_.data() + (s * V_ + c) * h_ * h_;
        const float* qs = q.data() + s * h_;
        float* out = x + i * D_ + s * h_;
        for (int64_t t = 0; t < h_; ++t) {  // x_t = C_t + mu_t + sum_j q_j R[t][j]
          const float* row = R + t * h_;
          float acc = 0;
          for (int64_t j = 0; j < h_; ++j) acc += qs[j] * row[j];
          out[t] = cen[t] + mu[t] + acc;
        }
      }
    }
  }
}

void LOPQ::encode_u8(const float* x, int64_t n, uint8_t* codes) const { encode(x, n, codes); }
void LOPQ::encode_u16(const float* x, int64_t n, uint16_t* codes) const { encode(x, n, codes); }
void LOPQ::decode_u8(const uint8_t* codes, int64_t n, float* x) const { decode(codes, n, x); }
void LOPQ::decode_u16(const uint16_t* codes, int64_t n, float* x) const { decode(codes, n, x); }

// -- the multi-index --------------------------------------------------------------

void LOPQ::begin_index(const int64_t* counts) {
  bool ok;
  lists_.begin(counts, V_ * V_, M_, Ks_ > 256, &ok);
  if (!ok) throw std::invalid_argument("LOPQ::begin_index: negative count");
}

template <typename CodeT>
void LOPQ::fill_index(const CodeT* codes, int64_t m, int64_t first) {
  const int64_t width = 2 + M_;
  for (int64_t i = 0; i < m; ++i) {
    const CodeT* code = codes + i * width;
    lists_.fill(int64_t(code[0]) * V_ + code[1], first + i, code + 2);
  }
}

void LOPQ::fill_index_u8(const uint8_t* codes, int64_t m, int64_t first) {
  fill_index(codes, m, first);
}
void LOPQ::fill_index_u16(const uint16_t* codes, int64_t m, int64_t first) {
  fill_index(codes, m, first);
}

void LOPQ::end_index() {
  if (!lists_.end())
    throw std::invalid_argument("LOPQ::end_index: the codes filled differ from the counts");
}

void LOPQ::get_offsets(int64_t* out) const {
  std::memcpy(out, lists_.offsets().data(), lists_.offsets().size() * sizeof(int64_t));
}

void LOPQ::search(const float* queries, int64_t nq, int64_t k, int64_t quota, int64_t max_cells,
                  bool exact_quota, bool inner_product, float* distances, int64_t* ids,
                  int64_t* candidates, int64_t* cells) const {
  if (k < 1) throw std::invalid_argument("LOPQ::search: need k >= 1");
  if (Ks_ <= 256)
    search_impl(lists_.codes8(), queries, nq, k, quota, max_cells, exact_quota, inner_product,
                distances, ids, candidates, cells);
  else
    search_impl(lists_.codes16(), queries, nq, k, quota, max_cells, exact_quota, inner_product,
                distances, ids, candidates, cells);
}

template <typename FineT>
void LOPQ::search_impl(const FineT* list_codes, const float* queries, int64_t nq, int64_t k,
                       int64_t quota, int64_t max_cells, bool exact_quota,
                       bool inner_product, float* distances, int64_t* ids,
                       int64_t* candidates, int64_t* cells) const {
  const int64_t Mh = M_ / 2, table_size = Mh * Ks_;
  const auto list_id = [this](int64_t i) { return lists_.id(i); };
#pragma omp parallel
  {
    std::vector<float> d0(V_), d1(V_), frame(h_), tables;
    std::vector<int32_t> slot[2] = {std::vector<int32_t>(V_, -1), std::vector<int32_t>(V_, -1)};
    std::vector<std::pair<int32_t, int32_t>> used;  // (half, centroid) holding a table
    std::vector<const float*> rows(M_);
    MultiSequence ms;
#pragma omp for schedule(dynamic)
    for (int64_t q = 0; q < nq; ++q) {
      const float* y = queries + q * D_;
      for (int64_t v = 0; v < V_; ++v) {
        const float* c0 = coarse_.data() + v * h_;
        const float* c1 = coarse_.data() + (V_ + v) * h_;
        d0[v] = inner_product ? -inner(y, c0, h_) : l2sqr(y, c0, h_);
        d1[v] = inner_product ? -inner(y + h_, c1, h_) : l2sqr(y + h_, c1, h_);
      }
      ms.reset(d0.data(), V_, d1.data(), V_);
      TopK<float> best(distances + q * k, ids + q * k, k);
      int64_t ncand = 0, ncells = 0;
      int32_t c[2];
      float cell_dist;
      while ((quota <= 0 || ncand < quota) && (max_cells <= 0 || ncells < max_cells) &&
             ms.next(&c[0], &c[1], &cell_dist)) {
        ++ncells;
        const int64_t cell = int64_t(c[0]) * V_ + c[1];
        const int64_t begin = lists_.begin_of(cell);
        int64_t end = lists_.end_of(cell);
        if (begin == end) continue;
        if (exact_quota && quota > 0) end = std::min(end, begin + (quota - ncand));
        // ADC tables of the query's local frame, once per (half, coarse centroid)
        for (int s = 0; s < 2; ++s) {
          if (slot[s][c[s]] >= 0) continue;
          slot[s][c[s]] = static_cast<int32_t>(used.size());
          used.emplace_back(s, c[s]);
          tables.resize(used.size() * table_size);
          half_table(y + s * h_, s, c[s], inner_product, frame.data(),
                     tables.data() + (used.size() - 1) * table_size);
        }
        for (int s = 0; s < 2; ++s) {
          const float* t = tables.data() + slot[s][c[s]] * table_size;
          for (int64_t m = 0; m < Mh; ++m) rows[s * Mh + m] = t + m * Ks_;
        }
        adc::scan(list_codes, begin, end, M_, rows.data(), best, list_id);
        ncand += end - begin;
      }
      best.finish();
      candidates[q] = ncand;
      cells[q] = ncells;
      for (const auto& u : used) slot[u.first][u.second] = -1;
      used.clear();
    }
  }
}

}  // namespace benchpq
