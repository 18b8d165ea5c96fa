#include "adist.h"

#include <algorithm>
#include <vector>

#include "internal/adc_scan.h"

namespace benchpq {
namespace {

constexpr int64_t kBlock = 4096;  // codes per parallel work item

template <typename CodeT>
void adist(const float* table, int64_t M, int64_t Ks, const CodeT* codes, int64_t n, float* out) {
  std::vector<const float*> rows(M);
  for (int64_t m = 0; m < M; ++m) rows[m] = table + m * Ks;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < (n + kBlock - 1) / kBlock; ++b) {
    const int64_t i0 = b * kBlock;
    adc::score<adc::Order::kPairwise>(codes + i0 * M, std::min(kBlock, n - i0), M, rows.data(),
                                     out + i0);
  }
}

}  // namespace

void pq_adist_u8(const float* table, int64_t M, int64_t Ks, const uint8_t* codes, int64_t n,
                 float* out) {
  adist(table, M, Ks, codes, n, out);
}

void pq_adist_u16(const float* table, int64_t M, int64_t Ks, const uint16_t* codes, int64_t n,
                  float* out) {
  adist(table, M, Ks, codes, n, out);
}

}  // namespace benchpq
