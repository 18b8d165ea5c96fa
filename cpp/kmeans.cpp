#include "kmeans.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "internal/nearest.h"
#include "internal/parallel.h"
#include "internal/sampling.h"
#include "internal/simd.h"

namespace benchpq {
namespace {

constexpr int64_t kBlock = 256;       // rows per parallel work item
constexpr int64_t kChunk = 4096;      // rows per partial sum in k-means++
constexpr float kSplitEps = 1.0f / 1024.0f;
constexpr int64_t kSumBlock = 1024;  // greedy k-means++: float partial sums, added in double
// Multiply-adds below which a loop stays on one thread: waking a second thread
// for less work than this (tens of microseconds) costs more than it saves.
constexpr int64_t kParallelWork = int64_t(1) << 20;

// Nearest centroid of every row; writes labels and exact squared distances.
void assign_rows(const float* x, int64_t n, int64_t d, const float* centroids,
                 const NearestCodeword& nc, int32_t* labels, float* dist) {
#pragma omp parallel for schedule(static) if (n * nc.k() * d > kParallelWork)
  for (int64_t b = 0; b < (n + kBlock - 1) / kBlock; ++b) {
    const int64_t i0 = b * kBlock, nb = std::min(kBlock, n - i0);
    nc.nearest(x + i0 * d, nb, d, labels + i0);
    for (int64_t i = i0; i < i0 + nb; ++i) dist[i] = l2sqr(x + i * d, centroids + labels[i] * d, d);
  }
}

// Sum of a float array in double, in a fixed order (independent of threads).
double ordered_sum(const float* v, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += v[i];
  return s;
}

void init_random(const float* x, int64_t n, int64_t d, int64_t k, std::mt19937_64& rng,
                 float* centroids) {
  const std::vector<int64_t> rows = sample_rows(n, k, rng());
  for (int64_t j = 0; j < k; ++j) std::memcpy(centroids + j * d, x + rows[j] * d, d * sizeof(float));
}

// k-means++: each next centroid is a point drawn with probability proportional
// to its squared distance to the nearest centroid chosen so far.
void init_plusplus(const float* x, int64_t n, int64_t d, int64_t k, std::mt19937_64& rng,
                   float* centroids) {
  std::vector<float> mind(n, std::numeric_limits<float>::infinity());
  const int64_t nchunks = (n + kChunk - 1) / kChunk;
  std::vector<double> chunk_sum(nchunks);
  std::uniform_real_distribution<double> unif(0.0, 1.0);
  int64_t pick = std::uniform_int_distribution<int64_t>(0, n - 1)(rng);
  for (int64_t j = 0; j < k; ++j) {
    float* c = centroids + j * d;
    std::memcpy(c, x + pick * d, d * sizeof(float));
    if (j + 1 == k) break;
#pragma omp parallel for schedule(static) if (n * d > kParallelWork)
    for (int64_t ch = 0; ch < nchunks; ++ch) {
      const int64_t end = std::min(n, (ch + 1) * kChunk);
      double s = 0;
      for (int64_t i = ch * kChunk; i < end; ++i) {
        mind[i] = std::min(mind[i], l2sqr(x + i * d, c, d));
        s += mind[i];
      }
      chunk_sum[ch] = s;
    }
    double total = 0;
    for (double s : chunk_sum) total += s;
    if (!(total > 0)) {  // every point sits on a centroid: any point will do
      pick = std::uniform_int_distribution<int64_t>(0, n - 1)(rng);
      continue;
    }
    double r = unif(rng) * total;
    int64_t ch = 0;
    while (ch + 1 < nchunks && r >= chunk_sum[ch]) r -= chunk_sum[ch++];
    const int64_t end = std::min(n, (ch + 1) * kChunk);
    pick = end - 1;
    for (int64_t i = ch * kChunk; i < end; ++i) {
      if (r < mind[i] && mind[i] > 0) {
        pick = i;
        break;
      }
      r -= mind[i];
    }
  }
}

// dist[i] = ||x_i - c||^2 for the n points stored transposed, xt (d, n).
void distances_to(const float* xt, int64_t n, int64_t d, const float* c, float* dist) {
  std::fill(dist, dist + n, 0.0f);
  for (int64_t t = 0; t < d; ++t) {
    const float* row = xt + t * n;
    const float ct = c[t];
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const float diff = row[i] - ct;
      dist[i] = fmadd(diff, diff, dist[i]);
    }
  }
}

// dist[i] = min(dist[i], mind[i]); returns the sum. Each block of kSumBlock
// values is summed in float in 8 lanes (lane l takes the values i0 + l, i0 + 8 + l,
// ...), the lanes added as a fixed tree and the rest in order; the block sums are
// added in double. The order is written out here, not left to the vectoriser, so
// that every SIMD width gives the same sum.
double clamp_sum(float* dist, const float* mind, int64_t n) {
  double total = 0;
  for (int64_t i0 = 0; i0 < n; i0 += kSumBlock) {
    const int64_t end = std::min(n, i0 + kSumBlock);
    v8 lanes = {};
    int64_t i = i0;
    for (; i + 8 <= end; i += 8) {
      const v8 v = load8(dist + i), m = load8(mind + i);
      const v8 clamped = v < m ? v : m;
      store8(dist + i, clamped);
      lanes += clamped;
    }
    float s = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
              ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    for (; i < end; ++i) {
      dist[i] = std::min(dist[i], mind[i]);
      s += dist[i];
    }
    total += s;
  }
  return total;
}

// Centroids = means of their points, accumulated in double. Each thread owns a
// range of centroids and scans all points, so sums run in point order whatever
// the number of threads.
void update_centroids(const float* x, int64_t n, int64_t d, int64_t k, const int32_t* labels,
                      float* centroids, std::vector<int64_t>& counts) {
  std::fill(counts.begin(), counts.end(), 0);
#pragma omp parallel if (n * d > kParallelWork)
  {
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t c0 = k * t / nt, c1 = k * (t + 1) / nt;
    std::vector<double> sums((c1 - c0) * d, 0.0);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t c = labels[i];
      if (c < c0 || c >= c1) continue;
      double* s = sums.data() + (c - c0) * d;
      const float* xi = x + i * d;
      for (int64_t t2 = 0; t2 < d; ++t2) s[t2] += xi[t2];
      ++counts[c];
    }
    for (int64_t c = c0; c < c1; ++c) {
      if (counts[c] == 0) continue;
      const double inv = 1.0 / counts[c];
      for (int64_t t2 = 0; t2 < d; ++t2)
        centroids[c * d + t2] = static_cast<float>(sums[(c - c0) * d + t2] * inv);
    }
  }
}

// Re-seed empty clusters: split the largest cluster into two centroids
// c(1 + eps) and c(1 - eps) (alternating per dimension), as faiss does. The
// eps also scales with the centroid's mean magnitude so that zero coordinates
// move too. Clusters whose points are all equal cannot be split (every point
// would follow one half), so the largest cluster with a positive error is
// chosen. Returns the number of clusters re-seeded.
int64_t split_empty(const float* x, int64_t n, int64_t d, int64_t k, const int32_t* labels,
                    float* centroids, std::vector<int64_t>& counts) {
  if (std::find(counts.begin(), counts.end(), 0) == counts.end()) return 0;
  std::vector<double> error(k, 0.0);
  for (int64_t i = 0; i < n; ++i)
    error[labels[i]] += l2sqr(x + i * d, centroids + int64_t(labels[i]) * d, d);
  int64_t splits = 0;
  for (int64_t ci = 0; ci < k; ++ci) {
    if (counts[ci] > 0) continue;
    int64_t cj = std::max_element(counts.begin(), counts.end()) - counts.begin();
    for (int64_t c = 0, best = 0; c < k; ++c)
      if (error[c] > 0 && counts[c] > best) {
        best = counts[c];
        cj = c;
      }
    float* a = centroids + ci * d;
    float* b = centroids + cj * d;
    double mean_abs = 0;
    for (int64_t t = 0; t < d; ++t) mean_abs += std::fabs(b[t]);
    mean_abs = mean_abs > 0 ? mean_abs / d : 1.0;
    for (int64_t t = 0; t < d; ++t) {
      const float delta = kSplitEps * (std::fabs(b[t]) + static_cast<float>(mean_abs));
      const float sign = (t % 2 == 0) ? 1.0f : -1.0f;
      a[t] = fmadd(sign, delta, b[t]);
      b[t] = fmadd(-sign, delta, b[t]);
    }
    counts[ci] = counts[cj] / 2;
    counts[cj] -= counts[ci];
    error[ci] = error[cj] /= 2;
    ++splits;
  }
  return splits;
}

int lloyd(const float* x, int64_t n, int64_t d, int64_t k, int niter, int init,
          std::mt19937_64& rng, float* centroids, double* objective) {
  if (init == KMEANS_INIT_PLUSPLUS)
    init_plusplus(x, n, d, k, rng, centroids);
  else if (init == KMEANS_INIT_RANDOM)
    init_random(x, n, d, k, rng, centroids);
  else if (init == KMEANS_INIT_GREEDY_PLUSPLUS)
    greedy_kmeanspp(x, n, d, d, k, 0, rng(), centroids);
  std::vector<int32_t> labels(n, -1), previous(n, -1);
  std::vector<float> dist(n);
  std::vector<int64_t> counts(k);
  int it = 0;
  while (it < niter) {
    NearestCodeword nc(centroids, k, d);
    assign_rows(x, n, d, centroids, nc, labels.data(), dist.data());
    objective[it++] = ordered_sum(dist.data(), n);
    if (labels == previous) break;  // same labels: the centroids are final
    update_centroids(x, n, d, k, labels.data(), centroids, counts);
    if (split_empty(x, n, d, k, labels.data(), centroids, counts) > 0) std::fill(labels.begin(), labels.end(), -1);
    std::swap(labels, previous);
  }
  return it;
}

}  // namespace

int kmeans(const float* x, int64_t n, int64_t d, int64_t k, int niter, int init, uint64_t seed,
           int64_t max_points_per_centroid, float* centroids, double* objective) {
  if (n < k || k < 1 || d < 1 || niter < 1)
    throw std::invalid_argument("kmeans: need n >= k >= 1, d >= 1 and niter >= 1");
  if (init != KMEANS_INIT_PLUSPLUS && init != KMEANS_INIT_RANDOM && init != KMEANS_INIT_GIVEN &&
      init != KMEANS_INIT_GREEDY_PLUSPLUS)
    throw std::invalid_argument("kmeans: unknown init (expected a KMeansInit of modes.h)");
  std::mt19937_64 rng(seed);
  if (max_points_per_centroid > 0 && n > k * max_points_per_centroid) {
    const int64_t ns = k * max_points_per_centroid;
    std::vector<float> sample = gather_rows(x, n, d, sample_rows(n, ns, rng()));
    return lloyd(sample.data(), ns, d, k, niter, init, rng, centroids, objective);
  }
  return lloyd(x, n, d, k, niter, init, rng, centroids, objective);
}

void kmeans_assign(const float* x, int64_t n, int64_t d, const float* centroids, int64_t k,
                   int64_t* labels, float* distances) {
  NearestCodeword nc(centroids, k, d);
#pragma omp parallel for schedule(static) if (n * k * d > kParallelWork)
  for (int64_t b = 0; b < (n + kBlock - 1) / kBlock; ++b) {
    const int64_t i0 = b * kBlock, nb = std::min(kBlock, n - i0);
    int32_t idx[kBlock];
    nc.nearest(x + i0 * d, nb, d, idx);
    for (int64_t i = 0; i < nb; ++i) {
      labels[i0 + i] = idx[i];
      if (distances) distances[i0 + i] = l2sqr(x + (i0 + i) * d, centroids + idx[i] * d, d);
    }
  }
}

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
