#include "code_kmeans.h"

#include <algorithm>
#include <random>
#include <string>
#include <unordered_set>
#include <utility>

#include "parallel.h"
#include "topk.h"

namespace benchpq {

std::vector<int64_t> distinct_code_rows(const uint8_t* codes, int64_t n, int64_t code_size,
                                        int64_t k, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> pick(0, n - 1);
  std::unordered_set<std::string> seen;
  seen.reserve(2 * k);
  std::vector<int64_t> rows;
  rows.reserve(k);
  auto try_add = [&](int64_t i) {
    if (seen.emplace(reinterpret_cast<const char*>(codes + i * code_size), code_size).second)
      rows.push_back(i);
  };
  for (int64_t a = 0; a < 4 * k + 1000 && static_cast<int64_t>(rows.size()) < k; ++a) try_add(pick(rng));
  if (static_cast<int64_t>(rows.size()) < k) {
    const int64_t start = pick(rng);
    for (int64_t s = 0; s < n && static_cast<int64_t>(rows.size()) < k; ++s) try_add((start + s) % n);
  }
  for (size_t r = 0; static_cast<int64_t>(rows.size()) < k; ++r) rows.push_back(rows[r]);
  return rows;
}

int64_t reseed_empty_clusters(int64_t n, int64_t k, int64_t* labels, std::vector<int64_t>& counts,
                              const std::function<double(int64_t)>& distance) {
  std::vector<int64_t> empty;
  for (int64_t c = 0; c < k; ++c)
    if (counts[c] == 0) empty.push_back(c);
  if (empty.empty()) return 0;
  const int64_t want = 2 * static_cast<int64_t>(empty.size()) + 64;
  // The `want` farthest points, as the smallest keys (-distance, id): farthest
  // first, ties by the smaller id.
  std::vector<std::pair<double, int64_t>> all;
#pragma omp parallel if (n > (int64_t(1) << 16))
  {
    std::vector<double> key(want);
    std::vector<int64_t> id(want);
    TopK<double> top(key.data(), id.data(), want);
#pragma omp for schedule(static) nowait
    for (int64_t i = 0; i < n; ++i) {
      const double d = distance(i);
      if (d > 0) top.push(-d, i);
    }
#pragma omp critical
    for (int64_t r = 0; r < top.size(); ++r) all.emplace_back(top.dist(r), top.id(r));
  }
  std::sort(all.begin(), all.end());
  size_t moved = 0;
  for (const auto& cand : all) {
    if (moved == empty.size()) break;
    const int64_t from = labels[cand.second];
    if (counts[from] < 2) continue;
    const int64_t to = empty[moved++];
    labels[cand.second] = to;
    --counts[from];
    counts[to] = 1;
  }
  return static_cast<int64_t>(moved);
}

}  // namespace benchpq
