// An int4 screening copy of the int8 item table (int8_table.h), read first by the ranking pass when made (on request:
// `bench scale --int4-screen`; docs/scale.md, "int4 screening", for why Recommend does not use it): half its bytes per
// item, with a per-item bound on how far a screen score can be from the exact (dequantised int8) score, so that the
// items that could rank are found and re-scored exactly from the int8 rows.
//
// Each dequantised int8 row y = s8 · q8 is stored centred on the table's mean row m (float32; the item vectors of a
// trained model share a large common direction, so y - m is about half of y's norm and quantises with half the
// error): d = y - m quantised to 4 bits, q4 = round(d / s4) in -7...7 with s4 = max|d| / 7, stored as the nibble q4 +
// 8 (1...15; padding 8, i.e. 0), plus s4 and e = ||d - s4 q4||_2 (computed in float64, rounded up to float). A panel
// holds 32 items in blocks of 8 values: block g is 128 bytes, item j's 4 bytes at 4 j, the low nibble of byte b its
// value 8g + b and the high nibble its value 8g + 4 + b: one 64-byte load gives 16 items' values 8g..8g+3 (the low
// nibbles) and 8g+4..8g+7 (the high nibbles) in vpdpbusd's unsigned operand layout, unpacked by an and and a shift.
// 64 + 8 bytes per item at k = 128 (136 for the int8 row).
//
// Screen (r2ec_int4_screen): the queries quantised in two int8 levels as for the int8 VNNI pass
// (r2ec_int8_quantize_queries: x ~ x~ = t1 xq1 + t2 xq2), then per item
//   upper_j = alpha · (x·m + s4_j · x~·q4_j) + radius · e_j + slack,
// with radius = |alpha| · ||x|| and slack (per query) covering ||x - x~|| · max_j ||s4 q4_j|| and float rounding, so
// that upper_j >= alpha · x·y_j (Cauchy-Schwarz: |x·(d - s4 q4)| <= ||x|| e_j and |(x - x~)·s4 q4| <= ||x - x~||
// ||s4 q4||). The caller (Tensor's Int8Matrix) writes upper_j for every item, re-scores exactly the best few by
// upper_j, takes the depth-th best exact score T among them, and re-scores every item with upper_j >= T: an item
// left out scores, exactly, below T, and T is at most the depth-th best exact score of the whole table.
#ifndef R2EC_INT4_SCREEN_H
#define R2EC_INT4_SCREEN_H
#include <stddef.h>
#include <stdint.h>

/// Bytes of one block of a panel: 32 items x 8 values x 4 bits.
#define R2EC_INT4_BLOCK 128

#ifdef __cplusplus
extern "C" {
#endif

/// Blocks of 8 values in a row of k: ceil(k / 8).
int r2ec_int4_blocks(int k);

/// Adds the dequantised int8 rows (s8 · q8, float64) of panels first..<last of an int8 table of n items (k values,
/// r2ec_int8_pack's layout) into sum[0..<k] (not cleared).
void r2ec_int4_row_sum(int k, int n, const int8_t *packed8, const float *scales8, int first_panel, int last_panel,
                       double *sum);

/// Packs panels first..<last of the screen from the int8 table (its values and scales) and the mean row `mean` (k
/// floats): nibbles (panels * blocks(k) * 128 bytes), scales4 and errors (panels * 32 floats; padding items 0).
/// Returns the largest ||s4 q4||_2 of those rows.
float r2ec_int4_pack(int k, int n, const int8_t *packed8, const float *scales8, const float *mean, int first_panel,
                     int last_panel, uint8_t *nibbles, float *scales4, float *errors);

/// out[i, items of panels first..<last] = offsets[i] + s4_j · (factors[2i] · sum_k xq1[i,k] q4[j,k] + factors[2i+1] ·
/// sum_k xq2[i,k] q4[j,k]) + radii[i] · e_j (rows ldo apart; only items < n written). u: the quantised queries as
/// r2ec_int8_quantize_queries writes them (two levels of 4 · ceil(k / 4) bytes of xq + 128 per row); factors: alpha ·
/// their steps. `vnni`: 1 for the AVX512_VNNI kernel (r2ec_int8_has_vnni() must hold), 0 for plain loops (the same
/// integer sums).
void r2ec_int4_screen(int vnni, int m, int n, int k, const uint8_t *u, const float *factors, const float *offsets,
                      const float *radii, const uint8_t *nibbles, const float *scales4, const float *errors,
                      int first_panel, int last_panel, float *out, int ldo);

#ifdef __cplusplus
}
#endif
#endif
