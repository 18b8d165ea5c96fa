#include "ilopq.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <utility>

#include "internal/adc_scan.h"
#include "internal/simd.h"
#include "internal/topk.h"

namespace benchpq {
namespace {

constexpr int64_t kBlock = 64;  // vectors per encoding work item

}  // namespace

IVFLOPQ::IVFLOPQ(int64_t D, int64_t nlist, int64_t M, int64_t Ks)
    : D_(D), nlist_(nlist), M_(M), Ks_(Ks), dsub_(M > 0 ? D / M : 0) {
  if (D < 1 || M < 1 || M > D || D % M != 0 || nlist < 1 || nlist > 65536 || Ks < 1 ||
      Ks > 65536)
    throw std::invalid_argument(
        "IVFLOPQ: need 1 <= M <= D, D % M == 0, 1 <= nlist <= 65536, 1 <= Ks <= 65536");
  coarse_.assign(nlist_ * D_, 0.0f);
  means_.assign(nlist_ * D_, 0.0f);
  rotations_.assign(nlist_ * D_ * D_, 0.0f);
  for (int64_t c = 0; c < nlist_; ++c)
    for (int64_t t = 0; t < D_; ++t) rotations_[(c * D_ + t) * D_ + t] = 1.0f;
  codewords_.assign(nlist_ * M_ * Ks_ * dsub_, 0.0f);
  set_coarse(coarse_.data());
  set_local(means_.data(), rotations_.data(), codewords_.data());
  lists_.reset(nlist_);
}

// -- model ------------------------------------------------------------------------

void IVFLOPQ::set_coarse(const float* centroids) {
  if (centroids != coarse_.data())
    std::memcpy(coarse_.data(), centroids, coarse_.size() * sizeof(float));
  coarse_nearest_ = NearestCodeword(coarse_.data(), nlist_, D_);
}

void IVFLOPQ::set_local(const float* means, const float* rotations, const float* codewords) {
  if (means != means_.data()) std::memcpy(means_.data(), means, means_.size() * sizeof(float));
  if (rotations != rotations_.data())
    std::memcpy(rotations_.data(), rotations, rotations_.size() * sizeof(float));
  if (codewords != codewords_.data())
    std::memcpy(codewords_.data(), codewords, codewords_.size() * sizeof(float));
  fine_nearest_.clear();
  for (int64_t cm = 0; cm < nlist_ * M_; ++cm)
    fine_nearest_.emplace_back(codewords_.data() + cm * Ks_ * dsub_, Ks_, dsub_);
}

void IVFLOPQ::assign(const float* x, int64_t n, int32_t* cells) const {
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < (n + kBlock - 1) / kBlock; ++b) {
    const int64_t i0 = b * kBlock;
    coarse_nearest_.nearest(x + i0 * D_, std::min(kBlock, n - i0), D_, cells + i0);
  }
}

// out (D) = (x - C[c] - mu[c]) R[c]
void IVFLOPQ::project_one(const float* x, int64_t c, float* out) const {
  const float* cen = coarse_.data() + c * D_;
  const float* mu = means_.data() + c * D_;
  const float* R = rotations_.data() + c * D_ * D_;
  std::fill(out, out + D_, 0.0f);
  for (int64_t t = 0; t < D_; ++t) {
    const float r = x[t] - cen[t] - mu[t];
    const float* row = R + t * D_;
    for (int64_t j = 0; j < D_; ++j) out[j] = fmadd(r, row[j], out[j]);
  }
}

void IVFLOPQ::project(const float* x, int64_t n, const int32_t* cells, float* out) const {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) project_one(x + i * D_, cells[i], out + i * D_);
}

// -- codes ------------------------------------------------------------------------

template <typename CodeT>
void IVFLOPQ::encode(const float* x, int64_t n, CodeT* codes) const {
  const int64_t width = 1 + M_;
#pragma omp parallel
  {
    std::vector<float> frame(D_);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < (n + kBlock - 1) / kBlock; ++b) {
      const int64_t i0 = b * kBlock, nb = std::min(kBlock, n - i0);
      int32_t cells[kBlock];
      coarse_nearest_.nearest(x + i0 * D_, nb, D_, cells);
      for (int64_t i = 0; i < nb; ++i) {
        const int64_t c = cells[i];
        CodeT* code = codes + (i0 + i) * width;
        code[0] = static_cast<CodeT>(c);
        project_one(x + (i0 + i) * D_, c, frame.data());
        for (int64_t m = 0; m < M_; ++m) {
          int32_t j;
          fine_nearest_[c * M_ + m].nearest(frame.data() + m * dsub_, 1, D_, &j);
          code[1 + m] = static_cast<CodeT>(j);
        }
      }
    }
  }
}

template <typename CodeT>
void IVFLOPQ::decode(const CodeT* codes, int64_t n, float* x) const {
  const int64_t width = 1 + M_;
#pragma omp parallel
  {
    std::vector<float> q(D_);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const CodeT* code = codes + i * width;
      const int64_t c = code[0];
      const float* cw = codewords_.data() + c * M_ * Ks_ * dsub_;
      for (int64_t m = 0; m < M_; ++m)
        std::memcpy(q.data() + m * dsub_, cw + (m * Ks_ + code[1 + m]) * dsub_,
                    dsub_ * sizeof(float));
      const float* cen = coarse_.data() + c * D_;
      const float* mu = means_.data() + c * D_;
      const float* R = rotations_.data() + c * D_ * D_;
      float* out = x + i * D_;
      for (int64_t t = 0; t < D_; ++t) {  // x_t = C_t + mu_t + sum_j q_j R[t][j]
        const float* row = R + t * D_;
        float acc = 0;
        for (int64_t j = 0; j < D_; ++j) acc += q[j] * row[j];
        out[t] = cen[t] + mu[t] + acc;
      }
    }
  }
}

void IVFLOPQ::encode_u8(const float* x, int64_t n, uint8_t* codes) const { encode(x, n, codes); }
void IVFLOPQ::encode_u16(const float* x, int64_t n, uint16_t* codes) const {
  encode(x, n, codes);
}
void IVFLOPQ::decode_u8(const uint8_t* codes, int64_t n, float* x) const { decode(codes, n, x); }
void IVFLOPQ::decode_u16(const uint16_t* codes, int64_t n, float* x) const {
  decode(codes, n, x);
}

// -- the inverted file --------------------------------------------------------------

void IVFLOPQ::begin_index(const int64_t* counts) {
  bool ok;
  lists_.begin(counts, nlist_, M_, Ks_ > 256, &ok);
  if (!ok) throw std::invalid_argument("IVFLOPQ::begin_index: negative count");
}

template <typename CodeT>
void IVFLOPQ::fill_index(const CodeT* codes, int64_t m, int64_t first) {
  const int64_t width = 1 + M_;
  for (int64_t i = 0; i < m; ++i) lists_.fill(codes[i * width], first + i, codes + i * width + 1);
}

void IVFLOPQ::fill_index_u8(const uint8_t* codes, int64_t m, int64_t first) {
  fill_index(codes, m, first);
}
void IVFLOPQ::fill_index_u16(const uint16_t* codes, int64_t m, int64_t first) {
  fill_index(codes, m, first);
}

void IVFLOPQ::end_index() {
  if (!lists_.end())
    throw std::invalid_argument("IVFLOPQ::end_index: the codes filled differ from the counts");
}

void IVFLOPQ::get_offsets(int64_t* out) const {
  std::memcpy(out, lists_.offsets().data(), lists_.offsets().size() * sizeof(int64_t));
}

// -- search -------------------------------------------------------------------------

void IVFLOPQ::search(const float* queries, int64_t nq, int64_t k, int64_t nprobe, int64_t quota,
                     bool exact_quota, float* distances, int64_t* ids, int64_t* candidates,
                     int64_t* cells) const {
  if (k < 1) throw std::invalid_argument("IVFLOPQ::search: need k >= 1");
  if (Ks_ <= 256)
    search_impl(lists_.codes8(), queries, nq, k, nprobe, quota, exact_quota, distances, ids,
                candidates, cells);
  else
    search_impl(lists_.codes16(), queries, nq, k, nprobe, quota, exact_quota, distances, ids,
                candidates, cells);
}

template <typename FineT>
void IVFLOPQ::search_impl(const FineT* list_codes, const float* queries, int64_t nq, int64_t k,
                          int64_t nprobe, int64_t quota, bool exact_quota, float* distances,
                          int64_t* ids, int64_t* candidates, int64_t* cells) const {
  const auto list_id = [this](int64_t i) { return lists_.id(i); };
  const int64_t limit = nprobe > 0 ? std::min(nprobe, nlist_) : nlist_;
#pragma omp parallel
  {
    std::vector<float> coarse_dist(nlist_), frame(D_), table(M_ * Ks_);
    std::vector<int64_t> order(nlist_);
    std::vector<const float*> rows(M_);
    for (int64_t m = 0; m < M_; ++m) rows[m] = table.data() + m * Ks_;
#pragma omp for schedule(dynamic)
    for (int64_t q = 0; q < nq; ++q) {
      const float* y = queries + q * D_;
      for (int64_t c = 0; c < nlist_; ++c) coarse_dist[c] = l2sqr(y, coarse_.data() + c * D_, D_);
      std::iota(order.begin(), order.end(), int64_t(0));
      // cells by coarse distance, ties by the smaller cell id
      const auto closer = [&](int64_t a, int64_t b) {
        return coarse_dist[a] < coarse_dist[b] || (coarse_dist[a] == coarse_dist[b] && a < b);
      };
      std::partial_sort(order.begin(), order.begin() + limit, order.end(), closer);
      TopK<float> best(distances + q * k, ids + q * k, k);
      int64_t ncand = 0, nvisited = 0;
      for (int64_t r = 0; r < limit && (quota <= 0 || ncand < quota); ++r) {
        const int64_t c = order[r];
        ++nvisited;
        const int64_t begin = lists_.begin_of(c);
        int64_t end = lists_.end_of(c);
        if (begin == end) continue;
        if (exact_quota && quota > 0) end = std::min(end, begin + (quota - ncand));
        project_one(y, c, frame.data());
        const float* cw = codewords_.data() + c * M_ * Ks_ * dsub_;
        for (int64_t m = 0; m < M_; ++m)
          for (int64_t j = 0; j < Ks_; ++j)
            table[m * Ks_ + j] = l2sqr(frame.data() + m * dsub_, cw + (m * Ks_ + j) * dsub_, dsub_);
        adc::scan(list_codes, begin, end, M_, rows.data(), best, list_id);
        ncand += end - begin;
      }
      best.finish();
      candidates[q] = ncand;
      cells[q] = nvisited;
    }
  }
}

}  // namespace benchpq
