// Shared by PQk-means (pqkmeans.h) and Bk-means (bkmeans.h): k-means over
// compressed codes, where centres are codes too. Initialisation modes, the
// empty-cluster rule and their helpers.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace benchpq {

/// k distinct code values, drawn uniformly among the n rows (so a value is
/// drawn with probability proportional to its frequency); O(k) memory.
constexpr int CODE_KMEANS_INIT_DISTINCT = 0;
/// As the pqkmeans library's own class does with seed 0: PQKMeans shuffles
/// the row ids with std::shuffle(std::mt19937(seed)) and takes the first k;
/// BKMeans draws k rows with replacement by
/// std::uniform_int_distribution<unsigned long>(0, n - 1) on std::mt19937(seed).
constexpr int CODE_KMEANS_INIT_LIBRARY = 1;
/// The centres array already holds the k initial centres.
constexpr int CODE_KMEANS_INIT_GIVEN = 2;

/// Empty clusters (after an assignment that is not the last one) take the
/// points farthest from their own centre, from clusters that keep at least
/// one member: candidates by distance descending, then id ascending, the
/// first empty cluster (smallest index) taking the first candidate, and so
/// on; only points at a positive distance move, and the 2E + 64 farthest
/// points are the candidates (E = number of empty clusters). The moved point
/// is then the cluster's only member, so the update makes its code the
/// centre. Clusters that find no candidate stay empty (their centre is kept).
constexpr int CODE_KMEANS_EMPTY_FARTHEST = 0;
/// Empty clusters keep their centre (the pqkmeans library's rule).
constexpr int CODE_KMEANS_EMPTY_KEEP = 1;

/// k row indices of codes (n, code_size) with pairwise distinct code values
/// (CODE_KMEANS_INIT_DISTINCT, deterministic for a seed): up to 4k + 1000
/// uniform draws with replacement, duplicates of a value already chosen
/// skipped, then a scan from a random row if values are still missing; when
/// the data hold fewer than k distinct values the chosen rows repeat.
std::vector<int64_t> distinct_code_rows(const uint8_t* codes, int64_t n, int64_t code_size,
                                        int64_t k, uint64_t seed);

/// The CODE_KMEANS_EMPTY_FARTHEST rule. labels (n,) and counts (k,) are
/// updated in place; distance(i) is point i's distance to its own centre
/// (called from several threads). Returns the number of points moved.
int64_t reseed_empty_clusters(int64_t n, int64_t k, int64_t* labels, std::vector<int64_t>& counts,
                              const std::function<double(int64_t)>& distance);

}  // namespace benchpq
