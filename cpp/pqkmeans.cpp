#include "pqkmeans.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>
#include <vector>

#include "internal/code_kmeans.h"
#include "internal/parallel.h"
#include "internal/simd.h"
#include "internal/topk.h"

namespace benchpq {
namespace {

constexpr int64_t kTile = 16;               // centres scored per step (two v8)
constexpr int64_t kPointChunk = 2048;       // points per work item: a table block serves them all
constexpr int64_t kBlockBytes = int64_t(1) << 20;  // table bytes per block of centres (in L2)
constexpr int64_t kParallelWork = int64_t(1) << 16;  // below this, a parallel region costs more

// The symmetric distance of one code to one centre, summed in float in sub-space order
// (as every assignment sums it, so that all give the same bits).
inline float sdc_distance(const float* tables, int64_t M, int64_t Ks, const uint8_t* code,
                          const uint8_t* center) {
  float s = 0.0f;
  for (int64_t m = 0; m < M; ++m) s += tables[(m * Ks + code[m]) * Ks + center[m]];
  return s;
}

// T_m[a][c_m(j)] for all m, a and centres j, in blocks of centres: block b
// holds (M, Ks, w_b) floats, w_b a multiple of 16; padding columns are +inf
// in sub-space 0 and 0 elsewhere, so their sums are +inf and never chosen.
class CenterTable {
 public:
  CenterTable(const float* tables, int64_t M, int64_t Ks, const uint8_t* centers, int64_t k)
      : M_(M), Ks_(Ks) {
    int64_t kb = kBlockBytes / (M * Ks * static_cast<int64_t>(sizeof(float))) / kTile * kTile;
    kb = std::max(kTile, std::min<int64_t>(1024, kb));
    int64_t total = 0;
    for (int64_t j0 = 0; j0 < k; j0 += kb) {
      const int64_t w = (std::min(kb, k - j0) + kTile - 1) / kTile * kTile;
      start_.push_back(j0);
      width_.push_back(w);
      offset_.push_back(total);
      total += M * Ks * w;
    }
    data_.resize(total);
    const float inf = std::numeric_limits<float>::infinity();
    const int64_t nblocks = static_cast<int64_t>(start_.size());
#pragma omp parallel for collapse(2) schedule(static) if (total > kParallelWork)
    for (int64_t b = 0; b < nblocks; ++b)
      for (int64_t ma = 0; ma < M * Ks; ++ma) {
        const int64_t m = ma / Ks, w = width_[b], j0 = start_[b];
        const float* t = tables + ma * Ks;
        float* row = data_.data() + offset_[b] + ma * w;
        for (int64_t jj = 0; jj < w; ++jj) {
          const int64_t j = j0 + jj;
          row[jj] = j < k ? t[centers[j * M + m]] : (m == 0 ? inf : 0.0f);
        }
      }
  }

  // dist (cnt, k): the distance of each of the cnt codes to every centre.
  template <int MF>
  void distances(const uint8_t* codes, int64_t cnt, int64_t k, float* dist,
                 const float** rows) const {
    const int64_t M = MF ? MF : M_;
    for (size_t b = 0; b < start_.size(); ++b) {
      const float* block = data_.data() + offset_[b];
      const int64_t w = width_[b], j0 = start_[b], valid = std::min(w, k - j0);
      for (int64_t i = 0; i < cnt; ++i) {
        const uint8_t* code = codes + i * M;
        for (int64_t m = 0; m < M; ++m) rows[m] = block + (m * Ks_ + code[m]) * w;
        float* out = dist + i * k + j0;
        for (int64_t jj = 0; jj < w; jj += kTile) {
          v8 s0, s1;
          tile_sums<MF>(rows, M, jj, s0, s1);
          float tmp[kTile];
          store8(tmp, s0);
          store8(tmp + 8, s1);
          std::memcpy(out + jj, tmp, std::min(kTile, valid - jj) * sizeof(float));
        }
      }
    }
  }

  // Nearest centre of each of the cnt codes (ties: smaller index): best_d, best_j out.
  template <int MF>
  void nearest(const uint8_t* codes, int64_t cnt, float* best_d, int64_t* best_j,
               const float** rows) const {
    const int64_t M = MF ? MF : M_;
    std::fill(best_d, best_d + cnt, std::numeric_limits<float>::infinity());
    std::fill(best_j, best_j + cnt, 0);
    for (size_t b = 0; b < start_.size(); ++b) {
      const float* block = data_.data() + offset_[b];
      const int64_t w = width_[b], j0 = start_[b];
      for (int64_t i = 0; i < cnt; ++i) {
        const uint8_t* code = codes + i * M;
        for (int64_t m = 0; m < M; ++m) rows[m] = block + (m * Ks_ + code[m]) * w;
        scan<MF>(rows, M, w, j0, best_d[i], best_j[i]);
      }
    }
  }

 private:
  // s0, s1: the sums of the M rows over columns jj .. jj + 15, in sub-space order (as the library).
  template <int MF>
  static void tile_sums(const float* const* rows, int64_t M_rt, int64_t jj, v8& s0, v8& s1) {
    const int64_t M = MF ? MF : M_rt;
    s0 = load8(rows[0] + jj);
    s1 = load8(rows[0] + jj + 8);
    for (int64_t m = 1; m < M; ++m) {
      s0 += load8(rows[m] + jj);
      s1 += load8(rows[m] + jj + 8);
    }
  }

  template <int MF>
  static void scan(const float* const* rows, int64_t M_rt, int64_t w, int64_t j0, float& best,
                   int64_t& best_j) {
    const int64_t M = MF ? MF : M_rt;
    ArgMin16 argmin;
    for (int64_t jj = 0; jj < w; jj += kTile) {
      v8 s0, s1;
      tile_sums<MF>(rows, M, jj, s0, s1);
      argmin.offer(s0, s1, static_cast<int32_t>(jj));
    }
    float bv;
    int32_t bj;
    argmin.result(bv, bj);
    if (bv < best) {
      best = bv;
      best_j = j0 + bj;
    }
  }

  int64_t M_, Ks_;
  std::vector<int64_t> start_, width_, offset_;
  std::vector<float> data_;
};

// The nearest centre of every code, chunk by chunk on all threads: nearest(i0, cnt, best,
// labels + i0, workspace) fills the cnt best distances and labels of codes i0 .. i0 + cnt,
// make_workspace() gives each thread its buffers. Writes distances unless null; returns
// the sum of the distances, added in chunk order (the same for any number of threads).
template <typename MakeWorkspace, typename Nearest>
double assign_chunks(int64_t n, int64_t chunk, int64_t* labels, float* distances,
                     MakeWorkspace make_workspace, Nearest nearest) {
  const int64_t nchunks = (n + chunk - 1) / chunk;
  std::vector<double> partial(nchunks);
#pragma omp parallel if (nchunks > 1)
  {
    auto workspace = make_workspace();
    std::vector<float> best(chunk);
#pragma omp for schedule(dynamic)
    for (int64_t c = 0; c < nchunks; ++c) {
      const int64_t i0 = c * chunk, cnt = std::min(chunk, n - i0);
      nearest(i0, cnt, best.data(), labels + i0, workspace);
      double s = 0;
      for (int64_t i = 0; i < cnt; ++i) s += best[i];
      partial[c] = s;
      if (distances) std::memcpy(distances + i0, best.data(), cnt * sizeof(float));
    }
  }
  double total = 0;
  for (double s : partial) total += s;
  return total;
}

template <int MF>
double assign_all(const uint8_t* codes, int64_t n, int64_t M, const CenterTable& table,
                  int64_t* labels, float* distances) {
  return assign_chunks(
      n, kPointChunk, labels, distances, [M] { return std::vector<const float*>(M); },
      [&](int64_t i0, int64_t cnt, float* best, int64_t* out, std::vector<const float*>& rows) {
        table.nearest<MF>(codes + i0 * M, cnt, best, out, rows.data());
      });
}

double assign(const uint8_t* codes, int64_t n, int64_t M, int64_t Ks, const float* tables,
              const uint8_t* centers, int64_t k, int64_t* labels, float* distances) {
  const CenterTable table(tables, M, Ks, centers, k);
  switch (M) {
    case 4: return assign_all<4>(codes, n, M, table, labels, distances);
    case 8: return assign_all<8>(codes, n, M, table, labels, distances);
    case 16: return assign_all<16>(codes, n, M, table, labels, distances);
    default: return assign_all<0>(codes, n, M, table, labels, distances);
  }
}

double assign_grouped(const uint8_t* codes, int64_t n, int64_t M, int64_t Ks, const float* tables,
                      const uint8_t* centers, int64_t k, int64_t groups, int64_t probe,
                      uint64_t seed, const int64_t* previous, int64_t* labels, float* distances);

// vote[b] = sum_a h[a] T[a][b] in float, a ascending; returns argmin_b (ties:
// smaller b). No fused multiply-add, so that the sums are the library's.
__attribute__((optimize("fp-contract=off")))
int64_t vote_argmin(const uint32_t* h, const float* T, int64_t Ks, float* vote) {
  std::fill(vote, vote + Ks, 0.0f);
  for (int64_t a = 0; a < Ks; ++a) {
    if (h[a] == 0) continue;
    const float f = static_cast<float>(h[a]);
    const float* row = T + a * Ks;
    for (int64_t b = 0; b < Ks; ++b) vote[b] += f * row[b];
  }
  float bv = std::numeric_limits<float>::infinity();
  int64_t bi = 0;
  for (int64_t b = 0; b < Ks; ++b)
    if (vote[b] < bv) {
      bv = vote[b];
      bi = b;
    }
  return bi;
}

// Sparse voting. counts (k) and hist (k, M, Ks) are workspace.
int64_t vote_update(const uint8_t* codes, int64_t n, int64_t M, int64_t Ks, const float* tables,
                    const int64_t* labels, int64_t k, uint8_t* centers,
                    std::vector<int64_t>& counts, std::vector<uint32_t>& hist) {
  std::fill(hist.begin(), hist.end(), 0u);
  gather_by_cluster(n, k, labels, n > kParallelWork, counts, [&](int64_t c, int64_t i) {
    uint32_t* h = hist.data() + c * M * Ks;
    const uint8_t* code = codes + i * M;
    for (int64_t m = 0; m < M; ++m) ++h[m * Ks + code[m]];
  });
  int64_t changed = 0;
#pragma omp parallel reduction(+ : changed) if (n > kParallelWork)
  {
    std::vector<float> vote(Ks);
#pragma omp for schedule(dynamic, 16)
    for (int64_t c = 0; c < k; ++c) {
      if (counts[c] == 0) continue;
      bool diff = false;
      for (int64_t m = 0; m < M; ++m) {
        const uint8_t code = static_cast<uint8_t>(
            vote_argmin(hist.data() + (c * M + m) * Ks, tables + m * Ks * Ks, Ks, vote.data()));
        diff |= centers[c * M + m] != code;
        centers[c * M + m] = code;
      }
      changed += diff;
    }
  }
  return changed;
}

// PQ codes under the symmetric distance, for the shared k-means loop (code_kmeans.h).
struct PQCodeSpace {
  // groups == 0: exhaustive assignment; else grouped (assign_grouped), where
  // from the second assignment on each code's previous centre is a candidate too.
  PQCodeSpace(const uint8_t* codes, int64_t n, int64_t M, int64_t Ks, const float* tables,
              int64_t k, int64_t groups = 0, int64_t probe = 0, uint64_t seed = 0)
      : code_bytes(M), codes_(codes), n_(n), Ks_(Ks), k_(k), groups_(groups), probe_(probe),
        seed_(seed), tables_(tables), hist_(k * M * Ks) {}

  double assign(const uint8_t* centers, int64_t* labels) {
    const bool has_previous = assigned_++ > 0;
    if (groups_ == 0)
      return benchpq::assign(codes_, n_, code_bytes, Ks_, tables_, centers, k_, labels, nullptr);
    return assign_grouped(codes_, n_, code_bytes, Ks_, tables_, centers, k_, groups_, probe_,
                          seed_, has_previous ? labels : nullptr, labels, nullptr);
  }

  double distance(int64_t i, const uint8_t* center) const {
    return sdc_distance(tables_, code_bytes, Ks_, codes_ + i * code_bytes, center);
  }

  // pqkmeans' InitializeCentersByRandomPicking
  void library_init(uint64_t seed, uint8_t* centers) const {
    if (n_ > INT_MAX) throw std::invalid_argument("pqkmeans: the library's init needs n <= INT_MAX");
    std::vector<int> ids(n_);
    std::iota(ids.begin(), ids.end(), 0);
    std::mt19937 random_engine(static_cast<std::mt19937::result_type>(seed));
    std::shuffle(ids.begin(), ids.end(), random_engine);
    for (int64_t j = 0; j < k_; ++j)
      std::memcpy(centers + j * code_bytes, codes_ + int64_t(ids[j]) * code_bytes, code_bytes);
  }

  int64_t update(const int64_t* labels, uint8_t* centers, std::vector<int64_t>& counts) {
    return vote_update(codes_, n_, code_bytes, Ks_, tables_, labels, k_, centers, counts, hist_);
  }

  const int64_t code_bytes;  // M

 private:
  const uint8_t* codes_;
  int64_t n_, Ks_, k_, groups_, probe_;
  uint64_t seed_;
  int64_t assigned_ = 0;
  const float* tables_;
  std::vector<uint32_t> hist_;  // (k, M, Ks) workspace of the update
};


constexpr int kGroupIter = 10;           // PQk-means iterations that group the centres
constexpr int64_t kGroupChunk = 16384;   // most points per work item of the grouped assignment
constexpr int64_t kRepChunk = 256;       // points scored against the group centres at a time

// The grouped assignment: a nearest-centre search over the centres in the
// code domain, as the PQk-means paper proposes for large k, with exact
// re-checking. The k centres are themselves clustered by PQk-means into
// `groups` groups (kGroupIter iterations, distinct-code init, seeded); a code
// is scored against the group centres, and exactly, with the symmetric
// distance, against every member of its `probe` nearest groups (and its
// previous centre, if given). Each group's members have a CenterTable of
// their own; a chunk of codes is bucketed by group so that a group's table is
// read once per chunk, not once per code. The sums run in sub-space order as
// in the exhaustive scan, so with probe == groups the labels and distances
// are the exhaustive ones bit for bit. Ties: the smaller centre index.
class CenterGroups {
 public:
  CenterGroups(const float* tables, int64_t M, int64_t Ks, const uint8_t* centers, int64_t k,
               int64_t groups, int64_t probe, uint64_t seed)
      : M_(M), Ks_(Ks), G_(std::min(groups, k)), probe_(std::min(probe, G_)), tables_(tables),
        start_(G_ + 1, 0), member_(k) {
    std::vector<uint8_t> group_centers(G_ * M);
    std::vector<int64_t> group_of(k);
    std::vector<double> objective(kGroupIter), seconds(kGroupIter);
    PQCodeSpace space(centers, k, M, Ks, tables, G_);
    code_kmeans("pqkmeans groups", centers, k, G_, kGroupIter, CODE_KMEANS_INIT_DISTINCT,
                CODE_KMEANS_EMPTY_FARTHEST, seed, space, group_centers.data(), group_of.data(),
                objective.data(), seconds.data());
    for (int64_t j = 0; j < k; ++j) ++start_[group_of[j] + 1];
    for (int64_t g = 0; g < G_; ++g) start_[g + 1] += start_[g];
    std::vector<int64_t> fill(start_.begin(), start_.end() - 1);
    for (int64_t j = 0; j < k; ++j) member_[fill[group_of[j]]++] = j;  // increasing index
    reps_ = std::make_unique<CenterTable>(tables, M, Ks, group_centers.data(), G_);
    members_.resize(G_);
#pragma omp parallel
    {
      std::vector<uint8_t> codes;
#pragma omp for schedule(dynamic)
      for (int64_t g = 0; g < G_; ++g) {
        const int64_t w = start_[g + 1] - start_[g];
        if (w == 0) continue;
        codes.resize(w * M);
        for (int64_t s = 0; s < w; ++s)
          std::memcpy(codes.data() + s * M, centers + member_[start_[g] + s] * M, M);
        members_[g] = std::make_unique<CenterTable>(tables, M, Ks, codes.data(), w);
      }
    }
  }

  int64_t groups() const { return G_; }
  int64_t probe() const { return probe_; }

  // Per-thread buffers of nearest() for chunks of up to chunk codes.
  struct Workspace {
    Workspace(const CenterGroups& index, int64_t M, int64_t chunk)
        : dist(kRepChunk * index.G_), heap_d(index.probe_), heap_g(index.probe_),
          group(chunk * index.probe_), order(chunk * index.probe_), count(index.G_ + 1),
          fill(index.G_), rows(M) {}
    std::vector<float> dist, heap_d;
    std::vector<int64_t> heap_g;
    std::vector<int32_t> group, order;
    std::vector<int64_t> count, fill;
    std::vector<const float*> rows;
  };

  // The nearest centre of each of the cnt codes: best_d, best_j (cnt,) out;
  // previous (cnt,) or null.
  template <int MF>
  void nearest(const uint8_t* codes, int64_t cnt, const int64_t* previous, const uint8_t* centers,
               float* best_d, int64_t* best_j, Workspace& ws) const {
    const int64_t M = MF ? MF : M_;
    for (int64_t i = 0; i < cnt; ++i) {  // previous may be best_j: read before writing
      const int64_t j = previous ? previous[i] : -1;
      best_d[i] = std::numeric_limits<float>::infinity();
      best_j[i] = 0;
      if (j >= 0) {
        best_d[i] = sdc_distance(tables_, M, Ks_, codes + i * M, centers + j * M);
        best_j[i] = j;
      }
    }
    // the probe nearest groups of every code, then the codes bucketed by group
    std::fill(ws.count.begin(), ws.count.end(), 0);
    for (int64_t i0 = 0; i0 < cnt; i0 += kRepChunk) {
      const int64_t sub = std::min(kRepChunk, cnt - i0);
      reps_->distances<MF>(codes + i0 * M, sub, G_, ws.dist.data(), ws.rows.data());
      for (int64_t i = 0; i < sub; ++i) {
        TopK<float> top(ws.heap_d.data(), ws.heap_g.data(), probe_);
        const float* d = ws.dist.data() + i * G_;
        for (int64_t g = 0; g < G_; ++g)
          if (d[g] <= top.threshold()) top.push(d[g], g);
        int32_t* out = ws.group.data() + (i0 + i) * probe_;
        for (int64_t p = 0; p < probe_; ++p) {
          out[p] = static_cast<int32_t>(ws.heap_g[p]);
          ++ws.count[ws.heap_g[p] + 1];
        }
      }
    }
    for (int64_t g = 0; g < G_; ++g) ws.count[g + 1] += ws.count[g];
    std::copy(ws.count.begin(), ws.count.end() - 1, ws.fill.begin());
    for (int64_t i = 0; i < cnt; ++i)
      for (int64_t p = 0; p < probe_; ++p)
        ws.order[ws.fill[ws.group[i * probe_ + p]]++] = static_cast<int32_t>(i);
    for (int64_t g = 0; g < G_; ++g) {
      if (ws.count[g] == ws.count[g + 1]) continue;
      const CenterTable& table = *members_[g];
      for (int64_t q = ws.count[g]; q < ws.count[g + 1]; ++q) {
        const int64_t i = ws.order[q];
        float v;
        int64_t local;
        table.nearest<MF>(codes + i * M, 1, &v, &local, ws.rows.data());
        const int64_t j = member_[start_[g] + local];
        if (v < best_d[i] || (v == best_d[i] && j < best_j[i])) {
          best_d[i] = v;
          best_j[i] = j;
        }
      }
    }
  }

 private:
  int64_t M_, Ks_, G_, probe_;
  const float* tables_;
  std::vector<int64_t> start_, member_;  // group g holds centres member_[start_[g] .. start_[g + 1])
  std::unique_ptr<CenterTable> reps_;    // the group centres
  std::vector<std::unique_ptr<CenterTable>> members_;  // each group's members, in that order
};

template <int MF>
double assign_grouped_all(const uint8_t* codes, int64_t n, int64_t M, const CenterGroups& index,
                          const uint8_t* centers, const int64_t* previous, int64_t* labels,
                          float* distances) {
  // results do not depend on the chunks, so they may follow the thread count
  const int64_t per_thread = (n + 4 * omp_get_max_threads() - 1) / (4 * omp_get_max_threads());
  const int64_t chunk = std::max<int64_t>(kRepChunk, std::min(kGroupChunk, per_thread));
  return assign_chunks(
      n, chunk, labels, distances, [&] { return CenterGroups::Workspace(index, M, chunk); },
      [&](int64_t i0, int64_t cnt, float* best, int64_t* out, CenterGroups::Workspace& ws) {
        index.nearest<MF>(codes + i0 * M, cnt, previous ? previous + i0 : nullptr, centers, best,
                          out, ws);
      });
}

double assign_grouped(const uint8_t* codes, int64_t n, int64_t M, int64_t Ks, const float* tables,
                      const uint8_t* centers, int64_t k, int64_t groups, int64_t probe,
                      uint64_t seed, const int64_t* previous, int64_t* labels, float* distances) {
  const CenterGroups index(tables, M, Ks, centers, k, groups, probe, seed);
  switch (M) {
    case 4: return assign_grouped_all<4>(codes, n, M, index, centers, previous, labels, distances);
    case 8: return assign_grouped_all<8>(codes, n, M, index, centers, previous, labels, distances);
    case 16: return assign_grouped_all<16>(codes, n, M, index, centers, previous, labels, distances);
    default: return assign_grouped_all<0>(codes, n, M, index, centers, previous, labels, distances);
  }
}

}  // namespace

__attribute__((optimize("fp-contract=off")))
void pqkmeans_tables(const float* codewords, int64_t M, int64_t Ks, int64_t dsub, float* tables) {
#pragma omp parallel for collapse(2) schedule(static) if (M * Ks * Ks * dsub > kParallelWork)
  for (int64_t m = 0; m < M; ++m)
    for (int64_t a = 0; a < Ks; ++a) {
      const float* ca = codewords + (m * Ks + a) * dsub;
      for (int64_t b = 0; b < Ks; ++b) {
        const float* cb = codewords + (m * Ks + b) * dsub;
        float s = 0.0f;
        for (int64_t t = 0; t < dsub; ++t) s += (ca[t] - cb[t]) * (ca[t] - cb[t]);
        tables[(m * Ks + a) * Ks + b] = s;
      }
    }
}

int pqkmeans(const uint8_t* codes, int64_t n, int64_t M, int64_t Ks, const float* tables,
             int64_t k, int niter, int init, int empty, int64_t groups, int64_t probe,
             uint64_t seed, uint8_t* centers, int64_t* labels, double* objective,
             double* iter_seconds) {
  if (k < 1 || k > n || niter < 1 || M < 1 || Ks < 1 || Ks > 256)
    throw std::invalid_argument("pqkmeans: need 1 <= k <= n, niter >= 1, M >= 1, 1 <= Ks <= 256");
  if (groups < 0 || (groups > 0 && probe < 1))
    throw std::invalid_argument("pqkmeans: need groups >= 0, and probe >= 1 when groups > 0");
  PQCodeSpace space(codes, n, M, Ks, tables, k, groups, probe, seed);
  return code_kmeans("pqkmeans", codes, n, k, niter, init, empty, seed, space, centers, labels,
                     objective, iter_seconds);
}

void pqkmeans_assign(const uint8_t* codes, int64_t n, int64_t M, int64_t Ks, const float* tables,
                     const uint8_t* centers, int64_t k, int64_t groups, int64_t probe,
                     uint64_t seed, int64_t* labels, float* distances) {
  if (groups < 0 || (groups > 0 && probe < 1))
    throw std::invalid_argument("pqkmeans_assign: need groups >= 0, and probe >= 1 when groups > 0");
  if (groups == 0)
    assign(codes, n, M, Ks, tables, centers, k, labels, distances);
  else
    assign_grouped(codes, n, M, Ks, tables, centers, k, groups, probe, seed, nullptr, labels,
                   distances);
}

int64_t pqkmeans_update(const uint8_t* codes, int64_t n, int64_t M, int64_t Ks,
                        const float* tables, const int64_t* labels, int64_t k, uint8_t* centers) {
  std::vector<int64_t> counts(k);
  std::vector<uint32_t> hist(k * M * Ks);
  return vote_update(codes, n, M, Ks, tables, labels, k, centers, counts, hist);
}

}  // namespace benchpq
