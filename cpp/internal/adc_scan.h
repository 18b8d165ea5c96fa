// Asymmetric distance computation over PQ codes (Jegou, Douze, Schmid,
// "Product quantization for nearest neighbor search", IEEE TPAMI 33(1), 2011,
// section 3.1): the distance of a query to a code (c_1 .. c_M) is
// sum_m rows[m][c_m], rows[m] the query's lookup table of sub-space m (Ks
// floats). One scan for every searcher that ranks codes by table lookups:
// PQ's ADC and SDC search, LOPQ's multi-index lists, nanopq's adist.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "topk.h"

namespace benchpq {
namespace adc {

constexpr int64_t kScanBlock = 256;  // codes scored before the heap is consulted

/// dis[i] = sum_m rows[m][code_i[m]] for nb codes (n, M), summed in order
/// m = 0 .. M-1. Four codes are scored side by side: four independent chains
/// of additions instead of one, with each code's own sum still in the same
/// order (so the distances are bit-identical to a one-code loop). MF: M known
/// at compile time (0: runtime).
template <int MF, typename CodeT>
void score_in_order(const CodeT* codes, int64_t nb, int64_t M, const float* const* rows,
                    float* dis) {
  const int64_t m_count = MF ? MF : M;
  int64_t i = 0;
  for (; i + 4 <= nb; i += 4, codes += 4 * m_count) {
    const CodeT* c0 = codes;
    const CodeT* c1 = codes + m_count;
    const CodeT* c2 = codes + 2 * m_count;
    const CodeT* c3 = codes + 3 * m_count;
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int64_t m = 0; m < m_count; ++m) {
      const float* r = rows[m];
      s0 += r[c0[m]];
      s1 += r[c1[m]];
      s2 += r[c2[m]];
      s3 += r[c3[m]];
    }
    dis[i] = s0;
    dis[i + 1] = s1;
    dis[i + 2] = s2;
    dis[i + 3] = s3;
  }
  for (; i < nb; ++i, codes += m_count) {
    float s = 0;
    for (int64_t m = 0; m < m_count; ++m) s += rows[m][codes[m]];
    dis[i] = s;
  }
}

/// uint8 codes with M a multiple of 8: one 64-bit load per 8 sub-codes, the 8
/// lookups added as a tree (that order defines these distances): shorter
/// chains of dependent additions than the in-order sum.
template <int MF>
void score_u8_by_8(const uint8_t* codes, int64_t nb, int64_t M, const float* const* rows,
                   float* dis) {
  const int64_t m_count = MF ? MF : M;
  for (int64_t i = 0; i < nb; ++i, codes += m_count) {
    float s = 0;
    for (int64_t g = 0; g < m_count; g += 8) {
      uint64_t w;
      std::memcpy(&w, codes + g, 8);
      const float* const* r = rows + g;
      s += ((r[0][w & 255] + r[1][(w >> 8) & 255]) + (r[2][(w >> 16) & 255] + r[3][(w >> 24) & 255])) +
           ((r[4][(w >> 32) & 255] + r[5][(w >> 40) & 255]) + (r[6][(w >> 48) & 255] + r[7][w >> 56]));
    }
    dis[i] = s;
  }
}

/// The sum of the lookups rows[m][code[m]], m = m0 .. m0 + n - 1, in numpy's
/// pairwise order (numpy's float add.reduce over a contiguous row): fewer than 8
/// terms in order; up to 128 in 8 interleaved partial sums added as a tree, then
/// the rest in order; more, split in two at a multiple of 8 below the middle.
template <typename CodeT>
float pairwise_sum(const CodeT* code, int64_t m0, int64_t n, const float* const* rows) {
  if (n < 8) {
    float s = 0.0f;
    for (int64_t m = m0; m < m0 + n; ++m) s += rows[m][code[m]];
    return s;
  }
  if (n <= 128) {
    float r[8];
    for (int j = 0; j < 8; ++j) r[j] = rows[m0 + j][code[m0 + j]];
    int64_t i = 8;
    for (; i < n - n % 8; i += 8)
      for (int j = 0; j < 8; ++j) r[j] += rows[m0 + i + j][code[m0 + i + j]];
    float s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) s += rows[m0 + i][code[m0 + i]];
    return s;
  }
  int64_t half = n / 2;
  half -= half % 8;
  return pairwise_sum(code, m0, half, rows) + pairwise_sum(code, m0 + half, n - half, rows);
}

/// dis[i] = 0 + pairwise_sum of code i (numpy's np.sum(table[range(M), codes], axis=1)).
template <typename CodeT>
void score_pairwise(const CodeT* codes, int64_t nb, int64_t M, const float* const* rows,
                    float* dis) {
  for (int64_t i = 0; i < nb; ++i, codes += M) dis[i] = 0.0f + pairwise_sum(codes, 0, M, rows);
}

/// How the M lookups of a code are summed.
enum class Order {
  kFast,      ///< the tree of score_u8_by_8 for uint8 codes with M % 8 == 0, else in order
  kInOrder,   ///< always m = 0 .. M-1 (the order of faiss's IndexPQ scan)
  kPairwise,  ///< numpy's pairwise order (score_pairwise: nanopq's adist)
};

/// dis (nb,): the distances of nb codes (nb, M); compile-time M for the common
/// small code lengths, a runtime loop otherwise.
template <Order order, typename CodeT>
void score(const CodeT* codes, int64_t nb, int64_t M, const float* const* rows, float* dis) {
  if constexpr (order == Order::kPairwise) return score_pairwise(codes, nb, M, rows, dis);
  if constexpr (order == Order::kFast && sizeof(CodeT) == 1) {
    if (M == 8) return score_u8_by_8<8>(codes, nb, M, rows, dis);
    if (M == 16) return score_u8_by_8<16>(codes, nb, M, rows, dis);
    if (M % 8 == 0) return score_u8_by_8<0>(codes, nb, M, rows, dis);
  }
  switch (M) {
    case 1: return score_in_order<1>(codes, nb, M, rows, dis);
    case 2: return score_in_order<2>(codes, nb, M, rows, dis);
    case 3: return score_in_order<3>(codes, nb, M, rows, dis);
    case 4: return score_in_order<4>(codes, nb, M, rows, dis);
    case 5: return score_in_order<5>(codes, nb, M, rows, dis);
    case 6: return score_in_order<6>(codes, nb, M, rows, dis);
    case 7: return score_in_order<7>(codes, nb, M, rows, dis);
    case 8: return score_in_order<8>(codes, nb, M, rows, dis);
    case 10: return score_in_order<10>(codes, nb, M, rows, dis);
    case 12: return score_in_order<12>(codes, nb, M, rows, dis);
    case 16: return score_in_order<16>(codes, nb, M, rows, dis);
    default: return score_in_order<0>(codes, nb, M, rows, dis);
  }
}

/// Offer codes [begin, end) of codes (n, M) to heap, block by block: score a
/// block, then push those within the heap's threshold under the id
/// id_of(i) (ties are pushed too: the heap keeps the smaller id, whatever
/// order the ids come in).
template <typename CodeT, typename IdOf>
void scan(const CodeT* codes, int64_t begin, int64_t end, int64_t M, const float* const* rows,
          TopK<float>& heap, IdOf id_of) {
  float dis[kScanBlock];
  for (int64_t i0 = begin; i0 < end; i0 += kScanBlock) {
    const int64_t nb = std::min(kScanBlock, end - i0);
    score<Order::kFast>(codes + i0 * M, nb, M, rows, dis);
    float threshold = heap.threshold();
    for (int64_t i = 0; i < nb; ++i)
      if (dis[i] <= threshold) {
        heap.push(dis[i], id_of(i0 + i));
        threshold = heap.threshold();
      }
  }
}

}  // namespace adc
}  // namespace benchpq
