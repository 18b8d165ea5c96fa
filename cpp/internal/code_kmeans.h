// k-means over compressed codes, where centres are codes too: the loop
// shared by PQk-means (pqkmeans.h) and Bk-means (bkmeans.h), parametrised by
// the code space (its distance, assignment and centre update), with the
// initialisations and the empty-cluster rule (CodeKMeansInit and
// CodeKMeansEmpty, modes.h).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "../modes.h"
#include "parallel.h"

namespace benchpq {

/// k row indices of codes (n, code_size) with pairwise distinct code values
/// (CODE_KMEANS_INIT_DISTINCT, deterministic for a seed): up to 4k + 1000
/// uniform draws with replacement, duplicates of a value already chosen
/// skipped, then a scan from a random row if values are still missing; when
/// the data hold fewer than k distinct values the chosen rows repeat.
std::vector<int64_t> distinct_code_rows(const uint8_t* codes, int64_t n, int64_t code_size,
                                        int64_t k, uint64_t seed);

/// The CODE_KMEANS_EMPTY_FARTHEST rule (modes.h). labels (n,) and counts (k,) are
/// updated in place; distance(i) is point i's distance to its own centre
/// (called from several threads). Returns the number of points moved.
int64_t reseed_empty_clusters(int64_t n, int64_t k, int64_t* labels, std::vector<int64_t>& counts,
                              const std::function<double(int64_t)>& distance);

/// counts (k,) = the cluster sizes, and add(c, i) called for every point i
/// of cluster c = labels[i] (the statistics of a centre update): each thread
/// owns a range of clusters and scans all points in order, so a cluster's
/// statistics are accumulated by one thread in point order, with no shared
/// sums and the same result for any number of threads.
template <typename Add>
void gather_by_cluster(int64_t n, int64_t k, const int64_t* labels, bool parallel,
                       std::vector<int64_t>& counts, Add add) {
  std::fill(counts.begin(), counts.end(), 0);
#pragma omp parallel if (parallel)
  {
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t c0 = k * t / nt, c1 = k * (t + 1) / nt;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t c = labels[i];
      if (c < c0 || c >= c1) continue;
      ++counts[c];
      add(c, i);
    }
  }
}

/// The k-means loop over the codes (n, space.code_bytes) uint8 of a code
/// space: niter assignment steps with an update between consecutive ones
/// (niter - 1 updates, as the pqkmeans library), stopping early when an
/// update changes no centre and moves no point. Arguments and outputs as
/// pqkmeans() and bkmeans() document them; name prefixes error messages.
///
/// Space provides:
///   int64_t code_bytes;                         bytes per code and per centre
///   double assign(const uint8_t* centers, int64_t* labels);
///       nearest centre of every code; returns the sum of the distances
///   double distance(int64_t i, const uint8_t* center);
///       code i to one centre (called from several threads)
///   void library_init(uint64_t seed, uint8_t* centers);
///       the pqkmeans library's own initialisation (CODE_KMEANS_INIT_LIBRARY)
///   int64_t update(const int64_t* labels, uint8_t* centers, std::vector<int64_t>& counts);
///       new centres from the labels (empty clusters keep theirs), counts
///       (k,) set to the cluster sizes; returns the number of centres changed
template <typename Space>
int code_kmeans(const char* name, const uint8_t* codes, int64_t n, int64_t k, int niter, int init,
                int empty, uint64_t seed, Space& space, uint8_t* centers, int64_t* labels,
                double* objective, double* iter_seconds) {
  const int64_t w = space.code_bytes;
  if (empty != CODE_KMEANS_EMPTY_FARTHEST && empty != CODE_KMEANS_EMPTY_KEEP)
    throw std::invalid_argument(std::string(name) + ": unknown empty (expected a CodeKMeansEmpty)");
  if (init == CODE_KMEANS_INIT_DISTINCT) {
    const std::vector<int64_t> rows = distinct_code_rows(codes, n, w, k, seed);
    for (int64_t j = 0; j < k; ++j) std::memcpy(centers + j * w, codes + rows[j] * w, w);
  } else if (init == CODE_KMEANS_INIT_LIBRARY) {
    space.library_init(seed, centers);
  } else if (init != CODE_KMEANS_INIT_GIVEN) {
    throw std::invalid_argument(std::string(name) + ": unknown init (expected a CodeKMeansInit)");
  }
  std::vector<int64_t> counts(k);
  int ran = 0;
  for (int it = 0; it < niter; ++it) {
    const auto t0 = std::chrono::steady_clock::now();
    objective[it] = space.assign(centers, labels);
    ran = it + 1;
    int64_t moved = 0, changed = 0;
    if (it + 1 < niter) {
      if (empty == CODE_KMEANS_EMPTY_FARTHEST) {
        std::fill(counts.begin(), counts.end(), 0);
        for (int64_t i = 0; i < n; ++i) ++counts[labels[i]];
        moved = reseed_empty_clusters(n, k, labels, counts, [&](int64_t i) {
          return space.distance(i, centers + labels[i] * w);
        });
      }
      changed = space.update(labels, centers, counts);
    }
    iter_seconds[it] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (it + 1 < niter && changed == 0 && moved == 0) break;  // the next assignment would repeat
  }
  return ran;
}

}  // namespace benchpq
