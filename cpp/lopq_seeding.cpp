#include "lopq_seeding.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

namespace benchpq {
namespace {

constexpr int64_t kSumBlock = 1024;  // float partial sums, added in double

// dist[i] = ||x_i - c||^2 for the n points stored transposed, xt (d, n).
void distances_to(const float* xt, int64_t n, int64_t d, const float* c, float* dist) {
  std::fill(dist, dist + n, 0.0f);
  for (int64_t t = 0; t < d; ++t) {
    const float* row = xt + t * n;
    const float ct = c[t];
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const float diff = row[i] - ct;
      dist[i] += diff * diff;
    }
  }
}

// dist[i] = min(dist[i], mind[i]); returns the sum.
double clamp_sum(float* dist, const float* mind, int64_t n) {
  double total = 0;
  for (int64_t i0 = 0; i0 < n; i0 += kSumBlock) {
    const int64_t end = std::min(n, i0 + kSumBlock);
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = i0; i < end; ++i) {
      dist[i] = std::min(dist[i], mind[i]);
      s += dist[i];
    }
    total += s;
  }
  return total;
}

}  // namespace

void greedy_kmeanspp(const float* x, int64_t n, int64_t d, int64_t ldx, int64_t k, int trials,
                     uint64_t seed, float* centroids) {
  if (n < k || k < 1 || d < 1 || ldx < d)
    throw std::invalid_argument("greedy_kmeanspp: need n >= k >= 1 and ldx >= d >= 1");
  if (trials <= 0) trials = 2 + static_cast<int>(std::log(static_cast<double>(k)));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unif(0.0, 1.0);
  std::vector<float> xt(d * n);  // transposed: the distance loops run over points
  for (int64_t i = 0; i < n; ++i)
    for (int64_t t = 0; t < d; ++t) xt[t * n + i] = x[i * ldx + t];
  std::vector<float> mind(n), trial_d(trials * n);
  std::vector<double> cum(n), potential(trials);
  std::vector<int64_t> cand(trials);

  int64_t pick = std::uniform_int_distribution<int64_t>(0, n - 1)(rng);
  std::memcpy(centroids, x + pick * ldx, d * sizeof(float));
  distances_to(xt.data(), n, d, centroids, mind.data());
  for (int64_t j = 1; j < k; ++j) {
    double total = 0;
    for (int64_t i = 0; i < n; ++i) cum[i] = total += mind[i];
    for (int t = 0; t < trials; ++t) {
      if (total > 0) {  // D^2 sampling: points at distance 0 are never drawn
        const double u = unif(rng) * total;
        cand[t] = std::min<int64_t>(std::upper_bound(cum.begin(), cum.end(), u) - cum.begin(),
                                    n - 1);
      } else {  // every point sits on a centroid: any point will do
        cand[t] = std::uniform_int_distribution<int64_t>(0, n - 1)(rng);
      }
      float* dist = trial_d.data() + t * n;
      distances_to(xt.data(), n, d, x + cand[t] * ldx, dist);
      potential[t] = clamp_sum(dist, mind.data(), n);
    }
    const int best =
        static_cast<int>(std::min_element(potential.begin(), potential.end()) - potential.begin());
    std::memcpy(centroids + j * d, x + cand[best] * ldx, d * sizeof(float));
    std::copy(trial_d.begin() + best * n, trial_d.begin() + (best + 1) * n, mind.begin());
  }
}

}  // namespace benchpq
