// PQk-means (Matsui, Ogaki, Yamasaki, Aizawa, "PQk-means: billion-scale
// clustering for product-quantized codes", ACM Multimedia 2017): k-means
// whose data and centres are PQ codes (n, M) uint8 (Ks <= 256), never float
// vectors.
//
// Assignment: symmetric distance d(x, c) = sum_m T_m[x_m][c_m] with the
// codeword-to-codeword tables T (M, Ks, Ks); ties go to the smaller centre
// index. Each iteration lays the tables out per centre,
// (M, Ks, k) = T_m[a][c_m(j)], in blocks of centres that fit in L2, so that
// scoring a code is M contiguous row additions per block (no gathers).
// Update, by sparse voting: per cluster and sub-space a histogram h of the
// members' sub-codes, and the new sub-code argmin_c sum_a h[a] T_m[a][c]
// (float sums over a ascending, as the pqkmeans library; ties: the smaller
// codeword). Initialisation and empty clusters: CodeKMeansInit and
// CodeKMeansEmpty (modes.h).
//
// Large k: a grouped assignment (pqkmeans(), groups > 0) compares each code
// with the members of a few groups of centres only, found in the code domain.
//
// Memory: the codes and labels of the caller, plus O(k) tables: the centre
// layout M * Ks * k floats (exhaustive; grouped: M * Ks * groups floats and
// the k centres' codes) and the histograms k * M * Ks uint32. Results
// depend on the seed only, not on the number of threads; with
// CODE_KMEANS_INIT_LIBRARY and CODE_KMEANS_EMPTY_KEEP they equal the
// pqkmeans library's (same tables, same float operations).
#pragma once

#include <cstdint>

#include "modes.h"

namespace benchpq {

/// tables (M, Ks, Ks) float32: tables[m][a][b] = squared L2 distance between
/// codewords a and b of sub-space m, codewords (M, Ks, dsub) float32, summed
/// in float in dimension order (bit for bit the library's tables).
void pqkmeans_tables(const float* codewords, int64_t M, int64_t Ks, int64_t dsub, float* tables);

/// Cluster codes (n, M) uint8 (values < Ks <= 256) into k clusters: niter
/// assignment steps with a sparse-voting update between consecutive ones
/// (niter - 1 updates, as the library), stopping early when an update
/// changes no centre.
///
/// groups, probe: groups == 0, the exhaustive assignment (the reference);
/// groups > 0, the grouped one for large k: the centres are clustered (by
/// PQk-means on the centres, 10 iterations, seeded) into min(groups, k)
/// groups, and each code is compared exactly to the members of its probe
/// nearest groups only, and from the second assignment on to its previous
/// centre too (so the objective never rises). Cost per code: groups +
/// about probe * k / groups distances instead of k; with probe >= groups
/// the result is the exhaustive one bit for bit.
///
/// tables: (M, Ks, Ks) from pqkmeans_tables. centers: (k, M) uint8, out (in
/// as well for CODE_KMEANS_INIT_GIVEN): the centres of the last assignment.
/// labels: out (n,) int64, the nearest final centre of every code.
/// objective: out (niter,) float64, the sum of the symmetric distances of
/// the codes to their centres at each assignment. iter_seconds: out (niter,)
/// float64, wall time per iteration. init: a CodeKMeansInit, empty: a
/// CodeKMeansEmpty (modes.h). Returns the number of assignments run.
/// Requires 1 <= k <= n, niter >= 1, 1 <= Ks <= 256.
int pqkmeans(const uint8_t* codes, int64_t n, int64_t M, int64_t Ks, const float* tables,
             int64_t k, int niter, int init, int empty, int64_t groups, int64_t probe,
             uint64_t seed, uint8_t* centers, int64_t* labels, double* objective,
             double* iter_seconds);

/// labels (n,) int64: the centre of centers (k, M) nearest to each code by
/// symmetric distance (ties: the smaller index); distances (n,) float32
/// unless null. groups, probe: as pqkmeans() (0: exhaustive), grouping
/// seeded by seed.
void pqkmeans_assign(const uint8_t* codes, int64_t n, int64_t M, int64_t Ks, const float* tables,
                     const uint8_t* centers, int64_t k, int64_t groups, int64_t probe,
                     uint64_t seed, int64_t* labels, float* distances);

/// One sparse-voting update of centers (k, M) in place from labels (n,) in
/// [0, k); empty clusters keep their centre. Returns the number of centres
/// that changed.
int64_t pqkmeans_update(const uint8_t* codes, int64_t n, int64_t M, int64_t Ks,
                        const float* tables, const int64_t* labels, int64_t k, uint8_t* centers);

}  // namespace benchpq
