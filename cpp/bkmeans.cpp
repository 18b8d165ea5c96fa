#include "bkmeans.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "internal/bits.h"
#include "internal/code_kmeans.h"
#include "internal/parallel.h"

namespace benchpq {
namespace {

constexpr int64_t kCenterBlock = 2048;  // centres scored per step (distances stay in L1)
constexpr int64_t kPointChunk = 1024;   // points per parallel work item and partial sum
constexpr int64_t kParallelWork = int64_t(1) << 16;  // below this, a parallel region costs more

using bits::load_word;
using bits::popcount;

// The k centres as words, transposed (nw, k), so that the distances of one
// code to a block of centres are one vectorisable loop per word.
template <typename Word>
class Centers {
 public:
  Centers(const uint8_t* centers, int64_t k, int64_t nbytes)
      : k_(k), nw_(nbytes / static_cast<int64_t>(sizeof(Word))), ct_(nw_ * k) {
    for (int64_t j = 0; j < k; ++j)
      for (int64_t w = 0; w < nw_; ++w)
        ct_[w * k + j] = load_word<Word>(centers + j * nbytes + w * sizeof(Word));
  }

  // Nearest centre of code x (ties: smaller index); buf holds kCenterBlock distances.
  template <int NW>
  void nearest(const uint8_t* x, uint32_t* buf, int64_t& best_j, uint32_t& best_d) const {
    const int64_t nw = NW ? NW : nw_;
    best_d = UINT32_MAX;
    best_j = 0;
    for (int64_t j0 = 0; j0 < k_; j0 += kCenterBlock) {
      const int64_t m = std::min(kCenterBlock, k_ - j0);
      for (int64_t w = 0; w < nw; ++w) {
        const Word q = load_word<Word>(x + w * sizeof(Word));
        const Word* c = ct_.data() + w * k_ + j0;
        if (w == 0)
          for (int64_t j = 0; j < m; ++j) buf[j] = popcount<Word>(q ^ c[j]);
        else
          for (int64_t j = 0; j < m; ++j) buf[j] += popcount<Word>(q ^ c[j]);
      }
      uint32_t mn = UINT32_MAX;
      for (int64_t j = 0; j < m; ++j) mn = buf[j] < mn ? buf[j] : mn;
      if (mn < best_d) {
        int64_t j = 0;
        while (buf[j] != mn) ++j;
        best_d = mn;
        best_j = j0 + j;
      }
    }
  }

  int64_t nw() const { return nw_; }

 private:
  int64_t k_, nw_;
  std::vector<Word> ct_;
};

// Assign every code; returns the sum of distances (fixed summation order).
template <typename Word, int NW>
double assign_all(const uint8_t* codes, int64_t n, int64_t nbytes, const Centers<Word>& cs,
                  int64_t* labels, int32_t* distances) {
  const int64_t nchunks = (n + kPointChunk - 1) / kPointChunk;
  std::vector<double> partial(nchunks);
#pragma omp parallel if (nchunks > 1)
  {
    std::vector<uint32_t> buf(kCenterBlock);
#pragma omp for schedule(dynamic, 4)
    for (int64_t c = 0; c < nchunks; ++c) {
      double s = 0;
      for (int64_t i = c * kPointChunk; i < std::min(n, (c + 1) * kPointChunk); ++i) {
        int64_t j;
        uint32_t d;
        cs.template nearest<NW>(codes + i * nbytes, buf.data(), j, d);
        labels[i] = j;
        if (distances) distances[i] = static_cast<int32_t>(d);
        s += d;
      }
      partial[c] = s;
    }
  }
  double total = 0;
  for (double s : partial) total += s;
  return total;
}

template <typename Word>
double assign_dispatch(const uint8_t* codes, int64_t n, int64_t nbytes, const uint8_t* centers,
                       int64_t k, int64_t* labels, int32_t* distances) {
  const Centers<Word> cs(centers, k, nbytes);
  switch (cs.nw()) {
    case 1: return assign_all<Word, 1>(codes, n, nbytes, cs, labels, distances);
    case 2: return assign_all<Word, 2>(codes, n, nbytes, cs, labels, distances);
    case 4: return assign_all<Word, 4>(codes, n, nbytes, cs, labels, distances);
    default: return assign_all<Word, 0>(codes, n, nbytes, cs, labels, distances);
  }
}

double assign(const uint8_t* codes, int64_t n, int64_t nbytes, const uint8_t* centers, int64_t k,
              int64_t* labels, int32_t* distances) {
  if (nbytes % 8 == 0) return assign_dispatch<uint64_t>(codes, n, nbytes, centers, k, labels, distances);
  if (nbytes % 4 == 0) return assign_dispatch<uint32_t>(codes, n, nbytes, centers, k, labels, distances);
  if (nbytes % 2 == 0) return assign_dispatch<uint16_t>(codes, n, nbytes, centers, k, labels, distances);
  return assign_dispatch<uint8_t>(codes, n, nbytes, centers, k, labels, distances);
}

// Majority vote. counts (k) and ones (k, nbits) are workspace.
int64_t majority_update(const uint8_t* codes, int64_t n, int64_t nbytes, const int64_t* labels,
                        int64_t k, uint8_t* centers, std::vector<int64_t>& counts,
                        std::vector<int32_t>& ones) {
  const int64_t nbits = nbytes * 8;
  std::fill(ones.begin(), ones.end(), 0);
  gather_by_cluster(n, k, labels, n > kParallelWork, counts, [&](int64_t c, int64_t i) {
    int32_t* o = ones.data() + c * nbits;
    const uint8_t* x = codes + i * nbytes;
    for (int64_t q = 0; q < nbytes; ++q)
      for (int b = 0; b < 8; ++b) o[q * 8 + b] += (x[q] >> b) & 1;
  });
  int64_t changed = 0;
#pragma omp parallel for schedule(static) reduction(+ : changed) if (k * nbytes > kParallelWork)
  for (int64_t c = 0; c < k; ++c) {
    if (counts[c] == 0) continue;
    const int32_t* o = ones.data() + c * nbits;
    bool diff = false;
    for (int64_t q = 0; q < nbytes; ++q) {
      const unsigned old = centers[c * nbytes + q];
      unsigned byte = old;
      for (int b = 0; b < 8; ++b) {
        const int64_t twice = 2 * static_cast<int64_t>(o[q * 8 + b]);
        if (twice > counts[c]) byte |= 1u << b;
        else if (twice < counts[c]) byte &= ~(1u << b);
      }
      centers[c * nbytes + q] = static_cast<uint8_t>(byte);
      diff |= byte != old;
    }
    changed += diff;
  }
  return changed;
}

// Binary codes under the Hamming distance, for the shared k-means loop (code_kmeans.h).
struct BinaryCodeSpace {
  BinaryCodeSpace(const uint8_t* codes, int64_t n, int64_t nbytes, int64_t k)
      : code_bytes(nbytes), codes_(codes), n_(n), k_(k), ones_(k * nbytes * 8) {}

  double assign(const uint8_t* centers, int64_t* labels) const {
    return benchpq::assign(codes_, n_, code_bytes, centers, k_, labels, nullptr);
  }

  double distance(int64_t i, const uint8_t* center) const {
    return static_cast<double>(bits::hamming(codes_ + i * code_bytes, center, code_bytes));
  }

  // pqkmeans' BKmeansInternal, RandomPick
  void library_init(uint64_t seed, uint8_t* centers) const {
    std::mt19937 mt(static_cast<std::mt19937::result_type>(seed));
    std::uniform_int_distribution<unsigned long> pick(0, static_cast<unsigned long>(n_ - 1));
    for (int64_t j = 0; j < k_; ++j)
      std::memcpy(centers + j * code_bytes, codes_ + static_cast<int64_t>(pick(mt)) * code_bytes,
                  code_bytes);
  }

  int64_t update(const int64_t* labels, uint8_t* centers, std::vector<int64_t>& counts) {
    return majority_update(codes_, n_, code_bytes, labels, k_, centers, counts, ones_);
  }

  const int64_t code_bytes;  // nbytes

 private:
  const uint8_t* codes_;
  int64_t n_, k_;
  std::vector<int32_t> ones_;  // (k, nbits) workspace of the update
};

}  // namespace

int bkmeans(const uint8_t* codes, int64_t n, int64_t nbytes, int64_t k, int niter, int init,
            int empty, uint64_t seed, uint8_t* centers, int64_t* labels, double* objective,
            double* iter_seconds) {
  if (k < 1 || k > n || niter < 1 || nbytes < 1)
    throw std::invalid_argument("bkmeans: need 1 <= k <= n, niter >= 1 and nbytes >= 1");
  BinaryCodeSpace space(codes, n, nbytes, k);
  return code_kmeans("bkmeans", codes, n, k, niter, init, empty, seed, space, centers, labels,
                     objective, iter_seconds);
}

void bkmeans_assign(const uint8_t* codes, int64_t n, int64_t nbytes, const uint8_t* centers,
                    int64_t k, int64_t* labels, int32_t* distances) {
  assign(codes, n, nbytes, centers, k, labels, distances);
}

int64_t bkmeans_update(const uint8_t* codes, int64_t n, int64_t nbytes, const int64_t* labels,
                       int64_t k, uint8_t* centers) {
  std::vector<int64_t> counts(k);
  std::vector<int32_t> ones(k * nbytes * 8);
  return majority_update(codes, n, nbytes, labels, k, centers, counts, ones);
}

}  // namespace benchpq
