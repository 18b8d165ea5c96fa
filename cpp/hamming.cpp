#include "hamming.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "internal/bits.h"
#include "internal/parallel.h"

namespace benchpq {
namespace {

using bits::load_word;
using bits::popcount;

// dist[i] = Hamming distance between query q and codes row i, for n rows.
// NW: words per code known at compile time (0: runtime nw).
template <typename Word, int NW>
void distances_to(const uint8_t* q, const uint8_t* codes, int64_t n, int64_t nw, uint32_t* dist) {
  const int64_t words = NW ? NW : nw;
  const int64_t stride = words * static_cast<int64_t>(sizeof(Word));
  Word qw[NW ? NW : 64];
  if (!NW && words > 64) {  // very long codes: plain loop
    for (int64_t i = 0; i < n; ++i) dist[i] = bits::hamming_words<Word>(q, codes + i * stride, words);
    return;
  }
  for (int64_t w = 0; w < words; ++w) qw[w] = load_word<Word>(q + w * sizeof(Word));
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* c = codes + i * stride;
    uint32_t s = 0;
    for (int64_t w = 0; w < words; ++w) s += popcount<Word>(qw[w] ^ load_word<Word>(c + w * sizeof(Word)));
    dist[i] = s;
  }
}

template <typename Word>
void distances_dispatch(const uint8_t* q, const uint8_t* codes, int64_t n, int64_t nbytes,
                        uint32_t* dist) {
  const int64_t nw = nbytes / static_cast<int64_t>(sizeof(Word));
  switch (nw) {
    case 1: return distances_to<Word, 1>(q, codes, n, nw, dist);
    case 2: return distances_to<Word, 2>(q, codes, n, nw, dist);
    case 4: return distances_to<Word, 4>(q, codes, n, nw, dist);
    default: return distances_to<Word, 0>(q, codes, n, nw, dist);
  }
}

void distances(const uint8_t* q, const uint8_t* codes, int64_t n, int64_t nbytes, uint32_t* dist) {
  if (nbytes % 8 == 0) return distances_dispatch<uint64_t>(q, codes, n, nbytes, dist);
  if (nbytes % 4 == 0) return distances_dispatch<uint32_t>(q, codes, n, nbytes, dist);
  if (nbytes % 2 == 0) return distances_dispatch<uint16_t>(q, codes, n, nbytes, dist);
  distances_dispatch<uint8_t>(q, codes, n, nbytes, dist);
}

constexpr int64_t kBlock = 4096;  // database rows scored per call

}  // namespace

void hamming_distances(const uint8_t* a, int64_t na, const uint8_t* b, int64_t nb, int64_t nbytes,
                       int32_t* out) {
#pragma omp parallel
  {
    std::vector<uint32_t> dist(std::min(kBlock, nb));
#pragma omp for schedule(dynamic) collapse(2)
    for (int64_t i = 0; i < na; ++i)
      for (int64_t j0 = 0; j0 < nb; j0 += kBlock) {
        const int64_t m = std::min(kBlock, nb - j0);
        distances(a + i * nbytes, b + j0 * nbytes, m, nbytes, dist.data());
        for (int64_t j = 0; j < m; ++j) out[i * nb + j0 + j] = static_cast<int32_t>(dist[j]);
      }
  }
}

void hamming_search(const uint8_t* queries, int64_t nq, const uint8_t* codes, int64_t n,
                    int64_t nbytes, int64_t k, float* distances_out, int64_t* ids) {
  if (k < 1 || k > n) throw std::invalid_argument("hamming_search: need 1 <= k <= n");
  const int64_t nbits = nbytes * 8;
#pragma omp parallel
  {
    std::vector<uint32_t> dist(n);
    std::vector<int64_t> hist(nbits + 2), pos(nbits + 2);
#pragma omp for schedule(dynamic)
    for (int64_t q = 0; q < nq; ++q) {
      for (int64_t j0 = 0; j0 < n; j0 += kBlock)
        distances(queries + q * nbytes, codes + j0 * nbytes, std::min(kBlock, n - j0), nbytes,
                  dist.data() + j0);
      std::fill(hist.begin(), hist.end(), 0);
      for (int64_t i = 0; i < n; ++i) ++hist[dist[i]];
      // t: the distance of the k-th result; below it everything is taken.
      int64_t t = 0, below = 0;
      while (below + hist[t] < k) below += hist[t++];
      for (int64_t v = 0, acc = 0; v <= t; ++v) {
        pos[v] = acc;
        acc += hist[v];
      }
      const uint32_t tt = static_cast<uint32_t>(t);
      int64_t at_t = k - below;  // how many of distance t fit
      float* dq = distances_out + q * k;
      int64_t* iq = ids + q * k;
      for (int64_t i = 0; i < n; ++i) {
        const uint32_t v = dist[i];
        if (v < tt || (v == tt && at_t > 0)) {
          if (v == tt) --at_t;
          const int64_t p = pos[v]++;
          dq[p] = static_cast<float>(v);
          iq[p] = i;
        }
      }
    }
  }
}

}  // namespace benchpq
