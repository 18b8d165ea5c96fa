// Every mode number the native API takes, one enum per concept.
//
// The functions keep plain int parameters (a mode crosses from Python as an
// int); the values are unique across all enums, so a mode passed to the wrong
// parameter is rejected by the callee ("unknown init") instead of silently
// meaning something else. Python reads these values from this header
// (benchpq.native.enum_value); a test checks them against the compiled library.
#pragma once

namespace benchpq {

/// Initialisation of k-means on float vectors (kmeans.h; PQ, OPQ and LOPQ training).
enum KMeansInit : int {
  /// k-means++ seeding (Arthur & Vassilvitskii, SODA 2007).
  KMEANS_INIT_PLUSPLUS = 0,
  /// k distinct random training points.
  KMEANS_INIT_RANDOM = 1,
  /// Hot start: the centroids array already holds the initial centroids.
  KMEANS_INIT_GIVEN = 2,
  /// Greedy k-means++ (greedy_kmeanspp in kmeans.h): several D^2 draws per
  /// step, keeping the one that lowers the potential most.
  KMEANS_INIT_GREEDY_PLUSPLUS = 3,
};

/// Initialisation of k-means over codes (PQk-means, pqkmeans.h; Bk-means, bkmeans.h).
enum CodeKMeansInit : int {
  /// k distinct code values, drawn uniformly among the n rows (so a value is
  /// drawn with probability proportional to its frequency); O(k) memory.
  CODE_KMEANS_INIT_DISTINCT = 16,
  /// As the pqkmeans library's own classes do: PQKMeans shuffles the row ids
  /// with std::shuffle(std::mt19937(seed)) and takes the first k; BKMeans
  /// draws k rows with replacement by
  /// std::uniform_int_distribution<unsigned long>(0, n - 1) on std::mt19937(seed).
  CODE_KMEANS_INIT_LIBRARY = 17,
  /// The centres array already holds the k initial centres.
  CODE_KMEANS_INIT_GIVEN = 18,
};

/// What k-means over codes does with a cluster left empty by an assignment
/// that is not the last one.
enum CodeKMeansEmpty : int {
  /// Empty clusters take the points farthest from their own centre, from
  /// clusters that keep at least one member: candidates by distance
  /// descending, then id ascending, the first empty cluster (smallest index)
  /// taking the first candidate, and so on; only points at a positive
  /// distance move, and the 2E + 64 farthest points are the candidates (E =
  /// number of empty clusters). The moved point is then the cluster's only
  /// member, so the update makes its code the centre. Clusters that find no
  /// candidate stay empty (their centre is kept).
  CODE_KMEANS_EMPTY_FARTHEST = 32,
  /// Empty clusters keep their centre (the pqkmeans library's rule).
  CODE_KMEANS_EMPTY_KEEP = 33,
};

/// Instruction set of the 4-bit fast-scan kernels (pqfs.h).
enum PqfsSimd : int {
  PQFS_SIMD_AUTO = 48,    ///< the best level the CPU supports
  PQFS_SIMD_SCALAR = 49,  ///< portable loop
  PQFS_SIMD_AVX2 = 50,    ///< 256-bit byte shuffles
  PQFS_SIMD_AVX512 = 51,  ///< 512-bit byte shuffles (AVX-512F + BW)
};

}  // namespace benchpq
