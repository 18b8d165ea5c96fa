// k-means by Lloyd's algorithm, on raw vectors and inside PQ training.
//
// Initialisation: k-means++ (Arthur & Vassilvitskii, SODA 2007) or k distinct
// random points. Empty clusters are re-seeded by splitting the largest one
// (its centroid copied with a small symmetric perturbation, as faiss does).
// Training may run on a random subsample of max_points_per_centroid * k points
// (faiss's default is 256). Results depend on the seed only, not on the
// number of threads.
#pragma once

#include <cstdint>

namespace benchpq {

constexpr int KMEANS_INIT_PLUSPLUS = 0;  ///< k-means++ seeding
constexpr int KMEANS_INIT_RANDOM = 1;    ///< k distinct random training points
constexpr int KMEANS_INIT_GIVEN = 2;     ///< hot start: centroids holds the initial centroids

/// Train k centroids on x (n, d) float32.
///
/// centroids: out (k, d) float32 (also in, with KMEANS_INIT_GIVEN). objective: out (niter,) float64, the sum of
/// squared distances of the training points to their nearest centroid at each
/// iteration (non-increasing). Stops early when no assignment changes (the
/// centroids would not change any more). max_points_per_centroid <= 0 trains
/// on all points. Returns the number of iterations run (entries of objective
/// written). Requires n >= k >= 1, niter >= 1.
int kmeans(const float* x, int64_t n, int64_t d, int64_t k, int niter, int init, uint64_t seed,
           int64_t max_points_per_centroid, float* centroids, double* objective);

/// Nearest centroid of each row of x (n, d): labels (n,) int64 and, unless
/// distances is null, the squared distances (n,) float32.
void kmeans_assign(const float* x, int64_t n, int64_t d, const float* centroids, int64_t k,
                   int64_t* labels, float* distances);

}  // namespace benchpq
