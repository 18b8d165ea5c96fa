#include "pq.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "kmeans.h"
#include "sampling.h"

namespace benchpq {
namespace {

constexpr int64_t kEncodeBlock = 64;  // vectors per encoding work item (fits L1 per sub-space)
constexpr int64_t kScanBlock = 256;   // codes scored before the heap is consulted

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Bounded max-heap of the k best (distance, id) pairs, stored in the caller's
// output row; ordered by distance, then id, so ties keep the smaller id.
class TopK {
 public:
  TopK(float* d, int64_t* id, int64_t k) : d_(d), id_(id), k_(k) {}

  float threshold() const { return size_ < k_ ? std::numeric_limits<float>::infinity() : d_[0]; }

  void push(float dist, int64_t id) {
    if (size_ < k_) {
      int64_t i = size_++;
      while (i > 0) {  // sift up
        const int64_t parent = (i - 1) / 2;
        if (!greater(dist, id, d_[parent], id_[parent])) break;
        d_[i] = d_[parent];
        id_[i] = id_[parent];
        i = parent;
      }
      d_[i] = dist;
      id_[i] = id;
    } else if (greater(d_[0], id_[0], dist, id)) {
      sift_down(0, k_, dist, id);
    }
  }

  /// Sort ascending in place (heap sort); unfilled slots get (+inf, -1).
  void finish() {
    for (int64_t end = size_ - 1; end > 0; --end) {
      const float dist = d_[end];
      const int64_t id = id_[end];
      d_[end] = d_[0];
      id_[end] = id_[0];
      sift_down(0, end, dist, id);
    }
    for (int64_t i = size_; i < k_; ++i) {
      d_[i] = std::numeric_limits<float>::infinity();
      id_[i] = -1;
    }
  }

  int64_t size() const { return size_; }
  float dist(int64_t i) const { return d_[i]; }
  int64_t id(int64_t i) const { return id_[i]; }

 private:
  static bool greater(float d1, int64_t i1, float d2, int64_t i2) {
    return d1 > d2 || (d1 == d2 && i1 > i2);
  }

  // Place (dist, id) at slot i of the heap of size n, moving larger children up.
  void sift_down(int64_t i, int64_t n, float dist, int64_t id) {
    for (;;) {
      int64_t child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && greater(d_[child + 1], id_[child + 1], d_[child], id_[child])) ++child;
      if (!greater(d_[child], id_[child], dist, id)) break;
      d_[i] = d_[child];
      id_[i] = id_[child];
      i = child;
    }
    d_[i] = dist;
    id_[i] = id;
  }

  float* d_;
  int64_t* id_;
  int64_t k_, size_ = 0;
};

// dis[i] = sum_m rows[m][code_i[m]] for nb codes, summed in order m = 0 .. M-1.
// Four codes are scored side by side: four independent chains of additions
// instead of one, with each code's own sum still in the same order (so the
// distances are bit-identical to a one-code loop). MF: M known at compile
// time (0: runtime).
template <int MF, typename CodeT>
void score_codes(const CodeT* codes, int64_t nb, int64_t M, const float* const* rows, float* dis) {
  const int64_t m_count = MF ? MF : M;
  int64_t i = 0;
  for (; i + 4 <= nb; i += 4, codes += 4 * m_count) {
    const CodeT* c0 = codes;
    const CodeT* c1 = codes + m_count;
    const CodeT* c2 = codes + 2 * m_count;
    const CodeT* c3 = codes + 3 * m_count;
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int64_t m = 0; m < m_count; ++m) {
      const float* r = rows[m];
      s0 += r[c0[m]];
      s1 += r[c1[m]];
      s2 += r[c2[m]];
      s3 += r[c3[m]];
    }
    dis[i] = s0;
    dis[i + 1] = s1;
    dis[i + 2] = s2;
    dis[i + 3] = s3;
  }
  for (; i < nb; ++i, codes += m_count) {
    float s = 0;
    for (int64_t m = 0; m < m_count; ++m) s += rows[m][codes[m]];
    dis[i] = s;
  }
}

// uint8 codes with M a multiple of 8: one 64-bit load per 8 sub-codes, the 8
// lookups added as a tree (that order defines these distances).
template <int MF>
void score_codes_u8x8(const uint8_t* codes, int64_t nb, int64_t M, const float* const* rows,
                      float* dis) {
  const int64_t m_count = MF ? MF : M;
  for (int64_t i = 0; i < nb; ++i, codes += m_count) {
    float s = 0;
    for (int64_t g = 0; g < m_count; g += 8) {
      uint64_t w;
      std::memcpy(&w, codes + g, 8);
      const float* const* r = rows + g;
      s += ((r[0][w & 255] + r[1][(w >> 8) & 255]) + (r[2][(w >> 16) & 255] + r[3][(w >> 24) & 255])) +
           ((r[4][(w >> 32) & 255] + r[5][(w >> 40) & 255]) + (r[6][(w >> 48) & 255] + r[7][w >> 56]));
    }
    dis[i] = s;
  }
}

// Compile-time M for the common small code lengths, a runtime loop otherwise.
template <typename CodeT>
void score_dispatch(const CodeT* codes, int64_t nb, int64_t M, const float* const* rows,
                    float* dis) {
  if constexpr (sizeof(CodeT) == 1) {
    if (M == 8) return score_codes_u8x8<8>(codes, nb, M, rows, dis);
    if (M == 16) return score_codes_u8x8<16>(codes, nb, M, rows, dis);
    if (M % 8 == 0) return score_codes_u8x8<0>(codes, nb, M, rows, dis);
  }
  switch (M) {
    case 1: return score_codes<1>(codes, nb, M, rows, dis);
    case 2: return score_codes<2>(codes, nb, M, rows, dis);
    case 3: return score_codes<3>(codes, nb, M, rows, dis);
    case 4: return score_codes<4>(codes, nb, M, rows, dis);
    case 5: return score_codes<5>(codes, nb, M, rows, dis);
    case 6: return score_codes<6>(codes, nb, M, rows, dis);
    case 7: return score_codes<7>(codes, nb, M, rows, dis);
    case 8: return score_codes<8>(codes, nb, M, rows, dis);
    case 10: return score_codes<10>(codes, nb, M, rows, dis);
    case 12: return score_codes<12>(codes, nb, M, rows, dis);
    default: return score_codes<0>(codes, nb, M, rows, dis);
  }
}

// Push codes [begin, end) into the heap, by blocks: score, then compare to the heap's threshold.
template <typename CodeT>
void scan(const CodeT* codes, int64_t begin, int64_t end, int64_t M, const float* const* rows,
          TopK& heap) {
  float dis[kScanBlock];
  for (int64_t i0 = begin; i0 < end; i0 += kScanBlock) {
    const int64_t nb = std::min(kScanBlock, end - i0);
    score_dispatch(codes + i0 * M, nb, M, rows, dis);
    float threshold = heap.threshold();
    for (int64_t i = 0; i < nb; ++i)
      if (dis[i] < threshold) {
        heap.push(dis[i], i0 + i);
        threshold = heap.threshold();
      }
  }
}

// k-NN of nq queries over n codes, each query given by its M table rows
// (set_rows(q, scratch, rows) fills them, possibly pointing into scratch of
// M * Ks floats). Parallel over queries, or over the codes when there are
// fewer queries than threads.
template <typename CodeT, typename SetRows>
void search_rows(int64_t nq, const CodeT* codes, int64_t n, int64_t M, int64_t Ks, int64_t k,
                 float* distances, int64_t* ids, SetRows set_rows) {
  if (nq >= omp_get_max_threads()) {
#pragma omp parallel
    {
      std::vector<float> scratch(M * Ks);
      std::vector<const float*> rows(M);
#pragma omp for schedule(dynamic)
      for (int64_t q = 0; q < nq; ++q) {
        set_rows(q, scratch.data(), rows.data());
        TopK heap(distances + q * k, ids + q * k, k);
        scan(codes, 0, n, M, rows.data(), heap);
        heap.finish();
      }
    }
    return;
  }
  std::vector<float> scratch(M * Ks);
  std::vector<const float*> rows(M);
  for (int64_t q = 0; q < nq; ++q) {
    set_rows(q, scratch.data(), rows.data());
    TopK heap(distances + q * k, ids + q * k, k);
#pragma omp parallel
    {
      const int nt = omp_get_num_threads(), t = omp_get_thread_num();
      std::vector<float> d(k);
      std::vector<int64_t> id(k);
      TopK local(d.data(), id.data(), k);
      scan(codes, n * t / nt, n * (t + 1) / nt, M, rows.data(), local);
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

template <typename CodeT>
void ProductQuantizer::search_adc(const float* queries, int64_t nq, const CodeT* codes, int64_t n,
                                  int64_t k, float* distances, int64_t* ids) const {
  search_rows(nq, codes, n, M_, Ks_, k, distances, ids,
              [&](int64_t q, float* scratch, const float** rows) {
                for (int64_t m = 0; m < M_; ++m) {
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
  search_adc(queries, nq, codes, n, k, distances, ids);
}
void ProductQuantizer::search_adc_u16(const float* queries, int64_t nq, const uint16_t* codes,
                                      int64_t n, int64_t k, float* distances, int64_t* ids) const {
  search_adc(queries, nq, codes, n, k, distances, ids);
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
