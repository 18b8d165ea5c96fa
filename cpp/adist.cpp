#include "adist.h"

#include <algorithm>

namespace benchpq {
namespace {

constexpr int64_t kBlock = 4096;  // codes per parallel work item

template <typename CodeT>
void adist(const float* table, int64_t M, int64_t Ks, const CodeT* codes, int64_t n, float* out) {
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < (n + kBlock - 1) / kBlock; ++b) {
    const int64_t i1 = std::min(n, (b + 1) * kBlock);
    if (M == 8) {  // the common case, unrolled: same additions, same order
      for (int64_t i = b * kBlock; i < i1; ++i) {
        const CodeT* c = codes + i * 8;
        float s = table[c[0]];
        s += table[Ks + c[1]];
        s += table[2 * Ks + c[2]];
        s += table[3 * Ks + c[3]];
        s += table[4 * Ks + c[4]];
        s += table[5 * Ks + c[5]];
        s += table[6 * Ks + c[6]];
        s += table[7 * Ks + c[7]];
        out[i] = s;
      }
      continue;
    }
    for (int64_t i = b * kBlock; i < i1; ++i) {
      const CodeT* c = codes + i * M;
      float s = table[c[0]];
      for (int64_t m = 1; m < M; ++m) s += table[m * Ks + c[m]];
      out[i] = s;
    }
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
