#include "linalg.h"

#include <algorithm>
#include <vector>

namespace benchpq {

void matmul(const float* x, int64_t n, int64_t d, const float* R, int64_t d_out, float* out) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * d;
    float* oi = out + i * d_out;
    std::fill(oi, oi + d_out, 0.0f);
    for (int64_t k = 0; k < d; ++k) {
      const float a = xi[k];
      const float* rk = R + k * d_out;
      for (int64_t j = 0; j < d_out; ++j) oi[j] += a * rk[j];
    }
  }
}

void cross_product(const float* x, const float* y, int64_t n, int64_t d, int64_t d2,
                   double* out) {
  constexpr int64_t kBlockRows = 256;
  const int64_t blocks = (n + kBlockRows - 1) / kBlockRows;
  std::fill(out, out + d * d2, 0.0);
#pragma omp parallel
  {
    std::vector<float> partial(d * d2);
    std::vector<double> local(d * d2, 0.0);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      std::fill(partial.begin(), partial.end(), 0.0f);
      const int64_t end = std::min(n, (b + 1) * kBlockRows);
      for (int64_t i = b * kBlockRows; i < end; ++i) {
        const float* xi = x + i * d;
        const float* yi = y + i * d2;
        for (int64_t k = 0; k < d; ++k) {
          const float a = xi[k];
          float* pk = partial.data() + k * d2;
          for (int64_t j = 0; j < d2; ++j) pk[j] += a * yi[j];
        }
      }
      for (int64_t t = 0; t < d * d2; ++t) local[t] += partial[t];
    }
#pragma omp critical
    for (int64_t t = 0; t < d * d2; ++t) out[t] += local[t];
  }
}

}  // namespace benchpq
