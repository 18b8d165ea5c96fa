#include "pqfs.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>
#include <vector>

#include "internal/parallel.h"
#include "internal/simd.h"

// The AVX2 and AVX-512 scans exist in builds for those levels (the scalar
// build has no x86 intrinsics at all); a build runs its own level's scan or a
// lower one, never a higher one.
#if BENCHPQ_SIMD_LEVEL >= 1
#include <immintrin.h>
#define BENCHPQ_PQFS_X86 1
#endif

namespace benchpq {
namespace {

constexpr int64_t kBlock = 32;          // vectors per block
constexpr int kQueryBatch = 3;          // queries of one kernel call: one code load serves them all
constexpr int kGroups = 8;              // kernel calls per chunk of blocks, while it is in cache
constexpr int64_t kChunkBlocks = 256;   // blocks per chunk (64 KiB of codes at M = 16)
constexpr int64_t kEncodeChunk = 1 << 16;
constexpr int kIdBits = 40;             // key of a candidate: distance << 40 | id
constexpr uint64_t kIdMask = (uint64_t(1) << kIdBits) - 1;
constexpr uint8_t kPerm[16] = {0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15};

// Byte (0..15) of a pair's half-block holding vector v (0..15) of the block: the inverse of kPerm.
inline int slot_of(int v) { return v < 8 ? 2 * v : 2 * (v - 8) + 1; }

// Sub-code m of vector id, read from the blocks.
inline uint8_t subcode(const uint8_t* blocks, int64_t M, int64_t id, int64_t m) {
  const int64_t b = id / kBlock;
  const int v = static_cast<int>(id % kBlock);
  const uint8_t byte = blocks[(b * (M / 2) + m / 2) * kBlock + (m & 1) * 16 + slot_of(v & 15)];
  return v < 16 ? byte & 15 : byte >> 4;
}

void check_pq(const ProductQuantizer& pq, const char* where) {
  if (pq.Ks() != 16 || pq.M() % 2 != 0)
    throw std::invalid_argument(std::string(where) + ": needs Ks = 16 and M even");
}

// The best `capacity` keys (quantized distance << 40 | id) seen, kept in a
// caller's buffer of 2 * capacity keys: candidates below the bound are appended;
// a full buffer is cut back to its `capacity` smallest (nth_element), whose
// largest becomes the bound. Amortised O(1) per candidate, unlike a heap.
class TopKeys {
 public:
  void reset(uint64_t* keys, int64_t capacity) {
    keys_ = keys;
    capacity_ = capacity;
    size_ = 0;
    bound_ = ~uint64_t(0);
  }

  // The largest quantized distance that can still enter, for candidates whose ids
  // exceed every id seen so far (a scan in id order); -1 when none can.
  int32_t limit() const {
    if (bound_ == ~uint64_t(0)) return 0xFFFF;
    return static_cast<int32_t>(bound_ >> kIdBits) - 1;
  }

  void push(uint64_t key) {
    if (key >= bound_) return;
    keys_[size_++] = key;
    if (size_ == 2 * capacity_) cut();
  }

  /// Sort: keys()[0 .. size()) are then the best keys, ascending.
  void sort() {
    if (size_ > capacity_) cut();
    std::sort(keys_, keys_ + size_);
  }
  int64_t size() const { return size_; }
  const uint64_t* keys() const { return keys_; }

 private:
  void cut() {
    std::nth_element(keys_, keys_ + capacity_ - 1, keys_ + size_);
    size_ = capacity_;
    bound_ = keys_[capacity_ - 1];
  }

  uint64_t* keys_ = nullptr;
  int64_t capacity_ = 0, size_ = 0;
  uint64_t bound_ = ~uint64_t(0);
};

// One query of a scan: its quantized tables (M, 16) and its best keys.
struct QueryScan {
  const uint8_t* lut;
  TopKeys best;
};

// Offer the lanes of mask (bit j: vector id0 + j, quantized distance d[j]) to top.
inline void push_lanes(uint32_t mask, const uint16_t* d, int64_t id0, int64_t n, TopKeys& top) {
  while (mask) {
    const int j = __builtin_ctz(mask);
    mask &= mask - 1;
    const int64_t id = id0 + j;
    if (id >= n) break;  // padding of the last block
    if (static_cast<int32_t>(d[j]) <= top.limit())
      top.push((uint64_t(d[j]) << kIdBits) | uint64_t(id));
  }
}

// Blocks [b0, b1) for NQ queries, scalar: the reference the SIMD paths equal.
template <int NQ>
void scan_scalar(const uint8_t* blocks, int64_t npairs, int64_t b0, int64_t b1, int64_t n,
                 QueryScan* qs) {
  uint16_t d[kBlock];
  for (int64_t b = b0; b < b1; ++b) {
    const uint8_t* c = blocks + b * npairs * kBlock;
    uint32_t acc[NQ][kBlock] = {};
    for (int64_t p = 0; p < npairs; ++p, c += kBlock)
      for (int j = 0; j < 16; ++j) {
        const uint8_t lo = c[j], hi = c[16 + j];
        const int v = kPerm[j];
        for (int q = 0; q < NQ; ++q) {
          const uint8_t* t0 = qs[q].lut + p * kBlock;
          const uint8_t* t1 = t0 + 16;
          acc[q][v] += t0[lo & 15] + t1[hi & 15];
          acc[q][v + 16] += t0[lo >> 4] + t1[hi >> 4];
        }
      }
    for (int q = 0; q < NQ; ++q) {
      const int32_t limit = qs[q].best.limit();
      uint32_t mask = 0;
      for (int j = 0; j < kBlock; ++j) {
        d[j] = static_cast<uint16_t>(acc[q][j]);
        if (static_cast<int32_t>(acc[q][j]) <= limit) mask |= uint32_t(1) << j;
      }
      push_lanes(mask, d, b * kBlock, n, qs[q].best);
    }
  }
}

#ifdef BENCHPQ_PQFS_X86

// Turn the four 16-bit accumulators of one query into the distances of the
// block's 32 vectors (d0: vectors 0..15, d1: 16..31). acc[0] holds v_i + 256 v_{i+8}
// per lane i (mod 2^16), acc[1] v_{i+8}; acc[2], acc[3] the same for vectors 16..31;
// the low 128 bits hold the even sub-quantizers, the high 128 bits the odd ones.
__attribute__((target("avx2"), always_inline)) inline void finish_avx2(const __m256i* acc,
                                                                        __m256i& d0, __m256i& d1) {
  const __m256i a0 = _mm256_sub_epi16(acc[0], _mm256_slli_epi16(acc[1], 8));
  const __m256i a2 = _mm256_sub_epi16(acc[2], _mm256_slli_epi16(acc[3], 8));
  d0 = _mm256_add_epi16(_mm256_permute2x128_si256(a0, acc[1], 0x21),
                        _mm256_blend_epi32(a0, acc[1], 0xF0));
  d1 = _mm256_add_epi16(_mm256_permute2x128_si256(a2, acc[3], 0x21),
                        _mm256_blend_epi32(a2, acc[3], 0xF0));
}

// Bit j set when the distance of vector j is <= limit (0 <= limit <= 0xFFFF).
__attribute__((target("avx2"), always_inline)) inline uint32_t lanes_at_most_avx2(
    __m256i d0, __m256i d1, int32_t limit) {
  const __m256i lim = _mm256_set1_epi16(static_cast<short>(limit));
  const __m256i ok0 = _mm256_cmpeq_epi16(_mm256_min_epu16(d0, lim), d0);
  const __m256i ok1 = _mm256_cmpeq_epi16(_mm256_min_epu16(d1, lim), d1);
  // packs interleaves the 128-bit halves: vectors 0-7, 16-23 | 8-15, 24-31; restore the order.
  const __m256i packed = _mm256_permute4x64_epi64(_mm256_packs_epi16(ok0, ok1), 0xD8);
  return static_cast<uint32_t>(_mm256_movemask_epi8(packed));
}

__attribute__((target("avx2"), always_inline)) inline void offer_avx2(const __m256i* acc,
                                                                       int64_t id0, int64_t n,
                                                                       TopKeys& top) {
  const int32_t limit = top.limit();
  if (limit < 0) return;
  __m256i d0, d1;
  finish_avx2(acc, d0, d1);
  const uint32_t mask = lanes_at_most_avx2(d0, d1, limit);
  if (!mask) return;
  alignas(32) uint16_t d[kBlock];
  _mm256_store_si256(reinterpret_cast<__m256i*>(d), d0);
  _mm256_store_si256(reinterpret_cast<__m256i*>(d + 16), d1);
  push_lanes(mask, d, id0, n, top);
}

// One sub-quantizer pair: codes (32 bytes) against a query's two tables (32 bytes).
__attribute__((target("avx2"), always_inline)) inline void accumulate_pair_avx2(
    __m256i lo, __m256i hi, const uint8_t* lut, __m256i* acc) {
  const __m256i t = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lut));
  const __m256i r0 = _mm256_shuffle_epi8(t, lo);
  const __m256i r1 = _mm256_shuffle_epi8(t, hi);
  acc[0] = _mm256_add_epi16(acc[0], r0);
  acc[1] = _mm256_add_epi16(acc[1], _mm256_srli_epi16(r0, 8));
  acc[2] = _mm256_add_epi16(acc[2], r1);
  acc[3] = _mm256_add_epi16(acc[3], _mm256_srli_epi16(r1, 8));
}

template <int NQ>
__attribute__((target("avx2"))) void scan_avx2(const uint8_t* blocks, int64_t npairs, int64_t b0,
                                                int64_t b1, int64_t n, QueryScan* qs) {
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  for (int64_t b = b0; b < b1; ++b) {
    const uint8_t* c = blocks + b * npairs * kBlock;
    __m256i acc[NQ][4];
    for (int q = 0; q < NQ; ++q)
      for (int i = 0; i < 4; ++i) acc[q][i] = _mm256_setzero_si256();
    for (int64_t p = 0; p < npairs; ++p) {
      const __m256i code = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + p * kBlock));
      const __m256i lo = _mm256_and_si256(code, low4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(code, 4), low4);
      for (int q = 0; q < NQ; ++q) accumulate_pair_avx2(lo, hi, qs[q].lut + p * kBlock, acc[q]);
    }
    for (int q = 0; q < NQ; ++q) offer_avx2(acc[q], b * kBlock, n, qs[q].best);
  }
}

#if BENCHPQ_SIMD_LEVEL >= 2
// AVX-512BW: two sub-quantizer pairs per 64-byte load (four 16-entry tables per
// register, one per 128-bit lane); an odd last pair goes through the 256-bit step.
template <int NQ>
__attribute__((target("avx512f,avx512bw,avx2"))) void scan_avx512(const uint8_t* blocks,
                                                                   int64_t npairs, int64_t b0,
                                                                   int64_t b1, int64_t n,
                                                                   QueryScan* qs) {
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const __m256i low4y = _mm256_set1_epi8(0x0f);
  const int64_t nquads = npairs / 2;
  for (int64_t b = b0; b < b1; ++b) {
    const uint8_t* c = blocks + b * npairs * kBlock;
    __m512i acc[NQ][4];
    for (int q = 0; q < NQ; ++q)
      for (int i = 0; i < 4; ++i) acc[q][i] = _mm512_setzero_si512();
    for (int64_t p2 = 0; p2 < nquads; ++p2) {
      const __m512i code = _mm512_loadu_si512(c + p2 * 2 * kBlock);
      const __m512i lo = _mm512_and_si512(code, low4);
      const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(code, 4), low4);
      for (int q = 0; q < NQ; ++q) {
        const __m512i t = _mm512_loadu_si512(qs[q].lut + p2 * 2 * kBlock);
        const __m512i r0 = _mm512_shuffle_epi8(t, lo);
        const __m512i r1 = _mm512_shuffle_epi8(t, hi);
        acc[q][0] = _mm512_add_epi16(acc[q][0], r0);
        acc[q][1] = _mm512_add_epi16(acc[q][1], _mm512_srli_epi16(r0, 8));
        acc[q][2] = _mm512_add_epi16(acc[q][2], r1);
        acc[q][3] = _mm512_add_epi16(acc[q][3], _mm512_srli_epi16(r1, 8));
      }
    }
    __m256i acc2[NQ][4];
    for (int q = 0; q < NQ; ++q)
      for (int i = 0; i < 4; ++i)
        acc2[q][i] = _mm256_add_epi16(_mm512_castsi512_si256(acc[q][i]),
                                      _mm512_extracti64x4_epi64(acc[q][i], 1));
    if (npairs % 2) {
      const int64_t p = npairs - 1;
      const __m256i code = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + p * kBlock));
      const __m256i lo = _mm256_and_si256(code, low4y);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(code, 4), low4y);
      for (int q = 0; q < NQ; ++q) accumulate_pair_avx2(lo, hi, qs[q].lut + p * kBlock, acc2[q]);
    }
    for (int q = 0; q < NQ; ++q) offer_avx2(acc2[q], b * kBlock, n, qs[q].best);
  }
}
#endif  // BENCHPQ_SIMD_LEVEL >= 2

#endif  // BENCHPQ_PQFS_X86

// -- encoding -------------------------------------------------------------------
// The nearest of 16 codewords by the norm trick, argmin_j ||c_j||^2 - 2 x.c_j,
// computed as NearestCodeword does (same prepared values, same order of
// operations, so the same codes), with one vector argmin over the 16 scores.

constexpr int kEncodeRows = 4;  // rows sharing each load of the codewords

struct Codebooks16 {
  int64_t M, D, dsub;
  std::vector<float> ct;     // (M, dsub, 16): -2 * codewords, transposed per sub-space
  std::vector<float> norms;  // (M, 16): ||c||^2, accumulated in double

  explicit Codebooks16(const ProductQuantizer& pq)
      : M(pq.M()), D(pq.D()), dsub(pq.dsub()), ct(M * dsub * 16), norms(M * 16) {
    std::vector<float> cw(M * 16 * dsub);
    pq.get_codewords(cw.data());
    for (int64_t m = 0; m < M; ++m)
      for (int64_t j = 0; j < 16; ++j) {
        const float* c = cw.data() + (m * 16 + j) * dsub;
        double norm = 0;
        for (int64_t t = 0; t < dsub; ++t) {
          ct[(m * dsub + t) * 16 + j] = -2.0f * c[t];
          norm += static_cast<double>(c[t]) * c[t];
        }
        norms[m * 16 + j] = static_cast<float>(norm);
      }
  }
};

// Index of the smallest of 16 scores (lo: 0..7, hi: 8..15), ties to the smaller index.
inline int argmin16(v8 lo, v8 hi) {
#ifdef __AVX2__
  const __m256 a = reinterpret_cast<__m256&>(lo), b = reinterpret_cast<__m256&>(hi);
  __m256 m = _mm256_min_ps(a, b);
  m = _mm256_min_ps(m, _mm256_permute2f128_ps(m, m, 1));
  m = _mm256_min_ps(m, _mm256_shuffle_ps(m, m, _MM_SHUFFLE(1, 0, 3, 2)));
  m = _mm256_min_ps(m, _mm256_shuffle_ps(m, m, _MM_SHUFFLE(2, 3, 0, 1)));
  const unsigned mask = unsigned(_mm256_movemask_ps(_mm256_cmp_ps(a, m, _CMP_EQ_OQ))) |
                        unsigned(_mm256_movemask_ps(_mm256_cmp_ps(b, m, _CMP_EQ_OQ))) << 8;
  return __builtin_ctz(mask);
#else
  int best = 0;
  float bv = lo[0];
  for (int j = 1; j < 16; ++j) {
    const float v = j < 8 ? lo[j] : hi[j - 8];
    if (v < bv) {
      bv = v;
      best = j;
    }
  }
  return best;
#endif
}

// Compact codes (P, M/2) of the P rows x (P, D).
template <int P>
void encode_rows(const Codebooks16& books, const float* x, uint8_t* codes) {
  const int64_t M = books.M, D = books.D, dsub = books.dsub;
  for (int64_t m = 0; m < M; ++m) {
    v8 acc[P][2];
    const v8 n0 = load8(books.norms.data() + m * 16), n1 = load8(books.norms.data() + m * 16 + 8);
    for (int p = 0; p < P; ++p) {
      acc[p][0] = n0;
      acc[p][1] = n1;
    }
    const float* c = books.ct.data() + m * dsub * 16;
    const float* xm = x + m * dsub;
    for (int64_t t = 0; t < dsub; ++t, c += 16) {
      const v8 c0 = load8(c), c1 = load8(c + 8);
      for (int p = 0; p < P; ++p) {
        const float xv = xm[p * D + t];
        acc[p][0] = fmadd(v8{} + xv, c0, acc[p][0]);
        acc[p][1] = fmadd(v8{} + xv, c1, acc[p][1]);
      }
    }
    for (int p = 0; p < P; ++p) {
      const uint8_t j = static_cast<uint8_t>(argmin16(acc[p][0], acc[p][1]));
      uint8_t& byte = codes[p * (M / 2) + m / 2];
      byte = (m & 1) ? uint8_t(byte | (j << 4)) : j;
    }
  }
}

using ScanFn = void (*)(const uint8_t*, int64_t, int64_t, int64_t, int64_t, QueryScan*);

template <template <int> class Kernel>
ScanFn pick(int nq) {
  switch (nq) {
    case 1: return Kernel<1>::fn;
    case 2: return Kernel<2>::fn;
    default: return Kernel<3>::fn;
  }
}
static_assert(kQueryBatch == 3, "pick() instantiates kernels for 1..kQueryBatch queries");

template <int NQ> struct ScalarKernel { static constexpr ScanFn fn = scan_scalar<NQ>; };
#ifdef BENCHPQ_PQFS_X86
template <int NQ> struct Avx2Kernel { static constexpr ScanFn fn = scan_avx2<NQ>; };
#endif
#if BENCHPQ_SIMD_LEVEL >= 2
template <int NQ> struct Avx512Kernel { static constexpr ScanFn fn = scan_avx512<NQ>; };
#endif

ScanFn scan_function(int level, int nq) {
#if BENCHPQ_SIMD_LEVEL >= 2
  if (level == PQFS_SIMD_AVX512) return pick<Avx512Kernel>(nq);
#endif
#ifdef BENCHPQ_PQFS_X86
  if (level == PQFS_SIMD_AVX2) return pick<Avx2Kernel>(nq);
#endif
  return pick<ScalarKernel>(nq);
}

}  // namespace

bool pqfs_simd_supported(int level) {
  switch (level) {
    case PQFS_SIMD_SCALAR: return true;
#ifdef BENCHPQ_PQFS_X86
    case PQFS_SIMD_AVX2: return __builtin_cpu_supports("avx2");
#if BENCHPQ_SIMD_LEVEL >= 2
    case PQFS_SIMD_AVX512:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw");
#endif
#endif
    default: return false;
  }
}

int pqfs_best_simd() {
  if (pqfs_simd_supported(PQFS_SIMD_AVX512)) return PQFS_SIMD_AVX512;
  if (pqfs_simd_supported(PQFS_SIMD_AVX2)) return PQFS_SIMD_AVX2;
  return PQFS_SIMD_SCALAR;
}

int64_t pqfs_blocks_bytes(int64_t n, int64_t M) {
  return (n + kBlock - 1) / kBlock * kBlock * (M / 2);
}

void pqfs_encode(const ProductQuantizer& pq, const float* x, int64_t n, uint8_t* codes) {
  check_pq(pq, "pqfs_encode");
  const Codebooks16 books(pq);
  const int64_t nblocks = (n + kEncodeRows - 1) / kEncodeRows;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < nblocks; ++b) {
    const int64_t i0 = b * kEncodeRows;
    if (i0 + kEncodeRows <= n) {
      encode_rows<kEncodeRows>(books, x + i0 * books.D, codes + i0 * (books.M / 2));
    } else {
      for (int64_t i = i0; i < n; ++i)
        encode_rows<1>(books, x + i * books.D, codes + i * (books.M / 2));
    }
  }
}

void pqfs_decode(const ProductQuantizer& pq, const uint8_t* codes, int64_t n, float* x) {
  check_pq(pq, "pqfs_decode");
  const int64_t M = pq.M(), D = pq.D(), half = M / 2;
  std::vector<uint8_t> full(std::min(n, kEncodeChunk) * M);
  for (int64_t i0 = 0; i0 < n; i0 += kEncodeChunk) {
    const int64_t nb = std::min(kEncodeChunk, n - i0);
    const uint8_t* in = codes + i0 * half;
    for (int64_t i = 0; i < nb; ++i)
      for (int64_t j = 0; j < half; ++j) {
        full[i * M + 2 * j] = in[i * half + j] & 15;
        full[i * M + 2 * j + 1] = in[i * half + j] >> 4;
      }
    pq.decode_u8(full.data(), nb, x + i0 * D);
  }
}

void pqfs_pack_blocks(const uint8_t* codes, int64_t n, int64_t M, uint8_t* blocks) {
  const int64_t half = M / 2, nblocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < nblocks; ++b)
    for (int64_t p = 0; p < half; ++p) {
      uint8_t* out = blocks + (b * half + p) * kBlock;
      for (int j = 0; j < 16; ++j) {
        const int64_t i0 = b * kBlock + kPerm[j], i1 = i0 + 16;
        const uint8_t c0 = i0 < n ? codes[i0 * half + p] : 0;  // sub-codes 2p, 2p+1 of vector i0
        const uint8_t c1 = i1 < n ? codes[i1 * half + p] : 0;
        out[j] = uint8_t((c0 & 15) | (c1 << 4));
        out[16 + j] = uint8_t((c0 >> 4) | (c1 & 0xF0));
      }
    }
}

void pqfs_unpack_blocks(const uint8_t* blocks, int64_t n, int64_t M, uint8_t* codes) {
  const int64_t half = M / 2;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t p = 0; p < half; ++p)
      codes[i * half + p] = subcode(blocks, M, i, 2 * p) | uint8_t(subcode(blocks, M, i, 2 * p + 1) << 4);
}

void pqfs_quantize_tables(const float* tables, int64_t nq, int64_t M, uint8_t* qtables,
                          float* scale, float* offset) {
  constexpr int64_t Ks = 16;
#pragma omp parallel for schedule(static)
  for (int64_t q = 0; q < nq; ++q) {
    const float* t = tables + q * M * Ks;
    std::vector<float> mins(M);
    float max_span = 0, sum_span = 0, b = 0;
    for (int64_t m = 0; m < M; ++m) {
      const float* row = t + m * Ks;
      const float lo = *std::min_element(row, row + Ks), hi = *std::max_element(row, row + Ks);
      mins[m] = lo;
      max_span = std::max(max_span, hi - lo);
      sum_span += hi - lo;
      b += lo;
    }
    // Entries round up by at most 1/2 each: keep M of headroom under 65535 for their sum.
    float a = max_span > 0 ? 255.0f / max_span : 1.0f;
    if (sum_span > 0) a = std::min(a, float(65535 - M) / sum_span);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t j = 0; j < Ks; ++j) {
        const float e = std::floor(fmadd(t[m * Ks + j] - mins[m], a, 0.5f));
        qtables[(q * M + m) * Ks + j] = static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, e)));
      }
    scale[q] = a;
    offset[q] = b;
  }
}

void pqfs_search(const ProductQuantizer& pq, const float* queries, int64_t nq,
                 const uint8_t* blocks, int64_t n, int64_t k, int64_t k_factor, int simd,
                 int inner_product, float* distances, int64_t* ids) {
  check_pq(pq, "pqfs_search");
  if (nq < 1 || n < 1 || k < 1 || k > n || k_factor < 1 || n > int64_t(kIdMask))
    throw std::invalid_argument("pqfs_search: need nq >= 1, 1 <= k <= n < 2^40, k_factor >= 1");
  const int level = simd == PQFS_SIMD_AUTO ? pqfs_best_simd() : simd;
  if (!pqfs_simd_supported(level))
    throw std::invalid_argument("pqfs_search: this CPU does not support the SIMD level asked");
  const int64_t M = pq.M(), npairs = M / 2, nblocks = (n + kBlock - 1) / kBlock;
  const bool rerank = k_factor > 1;
  const int64_t kk = rerank ? std::min(n, k * k_factor) : k;

  std::vector<float> tables(nq * M * 16), scale(nq), offset(nq);
  std::vector<uint8_t> qtables(nq * M * 16);
  if (inner_product)
    pq.adc_ip_tables(queries, nq, tables.data());
  else
    pq.adc_tables(queries, nq, tables.data());
  pqfs_quantize_tables(tables.data(), nq, M, qtables.data(), scale.data(), offset.data());

  // The best keys of query q -> its k results (quantized, or re-ranked by the float tables).
  auto finish = [&](int64_t q, TopKeys& top, std::vector<std::pair<float, int64_t>>& cand) {
    top.sort();
    const uint64_t* keys = top.keys();
    float* dist = distances + q * k;
    int64_t* id = ids + q * k;
    if (!rerank) {
      const float inv = 1.0f / scale[q];
      for (int64_t r = 0; r < k; ++r) {
        dist[r] = fmadd(float(keys[r] >> kIdBits), inv, offset[q]);
        id[r] = int64_t(keys[r] & kIdMask);
      }
      return;
    }
    const float* t = tables.data() + q * M * 16;
    cand.resize(top.size());
    for (int64_t r = 0; r < top.size(); ++r) {
      const int64_t i = int64_t(keys[r] & kIdMask);
      const int v = static_cast<int>(i % kBlock), shift = v < 16 ? 0 : 4;
      const uint8_t* c = blocks + i / kBlock * npairs * kBlock + slot_of(v & 15);
      float s = 0;
      for (int64_t p = 0; p < npairs; ++p, c += kBlock) {
        s += t[(2 * p) * 16 + ((c[0] >> shift) & 15)];
        s += t[(2 * p + 1) * 16 + ((c[16] >> shift) & 15)];
      }
      cand[r] = {s, i};
    }
    std::partial_sort(cand.begin(), cand.begin() + k, cand.end());
    for (int64_t r = 0; r < k; ++r) {
      dist[r] = cand[r].first;
      id[r] = cand[r].second;
    }
  };

  const int64_t nbatches = (nq + kQueryBatch - 1) / kQueryBatch;
  if (nq >= omp_get_max_threads()) {
    // Up to kGroups * kQueryBatch queries per work item; the blocks are scanned
    // chunk by chunk, each chunk by all of them while it is in cache.
    constexpr int kSuper = kGroups * kQueryBatch;
    const int64_t nsuper = (nq + kSuper - 1) / kSuper;
#pragma omp parallel
    {
      std::vector<uint64_t> keys(kSuper * 2 * kk);
      std::vector<std::pair<float, int64_t>> cand;
      QueryScan qs[kSuper];
#pragma omp for schedule(dynamic)
      for (int64_t si = 0; si < nsuper; ++si) {
        const int64_t q0 = si * kSuper;
        const int nb = static_cast<int>(std::min<int64_t>(kSuper, nq - q0));
        for (int i = 0; i < nb; ++i) {
          qs[i].lut = qtables.data() + (q0 + i) * M * 16;
          qs[i].best.reset(keys.data() + i * 2 * kk, kk);
        }
        for (int64_t c0 = 0; c0 < nblocks; c0 += kChunkBlocks) {
          const int64_t c1 = std::min(nblocks, c0 + kChunkBlocks);
          for (int g = 0; g < nb; g += kQueryBatch)
            scan_function(level, std::min(kQueryBatch, nb - g))(blocks, npairs, c0, c1, n, qs + g);
        }
        for (int i = 0; i < nb; ++i) finish(q0 + i, qs[i].best, cand);
      }
    }
    return;
  }
  // Fewer queries than threads: each thread scans a contiguous range of blocks,
  // then their best keys merge (keys are a total order, so the result is the same).
  std::vector<uint64_t> keys(kQueryBatch * 2 * kk);
  std::vector<std::pair<float, int64_t>> cand;
  TopKeys merged[kQueryBatch];
  for (int64_t bi = 0; bi < nbatches; ++bi) {
    const int64_t q0 = bi * kQueryBatch;
    const int nb = static_cast<int>(std::min<int64_t>(kQueryBatch, nq - q0));
    for (int i = 0; i < nb; ++i) merged[i].reset(keys.data() + i * 2 * kk, kk);
#pragma omp parallel
    {
      const int nt = omp_get_num_threads(), t = omp_get_thread_num();
      std::vector<uint64_t> local(nb * 2 * kk);
      QueryScan qs[kQueryBatch];
      for (int i = 0; i < nb; ++i) {
        qs[i].lut = qtables.data() + (q0 + i) * M * 16;
        qs[i].best.reset(local.data() + i * 2 * kk, kk);
      }
      scan_function(level, nb)(blocks, npairs, nblocks * t / nt, nblocks * (t + 1) / nt, n, qs);
#pragma omp critical
      for (int i = 0; i < nb; ++i)
        for (int64_t r = 0; r < qs[i].best.size(); ++r) merged[i].push(qs[i].best.keys()[r]);
    }
    for (int i = 0; i < nb; ++i) finish(q0 + i, merged[i], cand);
  }
}

}  // namespace benchpq
