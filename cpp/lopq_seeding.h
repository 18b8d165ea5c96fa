// Greedy k-means++ seeding, used by LOPQ's coarse and fine k-means.
//
// k-means++ (Arthur & Vassilvitskii, SODA 2007) draws each next centroid with
// probability proportional to the squared distance D^2 to the nearest one
// chosen so far; the greedy variant (as scikit-learn's KMeans, after the
// authors' own suggestion) draws `trials` such candidates per step and keeps
// the one that lowers the potential sum_i D^2(x_i) the most. Better seeds
// give lower final distortion after Lloyd's iterations than plain k-means++.
#pragma once

#include <cstdint>

namespace benchpq {

/// k initial centroids (k, d) float32 for the n rows x + i * ldx (d floats
/// each, ldx >= d). trials <= 0: 2 + floor(ln k). Serial and deterministic
/// for a given seed; requires n >= k >= 1.
void greedy_kmeanspp(const float* x, int64_t n, int64_t d, int64_t ldx, int64_t k, int trials,
                     uint64_t seed, float* centroids);

}  // namespace benchpq
