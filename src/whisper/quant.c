/*
 * ggml's block-quantized weight formats: q4_0, q5_0, q5_1 and q8_0.
 *
 * A row of n weights (n a multiple of 32) is n/32 blocks of 32. Each block
 * holds an f16 scale d (q5_1 also an f16 offset m) and small integers q;
 * a weight is d*q (q5_1: d*q + m). The layouts, little-endian, packed:
 *
 *   q4_0  d, qs[16]          q of weight j is low nibble of qs[j], of j+16
 *                            the high nibble; both minus 8        (18 bytes)
 *   q5_0  d, qh[4], qs[16]   as q4_0 plus a fifth bit from the 32-bit mask
 *                            qh (bit i for weight i); minus 16    (22 bytes)
 *   q5_1  d, m, qh[4], qs[16] as q5_0 without the minus 16        (24 bytes)
 *   q8_0  d, qs[32] int8                                          (34 bytes)
 *
 * Weights stay in this form in memory: matrix products widen them a block
 * of rows at a time (ops.c), so each token reads the quantized bytes only.
 * Written from the format's definition, not from ggml's code; the tests
 * check it bit for bit against hand-built blocks.
 */
#include "whisper/whisper_impl.h"

#include <math.h>
#include <string.h>

#define QK 32 /* weights per block in every format here */

static int block_bytes(int type) {
    switch (type) {
    case TENSOR_Q4_0:
        return 2 + QK / 2;
    case TENSOR_Q5_0:
        return 2 + 4 + QK / 2;
    case TENSOR_Q5_1:
        return 2 + 2 + 4 + QK / 2;
    case TENSOR_Q8_0:
        return 2 + QK;
    default:
        return 0;
    }
}

int quant_is_block_type(int type) {
    return block_bytes(type) != 0;
}

size_t quant_row_bytes(int type, int n) {
    if (type == TENSOR_F32) return (size_t)n * 4;
    if (type == TENSOR_F16) return (size_t)n * 2;
    return (size_t)(n / QK) * (size_t)block_bytes(type);
}

static float half_at(const uint8_t *p) {
    return di_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

static uint32_t u32_at(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- Dequantization, one block of 32 ----------------------------------- */

static void dq_q4_0(const uint8_t *b, float *y) {
    float d = half_at(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < QK / 2; j++) {
        y[j] = d * (float)((qs[j] & 0x0F) - 8);
        y[j + QK / 2] = d * (float)((qs[j] >> 4) - 8);
    }
}

/* The 5-bit codes of q5_0/q5_1, before the offset. */
static void q5_codes(const uint8_t *qh4, const uint8_t *qs, int *q) {
    uint32_t qh = u32_at(qh4);
    for (int j = 0; j < QK / 2; j++) {
        q[j] = (qs[j] & 0x0F) | (int)((qh >> j) & 1) << 4;
        q[j + QK / 2] = (qs[j] >> 4) | (int)((qh >> (j + QK / 2)) & 1) << 4;
    }
}

static void dq_q5_0(const uint8_t *b, float *y) {
    float d = half_at(b);
    int q[QK];
    q5_codes(b + 2, b + 6, q);
    for (int j = 0; j < QK; j++)
        y[j] = d * (float)(q[j] - 16);
}

static void dq_q5_1(const uint8_t *b, float *y) {
    float d = half_at(b), m = half_at(b + 2);
    int q[QK];
    q5_codes(b + 4, b + 8, q);
    for (int j = 0; j < QK; j++)
        y[j] = d * (float)q[j] + m;
}

static void dq_q8_0(const uint8_t *b, float *y) {
    float d = half_at(b);
    const int8_t *qs = (const int8_t *)(b + 2);
    for (int j = 0; j < QK; j++)
        y[j] = d * (float)qs[j];
}

void quant_dequant_row(int type, const void *src, float *dst, int n) {
    if (type == TENSOR_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    }
    if (type == TENSOR_F16) {
        di_f16_to_f32_row(src, dst, (size_t)n);
        return;
    }
    void (*dq)(const uint8_t *, float *) = type == TENSOR_Q4_0   ? dq_q4_0
                                           : type == TENSOR_Q5_0 ? dq_q5_0
                                           : type == TENSOR_Q5_1 ? dq_q5_1
                                                                 : dq_q8_0;
    const uint8_t *b = src;
    size_t step = (size_t)block_bytes(type);
    for (int i = 0; i < n / QK; i++)
        dq(b + (size_t)i * step, dst + (size_t)i * QK);
}

/* ---- Reference quantization, one block of 32 ---------------------------- */

static void put_half(uint8_t *p, float v) {
    uint16_t h = di_f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* The value of largest magnitude, with its sign: q4_0 and q5_0 map it to
 * the code -8 (-16) exactly, which gives the other side one more step. */
static float signed_absmax(const float *x) {
    float amax = 0, max = 0;
    for (int j = 0; j < QK; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    return max;
}

/* floor(v) clamped to [0, top]; callers add the format's offset plus 0.5
 * in one float addition, so the rounding matches ggml's reference. */
static int code(float v, int top) {
    int q = (int)floorf(v);
    return q < 0 ? 0 : q > top ? top : q;
}

static void qz_q4_0(const float *x, uint8_t *b) {
    float d = signed_absmax(x) / -8, id = d != 0 ? 1.0f / d : 0;
    put_half(b, d);
    for (int j = 0; j < QK / 2; j++) {
        int lo = code(x[j] * id + 8.5f, 15), hi = code(x[j + QK / 2] * id + 8.5f, 15);
        b[2 + j] = (uint8_t)(lo | hi << 4);
    }
}

/* Packs 5-bit codes into qh (fifth bits) and qs (nibbles). */
static void q5_pack(const int *q, uint8_t *qh4, uint8_t *qs) {
    uint32_t qh = 0;
    for (int j = 0; j < QK; j++)
        qh |= (uint32_t)(q[j] >> 4 & 1) << j;
    for (int j = 0; j < QK / 2; j++)
        qs[j] = (uint8_t)((q[j] & 0x0F) | (q[j + QK / 2] & 0x0F) << 4);
    put_u32(qh4, qh);
}

static void qz_q5_0(const float *x, uint8_t *b) {
    float d = signed_absmax(x) / -16, id = d != 0 ? 1.0f / d : 0;
    int q[QK];
    for (int j = 0; j < QK; j++)
        q[j] = code(x[j] * id + 16.5f, 31);
    put_half(b, d);
    q5_pack(q, b + 2, b + 6);
}

static void qz_q5_1(const float *x, uint8_t *b) {
    float lo = x[0], hi = x[0];
    for (int j = 1; j < QK; j++) {
        lo = x[j] < lo ? x[j] : lo;
        hi = x[j] > hi ? x[j] : hi;
    }
    float d = (hi - lo) / 31, id = d != 0 ? 1.0f / d : 0;
    int q[QK];
    for (int j = 0; j < QK; j++)
        q[j] = code((x[j] - lo) * id + 0.5f, 31);
    put_half(b, d);
    put_half(b + 2, lo);
    q5_pack(q, b + 4, b + 8);
}

static void qz_q8_0(const float *x, uint8_t *b) {
    float amax = 0;
    for (int j = 0; j < QK; j++)
        amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
    float d = amax / 127, id = d != 0 ? 1.0f / d : 0;
    put_half(b, d);
    for (int j = 0; j < QK; j++)
        b[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

void quant_quantize_row(int type, const float *src, void *dst, int n) {
    if (type == TENSOR_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    }
    uint8_t *out = dst;
    if (type == TENSOR_F16) {
        for (int i = 0; i < n; i++) {
            uint16_t h = di_f32_to_f16(src[i]);
            out[2 * i] = (uint8_t)h;
            out[2 * i + 1] = (uint8_t)(h >> 8);
        }
        return;
    }
    void (*qz)(const float *, uint8_t *) = type == TENSOR_Q4_0   ? qz_q4_0
                                           : type == TENSOR_Q5_0 ? qz_q5_0
                                           : type == TENSOR_Q5_1 ? qz_q5_1
                                                                 : qz_q8_0;
    size_t step = (size_t)block_bytes(type);
    for (int i = 0; i < n / QK; i++)
        qz(src + (size_t)i * QK, out + (size_t)i * step);
}

/* ---- Few-row products straight from the blocks (AVX-512) -------------- */

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")))

/* Widens one block to 32 floats in two registers: weights 0..15 in lo,
 * 16..31 in hi. q4_0 and the q5 formats keep weight j and j+16 in the low
 * and high nibble of byte j, so the halves fall out of the nibbles. */
AVX512 static inline void block_to_regs(int type, const uint8_t *b, __m512 *lo, __m512 *hi) {
    float d = half_at(b), m = 0;
    __m512i qlo, qhi;
    if (type == TENSOR_Q8_0) {
        qlo = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 2)));
        qhi = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 18)));
    } else {
        const uint8_t *qs = b + (type == TENSOR_Q4_0 ? 2 : type == TENSOR_Q5_0 ? 6 : 8);
        __m128i v = _mm_loadu_si128((const __m128i *)qs), nib = _mm_set1_epi8(0x0F);
        qlo = _mm512_cvtepu8_epi32(_mm_and_si128(v, nib));
        qhi = _mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(v, 4), nib));
        int offset = 8;
        if (type != TENSOR_Q4_0) {
            uint32_t qh = u32_at(b + (type == TENSOR_Q5_0 ? 2 : 4));
            __m512i sixteen = _mm512_set1_epi32(16);
            qlo = _mm512_mask_add_epi32(qlo, (__mmask16)(qh & 0xFFFF), qlo, sixteen);
            qhi = _mm512_mask_add_epi32(qhi, (__mmask16)(qh >> 16), qhi, sixteen);
            offset = 16;
            if (type == TENSOR_Q5_1) offset = 0, m = half_at(b + 2);
        }
        qlo = _mm512_sub_epi32(qlo, _mm512_set1_epi32(offset));
        qhi = _mm512_sub_epi32(qhi, _mm512_set1_epi32(offset));
    }
    __m512 dv = _mm512_set1_ps(d), mv = _mm512_set1_ps(m);
    *lo = _mm512_fmadd_ps(_mm512_cvtepi32_ps(qlo), dv, mv);
    *hi = _mm512_fmadd_ps(_mm512_cvtepi32_ps(qhi), dv, mv);
}

AVX512 static void gemv_blocks_avx512(int type, const uint8_t *w, const float *x, int M, int K,
                                      float *y, int ldy, int n0, int n1) {
    size_t rb = quant_row_bytes(type, K), bb = (size_t)block_bytes(type);
    for (int n = n0; n < n1; n++) {
        const uint8_t *row = w + (size_t)n * rb;
        if (n + 2 < n1)
            for (size_t o = 0; o < rb; o += 64)
                _mm_prefetch((const char *)(row + 2 * rb + o), _MM_HINT_T0);
        __m512 acc[8];
        for (int m = 0; m < M; m++)
            acc[m] = _mm512_setzero_ps();
        for (int k = 0; k < K; k += QK) {
            __m512 lo, hi;
            block_to_regs(type, row + (size_t)(k / QK) * bb, &lo, &hi);
            for (int m = 0; m < M; m++) {
                const float *xm = x + (size_t)m * K + k;
                acc[m] = _mm512_fmadd_ps(lo, _mm512_loadu_ps(xm), acc[m]);
                acc[m] = _mm512_fmadd_ps(hi, _mm512_loadu_ps(xm + 16), acc[m]);
            }
        }
        for (int m = 0; m < M; m++)
            y[(size_t)m * ldy + n] = _mm512_reduce_add_ps(acc[m]);
    }
}
#endif

int quant_gemv_rows(int type, const void *w, const float *x, int M, int K, float *y, int ldy,
                    int n0, int n1) {
#if defined(__x86_64__)
    if (quant_is_block_type(type) && M <= 8 && (di_cpu_features() & DI_CPU_AVX512)) {
        gemv_blocks_avx512(type, w, x, M, K, y, ldy, n0, n1);
        return 0;
    }
#endif
    (void)w, (void)x, (void)M, (void)K, (void)y, (void)ldy, (void)n0, (void)n1;
    return -1;
}
