#include "multisequence.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

namespace benchpq {
namespace {

// Sort d (n,) ascending, ties by index: sorted values and original indices.
void sort_list(const float* d, int64_t n, std::vector<float>& sorted, std::vector<int32_t>& order) {
  order.resize(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [d](int32_t x, int32_t y) {
    return d[x] < d[y] || (d[x] == d[y] && x < y);
  });
  sorted.resize(n);
  for (int64_t r = 0; r < n; ++r) sorted[r] = d[order[r]];
}

}  // namespace

bool MultiSequence::later(const Entry& x, const Entry& y) {
  if (x.dist != y.dist) return x.dist > y.dist;
  if (x.a != y.a) return x.a > y.a;
  return x.b > y.b;
}

void MultiSequence::push(int32_t a, int32_t b) {
  heap_.push_back({s1_[a] + s2_[b], a, b});
  std::push_heap(heap_.begin(), heap_.end(), later);
}

void MultiSequence::reset(const float* d1, int64_t n1, const float* d2, int64_t n2) {
  if (n1 < 1 || n2 < 1) throw std::invalid_argument("MultiSequence: need n1, n2 >= 1");
  sort_list(d1, n1, s1_, o1_);
  sort_list(d2, n2, s2_, o2_);
  row_len_.assign(n1, 0);
  heap_.clear();
  visited_ = 0;
  push(0, 0);
}

bool MultiSequence::next(int32_t* i, int32_t* j, float* dist) {
  if (heap_.empty()) return false;
  std::pop_heap(heap_.begin(), heap_.end(), later);
  const Entry e = heap_.back();
  heap_.pop_back();
  const int32_t a = e.a, b = e.b;
  row_len_[a] = b + 1;
  ++visited_;
  const int32_t n1 = static_cast<int32_t>(s1_.size()), n2 = static_cast<int32_t>(s2_.size());
  // (a + 1, b): its other predecessor (a + 1, b - 1) must be out already.
  if (a + 1 < n1 && (b == 0 || row_len_[a + 1] >= b)) push(a + 1, b);
  // (a, b + 1): its other predecessor (a - 1, b + 1) must be out already.
  if (b + 1 < n2 && (a == 0 || row_len_[a - 1] >= b + 2)) push(a, b + 1);
  *i = o1_[a];
  *j = o2_[b];
  *dist = e.dist;
  return true;
}

int64_t multisequence_order(const float* d1, int64_t n1, const float* d2, int64_t n2,
                            int64_t count, int32_t* i_out, int32_t* j_out, float* dist_out) {
  MultiSequence ms;
  ms.reset(d1, n1, d2, n2);
  int64_t t = 0;
  while (t < count && ms.next(i_out + t, j_out + t, dist_out + t)) ++t;
  return t;
}

}  // namespace benchpq
