// 8-float vectors by the GCC/Clang vector extensions: portable SIMD without
// intrinsics (the build's target flags pick the instructions; 8 floats fill
// one AVX register). The register kernels of nearest-codeword search, ITQ's
// projection and PQk-means' assignment are built from these pieces.
//
// Every lane of a vector operation is one IEEE operation, so a kernel written
// with these types gives the same bits whether the compiler lowers a v8 to one
// AVX register, two SSE registers or eight scalar operations. The library is
// compiled with -ffp-contract=off: a product followed by an addition is never
// fused behind our back, and where a kernel wants a fused multiply-add it
// calls fmadd, which is fused (one rounding) on every path.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#if defined(__FMA__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define BENCHPQ_X86_FMA 1
#endif

// The SIMD level this translation unit is compiled for: 2 with AVX-512 (F, BW),
// 1 with AVX2 and FMA, 0 otherwise (the portable path, any CPU).
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX2__) && defined(__FMA__)
#define BENCHPQ_SIMD_LEVEL 2
#elif defined(__AVX2__) && defined(__FMA__)
#define BENCHPQ_SIMD_LEVEL 1
#else
#define BENCHPQ_SIMD_LEVEL 0
#endif

namespace benchpq {

typedef float v8 __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));  // for unaligned access

inline v8 load8(const float* p) { return *reinterpret_cast<const v8u*>(p); }
inline void store8(float* p, v8 v) { *reinterpret_cast<v8u*>(p) = v; }

/// a * b + c with one rounding, lane by lane (a hardware FMA where the build has
/// one, the C library's correctly rounded fmaf elsewhere: the same bits).
inline v8 fmadd(v8 a, v8 b, v8 c) {
#ifdef BENCHPQ_X86_FMA
  return (v8)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
  v8 r;
  for (int l = 0; l < 8; ++l) r[l] = std::fma(a[l], b[l], c[l]);
  return r;
#endif
}

typedef double v4d __attribute__((vector_size(32)));
typedef double v4du __attribute__((vector_size(32), aligned(8)));  // for unaligned access

inline v4d load4d(const double* p) { return *reinterpret_cast<const v4du*>(p); }

/// a * b + c with one rounding, lane by lane (4 doubles).
inline v4d fmadd(v4d a, v4d b, v4d c) {
#ifdef BENCHPQ_X86_FMA
  return (v4d)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
#else
  v4d r;
  for (int l = 0; l < 4; ++l) r[l] = std::fma(a[l], b[l], c[l]);
  return r;
#endif
}

/// a * b + c with one rounding (scalars).
inline float fmadd(float a, float b, float c) { return std::fma(a, b, c); }
inline double fmadd(double a, double b, double c) { return std::fma(a, b, c); }

/// acc[p] += x_p C[:, 0..16) for the P rows x_p = x + p * ldx (d floats each)
/// and C (d, >= 16) with rows ldc floats apart: a P x 16 tile of a matrix
/// product, summed in dimension order with fused multiply-adds, in 2P registers.
template <int P>
inline void gemm_tile(const float* x, int64_t ldx, const float* c, int64_t ldc, int64_t d,
                      v8 (&acc)[P][2]) {
  for (int64_t t = 0; t < d; ++t, c += ldc) {
    const v8 c0 = load8(c), c1 = load8(c + 8);
    for (int p = 0; p < P; ++p) {
      const float xv = x[p * ldx + t];
      acc[p][0] = fmadd(v8{} + xv, c0, acc[p][0]);
      acc[p][1] = fmadd(v8{} + xv, c1, acc[p][1]);
    }
  }
}

/// out[p][0..ncols) = x_p W for the P rows x_p = x + p * d (d floats each) and W (d,
/// >= ncols) with rows ldw floats apart; row p of out starts at out + p * ldo. Sixteen
/// columns at a time by gemm_tile (W's rows read once for the P rows), the last
/// ncols % 16 one by one; every output summed over t in order with fused multiply-adds
/// from 0, so the bits do not depend on P or on which columns took which path.
template <int P>
inline void rows_times(const float* x, int64_t d, const float* W, int64_t ldw, int64_t ncols,
                       float* out, int64_t ldo) {
  int64_t j0 = 0;
  for (; j0 + 16 <= ncols; j0 += 16) {
    v8 acc[P][2];
    for (int p = 0; p < P; ++p) acc[p][0] = acc[p][1] = v8{};
    gemm_tile<P>(x, d, W + j0, ldw, d, acc);
    for (int p = 0; p < P; ++p) {
      store8(out + p * ldo + j0, acc[p][0]);
      store8(out + p * ldo + j0 + 8, acc[p][1]);
    }
  }
  for (; j0 < ncols; ++j0)
    for (int p = 0; p < P; ++p) {
      float a = 0.0f;
      for (int64_t t = 0; t < d; ++t) a = fmadd(x[p * d + t], W[t * ldw + j0], a);
      out[p * ldo + j0] = a;
    }
}

/// The smallest of scores offered 16 at a time, and its column; ties keep the
/// smaller column whatever the order of the offers.
class ArgMin16 {
 public:
  /// Scores of columns j0 .. j0 + 7 (lo) and j0 + 8 .. j0 + 15 (hi).
  void offer(v8 lo, v8 hi, int32_t j0) {
    const v8i j_lo = kLane + j0, j_hi = j_lo + 8;
    const v8i lt0 = lo < best_[0], lt1 = hi < best_[1];
    best_[0] = lt0 ? lo : best_[0];
    column_[0] = lt0 ? j_lo : column_[0];
    best_[1] = lt1 ? hi : best_[1];
    column_[1] = lt1 ? j_hi : column_[1];
  }

  /// The smallest score offered (+inf if none) and its column (0 if none).
  void result(float& value, int32_t& column) const {
    value = std::numeric_limits<float>::infinity();
    column = 0;
    for (int h = 0; h < 2; ++h)
      for (int l = 0; l < 8; ++l) {
        const float v = best_[h][l];
        const int32_t j = column_[h][l];
        if (v < value || (v == value && j < column)) {
          value = v;
          column = j;
        }
      }
  }

 private:
  static constexpr v8i kLane = {0, 1, 2, 3, 4, 5, 6, 7};
  v8 best_[2] = {v8{} + std::numeric_limits<float>::infinity(),
                 v8{} + std::numeric_limits<float>::infinity()};
  v8i column_[2] = {v8i{}, v8i{}};
};

}  // namespace benchpq
