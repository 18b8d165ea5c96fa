#include "rabitq.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "internal/parallel.h"
#include "internal/simd.h"
#include "internal/topk.h"

namespace benchpq {
namespace {

constexpr int64_t kFactors = 3;       // norm, cos, ynorm (float32 each)
constexpr int64_t kRowBlock = 4;      // rows per register block of the rotation
constexpr int64_t kEncodeRows = 64;   // rows per parallel work item of the encoder
constexpr int64_t kGroupSums = 256;   // signed sums of one group of 8 dimensions

void check_shape(int64_t dp, int64_t bits, const char* who) {
  if (dp < 64 || dp % 64 != 0)
    throw std::invalid_argument(std::string(who) + ": dp must be a positive multiple of 64");
  if (bits < 1 || bits > 8) throw std::invalid_argument(std::string(who) + ": bits must be 1 .. 8");
}

// out (rows, dp) = (x - centre) R for rows of x (serial).
void rotate_rows(const float* x, int64_t rows, int64_t d, const float* centre, const float* R,
                 int64_t dp, float* xc, float* out) {
  for (int64_t i = 0; i < rows; i += kRowBlock) {
    const int64_t count = std::min(kRowBlock, rows - i);
    for (int64_t p = 0; p < count; ++p)
      for (int64_t t = 0; t < d; ++t) xc[p * d + t] = x[(i + p) * d + t] - centre[t];
    if (count == kRowBlock)
      rows_times<kRowBlock>(xc, d, R, dp, dp, out + i * dp, dp);
    else
      for (int64_t p = 0; p < count; ++p)
        rows_times<1>(xc + p * d, d, R, dp, dp, out + (i + p) * dp, dp);
  }
}

struct Factors {
  float norm, cos, ynorm;
};

Factors read_factors(const uint8_t* row, int64_t code_bytes) {
  float f[kFactors];
  std::memcpy(f, row + code_bytes, sizeof(f));
  return {f[0], f[1], f[2]};
}

// The code of one rotated residual r (dp,): the levels m_j >= 0 (|y_j| = m_j + 1/2)
// maximising cos(y, r) over the rescalings t, written as bit-planes and factors.
//
// At rescaling t the level of dimension j is min(top, floor(t |o_j|)), o = r / |r|: it
// reaches m when t passes the critical value m / |o_j|, m = 1 .. top. cos(y, r) is
// constant between critical values, so the best code is the best prefix of the critical
// values in increasing order; the search takes them as u = |o_j| / m = 1 / t in
// decreasing order, ties by dimension, and keeps the first best prefix.
//
// Most prefixes are ruled out without being ordered: the critical values are put in
// buckets of u (64 per octave), whose sums of |o_j| and of the |y|^2 increments give the
// state <y, o>, |y|^2 at every bucket boundary. Inside a bucket both only grow, so no
// prefix ending in it has a squared cosine above <y, o>^2 at its end over |y|^2 at its
// start. Only the buckets whose bound reaches the best boundary are sorted and walked one
// critical value at a time; every other bucket holds no prefix as good as that boundary.
// The result is the walk over every critical value (up to the rounding of the sums).
class RowQuantizer {
 public:
  RowQuantizer(int64_t dp, int64_t bits)
      : dp_(dp), bits_(bits), top_((1 << (bits - 1)) - 1), level_(dp), mag_(dp),
        inverse_(top_ + 1), bucket_of_(dp * top_), ip_sum_(kBuckets),
        n2_sum_(kBuckets), ip_before_(kBuckets), n2_before_(kBuckets), walk_(kBuckets) {
    for (int32_t m = 1; m <= top_; ++m) inverse_[m] = 1.0 / m;
  }

  void operator()(const float* r, uint8_t* row) {
    double n2r = 0.0;
    for (int64_t j = 0; j < dp_; ++j) n2r += static_cast<double>(r[j]) * r[j];
    const double norm = std::sqrt(n2r);
    const int64_t plane_bytes = dp_ / 8, half = int64_t(1) << (bits_ - 1);
    std::memset(row, 0, plane_bytes * bits_);
    double ip = 0.0, n2 = 0.0;
    if (top_ == 0) {  // one bit: y = sign(r) / 2, <y, o> = sum |r_j| / (2 |r|)
      double l1 = 0.0;
      for (int64_t j = 0; j < dp_; ++j) {
        l1 += std::fabs(static_cast<double>(r[j]));
        row[j / 8] |= uint8_t((r[j] >= 0.0f ? 1u : 0u) << (j % 8));
      }
      ip = norm > 0 ? 0.5 * l1 / norm : 0.0;
      n2 = 0.25 * static_cast<double>(dp_);
      write_factors(norm, ip, n2, row + plane_bytes);
      return;
    }
    for (int64_t j = 0; j < dp_; ++j) mag_[j] = norm > 0 ? std::fabs(r[j]) / norm : 0.0;
    std::fill(level_.begin(), level_.end(), 0);
    if (norm > 0) search_levels();
    for (int64_t j = 0; j < dp_; ++j) {
      const double y = level_[j] + 0.5;
      ip += y * mag_[j];
      n2 += y * y;
      const int64_t u = r[j] >= 0.0f ? half + level_[j] : half - 1 - level_[j];
      for (int64_t p = 0; p < bits_; ++p)
        row[p * plane_bytes + j / 8] |= uint8_t(((u >> (bits_ - 1 - p)) & 1) << (j % 8));
    }
    write_factors(norm, ip, n2, row + plane_bytes * bits_);
  }

 private:
  // norm |r|, cos <y, o> / |y| (1 for r = 0), ynorm |y|, from ip = <y, o> and n2 = |y|^2.
  static void write_factors(double norm, double ip, double n2, uint8_t* out) {
    const double ynorm = std::sqrt(n2);
    const float factors[kFactors] = {static_cast<float>(norm),
                                     norm > 0 ? static_cast<float>(ip / ynorm) : 1.0f,
                                     static_cast<float>(ynorm)};
    std::memcpy(out, factors, sizeof(factors));
  }

  // A critical value in the walk's order: larger u first, ties by the smaller dimension.
  struct Event {
    double u;  // |o_j| / m
    int32_t j, m;
    bool operator<(const Event& e) const { return u > e.u || (u == e.u && j < e.j); }
  };

  void search_levels() {
    double largest = 0.0;
    for (int64_t j = 0; j < dp_; ++j) largest = std::max(largest, mag_[j]);
    // Each critical value's bucket (bucket 0 holds the largest u; -1: |o_j| = 0, none), then
    // each bucket's sums of |o_j| and of the |y|^2 increments (m + 1/2)^2 - (m - 1/2)^2 = 2 m.
    const int64_t key_of_largest = key(largest);
    std::fill(ip_sum_.begin(), ip_sum_.begin() + used_, 0.0);
    std::fill(n2_sum_.begin(), n2_sum_.begin() + used_, 0.0);
    int32_t used = 0;  // buckets 0 .. used - 1 hold critical values
    for (int32_t m = 1; m <= top_; ++m) {
      const double inverse = inverse_[m], increment = 2.0 * m;
      int32_t* bucket = bucket_of_.data() + (m - 1) * dp_;
      for (int64_t j = 0; j < dp_; ++j) {
        const int64_t b = std::min(kBuckets - 1, key_of_largest - key(mag_[j] * inverse));
        bucket[j] = mag_[j] > 0 ? static_cast<int32_t>(b) : -1;
      }
      for (int64_t j = 0; j < dp_; ++j) {
        const int32_t b = bucket[j];
        if (b < 0) continue;
        ip_sum_[b] += mag_[j];
        n2_sum_[b] += increment;
        used = std::max(used, b + 1);
      }
    }
    used_ = used;
    // <y, o> and |y|^2 at every bucket boundary (the first: the 1-bit code), and the best
    // squared cosine among them.
    double ip = 0.0, n2 = 0.25 * static_cast<double>(dp_);
    for (int64_t j = 0; j < dp_; ++j) ip += 0.5 * mag_[j];
    const double ip_start = ip, n2_start = n2;
    double best_ip2 = ip * ip, best_n2 = n2;  // compared as ip^2 / n2 by cross products
    for (int32_t b = 0; b < used; ++b) {
      ip_before_[b] = ip;
      n2_before_[b] = n2;
      ip += ip_sum_[b];
      n2 += n2_sum_[b];
      if (ip * ip * best_n2 > best_ip2 * n2) {
        best_ip2 = ip * ip;
        best_n2 = n2;
      }
    }
    const double best_boundary = best_ip2 / best_n2;
    // A bucket may hold a better prefix only if its bound reaches that boundary. Each of
    // its critical values adds |o_j| = m u to <y, o> and 2 m to |y|^2: at most h / 2 per
    // unit of |y|^2, h the bucket's upper edge of u. A prefix that adds s to |y|^2 has
    // <y, o> <= min(A + s h / 2, E) (A, E: the bucket's start and end), so its squared
    // cosine is at most E^2 / (N + 2 (E - A) / h), N the start's |y|^2.
    const double best = best_boundary * (1.0 - kBoundSlack);
    events_.clear();
    bool any = false;
    for (int32_t b = 0; b < used; ++b) {
      walk_[b] = 0;
      if (n2_sum_[b] == 0) continue;  // no critical value
      const double half_edge = 0.5 * upper_edge(key_of_largest - b);
      const double start = ip_before_[b], end = start + ip_sum_[b];
      walk_[b] = end * end * half_edge >= best * (n2_before_[b] * half_edge + (end - start));
      any = any || walk_[b];
    }
    if (!any) return;  // no bucket reaches the 1-bit code, the first boundary: it is the best
    for (int32_t m = 1; m <= top_; ++m) {
      const int32_t* bucket = bucket_of_.data() + (m - 1) * dp_;
      for (int64_t j = 0; j < dp_; ++j)
        if (bucket[j] >= 0 && walk_[bucket[j]])
          events_.push_back({mag_[j] * inverse_[m], static_cast<int32_t>(j), m});
    }
    std::sort(events_.begin(), events_.end());
    // Walk the chosen buckets in order, each from its start state; keep the first best.
    double walked_best = ip_start * ip_start / n2_start;
    Event chosen{0.0, -1, 0};
    int32_t b = -1;  // the bucket of the last critical value walked
    for (const Event& e : events_) {
      const int32_t eb = b_of(e);
      if (eb != b) {  // the first critical value of a walked bucket: start from its sums
        b = eb;
        ip = ip_before_[b];
        n2 = n2_before_[b];
      }
      ip += mag_[e.j];
      n2 += 2.0 * static_cast<double>(e.m);
      const double value = ip * ip / n2;
      if (value > walked_best) {
        walked_best = value;
        chosen = e;
      }
    }
    if (chosen.j < 0) return;  // the 1-bit code is the best
    // level_j: the critical values of j up to the chosen one in the walk's order, that is
    // those in earlier buckets and those of the chosen one's bucket that precede it
    const uint32_t chosen_bucket = static_cast<uint32_t>(b_of(chosen));
    for (int32_t m = 1; m <= top_; ++m) {
      const int32_t* bucket = bucket_of_.data() + (m - 1) * dp_;
      for (int64_t j = 0; j < dp_; ++j)  // -1 (no critical value) compares as the largest
        level_[j] += static_cast<uint32_t>(bucket[j]) < chosen_bucket;
      for (int64_t j = 0; j < dp_; ++j)
        if (static_cast<uint32_t>(bucket[j]) == chosen_bucket &&
            !(chosen < Event{mag_[j] * inverse_[m], static_cast<int32_t>(j), m}))
          ++level_[j];
    }
  }

  int32_t b_of(const Event& e) const { return bucket_of_[(e.m - 1) * dp_ + e.j]; }

  // A monotone key of a positive double: its exponent and first kStepBits mantissa bits.
  static int64_t key(double v) {
    int64_t bits;
    std::memcpy(&bits, &v, sizeof(bits));
    return bits >> (52 - kStepBits);
  }

  // The smallest double above every value of the given key.
  static double upper_edge(int64_t key_value) {
    const int64_t bits = (key_value + 1) << (52 - kStepBits);
    double v;
    std::memcpy(&v, &bits, sizeof(v));
    return v;
  }

  static constexpr int kStepBits = 5;                   // 32 buckets per octave of u
  // Relative slack of the bucket bound: it covers the rounding of the bucket sums.
  static constexpr double kBoundSlack = 1e-9;
  static constexpr int64_t kBuckets = 24 << kStepBits;  // 24 octaves; smaller u share the last
  int64_t dp_, bits_;
  int32_t top_;
  std::vector<int32_t> level_;
  std::vector<double> mag_, inverse_;  // inverse_[m] = 1 / m
  std::vector<int32_t> bucket_of_;     // (top, dp): the bucket of critical value m of j, or -1
  std::vector<double> ip_sum_, n2_sum_;  // per bucket: sums of |o_j| and of 2 m
  std::vector<double> ip_before_, n2_before_;  // per bucket: <y, o> and |y|^2 at its start
  std::vector<char> walk_;             // per bucket: walked one critical value at a time
  int32_t used_ = 0;                   // buckets the sums hold values for
  std::vector<Event> events_;          // the critical values of the walked buckets
};

// A query rotated once, its squared norm and the table of signed sums
// table[g][b] = sum_{t < 8} (bit t of b ? q'_{8g+t} : -q'_{8g+t}), summed in t order.
class QueryTable {
 public:
  QueryTable(int64_t d, int64_t dp, int64_t bits)
      : d_(d), dp_(dp), bits_(bits), xc_(d), rotated_(dp), table_(dp / 8 * kGroupSums) {}

  void prepare(const float* q, const float* centre, const float* R) {
    rotate_rows(q, 1, d_, centre, R, dp_, xc_.data(), rotated_.data());
    double n2 = 0.0;
    for (int64_t j = 0; j < dp_; ++j) n2 += static_cast<double>(rotated_[j]) * rotated_[j];
    norm2_ = static_cast<float>(n2);
    for (int64_t g = 0; g < dp_ / 8; ++g) {
      const float* qg = rotated_.data() + g * 8;
      float* tg = table_.data() + g * kGroupSums;
      for (int b = 0; b < kGroupSums; ++b) {
        float s = 0.0f;
        for (int t = 0; t < 8; ++t) s += ((b >> t) & 1) ? qg[t] : -qg[t];
        tg[b] = s;
      }
    }
  }

  // sum_j y_j q'_j for the code row (planes only), y_j = sum_p 2^(bits - 2 - p) s_pj.
  float inner_y(const uint8_t* row) const {
    const int64_t groups = dp_ / 8;
    float total = 0.0f, weight = std::ldexp(1.0f, static_cast<int>(bits_) - 2);
    for (int64_t p = 0; p < bits_; ++p, weight *= 0.5f) {
      const uint8_t* plane = row + p * groups;
      float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      for (int64_t g = 0; g < groups; g += 4)
        for (int l = 0; l < 4; ++l) acc[l] += table_[(g + l) * kGroupSums + plane[g + l]];
      total += weight * ((acc[0] + acc[1]) + (acc[2] + acc[3]));
    }
    return total;
  }

  // (estimated <x - c, q - c>, estimated squared distance) of a code row.
  std::pair<float, float> estimate(const uint8_t* row) const {
    const Factors f = read_factors(row, dp_ / 8 * bits_);
    const float inner = f.norm / (f.cos * f.ynorm) * inner_y(row);
    return {inner, (f.norm * f.norm + norm2_) - 2.0f * inner};
  }

 private:
  int64_t d_, dp_, bits_;
  std::vector<float> xc_, rotated_, table_;
  float norm2_ = 0.0f;
};

}  // namespace

int64_t rabitq_row_bytes(int64_t dp, int64_t bits) {
  return dp / 8 * bits + kFactors * static_cast<int64_t>(sizeof(float));
}

void rabitq_rotate(const float* x, int64_t n, int64_t d, const float* centre, const float* R,
                   int64_t dp, float* out) {
#pragma omp parallel
  {
    std::vector<float> xc(kRowBlock * d);
#pragma omp for schedule(static)
    for (int64_t i0 = 0; i0 < n; i0 += kEncodeRows)
      rotate_rows(x + i0 * d, std::min(kEncodeRows, n - i0), d, centre, R, dp, xc.data(),
                  out + i0 * dp);
  }
}

void rabitq_encode(const float* x, int64_t n, int64_t d, const float* centre, const float* R,
                   int64_t dp, int64_t bits, uint8_t* codes) {
  check_shape(dp, bits, "rabitq_encode");
  const int64_t row_bytes = rabitq_row_bytes(dp, bits);
#pragma omp parallel
  {
    std::vector<float> xc(kRowBlock * d), z(kEncodeRows * dp);
    RowQuantizer quantize(dp, bits);
#pragma omp for schedule(dynamic)
    for (int64_t i0 = 0; i0 < n; i0 += kEncodeRows) {
      const int64_t rows = std::min(kEncodeRows, n - i0);
      rotate_rows(x + i0 * d, rows, d, centre, R, dp, xc.data(), z.data());
      for (int64_t r = 0; r < rows; ++r) quantize(z.data() + r * dp, codes + (i0 + r) * row_bytes);
    }
  }
}

void rabitq_decode(const uint8_t* codes, int64_t n, int64_t d, const float* centre,
                   const float* R, int64_t dp, int64_t bits, float* out) {
  check_shape(dp, bits, "rabitq_decode");
  const int64_t row_bytes = rabitq_row_bytes(dp, bits), plane_bytes = dp / 8;
  const float offset = 0.5f - static_cast<float>(int64_t(1) << (bits - 1));  // y = u + offset
#pragma omp parallel
  {
    std::vector<float> z(dp);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* row = codes + i * row_bytes;
      const Factors f = read_factors(row, plane_bytes * bits);
      const float scale = f.norm * f.cos / f.ynorm;
      for (int64_t j = 0; j < dp; ++j) {
        int64_t u = 0;
        for (int64_t p = 0; p < bits; ++p) u = (u << 1) | ((row[p * plane_bytes + j / 8] >> (j % 8)) & 1);
        z[j] = scale * (static_cast<float>(u) + offset);
      }
      for (int64_t t = 0; t < d; ++t) {
        float s = 0.0f;
        for (int64_t j = 0; j < dp; ++j) s = fmadd(z[j], R[t * dp + j], s);
        out[i * d + t] = centre[t] + s;
      }
    }
  }
}

void rabitq_search(const uint8_t* codes, int64_t n, int64_t bits, const float* queries,
                   int64_t nq, int64_t d, const float* centre, const float* R, int64_t dp,
                   int64_t k, bool inner_product, float* distances, int64_t* ids) {
  check_shape(dp, bits, "rabitq_search");
  if (k < 1 || k > n) throw std::invalid_argument("rabitq_search: need 1 <= k <= n");
  const int64_t row_bytes = rabitq_row_bytes(dp, bits);
#pragma omp parallel
  {
    QueryTable table(d, dp, bits);
#pragma omp for schedule(dynamic)
    for (int64_t q = 0; q < nq; ++q) {
      table.prepare(queries + q * d, centre, R);
      TopK<float> top(distances + q * k, ids + q * k, k);
      for (int64_t i = 0; i < n; ++i) {
        const auto est = table.estimate(codes + i * row_bytes);
        const float dist = inner_product ? -est.first : est.second;
        if (dist < top.threshold()) top.push(dist, i);
      }
      top.finish();
    }
  }
}

void rabitq_estimate(const uint8_t* codes, int64_t n, int64_t bits, const float* queries,
                     int64_t nq, int64_t d, const float* centre, const float* R, int64_t dp,
                     const int64_t* ids, int64_t m, float* inner, float* distances) {
  check_shape(dp, bits, "rabitq_estimate");
  const int64_t row_bytes = rabitq_row_bytes(dp, bits);
  for (int64_t i = 0; i < nq * m; ++i)
    if (ids[i] < 0 || ids[i] >= n) throw std::invalid_argument("rabitq_estimate: id out of range");
#pragma omp parallel
  {
    QueryTable table(d, dp, bits);
#pragma omp for schedule(dynamic)
    for (int64_t q = 0; q < nq; ++q) {
      table.prepare(queries + q * d, centre, R);
      for (int64_t j = 0; j < m; ++j) {
        const auto est = table.estimate(codes + ids[q * m + j] * row_bytes);
        inner[q * m + j] = est.first;
        distances[q * m + j] = est.second;
      }
    }
  }
}

}  // namespace benchpq
