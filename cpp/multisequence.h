// The multi-sequence algorithm (Babenko & Lempitsky, "The inverted
// multi-index", CVPR 2012, section 3.2): the cells (i, j) of a product of two
// codebooks in increasing order of d1[i] + d2[j], without sorting all n1 * n2
// of them.
//
// Each list of distances is sorted once; a min-heap holds the frontier of
// candidate cells, in rank coordinates (a, b) of the sorted lists. A cell
// enters the heap once both its predecessors (a - 1, b) and (a, b - 1) have
// been output (the output set is always a "staircase": each rank-row a holds
// a prefix [0, row_len[a]) of output cells, so a predecessor test is one
// comparison). Output is non-decreasing in distance; equal distances come out
// in order of (rank a, rank b). Cost per cell: O(log of the frontier).
#pragma once

#include <cstdint>
#include <vector>

namespace benchpq {

class MultiSequence {
 public:
  MultiSequence() = default;

  /// Start a traversal over d1 (n1,) and d2 (n2,) float32 (n1, n2 >= 1).
  /// The arrays are copied: they need not outlive the call.
  void reset(const float* d1, int64_t n1, const float* d2, int64_t n2);

  /// Write the next cell (original indices i < n1, j < n2) and its distance
  /// d1[i] + d2[j]; false once all n1 * n2 cells were output.
  bool next(int32_t* i, int32_t* j, float* dist);

  int64_t visited() const { return visited_; }

 private:
  struct Entry {
    float dist;
    int32_t a, b;
  };
  static bool later(const Entry& x, const Entry& y);  // heap order: x comes out after y
  void push(int32_t a, int32_t b);

  std::vector<float> s1_, s2_;      // sorted distances
  std::vector<int32_t> o1_, o2_;    // original index of each rank
  std::vector<int32_t> row_len_;    // output cells per rank-row
  std::vector<Entry> heap_;
  int64_t visited_ = 0;
};

/// The first `count` cells in multi-sequence order (count <= n1 * n2): the
/// cell indices i_out, j_out (count,) int32 and distances dist_out (count,)
/// float32. Returns the number written. A reference for tests and tools.
int64_t multisequence_order(const float* d1, int64_t n1, const float* d2, int64_t n2,
                            int64_t count, int32_t* i_out, int32_t* j_out, float* dist_out);

}  // namespace benchpq
