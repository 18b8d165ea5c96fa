// Word-wise helpers of the Hamming kernels (hamming.cpp, bkmeans.cpp), on
// packed binary codes (bit layout of itq.h).
#pragma once

#include <cstdint>
#include <cstring>

namespace benchpq {
namespace bits {

/// The Word stored at p, which need not be aligned.
template <typename Word>
inline Word load_word(const uint8_t* p) {
  Word w;
  std::memcpy(&w, p, sizeof(Word));
  return w;
}

/// Number of set bits of w (8- or 4-byte words, or narrower ones widened).
template <typename Word>
inline uint32_t popcount(Word w) {
  if constexpr (sizeof(Word) == 8)
    return static_cast<uint32_t>(__builtin_popcountll(w));
  else
    return static_cast<uint32_t>(__builtin_popcount(w));
}

/// Hamming distance between two codes of nw words each.
template <typename Word>
inline uint32_t hamming_words(const uint8_t* a, const uint8_t* b, int64_t nw) {
  uint32_t s = 0;
  for (int64_t w = 0; w < nw; ++w)
    s += popcount<Word>(load_word<Word>(a + w * sizeof(Word)) ^ load_word<Word>(b + w * sizeof(Word)));
  return s;
}

/// Hamming distance between two codes of nbytes bytes, read as the widest words that divide nbytes.
inline uint32_t hamming(const uint8_t* a, const uint8_t* b, int64_t nbytes) {
  if (nbytes % 8 == 0) return hamming_words<uint64_t>(a, b, nbytes / 8);
  if (nbytes % 4 == 0) return hamming_words<uint32_t>(a, b, nbytes / 4);
  return hamming_words<uint8_t>(a, b, nbytes);
}

}  // namespace bits
}  // namespace benchpq
