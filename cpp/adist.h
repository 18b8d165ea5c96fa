// Asymmetric distances of every PQ code to one query, from its lookup table
// (Jegou, Douze, Schmid, "Product quantization for nearest neighbor search",
// IEEE TPAMI 33(1), 2011, section 3.1): d(q, code) = sum_m table[m][code_m].
//
// This is nanopq's DistanceTable.adist: all n distances, unsorted (the search
// methods of ProductQuantizer keep only the top k). Sums run in float32 in
// numpy's pairwise order (adc::pairwise_sum), so that the distances are
// bit-equal to nanopq's np.sum(dtable[range(M), codes], axis=1).
#pragma once

#include <cstdint>

namespace benchpq {

/// out (n,) float32: sum over m of table[m * Ks + codes[i * M + m]], for codes (n, M).
/// table (M, Ks) float32; every code must be < Ks (the caller checks).
void pq_adist_u8(const float* table, int64_t M, int64_t Ks, const uint8_t* codes, int64_t n,
                 float* out);
void pq_adist_u16(const float* table, int64_t M, int64_t Ks, const uint16_t* codes, int64_t n,
                  float* out);

}  // namespace benchpq
