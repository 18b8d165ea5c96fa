// Bounded selection of the k smallest (distance, id) pairs, shared by every
// k-nearest search that scores candidates one by one (PQ, LOPQ) and by the
// empty-cluster rule of k-means over codes.
#pragma once

#include <cstdint>
#include <limits>

namespace benchpq {

/// Max-heap of the k best (distance, id) pairs, stored in the caller's arrays
/// (for a search: the query's output row, so no copy at the end). Ordered by
/// distance, then id: ties keep the smaller id whatever the order of the
/// pushes, so a search gives the same result however its candidates are
/// split over threads or visited.
template <typename Dist = float>
class TopK {
 public:
  TopK(Dist* d, int64_t* id, int64_t k) : d_(d), id_(id), k_(k) {}

  /// The distance a candidate must not exceed to enter (+inf until k were pushed).
  Dist threshold() const { return size_ < k_ ? std::numeric_limits<Dist>::infinity() : d_[0]; }

  void push(Dist dist, int64_t id) {
    if (size_ < k_) {
      int64_t i = size_++;
      while (i > 0) {  // sift up
        const int64_t parent = (i - 1) / 2;
        if (!greater(dist, id, d_[parent], id_[parent])) break;
        d_[i] = d_[parent];
        id_[i] = id_[parent];
        i = parent;
      }
      d_[i] = dist;
      id_[i] = id;
    } else if (greater(d_[0], id_[0], dist, id)) {
      sift_down(0, k_, dist, id);
    }
  }

  /// Sort ascending in place (heap sort); unfilled slots get (+inf, -1).
  void finish() {
    for (int64_t end = size_ - 1; end > 0; --end) {
      const Dist dist = d_[end];
      const int64_t id = id_[end];
      d_[end] = d_[0];
      id_[end] = id_[0];
      sift_down(0, end, dist, id);
    }
    for (int64_t i = size_; i < k_; ++i) {
      d_[i] = std::numeric_limits<Dist>::infinity();
      id_[i] = -1;
    }
  }

  int64_t size() const { return size_; }
  Dist dist(int64_t i) const { return d_[i]; }
  int64_t id(int64_t i) const { return id_[i]; }

 private:
  static bool greater(Dist d1, int64_t i1, Dist d2, int64_t i2) {
    return d1 > d2 || (d1 == d2 && i1 > i2);
  }

  // Place (dist, id) at slot i of the heap of size n, moving larger children up.
  void sift_down(int64_t i, int64_t n, Dist dist, int64_t id) {
    for (;;) {
      int64_t child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && greater(d_[child + 1], id_[child + 1], d_[child], id_[child])) ++child;
      if (!greater(d_[child], id_[child], dist, id)) break;
      d_[i] = d_[child];
      id_[i] = id_[child];
      i = child;
    }
    d_[i] = dist;
    id_[i] = id;
  }

  Dist* d_;
  int64_t* id_;
  int64_t k_, size_ = 0;
};

}  // namespace benchpq
