// Hamming distances between packed binary codes (popcount of XOR).
//
// Codes are (n, nbytes) uint8, bit j of a code being bit (j % 8) of byte
// (j / 8) (numpy.packbits(..., bitorder="little"), as itq.h writes them).
// Rows are read as words of 8, 4, 2 or 1 bytes, the widest that divides
// nbytes; the compiler vectorises the popcounts where the CPU has them
// (e.g. AVX-512 VPOPCNTDQ). Distances are exact integers.
#pragma once

#include <cstdint>

namespace benchpq {

/// out (na, nb) int32: Hamming distance between every row of a (na, nbytes)
/// and every row of b (nb, nbytes).
void hamming_distances(const uint8_t* a, int64_t na, const uint8_t* b, int64_t nb, int64_t nbytes,
                       int32_t* out);

/// The k nearest of the n codes to each of the nq query codes, by Hamming
/// distance: distances (nq, k) float32 (the Hamming distance as a float) and
/// ids (nq, k) int64, nearest first, ties by the smaller id (exact: a
/// counting sort over the nbytes * 8 + 1 possible distances). Parallel over
/// queries. Requires 1 <= k <= n.
void hamming_search(const uint8_t* queries, int64_t nq, const uint8_t* codes, int64_t n,
                    int64_t nbytes, int64_t k, float* distances, int64_t* ids);

}  // namespace benchpq
