// Fast-scan product quantization with 4-bit codes (André, Kermarrec, Le
// Scouarnec, "Cache locality is not enough: high-performance nearest neighbor
// search with product quantization fast scan", VLDB 2015; the block layout is
// the one of faiss's IndexPQFastScan with bbs = 32, so codes move between the
// two without conversion).
//
// A ProductQuantizer with Ks = 16 (M even) trains, encodes and decodes; these
// functions store and scan its codes:
//
// * compact codes (n, M/2) uint8: sub-code 2j in the low nibble of byte j,
//   2j+1 in the high nibble (faiss's sa_encode layout for nbits = 4);
// * blocks: the codes of 32 consecutive vectors (the last block padded with
//   code 0), (ceil(n/32), M/2, 32) uint8. In block b, the 32 bytes of the
//   sub-quantizer pair (2p, 2p+1) are: byte j < 16 holds sub-code 2p of vector
//   perm(j) in its low nibble and of vector perm(j)+16 in its high nibble,
//   byte 16+j the same for sub-code 2p+1, where perm = 0,8,1,9,...,7,15. One
//   32-byte load then feeds two 16-entry table shuffles whose byte results,
//   read as 16-bit lanes, hold vector i in the low byte and i+8 in the high.
//
// Search quantizes each query's float ADC tables (M, 16) to uint8 with one
// scale a and per-table offsets (entry = round((t - min_m) * a)), with
// a = min(255 / max_m span_m, 65535 / sum_m span_m) so that no 16-bit sum can
// overflow; distance = sum_m min_m + (sum of entries) / a, within
// M / (2a) of the float ADC distance. Sums of table entries are computed with
// byte shuffles (AVX2, AVX-512BW) or a scalar loop, all exact, so every path
// returns the same ids and distances. The k_factor * k best by quantized
// distance (ties: smaller id) are optionally re-ranked by the float tables.
#pragma once

#include <cstdint>

#include "modes.h"
#include "pq.h"

namespace benchpq {

/// Whether this CPU can run the given PqfsSimd level (modes.h).
bool pqfs_simd_supported(int level);
/// The best PqfsSimd level this CPU supports.
int pqfs_best_simd();

/// Bytes of the blocks holding n codes of M sub-codes: ceil(n/32) * 32 * M/2.
int64_t pqfs_blocks_bytes(int64_t n, int64_t M);

/// Encode x (n, D) with pq (Ks = 16, M even) into compact codes (n, M/2).
void pqfs_encode(const ProductQuantizer& pq, const float* x, int64_t n, uint8_t* codes);
/// Decode compact codes (n, M/2) into x (n, D).
void pqfs_decode(const ProductQuantizer& pq, const uint8_t* codes, int64_t n, float* x);

/// Compact codes (n, M/2) -> blocks (pqfs_blocks_bytes(n, M) bytes).
void pqfs_pack_blocks(const uint8_t* codes, int64_t n, int64_t M, uint8_t* blocks);
/// Blocks -> compact codes (n, M/2) of the first n vectors.
void pqfs_unpack_blocks(const uint8_t* blocks, int64_t n, int64_t M, uint8_t* codes);

/// Quantize float tables (nq, M, 16) to qtables (nq, M, 16) uint8; scale (nq,) and
/// offset (nq,) turn a sum s of entries into the distance offset + s / scale.
void pqfs_quantize_tables(const float* tables, int64_t nq, int64_t M, uint8_t* qtables,
                          float* scale, float* offset);

/// k-NN of queries (nq, D) over the n codes held in blocks: distances, ids (nq, k),
/// nearest first. k_factor = 1: quantized distances; k_factor > 1: the
/// min(n, k_factor * k) best by quantized distance re-ranked by float ADC
/// distance. inner_product != 0: the tables are ProductQuantizer::adc_ip_tables, the
/// distances negated inner products (the largest inner products first). simd: a PqfsSimd
/// (modes.h). Parallel over queries, or over the blocks when
/// there are fewer queries than threads; the result does not depend on the
/// number of threads. Requires 1 <= k <= n < 2^40.
void pqfs_search(const ProductQuantizer& pq, const float* queries, int64_t nq,
                 const uint8_t* blocks, int64_t n, int64_t k, int64_t k_factor, int simd,
                 int inner_product, float* distances, int64_t* ids);

}  // namespace benchpq
