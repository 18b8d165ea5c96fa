#include "nearest.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "simd.h"

namespace benchpq {
namespace {

constexpr int64_t kTile = 16;  // codewords scored per step (two v8)
constexpr int kRows = 8;       // rows per register block

// Nearest codeword of P rows: for every tile of 16 codewords, accumulate
// ||c||^2 - 2 x.c in 2P registers, then keep a per-lane running minimum.
// The minimum is kept in plain register arrays rather than an array of
// ArgMin16 objects: with those, encoding ran about 12% slower (1M x 128,
// M=8, one thread), the compiler keeping them in memory.
template <int P>
void nearest_rows(const float* x, int64_t ldx, int64_t d, const float* ct, const float* norms,
                  int64_t kp, int32_t* idx) {
  const float inf = std::numeric_limits<float>::infinity();
  v8 best[P][2];
  v8i best_j[P][2];
  for (int p = 0; p < P; ++p)
    for (int h = 0; h < 2; ++h) {
      best[p][h] = v8{} + inf;
      best_j[p][h] = v8i{};
    }
  const v8i lane = {0, 1, 2, 3, 4, 5, 6, 7};
  for (int64_t j0 = 0; j0 < kp; j0 += kTile) {
    v8 acc[P][2];
    const v8 n0 = load8(norms + j0), n1 = load8(norms + j0 + 8);
    for (int p = 0; p < P; ++p) {
      acc[p][0] = n0;
      acc[p][1] = n1;
    }
    gemm_tile<P>(x, ldx, ct + j0, kp, d, acc);
    const v8i j_lo = lane + static_cast<int32_t>(j0), j_hi = j_lo + 8;
    for (int p = 0; p < P; ++p) {
      const v8i lt0 = acc[p][0] < best[p][0], lt1 = acc[p][1] < best[p][1];
      best[p][0] = lt0 ? acc[p][0] : best[p][0];
      best_j[p][0] = lt0 ? j_lo : best_j[p][0];
      best[p][1] = lt1 ? acc[p][1] : best[p][1];
      best_j[p][1] = lt1 ? j_hi : best_j[p][1];
    }
  }
  for (int p = 0; p < P; ++p) {
    float bv = inf;
    int32_t bj = 0;
    for (int h = 0; h < 2; ++h)
      for (int l = 0; l < 8; ++l) {
        const float v = best[p][h][l];
        const int32_t j = best_j[p][h][l];
        if (v < bv || (v == bv && j < bj)) {
          bv = v;
          bj = j;
        }
      }
    idx[p] = bj;
  }
}

}  // namespace

NearestCodeword::NearestCodeword(const float* codewords, int64_t k, int64_t d)
    : k_(k), d_(d), kp_((k + kTile - 1) / kTile * kTile), ct_(d * kp_, 0.0f),
      norms_(kp_, std::numeric_limits<float>::infinity()) {
  for (int64_t j = 0; j < k; ++j) {
    const float* c = codewords + j * d;
    double norm = 0;
    for (int64_t t = 0; t < d; ++t) {
      ct_[t * kp_ + j] = -2.0f * c[t];
      norm += static_cast<double>(c[t]) * c[t];
    }
    norms_[j] = static_cast<float>(norm);
  }
}

void NearestCodeword::nearest(const float* x, int64_t n, int64_t ldx, int32_t* idx) const {
  int64_t i = 0;
  for (; i + kRows <= n; i += kRows)
    nearest_rows<kRows>(x + i * ldx, ldx, d_, ct_.data(), norms_.data(), kp_, idx + i);
  for (; i < n; ++i) nearest_rows<1>(x + i * ldx, ldx, d_, ct_.data(), norms_.data(), kp_, idx + i);
}

void NearestCodeword::distances(const float* x, float* out) const {
  const int64_t body = d_ / 8 * 8;
  for (int64_t j0 = 0; j0 < k_; j0 += 8) {
    // lane[l][i]: l2sqr's accumulator lane l for codeword j0 + i; ct_ holds -2 c, and
    // scaling by -0.5 gives c back exactly
    v8 lane[8];
    for (int l = 0; l < 8; ++l) lane[l] = v8{};
    for (int64_t t0 = 0; t0 < body; t0 += 8)
      for (int l = 0; l < 8; ++l) {
        const v8 diff = (v8{} + x[t0 + l]) - load8(ct_.data() + (t0 + l) * kp_ + j0) * -0.5f;
        lane[l] += diff * diff;
      }
    v8 s = ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
    for (int64_t t = body; t < d_; ++t) {
      const v8 diff = (v8{} + x[t]) - load8(ct_.data() + t * kp_ + j0) * -0.5f;
      s += diff * diff;
    }
    const int64_t width = std::min<int64_t>(8, k_ - j0);
    for (int64_t i = 0; i < width; ++i) out[j0 + i] = s[i];
  }
}

float l2sqr(const float* a, const float* b, int64_t d) {
  v8 acc = {};
  int64_t t = 0;
  for (; t + 8 <= d; t += 8) {
    const v8 diff = load8(a + t) - load8(b + t);
    acc += diff * diff;
  }
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; t < d; ++t) {
    const float diff = a[t] - b[t];
    s += diff * diff;
  }
  return s;
}

float inner(const float* a, const float* b, int64_t d) {
  v8 acc = {};
  int64_t t = 0;
  for (; t + 8 <= d; t += 8) acc += load8(a + t) * load8(b + t);
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; t < d; ++t) s += a[t] * b[t];
  return s;
}

void negated_inner_products(const float* x, const float* codewords, int64_t k, int64_t d,
                            float* out) {
  for (int64_t j = 0; j < k; ++j) out[j] = -inner(x, codewords + j * d, d);
}

}  // namespace benchpq
