#include "itq.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "internal/parallel.h"
#include "internal/simd.h"

namespace benchpq {
namespace {

constexpr int64_t kRowBlock = 4;     // rows per register block of the projection
constexpr int64_t kColTile = 16;     // output columns per register block (two v8)
constexpr int64_t kEncodeRows = 64;  // rows per parallel work item of the encoder
constexpr int64_t kStepRows = 256;   // rows per block of itq_step
constexpr int64_t kCovRows = 64;     // rows per block of the covariance

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Reductions split the rows into a number of contiguous parts that depends on
// n only (never on the thread count), each summed on its own and the parts
// added in order: results are the same whatever the number of threads. At
// least 2048 rows per part, at most 64 parts and 64 MiB of partial sums.
int64_t num_parts(int64_t n, int64_t bytes_per_part) {
  const int64_t by_rows = std::max<int64_t>(1, n / 2048);
  const int64_t by_memory = std::max<int64_t>(1, (int64_t(64) << 20) / std::max<int64_t>(1, bytes_per_part));
  return std::min<int64_t>({by_rows, by_memory, 64});
}

// W (d, b) copied into (d, bp) with zero columns up to bp = round_up(b, 16).
std::vector<float> pad_columns(const float* W, int64_t d, int64_t b) {
  const int64_t bp = round_up(b, kColTile);
  std::vector<float> out(d * bp, 0.0f);
  for (int64_t t = 0; t < d; ++t) std::memcpy(out.data() + t * bp, W + t * b, b * sizeof(float));
  return out;
}

// out (n, bp) = (x - mean) Wp for n rows of x (serial; mean may be null).
void project_rows(const float* x, int64_t n, int64_t d, const float* mean, const float* Wp,
                  int64_t bp, float* out) {
  std::vector<float> xc(kRowBlock * d);
  for (int64_t i = 0; i < n; i += kRowBlock) {
    const int64_t rows = std::min(kRowBlock, n - i);
    for (int64_t p = 0; p < rows; ++p)
      for (int64_t t = 0; t < d; ++t) xc[p * d + t] = x[(i + p) * d + t] - (mean ? mean[t] : 0.0f);
    if (rows == kRowBlock)
      rows_times<kRowBlock>(xc.data(), d, Wp, bp, bp, out + i * bp, bp);
    else
      for (int64_t p = 0; p < rows; ++p)
        rows_times<1>(xc.data() + p * d, d, Wp, bp, bp, out + (i + p) * bp, bp);
  }
}

// (x - mean) W for the n rows of x (n, d), W (d, b), in parallel blocks of
// kEncodeRows rows: rows(i0, count, z, bp) receives each block's result z
// (count, bp), columns b .. bp zero padding.
template <typename Rows>
void project_in_blocks(const float* x, int64_t n, int64_t d, const float* mean, const float* W,
                       int64_t b, Rows rows) {
  const std::vector<float> Wp = pad_columns(W, d, b);
  const int64_t bp = round_up(b, kColTile);
#pragma omp parallel
  {
    std::vector<float> z(kEncodeRows * bp);
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < (n + kEncodeRows - 1) / kEncodeRows; ++blk) {
      const int64_t i0 = blk * kEncodeRows, count = std::min(kEncodeRows, n - i0);
      project_rows(x + i0 * d, count, d, mean, Wp.data(), bp, z.data());
      rows(i0, count, z.data(), bp);
    }
  }
}

}  // namespace

void itq_mean_cov(const float* x, int64_t n, int64_t d, double* mean, double* cov) {
  if (n < 1 || d < 1) throw std::invalid_argument("itq_mean_cov: need n >= 1 and d >= 1");
  const int64_t dp = round_up(d, 8);
  const int64_t parts = num_parts(n, dp * dp * static_cast<int64_t>(sizeof(double)));
  std::vector<std::vector<double>> sums(parts, std::vector<double>(d, 0.0));
#pragma omp parallel for schedule(dynamic)
  for (int64_t p = 0; p < parts; ++p)
    for (int64_t i = n * p / parts; i < n * (p + 1) / parts; ++i)
      for (int64_t t = 0; t < d; ++t) sums[p][t] += x[i * d + t];
  std::fill(mean, mean + d, 0.0);
  for (int64_t p = 0; p < parts; ++p)
    for (int64_t t = 0; t < d; ++t) mean[t] += sums[p][t];
  for (int64_t t = 0; t < d; ++t) mean[t] /= static_cast<double>(n);

  // Upper triangle in 4 x 8 tiles of a (dp, dp) matrix per part; tile (i0, j0)
  // is computed for j0 >= i0 rounded down to 8, which covers j >= i.
  std::vector<std::vector<double>> grams(parts);
#pragma omp parallel
  {
    std::vector<double> xc(kCovRows * dp, 0.0);
#pragma omp for schedule(dynamic)
    for (int64_t p = 0; p < parts; ++p) {
      std::vector<double>& g = grams[p];
      g.assign(dp * dp, 0.0);
      const int64_t end = n * (p + 1) / parts;
      for (int64_t i_begin = n * p / parts; i_begin < end; i_begin += kCovRows) {
        const int64_t rows = std::min(kCovRows, end - i_begin);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t t = 0; t < d; ++t) xc[r * dp + t] = x[(i_begin + r) * d + t] - mean[t];
        for (int64_t i0 = 0; i0 < dp; i0 += 4)
          for (int64_t j0 = i0 / 8 * 8; j0 < dp; j0 += 8) {
            v4d acc[4][2] = {};
            for (int64_t r = 0; r < rows; ++r) {
              const double* row = xc.data() + r * dp;
              const v4d b0 = load4d(row + j0), b1 = load4d(row + j0 + 4);
              for (int q = 0; q < 4; ++q) {
                const double a = row[i0 + q];
                acc[q][0] = fmadd(v4d{} + a, b0, acc[q][0]);
                acc[q][1] = fmadd(v4d{} + a, b1, acc[q][1]);
              }
            }
            for (int q = 0; q < 4; ++q)
              for (int c = 0; c < 4; ++c) {
                g[(i0 + q) * dp + j0 + c] += acc[q][0][c];
                g[(i0 + q) * dp + j0 + 4 + c] += acc[q][1][c];
              }
          }
      }
    }
  }
  const double norm = n > 1 ? 1.0 / static_cast<double>(n - 1) : 1.0;
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = i; j < d; ++j) {
      double s = 0.0;
      for (int64_t p = 0; p < parts; ++p) s += grams[p][i * dp + j];
      cov[i * d + j] = cov[j * d + i] = s * norm;
    }
}

void itq_project(const float* x, int64_t n, int64_t d, const float* mean, const float* W,
                 int64_t b, float* out) {
  project_in_blocks(x, n, d, mean, W, b, [&](int64_t i0, int64_t count, const float* z, int64_t bp) {
    for (int64_t r = 0; r < count; ++r)
      std::memcpy(out + (i0 + r) * b, z + r * bp, b * sizeof(float));
  });
}

double itq_step(const float* V, int64_t n, int64_t b, const float* R, double* cross) {
  const std::vector<float> Rp = pad_columns(R, b, b);
  const int64_t bp = round_up(b, kColTile);
  const int64_t parts = num_parts(n, b * b * static_cast<int64_t>(sizeof(double)));
  std::vector<double> losses(parts, 0.0);
  std::vector<std::vector<double>> crosses(cross ? parts : 0);
#pragma omp parallel
  {
    // z: V R of a block of rows, then its signs S (rows, bp); vt: the block's
    // V transposed (b, rows), so that V^T S is one more blocked product.
    std::vector<float> z(kStepRows * bp), vt(b * kStepRows), part(cross ? b * bp : 0);
#pragma omp for schedule(dynamic)
    for (int64_t p = 0; p < parts; ++p) {
      if (cross) crosses[p].assign(b * b, 0.0);
      double loss = 0.0;
      const int64_t end = n * (p + 1) / parts;
      for (int64_t i0 = n * p / parts; i0 < end; i0 += kStepRows) {
        const int64_t rows = std::min(kStepRows, end - i0);
        project_rows(V + i0 * b, rows, b, nullptr, Rp.data(), bp, z.data());
        for (int64_t r = 0; r < rows; ++r) {
          float* zr = z.data() + r * bp;
          for (int64_t j = 0; j < b; ++j) {
            const float s = zr[j] >= 0.0f ? 1.0f : -1.0f;
            const double e = static_cast<double>(s) - zr[j];
            loss = fmadd(e, e, loss);
            zr[j] = s;
          }
        }
        if (!cross) continue;
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t i = 0; i < b; ++i) vt[i * rows + r] = V[(i0 + r) * b + i];
        project_rows(vt.data(), b, rows, nullptr, z.data(), bp, part.data());
        for (int64_t i = 0; i < b; ++i)
          for (int64_t j = 0; j < b; ++j) crosses[p][i * b + j] += part[i * bp + j];
      }
      losses[p] = loss;
    }
  }
  double loss = 0.0;
  for (int64_t p = 0; p < parts; ++p) loss += losses[p];
  if (cross) {
    std::fill(cross, cross + b * b, 0.0);
    for (int64_t p = 0; p < parts; ++p)
      for (int64_t i = 0; i < b * b; ++i) cross[i] += crosses[p][i];
  }
  return loss;
}

void itq_encode(const float* x, int64_t n, int64_t d, const float* mean, const float* P,
                int64_t b, uint8_t* codes) {
  if (b % 8 != 0) throw std::invalid_argument("itq_encode: the number of bits must be a multiple of 8");
  const int64_t nbytes = b / 8;
  project_in_blocks(x, n, d, mean, P, b, [&](int64_t i0, int64_t count, const float* z, int64_t bp) {
    for (int64_t r = 0; r < count; ++r) {
      const float* zr = z + r * bp;
      uint8_t* code = codes + (i0 + r) * nbytes;
      for (int64_t q = 0; q < nbytes; ++q) {
        unsigned byte = 0;
        for (int t = 0; t < 8; ++t) byte |= static_cast<unsigned>(zr[q * 8 + t] >= 0.0f) << t;
        code[q] = static_cast<uint8_t>(byte);
      }
    }
  });
}

}  // namespace benchpq
