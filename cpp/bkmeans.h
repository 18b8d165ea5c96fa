// Binary k-means, "Bk-means" (Gong, Pawar, Yu, Lazebnik, "Web scale photo
// hash clustering on a single machine", CVPR 2015): k-means in Hamming space
// over packed binary codes (bit layout of hamming.h). Centres are binary
// codes; a point is assigned to the centre at the smallest Hamming distance
// (ties: the smaller centre index); a centre becomes the bitwise majority
// vote of its members (a bit is 1 when more than half of the members have
// it, 0 when fewer than half do, and keeps its previous value on a tie, as
// the pqkmeans library does). Initialisation and empty clusters:
// CodeKMeansInit and CodeKMeansEmpty (modes.h). Memory: the codes plus
// O(k * nbits) tables; labels are written into the caller's array. Results
// depend on the seed only, not on the number of threads.
#pragma once

#include <cstdint>

#include "modes.h"

namespace benchpq {

/// Cluster codes (n, nbytes) uint8 into k clusters with niter assignment
/// steps and a majority-vote update between consecutive ones (niter - 1
/// updates), stopping early when an update changes no centre.
///
/// centers: (k, nbytes) uint8, out (in as well for CODE_KMEANS_INIT_GIVEN):
/// the centres of the last assignment. labels: out (n,) int64, the nearest
/// final centre of every code. objective: out (niter,) float64, the sum of
/// the Hamming distances of the codes to their centres at each assignment.
/// iter_seconds: out (niter,) float64, wall time of each iteration
/// (assignment plus update). init: a CodeKMeansInit, empty: a
/// CodeKMeansEmpty (modes.h). Returns the number of assignment steps run.
/// Requires 1 <= k <= n, niter >= 1, nbytes >= 1.
int bkmeans(const uint8_t* codes, int64_t n, int64_t nbytes, int64_t k, int niter, int init,
            int empty, uint64_t seed, uint8_t* centers, int64_t* labels, double* objective,
            double* iter_seconds);

/// labels (n,) int64: the nearest of the k centers (k, nbytes) to each code
/// (ties: the smaller index); distances (n,) int32 unless null.
void bkmeans_assign(const uint8_t* codes, int64_t n, int64_t nbytes, const uint8_t* centers,
                    int64_t k, int64_t* labels, int32_t* distances);

/// One majority-vote update of centers (k, nbytes) in place from the codes'
/// labels (n,) in [0, k); empty clusters keep their centre. Returns the
/// number of centres that changed.
int64_t bkmeans_update(const uint8_t* codes, int64_t n, int64_t nbytes, const int64_t* labels,
                       int64_t k, uint8_t* centers);

}  // namespace benchpq
