#include "pq.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "internal/adc_scan.h"
#include "internal/parallel.h"
#include "internal/rng.h"
#include "internal/sampling.h"
#include "internal/topk.h"
#include "kmeans.h"

namespace benchpq {
namespace {

constexpr int64_t kEncodeBlock = 64;  // vectors per encoding work item (fits L1 per sub-space)

// k-NN of nq queries over n codes, each query given by its M table rows
// (set_rows(q, scratch, rows) fills them, possibly pointing into scratch of
// M * Ks floats). Parallel over queries, or over the codes when there are
// fewer queries than threads.
template <typename CodeT, typename SetRows>
void search_rows(int64_t nq, const CodeT* codes, int64_t n, int64_t M, int64_t Ks, int64_t k,
                 float* distances, int64_t* ids, SetRows set_rows) {
  const auto same_id = [](int64_t i) { return i; };
  if (nq >= omp_get_max_threads()) {
#pragma omp parallel
    {
      std::vector<float> scratch(M * Ks);
      std::vector<const float*> rows(M);
#pragma omp for schedule(dynamic)
      for (int64_t q = 0; q < nq; ++q) {
        set_rows(q, scratch.data(), rows.data());
        TopK<float> heap(distances + q * k, ids + q * k, k);
        adc::scan(codes, 0, n, M, rows.data(), heap, same_id);
        heap.finish();
      }
    }
    return;
  }
  std::vector<float> scratch(M * Ks);
  std::vector<const float*> rows(M);
  for (int64_t q = 0; q < nq; ++q) {
    set_rows(q, scratch.data(), rows.data());
    TopK<float> heap(distances + q * k, ids + q * k, k);
#pragma omp parallel
    {
      const int nt = omp_get_num_threads(), t = omp_get_thread_num();
      std::vector<float> d(k);
      std::vector<int64_t> id(k);
      TopK<float> local(d.data(), id.data(), k);
      adc::scan(codes, n * t / nt, n * (t + 1) / nt, M, rows.data(), local, same_id);
#pragma omp critical
      for (int64_t i = 0; i < local.size(); ++i) heap.push(local.dist(i), local.id(i));
    }
    heap.finish();
  }
}

}  // namespace

ProductQuantizer::ProductQuantizer(int64_t D, int64_t M, int64_t Ks)
    : D_(D), M_(M), Ks_(Ks), dsub_(M > 0 ? D / M : 0) {
  if (D < 1 || M < 1 || M > D || D % M != 0 || Ks < 1 || Ks > 65536)
    throw std::invalid_argument("ProductQuantizer: need 1 <= M <= D, D % M == 0, 1 <= Ks <= 65536");
  codewords_.assign(M_ * Ks_ * dsub_, 0.0f);
  prepare();
}

void ProductQuantizer::prepare() {
  nearest_.clear();
  for (int64_t m = 0; m < M_; ++m)
    nearest_.emplace_back(codewords_.data() + m * Ks_ * dsub_, Ks_, dsub_);
  sdc_.clear();
  if (M_ * Ks_ * Ks_ * int64_t(sizeof(float)) > sdc_table_limit_bytes) return;
  sdc_.resize(M_ * Ks_ * Ks_);
#pragma omp parallel for schedule(dynamic)
  for (int64_t mi = 0; mi < M_ * Ks_; ++mi) {
    const int64_t m = mi / Ks_;
    subspace_table(codewords_.data() + mi * dsub_, m, sdc_.data() + mi * Ks_);
  }
}

void ProductQuantizer::subspace_table(const float* sub, int64_t m, float* out) const {
  const float* c = codewords_.data() + m * Ks_ * dsub_;
  for (int64_t j = 0; j < Ks_; ++j) out[j] = l2sqr(sub, c + j * dsub_, dsub_);
}

void ProductQuantizer::subspace_ip_table(const float* sub, int64_t m, float* out) const {
  negated_inner_products(sub, codewords_.data() + m * Ks_ * dsub_, Ks_, dsub_, out);
}

void ProductQuantizer::train(const float* x, int64_t n, int niter, int init, uint64_t seed,
                             int64_t max_points_per_centroid, double* objective) {
  if (n < Ks_ || niter < 1) throw std::invalid_argument("ProductQuantizer::train: need n >= Ks, niter >= 1");
  std::vector<int64_t> rows;
  if (subsamples(n, Ks_, max_points_per_centroid))
    rows = sample_rows(n, Ks_ * max_points_per_centroid, splitmix64(seed));
  const int64_t ns = rows.empty() ? n : static_cast<int64_t>(rows.size());
  std::fill(objective, objective + M_ * niter, 0.0);
  // Sub-space m's k-means on the rows' m-th sub-vectors, seeded by m alone, so
  // the codebooks do not depend on how the sub-spaces are spread over threads.
  auto train_subspace = [&](int64_t m, std::vector<float>& sub) {
#pragma omp parallel for schedule(static) if (!omp_in_parallel())
    for (int64_t i = 0; i < ns; ++i) {
      const int64_t row = rows.empty() ? i : rows[i];
      std::memcpy(sub.data() + i * dsub_, x + row * D_ + m * dsub_, dsub_ * sizeof(float));
    }
    kmeans(sub.data(), ns, dsub_, Ks_, niter, init, splitmix64(seed + 1 + m), 0,
           codewords_.data() + m * Ks_ * dsub_, objective + m * niter);
  };
  const int threads = omp_get_max_threads();
  if (threads > 1 && M_ >= threads) {
    // One parallel region for the whole training, a sub-space per thread at a
    // time: hundreds of short regions inside each k-means (one per
    // iteration and step) cost more than they save on small data.
#pragma omp parallel
    {
      omp_set_num_threads(1);  // this thread's nested regions (inside kmeans) stay serial
      std::vector<float> sub(ns * dsub_);
#pragma omp for schedule(dynamic, 1)
      for (int64_t m = 0; m < M_; ++m) train_subspace(m, sub);
    }
  } else {
    std::vector<float> sub(ns * dsub_);
    for (int64_t m = 0; m < M_; ++m) train_subspace(m, sub);
  }
  prepare();
}

int64_t ProductQuantizer::train_rows(int64_t n, int64_t Ks, uint64_t seed,
                                     int64_t max_points_per_centroid, int64_t* rows) {
  if (!subsamples(n, Ks, max_points_per_centroid)) return 0;
  const std::vector<int64_t> sample = sample_rows(n, Ks * max_points_per_centroid, splitmix64(seed));
  std::copy(sample.begin(), sample.end(), rows);
  return static_cast<int64_t>(sample.size());
}

void ProductQuantizer::set_codewords(const float* codewords) {
  std::memcpy(codewords_.data(), codewords, codewords_.size() * sizeof(float));
  prepare();
}

void ProductQuantizer::get_codewords(float* out) const {
  std::memcpy(out, codewords_.data(), codewords_.size() * sizeof(float));
}

template <typename CodeT>
void ProductQuantizer::encode(const float* x, int64_t n, CodeT* codes) const {
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < (n + kEncodeBlock - 1) / kEncodeBlock; ++b) {
    const int64_t i0 = b * kEncodeBlock, nb = std::min(kEncodeBlock, n - i0);
    int32_t idx[kEncodeBlock];
    for (int64_t m = 0; m < M_; ++m) {
      nearest_[m].nearest(x + i0 * D_ + m * dsub_, nb, D_, idx);
      for (int64_t i = 0; i < nb; ++i) codes[(i0 + i) * M_ + m] = static_cast<CodeT>(idx[i]);
    }
  }
}

template <typename CodeT>
void ProductQuantizer::decode(const CodeT* codes, int64_t n, float* x) const {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t m = 0; m < M_; ++m)
      std::memcpy(x + i * D_ + m * dsub_,
                  codewords_.data() + (m * Ks_ + codes[i * M_ + m]) * dsub_, dsub_ * sizeof(float));
}

template <typename CodeT>
void ProductQuantizer::sum_by_code(const float* y, int64_t n, int64_t d, const CodeT* codes,
                                   double* out) const {
  std::fill(out, out + M_ * Ks_ * d, 0.0);
  // Each sub-space's sums are owned by one thread and added in row order.
#pragma omp parallel for schedule(dynamic, 1) if (n * d * M_ > (int64_t(1) << 20))
  for (int64_t m = 0; m < M_; ++m) {
    double* sums = out + m * Ks_ * d;
    for (int64_t i = 0; i < n; ++i) {
      double* s = sums + int64_t(codes[i * M_ + m]) * d;
      const float* yi = y + i * d;
      for (int64_t t = 0; t < d; ++t) s[t] += yi[t];
    }
  }
}

void ProductQuantizer::adc_tables(const float* queries, int64_t nq, float* tables) const {
#pragma omp parallel for schedule(static)
  for (int64_t q = 0; q < nq; ++q)
    for (int64_t m = 0; m < M_; ++m)
      subspace_table(queries + q * D_ + m * dsub_, m, tables + (q * M_ + m) * Ks_);
}

void ProductQuantizer::adc_ip_tables(const float* queries, int64_t nq, float* tables) const {
#pragma omp parallel for schedule(static)
  for (int64_t q = 0; q < nq; ++q)
    for (int64_t m = 0; m < M_; ++m)
      subspace_ip_table(queries + q * D_ + m * dsub_, m, tables + (q * M_ + m) * Ks_);
}

template <typename CodeT>
void ProductQuantizer::search_adc(const float* queries, int64_t nq, const CodeT* codes, int64_t n,
                                  int64_t k, float* distances, int64_t* ids,
                                  bool inner_product) const {
  search_rows(nq, codes, n, M_, Ks_, k, distances, ids,
              [&](int64_t q, float* scratch, const float** rows) {
                for (int64_t m = 0; m < M_; ++m) {
                  if (inner_product)
                    subspace_ip_table(queries + q * D_ + m * dsub_, m, scratch + m * Ks_);
                  else
                    subspace_table(queries + q * D_ + m * dsub_, m, scratch + m * Ks_);
                  rows[m] = scratch + m * Ks_;
                }
              });
}

template <typename CodeT>
void ProductQuantizer::search_sdc(const CodeT* query_codes, int64_t nq, const CodeT* codes,
                                  int64_t n, int64_t k, float* distances, int64_t* ids) const {
  search_rows(nq, codes, n, M_, Ks_, k, distances, ids,
              [&](int64_t q, float* scratch, const float** rows) {
                for (int64_t m = 0; m < M_; ++m) {
                  const int64_t c = query_codes[q * M_ + m];
                  if (!sdc_.empty()) {
                    rows[m] = sdc_.data() + (m * Ks_ + c) * Ks_;
                  } else {
                    subspace_table(codewords_.data() + (m * Ks_ + c) * dsub_, m, scratch + m * Ks_);
                    rows[m] = scratch + m * Ks_;
                  }
                }
              });
}

void ProductQuantizer::encode_u8(const float* x, int64_t n, uint8_t* codes) const { encode(x, n, codes); }
void ProductQuantizer::encode_u16(const float* x, int64_t n, uint16_t* codes) const { encode(x, n, codes); }
void ProductQuantizer::decode_u8(const uint8_t* codes, int64_t n, float* x) const { decode(codes, n, x); }
void ProductQuantizer::decode_u16(const uint16_t* codes, int64_t n, float* x) const { decode(codes, n, x); }
void ProductQuantizer::sum_by_code_u8(const float* y, int64_t n, int64_t d, const uint8_t* codes,
                                      double* out) const {
  sum_by_code(y, n, d, codes, out);
}
void ProductQuantizer::sum_by_code_u16(const float* y, int64_t n, int64_t d, const uint16_t* codes,
                                       double* out) const {
  sum_by_code(y, n, d, codes, out);
}

void ProductQuantizer::search_adc_u8(const float* queries, int64_t nq, const uint8_t* codes,
                                     int64_t n, int64_t k, float* distances, int64_t* ids) const {
  search_adc(queries, nq, codes, n, k, distances, ids, false);
}
void ProductQuantizer::search_adc_u16(const float* queries, int64_t nq, const uint16_t* codes,
                                      int64_t n, int64_t k, float* distances, int64_t* ids) const {
  search_adc(queries, nq, codes, n, k, distances, ids, false);
}
void ProductQuantizer::search_adc_ip_u8(const float* queries, int64_t nq, const uint8_t* codes,
                                        int64_t n, int64_t k, float* distances,
                                        int64_t* ids) const {
  search_adc(queries, nq, codes, n, k, distances, ids, true);
}
void ProductQuantizer::search_adc_ip_u16(const float* queries, int64_t nq, const uint16_t* codes,
                                         int64_t n, int64_t k, float* distances,
                                         int64_t* ids) const {
  search_adc(queries, nq, codes, n, k, distances, ids, true);
}
void ProductQuantizer::search_sdc_u8(const uint8_t* query_codes, int64_t nq, const uint8_t* codes,
                                     int64_t n, int64_t k, float* distances, int64_t* ids) const {
  search_sdc(query_codes, nq, codes, n, k, distances, ids);
}
void ProductQuantizer::search_sdc_u16(const uint16_t* query_codes, int64_t nq,
                                      const uint16_t* codes, int64_t n, int64_t k, float* distances,
                                      int64_t* ids) const {
  search_sdc(query_codes, nq, codes, n, k, distances, ids);
}

}  // namespace benchpq
