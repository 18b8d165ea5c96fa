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
                     bool exact_quota, bool inner_product, float* distances, int64_t* ids,
                     int64_t* candidates, int64_t* cells) const {
  if (k < 1) throw std::invalid_argument("IVFLOPQ::search: need k >= 1");
  if (Ks_ <= 256)
    search_impl(lists_.codes8(), queries, nq, k, nprobe, quota, exact_quota, inner_product,
                distances, ids, candidates, cells);
  else
    search_impl(lists_.codes16(), queries, nq, k, nprobe, quota, exact_quota, inner_product,
                distances, ids, candidates, cells);
}

namespace {

constexpr int64_t kQueryBlock = 256;         // queries whose visits are listed at once
constexpr int64_t kTableBytes = 64 << 20;    // distance tables held at once
constexpr int kRotateRows = 8;               // visits of one cell rotated together
constexpr int64_t kVisits = 1 << 20;         // visits listed at once (12 MiB)

}  // namespace

// For a block of queries: (1) each query's cells in coarse order and the codes it scans
// in each (nprobe, quota); then, for as many of those queries as kTableBytes of tables
// allow, (2) their visits grouped by cell, (3) per cell, the visits' local frames computed
// kRotateRows at a time (the cell's rotation is read once per group, not once per query:
// at D = 784 it is 2.4 MB) and one distance table per visit, (4) per query, its lists
// scanned in coarse order with those tables: the same scan, bit for bit, as computing
// each table just before its list.
template <typename FineT>
void IVFLOPQ::search_impl(const FineT* list_codes, const float* queries, int64_t nq, int64_t k,
                          int64_t nprobe, int64_t quota, bool exact_quota,
                          bool inner_product, float* distances, int64_t* ids,
                          int64_t* candidates, int64_t* cells) const {
  const auto list_id = [this](int64_t i) { return lists_.id(i); };
  const int64_t limit = nprobe > 0 ? std::min(nprobe, nlist_) : nlist_;
  const int64_t block = std::max<int64_t>(1, std::min({nq, kQueryBlock, kVisits / limit}));
  const int64_t table_floats = M_ * Ks_;
  const int64_t max_tables = std::max<int64_t>(1, kTableBytes / (table_floats * 4));
  // visit i * limit + j: query i's j-th non-empty cell, and the end of the codes it scans
  std::vector<int32_t> visit_cell(block * limit);
  std::vector<int64_t> visit_end(block * limit), query_visits(block), cell_start(nlist_ + 1);
  std::vector<int64_t> by_cell, table_of;  // visits by cell; a visit's table (per query)
  std::vector<float> tables;
  for (int64_t q0 = 0; q0 < nq; q0 += block) {
    const int64_t nb = std::min(block, nq - q0);
    // (1)
#pragma omp parallel
    {
      std::vector<float> coarse_dist(nlist_);
      std::vector<int64_t> order(nlist_);
#pragma omp for schedule(dynamic)
      for (int64_t i = 0; i < nb; ++i) {
        const float* y = queries + (q0 + i) * D_;
        for (int64_t c = 0; c < nlist_; ++c)
          coarse_dist[c] = inner_product ? -inner(y, coarse_.data() + c * D_, D_)
                                         : l2sqr(y, coarse_.data() + c * D_, D_);
        std::iota(order.begin(), order.end(), int64_t(0));
        // cells by coarse distance, ties by the smaller cell id
        const auto closer = [&](int64_t a, int64_t b) {
          return coarse_dist[a] < coarse_dist[b] || (coarse_dist[a] == coarse_dist[b] && a < b);
        };
        std::partial_sort(order.begin(), order.begin() + limit, order.end(), closer);
        int64_t ncand = 0, nvisited = 0, count = 0;
        for (int64_t r = 0; r < limit && (quota <= 0 || ncand < quota); ++r) {
          const int64_t c = order[r];
          ++nvisited;
          const int64_t begin = lists_.begin_of(c);
          int64_t end = lists_.end_of(c);
          if (begin == end) continue;
          if (exact_quota && quota > 0) end = std::min(end, begin + (quota - ncand));
          visit_cell[i * limit + count] = static_cast<int32_t>(c);
          visit_end[i * limit + count] = end;
          ++count;
          ncand += end - begin;
        }
        query_visits[i] = count;
        candidates[q0 + i] = ncand;
        cells[q0 + i] = nvisited;
      }
    }
    for (int64_t ia = 0; ia < nb;) {
      // the queries [ia, ib) whose tables fit (at least one query)
      int64_t ib = ia, ntables = 0;
      while (ib < nb && (ib == ia || ntables + query_visits[ib] <= max_tables))
        ntables += query_visits[ib++];
      // (2) table u of the sub-block = its u-th visit in query order; grouped by cell
      table_of.assign(ib - ia + 1, 0);
      for (int64_t i = ia; i < ib; ++i) table_of[i - ia + 1] = table_of[i - ia] + query_visits[i];
      std::fill(cell_start.begin(), cell_start.end(), 0);
      for (int64_t i = ia; i < ib; ++i)
        for (int64_t j = 0; j < query_visits[i]; ++j) ++cell_start[visit_cell[i * limit + j] + 1];
      std::partial_sum(cell_start.begin(), cell_start.end(), cell_start.begin());
      by_cell.resize(ntables * 2);  // (query, visit) pairs
      {
        std::vector<int64_t> fill(cell_start.begin(), cell_start.end() - 1);
        for (int64_t i = ia; i < ib; ++i)
          for (int64_t j = 0; j < query_visits[i]; ++j) {
            const int64_t at = fill[visit_cell[i * limit + j]]++;
            by_cell[2 * at] = i;
            by_cell[2 * at + 1] = j;
          }
      }
      if (static_cast<int64_t>(tables.size()) < ntables * table_floats)
        tables.resize(ntables * table_floats);
      // (3)
#pragma omp parallel
      {
        std::vector<float> res(kRotateRows * D_), frames(kRotateRows * D_);
#pragma omp for schedule(dynamic)
        for (int64_t c = 0; c < nlist_; ++c) {
          const float* cen = coarse_.data() + c * D_;
          const float* mu = means_.data() + c * D_;
          const float* R = rotations_.data() + c * D_ * D_;
          for (int64_t g = cell_start[c]; g < cell_start[c + 1]; g += kRotateRows) {
            const int64_t ng = std::min<int64_t>(kRotateRows, cell_start[c + 1] - g);
            for (int64_t p = 0; p < ng; ++p) {
              const float* y = queries + (q0 + by_cell[2 * (g + p)]) * D_;
              if (inner_product)  // <y, x_hat> = <y, C + mu> + <y R, q>: y itself is rotated
                std::copy(y, y + D_, res.data() + p * D_);
              else
                for (int64_t t = 0; t < D_; ++t) res[p * D_ + t] = y[t] - cen[t] - mu[t];
            }
            if (ng == kRotateRows)
              rows_times<kRotateRows>(res.data(), D_, R, D_, D_, frames.data(), D_);
            else
              for (int64_t p = 0; p < ng; ++p)
                rows_times<1>(res.data() + p * D_, D_, R, D_, D_, frames.data() + p * D_, D_);
            for (int64_t p = 0; p < ng; ++p) {
              const int64_t i = by_cell[2 * (g + p)], j = by_cell[2 * (g + p) + 1];
              float* table = tables.data() + (table_of[i - ia] + j) * table_floats;
              const float* frame = frames.data() + p * D_;
              if (!inner_product) {
                for (int64_t m = 0; m < M_; ++m)
                  fine_nearest_[c * M_ + m].distances(frame + m * dsub_, table + m * Ks_);
                continue;
              }
              for (int64_t m = 0; m < M_; ++m)
                negated_inner_products(frame + m * dsub_,
                                       codewords_.data() + (c * M_ + m) * Ks_ * dsub_, Ks_,
                                       dsub_, table + m * Ks_);
              const float* y = queries + (q0 + i) * D_;
              const float offset = inner(y, cen, D_) + inner(y, mu, D_);
              for (int64_t u = 0; u < Ks_; ++u) table[u] -= offset;
            }
          }
        }
      }
      // (4)
#pragma omp parallel
      {
        std::vector<const float*> rows(M_);
#pragma omp for schedule(dynamic)
        for (int64_t i = ia; i < ib; ++i) {
          TopK<float> best(distances + (q0 + i) * k, ids + (q0 + i) * k, k);
          for (int64_t j = 0; j < query_visits[i]; ++j) {
            const float* table = tables.data() + (table_of[i - ia] + j) * table_floats;
            for (int64_t m = 0; m < M_; ++m) rows[m] = table + m * Ks_;
            const int64_t c = visit_cell[i * limit + j];
            adc::scan(list_codes, lists_.begin_of(c), visit_end[i * limit + j], M_, rows.data(),
                      best, list_id);
          }
          best.finish();
        }
      }
      ia = ib;
    }
  }
}

}  // namespace benchpq
