// k-means by Lloyd's algorithm, on raw vectors and inside PQ training.
//
// Initialisation (KMeansInit, modes.h): k-means++ (Arthur & Vassilvitskii,
// SODA 2007), its greedy variant, k distinct random points, or given
// centroids. Empty clusters are re-seeded by splitting the largest one
// (its centroid copied with a small symmetric perturbation, as faiss does).
// Training may run on a random subsample of max_points_per_centroid * k points
// (faiss's default is 256). Results depend on the seed only, not on the
// number of threads.
#pragma once

#include <cstdint>

#include "modes.h"

namespace benchpq {

/// Train k centroids on x (n, d) float32.
///
/// init: a KMeansInit (modes.h). centroids: out (k, d) float32 (also in,
/// with KMEANS_INIT_GIVEN). objective: out (niter,) float64, the sum of
/// squared distances of the training points to their nearest centroid at each
/// iteration (non-increasing). Stops early when no assignment changes (the
/// centroids would not change any more). max_points_per_centroid <= 0 trains
/// on all points. Returns the number of iterations run (entries of objective
/// written). Requires n >= k >= 1, niter >= 1.
int kmeans(const float* x, int64_t n, int64_t d, int64_t k, int niter, int init, uint64_t seed,
           int64_t max_points_per_centroid, float* centroids, double* objective);

/// Greedy k-means++ seeding: k initial centroids (k, d) float32 for the n
/// rows x + i * ldx (d floats each, ldx >= d).
///
/// k-means++ (Arthur & Vassilvitskii, SODA 2007) draws each next centroid with
/// probability proportional to the squared distance D^2 to the nearest one
/// chosen so far; the greedy variant (as scikit-learn's KMeans, after the
/// authors' own suggestion) draws `trials` such candidates per step and keeps
/// the one that lowers the potential sum_i D^2(x_i) the most. Better seeds
/// give lower final distortion after Lloyd's iterations than plain k-means++.
/// trials <= 0: 2 + floor(ln k). Serial and deterministic for a given seed;
/// requires n >= k >= 1. kmeans() uses it for KMEANS_INIT_GREEDY_PLUSPLUS.
void greedy_kmeanspp(const float* x, int64_t n, int64_t d, int64_t ldx, int64_t k, int trials,
                     uint64_t seed, float* centroids);

/// Nearest centroid of each row of x (n, d): labels (n,) int64 and, unless
/// distances is null, the squared distances (n,) float32.
void kmeans_assign(const float* x, int64_t n, int64_t d, const float* centroids, int64_t k,
                   int64_t* labels, float* distances);

}  // namespace benchpq
