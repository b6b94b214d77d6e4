/*
 * The engine's operations. Matrix products with many rows (the encoder)
 * widen f16 and quantized weights to f32 just before, so the model stays
 * compact in memory: on AVX-512 into the panels our own kernel reads,
 * elsewhere for OpenBLAS's sgemm. Products with few rows (decoding a token
 * for 1 to 7 sequences) are memory-bound, so they use our own kernels,
 * which read each weight once, in its stored type, and multiply it into
 * every row. The decoder's attention reads f16 caches through its own
 * kernel too.
 *
 * OpenBLAS runs single-threaded (see state.c); parallelism comes from the
 * state's pool splitting the work at boundaries set by the shapes alone,
 * which makes results independent of the thread count.
 */
#include "whisper/whisper_impl.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define HAVE_X86 1
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")))
#else
#define HAVE_X86 0
#endif

#define GEMM_MIN_ROWS 8     /* below this, our GEMV-style kernel */
#define GEMM_BLOCK_N 256    /* weight rows widened per sgemm call, few-row path */
#define GEMM_SPLIT_ROWS 256 /* from here on, split the input rows between threads */
#define GEMV_BLOCK_N 64

static int cpu_has_avx2(void) {
    return (di_cpu_features() & DI_CPU_AVX2_FMA_F16C) != 0;
}

float *op_thread_scratch(WhisperState *st, int thread, size_t *n) {
    *n = st->wbuf_size;
    return st->wbuf + (size_t)thread * st->wbuf_size;
}

/* ---- Few-row kernel ---------------------------------------------------- */

static void gemv_rows_scalar(float *y, const float *x, int M, int K, int N, const Tensor *w, int n0,
                             int n1) {
    for (int n = n0; n < n1; n++) {
        for (int m = 0; m < M; m++) {
            const float *xm = x + (size_t)m * K;
            double acc = 0;
            if (w->type == TENSOR_F16) {
                const uint16_t *wr = (const uint16_t *)w->data + (size_t)n * K;
                for (int k = 0; k < K; k++)
                    acc += (double)di_f16_to_f32(wr[k]) * xm[k];
            } else {
                const float *wr = (const float *)w->data + (size_t)n * K;
                for (int k = 0; k < K; k++)
                    acc += (double)wr[k] * xm[k];
            }
            y[(size_t)m * N + n] = (float)acc;
        }
    }
}

/* A decoding step streams every weight of the model from memory once, so
 * the few-row kernels prefetch PF_AHEAD weights on, one line per pass over
 * a line's worth of weights: a steady stream as far ahead of the loads as
 * memory latency needs (4 KB of f16, measured against 2 and 8 KB), where a
 * burst of a whole row's lines every few rows left rows of several-
 * sequence products waiting on memory. */
#define PF_AHEAD 2048

#if HAVE_X86
__attribute__((target("avx2,fma,f16c"))) static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma,f16c"))) static inline __m256 load_w8(const Tensor *w, size_t off) {
    if (w->type == TENSOR_F16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w->data + off)));
    return _mm256_loadu_ps((const float *)w->data + off);
}

static inline float load_w1(const Tensor *w, size_t off) {
    return w->type == TENSOR_F16 ? di_f16_to_f32(((const uint16_t *)w->data)[off])
                                 : ((const float *)w->data)[off];
}

/* Each weight row is loaded once and applied to all M (< 8) input rows.
 * Every row sums in the same order whatever M is (two chains over
 * alternate 8-wide steps, then the tail), so a sequence decoded in a batch
 * gets the very logits it gets alone. */
__attribute__((target("avx2,fma,f16c"))) static void
gemv_rows_avx2(float *y, const float *x, int M, int K, int N, const Tensor *w, int n0, int n1) {
    int K8 = K & ~7;
    size_t wsize = w->type == TENSOR_F16 ? 2 : 4;
    for (int n = n0; n < n1; n++) {
        size_t row = (size_t)n * K;
        __m256 acc[GEMM_MIN_ROWS], acc2[GEMM_MIN_ROWS];
        for (int m = 0; m < M; m++)
            acc[m] = acc2[m] = _mm256_setzero_ps();
        int k = 0;
        for (; k + 16 <= K8; k += 16) {
            _mm_prefetch((const char *)w->data + (row + k + PF_AHEAD) * wsize, _MM_HINT_T0);
            __m256 w0 = load_w8(w, row + k), w1 = load_w8(w, row + k + 8);
            for (int m = 0; m < M; m++) {
                const float *xm = x + (size_t)m * K + k;
                acc[m] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xm), acc[m]);
                acc2[m] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xm + 8), acc2[m]);
            }
        }
        for (; k < K8; k += 8) {
            __m256 w0 = load_w8(w, row + k);
            for (int m = 0; m < M; m++)
                acc[m] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + (size_t)m * K + k), acc[m]);
        }
        for (int m = 0; m < M; m++) {
            float s = hsum256(_mm256_add_ps(acc[m], acc2[m]));
            for (int kk = K8; kk < K; kk++)
                s += load_w1(w, row + kk) * x[(size_t)m * K + kk];
            y[(size_t)m * N + n] = s;
        }
    }
}
#endif

/* The first `left` lanes of a vector of 16 (all, none, or some). */
static inline __mmask16 lanes_up_to(int left) {
    return left >= 16 ? 0xffff : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
}

/* AVX-512 for f16 weights, the common case: 16 weights a conversion. One-
 * row products take two weight rows at a time for four independent chains. */
AVX512 static inline __m512 load_h16(const uint16_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

/* Sixteen horizontal sums at once: lane j of the result is v[j]'s lanes
 * added in _mm512_reduce_add_ps's order (halves of 256, of 128, then pairs
 * 2 apart, then neighbours), so it equals _mm512_reduce_add_ps(v[j]) bit
 * for bit, with 15 vector adds instead of 64 and about half the shuffles. */
AVX512 static inline __m512 reduce_add_16(const __m512 *v) {
    __m512 t[8], u[4], w[2];
    for (int p = 0; p < 8; p++) /* row 2p in the low 256 bits, 2p+1 high */
        t[p] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0xEE),
                             _mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0x44));
    for (int p = 0; p < 4; p++) /* rows 4p..4p+3, one per 128-bit lane */
        u[p] = _mm512_add_ps(_mm512_shuffle_f32x4(t[2 * p], t[2 * p + 1], 0xDD),
                             _mm512_shuffle_f32x4(t[2 * p], t[2 * p + 1], 0x88));
    for (int p = 0; p < 2; p++) /* lane l: rows 8p+l and 8p+l+4, two sums each */
        w[p] = _mm512_add_ps(_mm512_shuffle_ps(u[2 * p], u[2 * p + 1], 0x44),
                             _mm512_shuffle_ps(u[2 * p], u[2 * p + 1], 0xEE));
    /* lane l: rows l, l+4, l+8, l+12 */
    __m512 z =
        _mm512_add_ps(_mm512_shuffle_ps(w[0], w[1], 0x88), _mm512_shuffle_ps(w[0], w[1], 0xDD));
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_ps(order, z);
}

/* Row n of W against M rows of x: part[m] gets the lanes whose sum is
 * y[m][n]. Inlined with M a constant, so the accumulators stay in
 * registers. */
AVX512 static inline __attribute__((always_inline)) void
f16_row_lanes(__m512 *part, int stride, const float *x, const int M, int K, const uint16_t *r) {
    __m512 acc[GEMM_MIN_ROWS], acc2[GEMM_MIN_ROWS];
    for (int m = 0; m < M; m++)
        acc[m] = acc2[m] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 32 <= K; k += 32) {
        _mm_prefetch((const char *)(r + k + PF_AHEAD), _MM_HINT_T0);
        __m512 w0 = load_h16(r + k), w1 = load_h16(r + k + 16);
        for (int m = 0; m < M; m++) {
            const float *xm = x + (size_t)m * K + k;
            acc[m] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xm), acc[m]);
            acc2[m] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xm + 16), acc2[m]);
        }
    }
    for (; k < K; k += 16) {
        __m512 w0 = load_h16(r + k);
        for (int m = 0; m < M; m++)
            acc[m] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + (size_t)m * K + k), acc[m]);
    }
    for (int m = 0; m < M; m++)
        part[m * stride] = _mm512_add_ps(acc[m], acc2[m]);
}

/* The same sums as gemv_f16_avx512's row pairs, row by row, for M rows of
 * x: a row's result does not depend on how many sequences share the step.
 * Sixteen rows of W at a time leave their lanes in part and are summed
 * together. */
AVX512 static inline __attribute__((always_inline)) void f16_rows_fixed(float *y, const float *x,
                                                                        const int M, int K, int N,
                                                                        const uint16_t *w, int n,
                                                                        int n1) {
    __m512 part[GEMM_MIN_ROWS][16];
    for (; n + 16 <= n1; n += 16) {
        for (int j = 0; j < 16; j++)
            f16_row_lanes(&part[0][j], 16, x, M, K, w + (size_t)(n + j) * K);
        for (int m = 0; m < M; m++)
            _mm512_storeu_ps(y + (size_t)m * N + n, reduce_add_16(part[m]));
    }
    for (; n < n1; n++) {
        f16_row_lanes(&part[0][0], 16, x, M, K, w + (size_t)n * K);
        for (int m = 0; m < M; m++)
            y[(size_t)m * N + n] = _mm512_reduce_add_ps(part[m][0]);
    }
}

/* One sequence: rows of W in pairs, four chains of FMAs in flight. */
AVX512 static inline void f16_pair_lanes(__m512 *p0, __m512 *p1, const float *x, int K,
                                         const uint16_t *r0) {
    const uint16_t *r1 = r0 + K;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
    int k = 0;
    for (; k + 32 <= K; k += 32) {
        _mm_prefetch((const char *)(r0 + k + PF_AHEAD), _MM_HINT_T0);
        _mm_prefetch((const char *)(r1 + k + PF_AHEAD), _MM_HINT_T0);
        __m512 x0 = _mm512_loadu_ps(x + k), x1 = _mm512_loadu_ps(x + k + 16);
        a0 = _mm512_fmadd_ps(load_h16(r0 + k), x0, a0);
        a1 = _mm512_fmadd_ps(load_h16(r0 + k + 16), x1, a1);
        b0 = _mm512_fmadd_ps(load_h16(r1 + k), x0, b0);
        b1 = _mm512_fmadd_ps(load_h16(r1 + k + 16), x1, b1);
    }
    for (; k < K; k += 16) {
        __m512 x0 = _mm512_loadu_ps(x + k);
        a0 = _mm512_fmadd_ps(load_h16(r0 + k), x0, a0);
        b0 = _mm512_fmadd_ps(load_h16(r1 + k), x0, b0);
    }
    *p0 = _mm512_add_ps(a0, a1);
    *p1 = _mm512_add_ps(b0, b1);
}

AVX512 static void gemv_f16_avx512(float *y, const float *x, int M, int K, int N, const uint16_t *w,
                                   int n0, int n1) {
    int n = n0;
    if (M == 1) {
        __m512 part[16];
        for (; n + 16 <= n1; n += 16) {
            for (int j = 0; j < 16; j += 2)
                f16_pair_lanes(&part[j], &part[j + 1], x, K, w + (size_t)(n + j) * K);
            _mm512_storeu_ps(y + n, reduce_add_16(part));
        }
        for (; n + 2 <= n1; n += 2) {
            f16_pair_lanes(&part[0], &part[1], x, K, w + (size_t)n * K);
            y[n] = _mm512_reduce_add_ps(part[0]);
            y[n + 1] = _mm512_reduce_add_ps(part[1]);
        }
    }
    switch (M) {
    case 1:
        f16_rows_fixed(y, x, 1, K, N, w, n, n1);
        break;
    case 2:
        f16_rows_fixed(y, x, 2, K, N, w, n, n1);
        break;
    case 3:
        f16_rows_fixed(y, x, 3, K, N, w, n, n1);
        break;
    case 4:
        f16_rows_fixed(y, x, 4, K, N, w, n, n1);
        break;
    case 5:
        f16_rows_fixed(y, x, 5, K, N, w, n, n1);
        break;
    case 6:
        f16_rows_fixed(y, x, 6, K, N, w, n, n1);
        break;
    default:
        f16_rows_fixed(y, x, 7, K, N, w, n, n1);
        break;
    }
}

typedef struct {
    WhisperState *st;
    float *y;
    const float *x;
    int M, K, N;
    const Tensor *w;
    const float *bias; /* what op_matmul_ex does after the product, or NULL/0 */
    int gelu;
    float *add_to;
} MatmulJob;

static void gelu_span(float *x, size_t n);

/* The bias, GELU and residual sum of rows m0..m1, columns n0..n1 of the
 * output, by the task that has just computed them, while they are in its
 * cache: one pass over each output instead of one per step, and no step
 * left to one thread. */
static void post_block(const MatmulJob *j, int m0, int m1, int n0, int n1) {
    if (!j->bias && !j->gelu && !j->add_to) return;
    for (int m = m0; m < m1; m++) {
        float *row = j->y + (size_t)m * j->N;
        if (j->bias)
            for (int n = n0; n < n1; n++)
                row[n] += j->bias[n];
        if (j->gelu) gelu_span(row + n0, (size_t)(n1 - n0));
        if (j->add_to) {
            float *sum = j->add_to + (size_t)m * j->N;
            for (int n = n0; n < n1; n++)
                sum[n] += row[n];
        }
    }
}

static void gemv_rows(float *y, const float *x, int M, int K, int N, const Tensor *w, int n0,
                      int n1) {
#if HAVE_X86
    if (w->type == TENSOR_F16 && K % 16 == 0 && (di_cpu_features() & DI_CPU_AVX512)) {
        gemv_f16_avx512(y, x, M, K, N, w->data, n0, n1);
        return;
    }
    if (cpu_has_avx2()) {
        gemv_rows_avx2(y, x, M, K, N, w, n0, n1);
        return;
    }
#endif
    gemv_rows_scalar(y, x, M, K, N, w, n0, n1);
}

/* Quantized weights: each row is widened into this thread's scratch (it
 * stays in L1) and multiplied as f32, so the matrix is read once, packed. */
static void gemv_quant_rows(const MatmulJob *j, int n0, int n1, int thread) {
    size_t cap;
    float *buf = op_thread_scratch(j->st, thread, &cap);
    size_t rb = quant_row_bytes(j->w->type, j->K);
    Tensor row = {.type = TENSOR_F32, .n_dims = 2, .ne = {j->K, 1, 1}, .data = buf};
    for (int n = n0; n < n1; n++) {
        quant_dequant_row(j->w->type, (const uint8_t *)j->w->data + (size_t)n * rb, buf, j->K);
        gemv_rows(j->y + n, j->x, j->M, j->K, j->N, &row, 0, 1);
    }
}

static void gemv_task(void *ctx, int i, int thread) {
    MatmulJob *j = ctx;
    int n0 = i * GEMV_BLOCK_N, n1 = n0 + GEMV_BLOCK_N < j->N ? n0 + GEMV_BLOCK_N : j->N;
    if (quant_is_block_type(j->w->type)) {
        if (quant_gemv_rows(j->w->type, j->w->data, j->x, j->M, j->K, j->y, j->N, n0, n1))
            gemv_quant_rows(j, n0, n1, thread);
    } else
        gemv_rows(j->y, j->x, j->M, j->K, j->N, j->w, n0, n1);
    post_block(j, 0, j->M, n0, n1);
}

/* ---- Many-row paths: widen weights to f32, then sgemm ------------------- */

/* A few rows (short prompts, several sequences): each task widens a block of
 * weight rows into its thread's scratch and multiplies every input row by it. */
static void gemm_cols_task(void *ctx, int i, int thread) {
    MatmulJob *j = ctx;
    int n0 = i * GEMM_BLOCK_N, nb = j->N - n0 < GEMM_BLOCK_N ? j->N - n0 : GEMM_BLOCK_N;
    const float *wf;
    if (j->w->type != TENSOR_F32) {
        /* Whole rows are whole blocks, so nb rows widen as one run. */
        size_t cap;
        float *buf = op_thread_scratch(j->st, thread, &cap);
        const uint8_t *src =
            (const uint8_t *)j->w->data + (size_t)n0 * quant_row_bytes(j->w->type, j->K);
        quant_dequant_row(j->w->type, src, buf, nb * j->K);
        wf = buf;
    } else {
        wf = (const float *)j->w->data + (size_t)n0 * j->K;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->M, nb, j->K, 1.0f, j->x, j->K, wf, j->K,
                0.0f, j->y + n0, j->N);
    post_block(j, 0, j->M, n0, n0 + nb);
}

/* Many rows (the encoder): the whole matrix is widened once, in parallel,
 * and each task multiplies a chunk of the input rows by all of it. Split
 * by columns instead, sgemm would pack every input row once per block of
 * columns, and a width of three blocks would leave one of two threads idle
 * a third of the time. */
#define WIDEN_ROWS 64
static void widen_task(void *ctx, int i, int thread) {
    (void)thread;
    MatmulJob *j = ctx;
    int n0 = i * WIDEN_ROWS, nb = j->N - n0 < WIDEN_ROWS ? j->N - n0 : WIDEN_ROWS;
    const uint8_t *src =
        (const uint8_t *)j->w->data + (size_t)n0 * quant_row_bytes(j->w->type, j->K);
    quant_dequant_row(j->w->type, src, j->st->wbuf + (size_t)n0 * j->K, nb * j->K);
}

/* Row chunks depend on M alone, never on the thread count: OpenBLAS picks
 * its kernel by the product's size, and a different kernel rounds
 * differently. Chunks of about 256 rows (1500 -> 6 x 250) keep both
 * threads of a small machine evenly busy. */
static int row_chunks(int M) {
    return (M + GEMM_SPLIT_ROWS - 1) / GEMM_SPLIT_ROWS;
}

static void gemm_rows_task(void *ctx, int i, int thread) {
    (void)thread;
    MatmulJob *j = ctx;
    int parts = row_chunks(j->M);
    int m0 = (int)((long)j->M * i / parts), m1 = (int)((long)j->M * (i + 1) / parts);
    const float *wf = j->w->type == TENSOR_F32 ? j->w->data : j->st->wbuf;
    if (m1 > m0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m1 - m0, j->N, j->K, 1.0f,
                    j->x + (size_t)m0 * j->K, j->K, wf, j->K, 0.0f, j->y + (size_t)m0 * j->N, j->N);
        post_block(j, m0, m1, 0, j->N);
    }
}

/* ---- Many-row path on AVX-512: our kernel on weights packed in panels ---
 *
 * sgemm packs the weights again on every call, once per row chunk, and
 * zeroes its output first; widening f16 weights for it is a third pass. Our
 * own path widens each weight once, straight into the layout its kernel
 * reads: panels of PANEL_COLS output columns, k-major, so one k's weights
 * for a panel are four contiguous vectors. The kernel keeps a tile of
 * PANEL_ROWS x PANEL_COLS outputs in 24 registers and, for each k,
 * broadcasts one input per row into four FMAs. Passes over PANEL_DEPTH k
 * at a time keep the panel's slice (32 KB) in L1 while every row of the
 * chunk streams past it; a pass starts from what the last one stored, so
 * each output is one FMA chain over k in order, however K is cut, and no
 * thread count or chunking changes a bit. Wide products go PANEL_GROUP
 * panels at a time, so the outputs each pass adds to (a chunk's rows by
 * 512 columns, 512 KB) stay in L2 with the rows.
 *
 * Measured on 2 threads at tiny's shapes (1500 rows), against widening and
 * sgemm as before: 181-192 GFLOP/s against 154-160. */
#define PANEL_COLS 64
#define PANEL_ROWS 6
#define PANEL_DEPTH 128
#define PANEL_GROUP 8

static int panel_count(int N) {
    return (N + PANEL_COLS - 1) / PANEL_COLS;
}

size_t op_packed_floats(int N, int K) {
    return (size_t)panel_count(N) * PANEL_COLS * (size_t)K;
}

#if HAVE_X86
/* Transposes 16 rows of 16 floats in registers: r[i] becomes column i.
 * Pairs of rows interleave within 128-bit lanes, then pairs of pairs, so
 * each lane holds one column of four rows; two lane shuffles then gather
 * a column's four lanes. */
AVX512 static inline void transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int g = 0; g < 4; g++) { /* u[4g + j]: element j of each lane, rows 4g..4g+3 */
        __m512 lo = t[4 * g], hi = t[4 * g + 1], lo2 = t[4 * g + 2], hi2 = t[4 * g + 3];
        u[4 * g + 0] = _mm512_shuffle_ps(lo, lo2, 0x44);
        u[4 * g + 1] = _mm512_shuffle_ps(lo, lo2, 0xee);
        u[4 * g + 2] = _mm512_shuffle_ps(hi, hi2, 0x44);
        u[4 * g + 3] = _mm512_shuffle_ps(hi, hi2, 0xee);
    }
    for (int j = 0; j < 4; j++) { /* lane l of u[4g + j] is column 4l + j, rows 4g.. */
        __m512 v0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x44);
        __m512 v1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xee);
        __m512 v2 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x44);
        __m512 v3 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xee);
        r[j] = _mm512_shuffle_f32x4(v0, v2, 0x88);
        r[4 + j] = _mm512_shuffle_f32x4(v0, v2, 0xdd);
        r[8 + j] = _mm512_shuffle_f32x4(v1, v3, 0x88);
        r[12 + j] = _mm512_shuffle_f32x4(v1, v3, 0xdd);
    }
}

/* Sixteen rows' values at k0..k0+nk (r[c] for row c), transposed into the
 * panel's 16 columns from g on. */
AVX512 static inline void pack_store16(float *panel, int g, int k0, int nk, __m512 r[16]) {
    transpose16(r);
    for (int k = 0; k < nk; k++)
        _mm512_storeu_ps(panel + (size_t)(k0 + k) * PANEL_COLS + g, r[k]);
}

/* Panel i: weight rows n0..n0+63 as [K][64], rows past N as zeros. f16
 * rows widen straight into registers, 16 x 16 at a time; other types widen
 * a run of k of sixteen rows into a buffer first (runs of a multiple of 32
 * stay whole quantized blocks). */
#define PACK_RUN 256
AVX512 static void pack_task(void *ctx, int i, int thread) {
    (void)thread;
    MatmulJob *j = ctx;
    int K = j->K;
    float *panel = j->st->wbuf + (size_t)i * PANEL_COLS * K;
    float run[16][PACK_RUN];
    size_t row_bytes = quant_row_bytes(j->w->type, K);
    __m512 r[16];
    for (int g = 0; g < PANEL_COLS; g += 16) {
        int rows = j->N - i * PANEL_COLS - g; /* of the 16, those that exist */
        const uint8_t *first =
            (const uint8_t *)j->w->data + (size_t)(i * PANEL_COLS + g) * row_bytes;
        if (j->w->type == TENSOR_F16) {
            for (int k0 = 0; k0 < K; k0 += 16) {
                __mmask16 mask = lanes_up_to(K - k0);
                for (int c = 0; c < 16; c++)
                    r[c] = c < rows ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(
                                          mask, (const uint16_t *)(first + c * row_bytes) + k0))
                                    : _mm512_setzero_ps();
                pack_store16(panel, g, k0, K - k0 < 16 ? K - k0 : 16, r);
            }
            continue;
        }
        for (int k0 = 0; k0 < K; k0 += PACK_RUN) {
            int len = K - k0 < PACK_RUN ? K - k0 : PACK_RUN;
            for (int c = 0; c < 16; c++) {
                if (c < rows)
                    quant_dequant_row(j->w->type,
                                      first + c * row_bytes + quant_row_bytes(j->w->type, k0),
                                      run[c], len);
                else
                    memset(run[c], 0, sizeof(float) * (size_t)len);
            }
            for (int kb = 0; kb < len; kb += 16) {
                __mmask16 mask = lanes_up_to(len - kb);
                for (int c = 0; c < 16; c++)
                    r[c] = _mm512_maskz_loadu_ps(mask, run[c] + kb);
                pack_store16(panel, g, k0 + kb, len - kb < 16 ? len - kb : 16, r);
            }
        }
    }
}

/* One tile: rows x[0..mr) (stride K) times a panel slice of kc k's, into
 * y (stride N), starting from y's values unless this is the first pass.
 * Columns at or past ncols are neither read nor written. Inlined with mr
 * constant, so the tile's accumulators stay in registers. */
AVX512 static inline __attribute__((always_inline)) void panel_tile(int mr, const float *x, int K,
                                                                    const float *slice, int kc,
                                                                    float *y, int N, int ncols,
                                                                    int first) {
    __mmask16 mask[4];
    for (int v = 0; v < 4; v++)
        mask[v] = lanes_up_to(ncols - 16 * v);
    __m512 acc[PANEL_ROWS][4];
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < 4; v++)
            acc[r][v] = first ? _mm512_setzero_ps()
                              : _mm512_maskz_loadu_ps(mask[v], y + (size_t)r * N + 16 * v);
    for (int k = 0; k < kc; k++) {
        const float *b = slice + (size_t)k * PANEL_COLS;
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), b2 = _mm512_loadu_ps(b + 32),
               b3 = _mm512_loadu_ps(b + 48);
        for (int r = 0; r < mr; r++) {
            __m512 a = _mm512_set1_ps(x[(size_t)r * K + k]);
            acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(a, b2, acc[r][2]);
            acc[r][3] = _mm512_fmadd_ps(a, b3, acc[r][3]);
        }
    }
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < 4; v++)
            _mm512_mask_storeu_ps(y + (size_t)r * N + 16 * v, mask[v], acc[r][v]);
}

/* Constant row counts, so each instance keeps its tile in registers. */
#define PANEL_TILE_CASE(MR)                                                                        \
    case MR:                                                                                       \
        panel_tile(MR, x, K, slice, kc, y, N, ncols, k0 == 0);                                     \
        break;

/* One pass of rows m0..m1 over panel p: kc k's from k0. Each tile's bias,
 * GELU and residual are applied right after its last pass, while it is in
 * L1. */
AVX512 static void panel_pass(const MatmulJob *j, int m0, int m1, int p, int k0, int kc) {
    int K = j->K, N = j->N, n0 = p * PANEL_COLS;
    int ncols = N - n0 < PANEL_COLS ? N - n0 : PANEL_COLS;
    const float *slice = j->st->wbuf + ((size_t)p * K + k0) * PANEL_COLS;
    for (int m = m0; m < m1; m += PANEL_ROWS) {
        int mr = m1 - m < PANEL_ROWS ? m1 - m : PANEL_ROWS;
        const float *x = j->x + (size_t)m * K + k0;
        float *y = j->y + (size_t)m * N + n0;
        switch (mr) {
            PANEL_TILE_CASE(6)
            PANEL_TILE_CASE(5)
            PANEL_TILE_CASE(4)
            PANEL_TILE_CASE(3)
            PANEL_TILE_CASE(2)
            PANEL_TILE_CASE(1)
        }
        if (k0 + kc == K) post_block(j, m, m + mr, n0, n0 + ncols);
    }
}

/* Rows m0..m1 of the product: groups of panels, pass by pass. */
AVX512 static void panel_rows(const MatmulJob *j, int m0, int m1) {
    int panels = panel_count(j->N);
    for (int p0 = 0; p0 < panels; p0 += PANEL_GROUP) {
        int p1 = p0 + PANEL_GROUP < panels ? p0 + PANEL_GROUP : panels;
        for (int k0 = 0; k0 < j->K; k0 += PANEL_DEPTH) {
            int kc = j->K - k0 < PANEL_DEPTH ? j->K - k0 : PANEL_DEPTH;
            for (int p = p0; p < p1; p++)
                panel_pass(j, m0, m1, p, k0, kc);
        }
    }
}

static void panel_rows_task(void *ctx, int i, int thread) {
    (void)thread;
    const MatmulJob *j = ctx;
    int parts = row_chunks(j->M);
    panel_rows(j, (int)((long)j->M * i / parts), (int)((long)j->M * (i + 1) / parts));
}
#endif

void op_matmul(WhisperState *st, float *y, const float *x, int M, int K, const Tensor *w,
               const Tensor *b) {
    op_matmul_ex(st, y, x, M, K, w, b, 0, NULL);
}

void op_matmul_ex(WhisperState *st, float *y, const float *x, int M, int K, const Tensor *w,
                  const Tensor *b, int gelu, float *add_to) {
    /* The last ggml dimension is the output width; conv weights [N][C][3]
     * act as an [N][3C] matrix. */
    int N = w->ne[w->n_dims - 1];
    MatmulJob j = {st, y, x, M, K, N, w, b ? b->data : NULL, gelu, add_to};
#if HAVE_X86
    if (M >= GEMM_SPLIT_ROWS && (di_cpu_features() & DI_CPU_AVX512) &&
        op_packed_floats(N, K) <= st->wbuf_whole) {
        di_pool_run(st->pool, panel_count(N), pack_task, &j);
        di_pool_run(st->pool, row_chunks(M), panel_rows_task, &j);
        return;
    }
#endif
    if (M >= GEMM_SPLIT_ROWS && (size_t)N * K <= st->wbuf_whole) {
        if (w->type != TENSOR_F32)
            di_pool_run(st->pool, (N + WIDEN_ROWS - 1) / WIDEN_ROWS, widen_task, &j);
        di_pool_run(st->pool, row_chunks(M), gemm_rows_task, &j);
    } else if (M >= GEMM_MIN_ROWS) {
        di_pool_run(st->pool, (N + GEMM_BLOCK_N - 1) / GEMM_BLOCK_N, gemm_cols_task, &j);
    } else {
        di_pool_run(st->pool, (N + GEMV_BLOCK_N - 1) / GEMV_BLOCK_N, gemv_task, &j);
    }
}

/* ---- Element-wise ------------------------------------------------------ */

#if HAVE_X86
/* exp(x) for 8 floats: range reduction by ln 2 and a degree-6 polynomial,
 * within about 2 ulp; saturates to 0 and +inf outside the float range. */
__attribute__((target("avx2,fma"))) static inline __m256 exp8(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-103.0f);
    __m256 over = _mm256_cmp_ps(x, hi, _CMP_GT_OQ);
    __m256 under = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_LT_OQ);
    x = _mm256_max_ps(_mm256_min_ps(x, hi), lo);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    /* 2^n in two halves so n down to -126 and up to 128 stays representable. */
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i h1 = _mm256_srai_epi32(ni, 1), h2 = _mm256_sub_epi32(ni, h1);
    __m256 s1 =
        _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h1, _mm256_set1_epi32(127)), 23));
    __m256 s2 =
        _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h2, _mm256_set1_epi32(127)), 23));
    p = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    p = _mm256_blendv_ps(p, _mm256_set1_ps(INFINITY), over);
    return _mm256_blendv_ps(p, _mm256_setzero_ps(), under);
}

__attribute__((target("avx2,fma"))) static void softmax_avx2(float *x, int n) {
    int n8 = n & ~7, i;
    __m256 mv = _mm256_set1_ps(-INFINITY);
    for (i = 0; i < n8; i += 8)
        mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
    float mx = -INFINITY, lanes[8];
    _mm256_storeu_ps(lanes, mv);
    for (int l = 0; l < 8; l++)
        mx = lanes[l] > mx ? lanes[l] : mx;
    for (i = n8; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    if (mx == -INFINITY) { /* every entry masked: leave a uniform row rather than NaN */
        for (i = 0; i < n; i++)
            x[i] = 1.0f / (float)n;
        return;
    }
    __m256 m = _mm256_set1_ps(mx), sv = _mm256_setzero_ps();
    for (i = 0; i < n8; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
        _mm256_storeu_ps(x + i, e);
        sv = _mm256_add_ps(sv, e);
    }
    float sum = hsum256(sv);
    for (i = n8; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (i = 0; i < n8; i += 8)
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    for (i = n8; i < n; i++)
        x[i] *= 1.0f / sum;
}

/* gelu(x) = 0.5 x (1 + tanh(u)) = x / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3). */
__attribute__((target("avx2,fma"))) static void gelu_avx2(float *x, size_t n) {
    const __m256 c = _mm256_set1_ps(-2.0f * 0.7978845608028654f), c3 = _mm256_set1_ps(0.044715f);
    const __m256 one = _mm256_set1_ps(1.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 u = _mm256_mul_ps(c, _mm256_fmadd_ps(_mm256_mul_ps(c3, v), _mm256_mul_ps(v, v), v));
        _mm256_storeu_ps(x + i, _mm256_div_ps(v, _mm256_add_ps(one, exp8(u))));
    }
    for (; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    }
}
#endif

#if HAVE_X86
/* exp(x) for 16 floats, as exp8 but scaling by 2^n with vscalefps, which
 * saturates to 0 and +inf by itself. */
AVX512 static inline __m512 exp16(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.7f)), _mm512_set1_ps(-104.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/* The encoder's attention spends a tenth of its time here. */
AVX512 static void softmax_avx512(float *x, int n) {
    int n16 = n & ~15, i;
    __m512 mv = _mm512_set1_ps(-INFINITY);
    for (i = 0; i < n16; i += 16)
        mv = _mm512_max_ps(mv, _mm512_loadu_ps(x + i));
    float mx = _mm512_reduce_max_ps(mv);
    for (i = n16; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    if (mx == -INFINITY) { /* every entry masked: leave a uniform row rather than NaN */
        for (i = 0; i < n; i++)
            x[i] = 1.0f / (float)n;
        return;
    }
    __m512 m = _mm512_set1_ps(mx), sv = _mm512_setzero_ps();
    for (i = 0; i < n16; i += 16) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), m));
        _mm512_storeu_ps(x + i, e);
        sv = _mm512_add_ps(sv, e);
    }
    float sum = _mm512_reduce_add_ps(sv);
    for (i = n16; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    __m512 inv = _mm512_set1_ps(1.0f / sum);
    for (i = 0; i < n16; i += 16)
        _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
    for (i = n16; i < n; i++)
        x[i] *= 1.0f / sum;
}

AVX512 static void gelu_avx512(float *x, size_t n) {
    const __m512 c = _mm512_set1_ps(-2.0f * 0.7978845608028654f), c3 = _mm512_set1_ps(0.044715f);
    const __m512 one = _mm512_set1_ps(1.0f);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        __m512 u = _mm512_mul_ps(c, _mm512_fmadd_ps(_mm512_mul_ps(c3, v), _mm512_mul_ps(v, v), v));
        _mm512_storeu_ps(x + i, _mm512_div_ps(v, _mm512_add_ps(one, exp16(u))));
    }
    gelu_avx2(x + i, n - i);
}

static int cpu_has_avx512(void) {
    return (di_cpu_features() & DI_CPU_AVX512) != 0;
}
#endif

void op_softmax(float *x, int n) {
#if HAVE_X86
    if (cpu_has_avx512()) {
        softmax_avx512(x, n);
        return;
    }
    if (cpu_has_avx2()) {
        softmax_avx2(x, n);
        return;
    }
#endif
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    if (mx == -INFINITY) {
        for (int i = 0; i < n; i++)
            x[i] = 1.0f / (float)n;
        return;
    }
    double sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    for (int i = 0; i < n; i++)
        x[i] = (float)(x[i] / sum);
}

/* Below this an exponent counts as 0, so a token masked to -inf (or one
 * e^-87 times less likely than the best) can never be drawn. */
#define EXP_FLOOR -87.3f

#if HAVE_X86
/* The sums go into doubles 8 lanes at a time: 51,865 terms in float lanes
 * would lose digits the log-probabilities keep. */
AVX512 static double sum_exp_avx512(const float *x, int n, float shift, float scale, float *out) {
    const __m512 sh = _mm512_set1_ps(shift), sc = _mm512_set1_ps(scale);
    const __m512 floor = _mm512_set1_ps(EXP_FLOOR);
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int i = 0; i < n; i += 16) {
        __mmask16 live = lanes_up_to(n - i);
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(live, x + i), sh), sc);
        __mmask16 keep = _mm512_mask_cmp_ps_mask(live, v, floor, _CMP_GE_OQ);
        __m512 e = _mm512_maskz_mov_ps(keep, exp16(v));
        if (out) _mm512_mask_storeu_ps(out + i, live, e);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        s1 = _mm512_add_pd(
            s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
}

__attribute__((target("avx2,fma"))) static double sum_exp_avx2(const float *x, int n, float shift,
                                                               float scale, float *out) {
    const __m256 sh = _mm256_set1_ps(shift), sc = _mm256_set1_ps(scale);
    const __m256 floor = _mm256_set1_ps(EXP_FLOOR);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), sh), sc);
        __m256 e = _mm256_and_ps(exp8(v), _mm256_cmp_ps(v, floor, _CMP_GE_OQ));
        if (out) _mm256_storeu_ps(out + i, e);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double lanes[4];
    _mm256_storeu_pd(lanes, _mm256_add_pd(s0, s1));
    double sum = (lanes[0] + lanes[2]) + (lanes[1] + lanes[3]);
    for (; i < n; i++) {
        float v = (x[i] - shift) * scale, e = v >= EXP_FLOOR ? expf(v) : 0.0f;
        if (out) out[i] = e;
        sum += e;
    }
    return sum;
}
#endif

#if HAVE_X86
/* The accumulator is max_ps's second operand, which it returns when the
 * other is NaN: NaN entries are skipped, as the scalar loop skips them. */
AVX512 static float max_avx512(const float *x, int n) {
    __m512 mv = _mm512_set1_ps(-INFINITY);
    for (int i = 0; i < n; i += 16) {
        __mmask16 live = lanes_up_to(n - i);
        mv = _mm512_max_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), live, x + i), mv);
    }
    return _mm512_reduce_max_ps(mv);
}

__attribute__((target("avx2"))) static float max_avx2(const float *x, int n) {
    __m256 mv = _mm256_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        mv = _mm256_max_ps(_mm256_loadu_ps(x + i), mv);
    float lanes[8], mx = -INFINITY;
    _mm256_storeu_ps(lanes, mv);
    for (int l = 0; l < 8; l++)
        mx = lanes[l] > mx ? lanes[l] : mx;
    for (; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    return mx;
}
#endif

float op_max(const float *x, int n) {
#if HAVE_X86
    if (cpu_has_avx512()) return max_avx512(x, n);
    if (cpu_has_avx2()) return max_avx2(x, n);
#endif
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    return mx;
}

double op_sum_exp(const float *x, int n, float shift, float scale, float *out) {
#if HAVE_X86
    if (cpu_has_avx512()) return sum_exp_avx512(x, n, shift, scale, out);
    if (cpu_has_avx2()) return sum_exp_avx2(x, n, shift, scale, out);
#endif
    double sum = 0;
    for (int i = 0; i < n; i++) {
        float v = (x[i] - shift) * scale, e = v >= EXP_FLOOR ? expf(v) : 0.0f;
        if (out) out[i] = e;
        sum += e;
    }
    return sum;
}

static void gelu_span(float *x, size_t n) {
#if HAVE_X86
    if (cpu_has_avx512()) {
        gelu_avx512(x, n);
        return;
    }
    if (cpu_has_avx2()) {
        gelu_avx2(x, n);
        return;
    }
#endif
    for (size_t k = 0; k < n; k++) {
        float v = x[k];
        x[k] = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    }
}

typedef struct {
    float *y;
    const float *x;
    int M, N;
    const float *g, *b;
} NormJob;

/* The sum of x[k] - center (or of its squares) in double, as eight running
 * sums combined in a fixed order: a single chain of double adds waits out
 * each add's latency (the encoder's layer norms took twice as long that
 * way). Inlined with `square` a constant. */
static inline double sum8(const float *x, int n, double center, const int square) {
    double part[8] = {0}, sum = 0;
    int n8 = n & ~7;
    for (int k = 0; k < n8; k += 8)
        for (int l = 0; l < 8; l++) {
            double d = x[k + l] - center;
            part[l] += square ? d * d : d;
        }
    for (int k = n8; k < n; k++) {
        double d = x[k] - center;
        part[k - n8] += square ? d * d : d;
    }
    for (int l = 0; l < 8; l++)
        sum += part[l];
    return sum;
}

#define NORM_ROWS 32
static void norm_task(void *ctx, int i, int thread) {
    (void)thread;
    NormJob *j = ctx;
    int r1 = (i + 1) * NORM_ROWS < j->M ? (i + 1) * NORM_ROWS : j->M;
    for (int r = i * NORM_ROWS; r < r1; r++) {
        const float *x = j->x + (size_t)r * j->N;
        float *y = j->y + (size_t)r * j->N;
        double mean = sum8(x, j->N, 0, 0) / j->N;
        double var = sum8(x, j->N, mean, 1) / j->N;
        float inv = (float)(1.0 / sqrt(var + 1e-5));
        float mu = (float)mean;
        for (int k = 0; k < j->N; k++)
            y[k] = (x[k] - mu) * inv * j->g[k] + j->b[k];
    }
}

void op_layer_norm(WhisperState *st, float *y, const float *x, int M, int N, const Tensor *g,
                   const Tensor *b) {
    NormJob j = {y, x, M, N, g->data, b->data};
    di_pool_run(st->pool, (M + NORM_ROWS - 1) / NORM_ROWS, norm_task, &j);
}

/* Query i sees keys up to causal_base + i (all of them when causal_base < 0). */
static void softmax_rows(float *scores, int n_q, int n_kv, int causal_base) {
    for (int i = 0; i < n_q; i++) {
        float *row = scores + (size_t)i * n_kv;
        if (causal_base >= 0)
            for (int j = causal_base + i + 1; j < n_kv; j++)
                row[j] = -INFINITY;
        op_softmax(row, n_kv);
    }
}

void op_attention(float *out, int ld_out, const float *q, const float *k, const float *v, int n_q,
                  int n_kv, int dh, int ld, float scale, int causal_base, float *scores) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_q, n_kv, dh, scale, q, ld, k, ld, 0.0f,
                scores, n_kv);
    softmax_rows(scores, n_q, n_kv, causal_base);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n_q, dh, n_kv, 1.0f, scores, n_kv, v, ld,
                0.0f, out, ld_out);
}

/* ---- Decoder attention over f16 keys and values ------------------------ */

/* The decoder's caches hold f16 (as whisper.cpp's do): a step reads every
 * cached key and value of every layer, so their width is a good part of the
 * bytes a token costs. Self-attention's keys and values are widened
 * KV_BLOCK rows at a time into a buffer that stays in L1, and each widened
 * block serves every query of the call (the new tokens of one sequence). */
#define KV_BLOCK 64

static void widen_kv_scalar(float *dst, const uint16_t *src, int n, int dh, int ld) {
    for (int j = 0; j < n; j++)
        for (int c = 0; c < dh; c++)
            dst[(size_t)j * dh + c] = di_f16_to_f32(src[(size_t)j * ld + c]);
}

#if HAVE_X86
/* The next block's rows are prefetched while this one widens: the
 * decoder streams a window's whole cross-attention cache every step, one
 * block of keys at a time, and without it each block waits on memory. */
__attribute__((target("avx2,fma,f16c"))) static void widen_kv_f16c(float *dst, const uint16_t *src,
                                                                   int n, int dh, int ld) {
    for (int j = 0; j < n; j++) {
        const uint16_t *ahead = src + (size_t)(j + KV_BLOCK) * ld;
        for (int c = 0; c < dh; c += 32)
            _mm_prefetch((const char *)(ahead + c), _MM_HINT_T0);
        for (int c = 0; c < dh; c += 8)
            _mm256_storeu_ps(
                dst + (size_t)j * dh + c,
                _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + (size_t)j * ld + c))));
    }
}
#endif

static void scores_scalar(float *s, const float *q, const float *kb, int nk, int dh, float scale) {
    for (int j = 0; j < nk; j++) {
        float acc = 0;
        for (int c = 0; c < dh; c++)
            acc += q[c] * kb[(size_t)j * dh + c];
        s[j] = acc * scale;
    }
}

static void weigh_scalar(float *out, const float *p, const float *vb, int nk, int dh) {
    for (int j = 0; j < nk; j++)
        for (int c = 0; c < dh; c++)
            out[c] += p[j] * vb[(size_t)j * dh + c];
}

#if HAVE_X86
/* Eight keys at a time: eight dot products, summed across lanes together. */
__attribute__((target("avx2,fma"))) static void
scores_avx2(float *s, const float *q, const float *kb, int nk, int dh, float scale) {
    int j = 0;
    for (; j + 8 <= nk; j += 8) {
        __m256 acc[8];
        for (int r = 0; r < 8; r++)
            acc[r] = _mm256_setzero_ps();
        for (int c = 0; c < dh; c += 8) {
            __m256 qv = _mm256_loadu_ps(q + c);
            for (int r = 0; r < 8; r++)
                acc[r] =
                    _mm256_fmadd_ps(qv, _mm256_loadu_ps(kb + (size_t)(j + r) * dh + c), acc[r]);
        }
        __m256 t0 = _mm256_hadd_ps(acc[0], acc[1]), t1 = _mm256_hadd_ps(acc[2], acc[3]);
        __m256 t2 = _mm256_hadd_ps(acc[4], acc[5]), t3 = _mm256_hadd_ps(acc[6], acc[7]);
        __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
        __m256 sum = _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20),
                                   _mm256_permute2f128_ps(u0, u1, 0x31));
        _mm256_storeu_ps(s + j, _mm256_mul_ps(sum, _mm256_set1_ps(scale)));
    }
    for (; j < nk; j++) {
        __m256 acc = _mm256_setzero_ps();
        for (int c = 0; c < dh; c += 8)
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), _mm256_loadu_ps(kb + (size_t)j * dh + c),
                                  acc);
        s[j] = hsum256(acc) * scale;
    }
}

/* out += sum_j p[j] v[j], with out (dh <= 64) held in registers. */
__attribute__((target("avx2,fma"))) static void weigh_avx2(float *out, const float *p,
                                                           const float *vb, int nk, int dh) {
    __m256 acc[8];
    int n8 = dh / 8;
    for (int c = 0; c < n8; c++)
        acc[c] = _mm256_loadu_ps(out + 8 * c);
    for (int j = 0; j < nk; j++) {
        __m256 pj = _mm256_set1_ps(p[j]);
        for (int c = 0; c < n8; c++)
            acc[c] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vb + (size_t)j * dh + 8 * c), acc[c]);
    }
    for (int c = 0; c < n8; c++)
        _mm256_storeu_ps(out + 8 * c, acc[c]);
}
#endif

/* The three steps of op_attention_f16, picked once per call. */
typedef struct {
    void (*widen)(float *dst, const uint16_t *src, int n, int dh, int ld);
    void (*scores)(float *s, const float *q, const float *kb, int nk, int dh, float scale);
    void (*weigh)(float *out, const float *p, const float *vb, int nk, int dh);
} AttnKernels;

static AttnKernels attn_kernels(int dh) {
#if HAVE_X86
    if (cpu_has_avx2() && dh % 8 == 0 && dh <= 64)
        return (AttnKernels){widen_kv_f16c, scores_avx2, weigh_avx2};
#endif
    (void)dh;
    return (AttnKernels){widen_kv_scalar, scores_scalar, weigh_scalar};
}

void op_attention_f16(float *out, int ld_out, const float *q, int ld_q, const uint16_t *k,
                      const uint16_t *v, int ld_kv, int n_q, int n_kv, int dh, float scale,
                      int causal_base, float *scores, float *kvbuf) {
    AttnKernels kn = attn_kernels(dh);
    for (int j0 = 0; j0 < n_kv; j0 += KV_BLOCK) {
        int nk = n_kv - j0 < KV_BLOCK ? n_kv - j0 : KV_BLOCK;
        kn.widen(kvbuf, k + (size_t)j0 * ld_kv, nk, dh, ld_kv);
        for (int i = 0; i < n_q; i++)
            kn.scores(scores + (size_t)i * n_kv + j0, q + (size_t)i * ld_q, kvbuf, nk, dh, scale);
    }
    softmax_rows(scores, n_q, n_kv, causal_base);
    for (int i = 0; i < n_q; i++)
        memset(out + (size_t)i * ld_out, 0, (size_t)dh * sizeof(float));
    for (int j0 = 0; j0 < n_kv; j0 += KV_BLOCK) {
        int nk = n_kv - j0 < KV_BLOCK ? n_kv - j0 : KV_BLOCK;
        kn.widen(kvbuf, v + (size_t)j0 * ld_kv, nk, dh, ld_kv);
        for (int i = 0; i < n_q; i++)
            kn.weigh(out + (size_t)i * ld_out, scores + (size_t)i * n_kv + j0, kvbuf, nk, dh);
    }
}

double encoder_flops(const WhisperHparams *hp) {
    double S = hp->n_audio_state, T = hp->n_audio_ctx, F = 2.0 * T;
    double conv = 2.0 * F * (3.0 * hp->n_mels) * S + 2.0 * T * (3.0 * S) * S;
    double layer = 2.0 * T * S * S * 4        /* q, k, v, out */
                   + 2.0 * T * T * S * 2      /* scores and weighted sum */
                   + 2.0 * T * S * 4 * S * 2; /* mlp */
    /* whisper_encode also projects its output into every decoder layer's
     * cross-attention keys and values (as whisper.cpp's encode does), and
     * the time measured includes them. */
    double cross = 2.0 * 2.0 * T * S * hp->n_text_state * hp->n_text_layer;
    return conv + layer * hp->n_audio_layer + cross;
}

/* ---- Attention over keys in transposed blocks -------------------------- */

/* The encoder's self-attention (f32 heads, up to 250 queries) and the
 * decoder's cross-attention (a window's f16 cache, the few queries of the
 * sequences that share it) take every key of a head, unmasked. Their keys
 * come in blocks of 64, each transposed and contiguous ([dh][nk], nk the
 * block's length), their values as rows ([n_kv][dh]). Then a block of 64
 * scores of a query is four vector accumulators fed one key dimension at a
 * time, with no sums across lanes, and one load (and widening) of each key
 * and value serves every query of a pass. A block is 16 KB of f32 (8 KB of
 * f16) on four pages; the same block of one [dh][T] matrix spread over 64
 * pages and missed the TLB.
 *
 * Each row's maximum is taken as its scores are written, and each output is
 * divided by its row's sum once, at the end, so the softmax is one pass of
 * exponentials. Each score and each output is summed in the same order
 * whatever queries share the call, so a batch or a beam gives every
 * sequence what it would get alone. */
#define KB_GROUP 6 /* queries per pass: their accumulators fill the registers */

/* Where dimension c of key j lies in a head's blocks. */
static inline size_t kb_at(int j, int c, int n_kv, int dh) {
    int j0 = j - j % ATTN_KEY_BLOCK, nk = n_kv - j0 < ATTN_KEY_BLOCK ? n_kv - j0 : ATTN_KEY_BLOCK;
    return (size_t)j0 * dh + (size_t)c * nk + (size_t)(j - j0);
}

static inline float kv_at(const void *p, size_t i, int f16) {
    return f16 ? di_f16_to_f32(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

/* Portable: one query at a time, the same layouts. */
static void kb_attention_scalar(float *out, int ld_out, const float *q, int ld_q, const void *kb,
                                const void *v, int f16, int n_q, int n_kv, int dh, float scale,
                                float *scores) {
    for (int i = 0; i < n_q; i++) {
        const float *qi = q + (size_t)i * ld_q;
        for (int j = 0; j < n_kv; j++) {
            float acc = 0;
            for (int c = 0; c < dh; c++)
                acc += qi[c] * kv_at(kb, kb_at(j, c, n_kv, dh), f16);
            scores[j] = acc * scale;
        }
        softmax_rows(scores, 1, n_kv, -1);
        for (int c = 0; c < dh; c++) {
            float acc = 0;
            for (int j = 0; j < n_kv; j++)
                acc += scores[j] * kv_at(v, (size_t)j * dh + c, f16);
            out[(size_t)i * ld_out + c] = acc;
        }
    }
}

#if HAVE_X86

/* 16 keys or values from p + i, f16 (F16) or f32; lanes outside m zero. */
AVX512 static inline __attribute__((always_inline)) __m512 load_kv16(const void *p, size_t i,
                                                                     const int F16, __mmask16 m) {
    return F16 ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)p + i))
               : _mm512_maskz_loadu_ps(m, (const float *)p + i);
}

/* Scores of keys j0..j0+nk (the block at kb) for NQ queries, and their rows'
 * running maxima. */
AVX512 static inline __attribute__((always_inline)) void
kb_scores_block(float *s, int ld_s, float *rowmax, const float *q, int ld_q, const int NQ,
                const void *kb, const int F16, int j0, int nk, int dh, float scale) {
    const char *next = (const char *)kb + (size_t)nk * dh * (F16 ? 2 : 4);
    __m512 acc[KB_GROUP][4];
    __mmask16 mask[4];
    for (int t = 0; t < 4; t++)
        mask[t] = lanes_up_to(nk - 16 * t);
    for (int i = 0; i < NQ; i++)
        for (int t = 0; t < 4; t++)
            acc[i][t] = _mm512_setzero_ps();
    for (int c = 0; c < dh; c++) {
        /* The next block, a line or two per dimension: all of it by the end. */
        _mm_prefetch(next + (size_t)c * (F16 ? 128 : 256), _MM_HINT_T0);
        _mm_prefetch(next + (size_t)c * (F16 ? 128 : 256) + 64, _MM_HINT_T0);
        __m512 k[4];
        for (int t = 0; t < 4; t++)
            k[t] = load_kv16(kb, (size_t)c * nk + 16 * t, F16, mask[t]);
        for (int i = 0; i < NQ; i++) {
            __m512 b = _mm512_set1_ps(q[(size_t)i * ld_q + c]);
            for (int t = 0; t < 4; t++)
                acc[i][t] = _mm512_fmadd_ps(b, k[t], acc[i][t]);
        }
    }
    __m512 sc = _mm512_set1_ps(scale);
    for (int i = 0; i < NQ; i++) {
        __m512 m = _mm512_set1_ps(-INFINITY);
        for (int t = 0; t < 4; t++) {
            __m512 x = _mm512_mul_ps(acc[i][t], sc);
            _mm512_mask_storeu_ps(s + (size_t)i * ld_s + j0 + 16 * t, mask[t], x);
            m = _mm512_mask_max_ps(m, mask[t], m, x);
        }
        float bm = _mm512_reduce_max_ps(m);
        rowmax[i] = bm > rowmax[i] ? bm : rowmax[i];
    }
}

/* s[i][j] = exp(s[i][j] - rowmax[i]) for n rows of n_kv, rowsum[i] their
 * sum. Not inlined into the kernel: its constants would take the registers
 * the accumulators need. */
AVX512 static __attribute__((noinline)) void kb_exp_rows(float *s, int n, int n_kv,
                                                         const float *rowmax, float *rowsum) {
    for (int i = 0; i < n; i++) {
        float *row = s + (size_t)i * n_kv;
        __m512 m = _mm512_set1_ps(rowmax[i]), sum = _mm512_setzero_ps();
        for (int j = 0; j < n_kv; j += 16) {
            __mmask16 live = lanes_up_to(n_kv - j);
            __m512 e = _mm512_maskz_mov_ps(
                live, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(live, row + j), m)));
            _mm512_mask_storeu_ps(row + j, live, e);
            sum = _mm512_add_ps(sum, e);
        }
        rowsum[i] = _mm512_reduce_add_ps(sum);
    }
}

/* NQ queries' sums of the values weighed by p (rows ld_p apart), each
 * divided by its row's sum: four accumulators each, lanes past dh (<= 64)
 * masked off, so the count is a constant and they stay in registers. */
AVX512 static inline __attribute__((always_inline)) void
kb_weigh_group(float *out, int ld_out, const float *p, int ld_p, const float *rowsum, const int NQ,
               const void *v, const int F16, int n_kv, int dh) {
    __m512 acc[KB_GROUP][4];
    __mmask16 mask[4];
    for (int t = 0; t < 4; t++)
        mask[t] = lanes_up_to(dh - 16 * t);
    for (int i = 0; i < NQ; i++)
        for (int t = 0; t < 4; t++)
            acc[i][t] = _mm512_setzero_ps();
    for (int j = 0; j < n_kv; j++) {
        size_t row = (size_t)j * dh;
        /* The row 64 on: the decoder streams its values from memory. The
         * bound is a constant (the longest row, 64 values), so the lines
         * are fetched by straight-line code, not by a loop of their own in
         * a loop the front end already keeps busy. */
        const char *ahead = (const char *)v + (row + (size_t)ATTN_KEY_BLOCK * dh) * (F16 ? 2 : 4);
        for (int b = 0; b < 64 * (F16 ? 2 : 4); b += 64)
            _mm_prefetch(ahead + b, _MM_HINT_T0);
        __m512 vv[4];
        for (int t = 0; t < 4; t++)
            vv[t] = load_kv16(v, row + 16 * t, F16, mask[t]);
        for (int i = 0; i < NQ; i++) {
            __m512 b = _mm512_set1_ps(p[(size_t)i * ld_p + j]);
            for (int t = 0; t < 4; t++)
                acc[i][t] = _mm512_fmadd_ps(b, vv[t], acc[i][t]);
        }
    }
    for (int i = 0; i < NQ; i++) {
        __m512 inv = _mm512_set1_ps(1.0f / rowsum[i]);
        for (int t = 0; t < 4; t++)
            _mm512_mask_storeu_ps(out + (size_t)i * ld_out + 16 * t, mask[t],
                                  _mm512_mul_ps(acc[i][t], inv));
    }
}

/* One group of NQ queries, start to end: its scores (NQ rows of n_kv) stay
 * in L1 from the products through the exponentials to the weighted sum. */
AVX512 static inline __attribute__((always_inline)) void
kb_attention_group(float *out, int ld_out, const float *q, int ld_q, const int NQ, const void *kb,
                   const void *v, const int F16, int n_kv, int dh, float scale, float *scores) {
    float rowmax[KB_GROUP], rowsum[KB_GROUP];
    for (int i = 0; i < NQ; i++)
        rowmax[i] = -INFINITY;
    for (int j0 = 0; j0 < n_kv; j0 += ATTN_KEY_BLOCK) {
        int nk = n_kv - j0 < ATTN_KEY_BLOCK ? n_kv - j0 : ATTN_KEY_BLOCK;
        const void *blk = (const char *)kb + (size_t)j0 * dh * (F16 ? 2 : 4);
        kb_scores_block(scores, n_kv, rowmax, q, ld_q, NQ, blk, F16, j0, nk, dh, scale);
    }
    kb_exp_rows(scores, NQ, n_kv, rowmax, rowsum);
    kb_weigh_group(out, ld_out, scores, n_kv, rowsum, NQ, v, F16, n_kv, dh);
}

/* Constant group sizes and types, so each instance keeps its accumulators
 * in registers. */
#define KB_GROUP_CASE(NQ)                                                                          \
    case NQ:                                                                                       \
        if (f16)                                                                                   \
            kb_attention_group(og, ld_out, qg, ld_q, NQ, kb, v, 1, n_kv, dh, scale, scores);       \
        else                                                                                       \
            kb_attention_group(og, ld_out, qg, ld_q, NQ, kb, v, 0, n_kv, dh, scale, scores);       \
        break;

AVX512 static void kb_attention_avx512(float *out, int ld_out, const float *q, int ld_q,
                                       const void *kb, const void *v, int f16, int n_q, int n_kv,
                                       int dh, float scale, float *scores) {
    for (int i0 = 0; i0 < n_q; i0 += KB_GROUP) {
        const float *qg = q + (size_t)i0 * ld_q;
        float *og = out + (size_t)i0 * ld_out;
        switch (n_q - i0 < KB_GROUP ? n_q - i0 : KB_GROUP) {
            KB_GROUP_CASE(1)
            KB_GROUP_CASE(2)
            KB_GROUP_CASE(3)
            KB_GROUP_CASE(4)
            KB_GROUP_CASE(5)
            KB_GROUP_CASE(6)
        }
    }
}

static int kb_avx512_fits(int dh) {
    return (di_cpu_features() & DI_CPU_AVX512) && dh <= 64;
}

/* Without AVX-512 (f16 only): one query at a time, 32 keys per pass, a lane
 * per key or per output; the same steps as above. */
#define KB_AVX2_KEYS 32

__attribute__((target("avx2,fma,f16c"))) static void
exp_rows_avx2(float *s, int n, int n_kv, const float *rowmax, float *rowsum) {
    for (int i = 0; i < n; i++) {
        float *row = s + (size_t)i * n_kv;
        __m256 m = _mm256_set1_ps(rowmax[i]), sum = _mm256_setzero_ps();
        int j = 0;
        for (; j + 8 <= n_kv; j += 8) {
            __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + j), m));
            _mm256_storeu_ps(row + j, e);
            sum = _mm256_add_ps(sum, e);
        }
        float lanes[8], total = 0;
        _mm256_storeu_ps(lanes, sum);
        for (int l = 0; l < 8; l++)
            total += lanes[l];
        for (; j < n_kv; j++) {
            row[j] = expf(row[j] - rowmax[i]);
            total += row[j];
        }
        rowsum[i] = total;
    }
}

/* out[0..dh) = sum_j p[j] v[j] / sum, dh / 8 accumulators. */
__attribute__((target("avx2,fma,f16c"))) static inline __attribute__((always_inline)) void
cross_weigh_avx2(float *out, const float *p, float sum, const uint16_t *v, int n_kv, const int dh) {
    __m256 acc[8];
    for (int t = 0; t < dh / 8; t++)
        acc[t] = _mm256_setzero_ps();
    for (int j = 0; j < n_kv; j++) {
        const uint16_t *row = v + (size_t)j * dh;
        for (int c = 0; c < dh; c += 32) /* the row 64 on, a line at a time */
            _mm_prefetch((const char *)(row + ATTN_KEY_BLOCK * dh + c), _MM_HINT_T0);
        __m256 b = _mm256_set1_ps(p[j]);
        for (int t = 0; t < dh / 8; t++)
            acc[t] = _mm256_fmadd_ps(
                b, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 8 * t))), acc[t]);
    }
    __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (int t = 0; t < dh / 8; t++)
        _mm256_storeu_ps(out + 8 * t, _mm256_mul_ps(acc[t], inv));
}

__attribute__((target("avx2,fma,f16c"))) static void
cross_attention_avx2(float *out, int ld_out, const float *q, int ld_q, const uint16_t *kb,
                     const uint16_t *v, int n_q, int n_kv, int dh, float scale, float *scores) {
    float rowmax, rowsum;
    for (int i = 0; i < n_q; i++) {
        const float *qi = q + (size_t)i * ld_q;
        float *si = scores;
        __m256 mv = _mm256_set1_ps(-INFINITY);
        rowmax = -INFINITY;
        for (int b0 = 0; b0 < n_kv; b0 += ATTN_KEY_BLOCK) {
            int nk = n_kv - b0 < ATTN_KEY_BLOCK ? n_kv - b0 : ATTN_KEY_BLOCK, j = 0;
            const uint16_t *blk = kb + (size_t)b0 * dh;
            for (; j + KB_AVX2_KEYS <= nk; j += KB_AVX2_KEYS) {
                __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                                 _mm256_setzero_ps()};
                for (int c = 0; c < dh; c++) {
                    const uint16_t *row = blk + (size_t)c * nk + j;
                    __m256 b = _mm256_set1_ps(qi[c]);
                    for (int t = 0; t < 4; t++)
                        acc[t] = _mm256_fmadd_ps(
                            b, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 8 * t))),
                            acc[t]);
                }
                for (int t = 0; t < 4; t++) {
                    __m256 x = _mm256_mul_ps(acc[t], _mm256_set1_ps(scale));
                    _mm256_storeu_ps(si + b0 + j + 8 * t, x);
                    mv = _mm256_max_ps(mv, x);
                }
            }
            for (; j < nk; j++) {
                float acc = 0;
                for (int c = 0; c < dh; c++)
                    acc = fmaf(qi[c], di_f16_to_f32(blk[(size_t)c * nk + j]), acc);
                si[b0 + j] = acc * scale;
                rowmax = si[b0 + j] > rowmax ? si[b0 + j] : rowmax;
            }
        }
        float lanes[8];
        _mm256_storeu_ps(lanes, mv);
        for (int l = 0; l < 8; l++)
            rowmax = lanes[l] > rowmax ? lanes[l] : rowmax;
        exp_rows_avx2(si, 1, n_kv, &rowmax, &rowsum);
        float *o = out + (size_t)i * ld_out;
        if (dh == 64) /* every Whisper model's: a constant, so registers */
            cross_weigh_avx2(o, si, rowsum, v, n_kv, 64);
        else
            cross_weigh_avx2(o, si, rowsum, v, n_kv, dh);
    }
}
#endif

int op_encoder_attention_fast(int dh) {
#if HAVE_X86
    return kb_avx512_fits(dh);
#else
    (void)dh;
    return 0;
#endif
}

void op_encoder_attention(float *out, int ld_out, const float *q, int ld_q, const float *kb,
                          const float *v, int n_q, int n_kv, int dh, float scale, float *scores) {
#if HAVE_X86
    if (kb_avx512_fits(dh)) {
        kb_attention_avx512(out, ld_out, q, ld_q, kb, v, 0, n_q, n_kv, dh, scale, scores);
        return;
    }
#endif
    kb_attention_scalar(out, ld_out, q, ld_q, kb, v, 0, n_q, n_kv, dh, scale, scores);
}

void op_cross_attention_f16(float *out, int ld_out, const float *q, int ld_q, const uint16_t *kb,
                            const uint16_t *v, int n_q, int n_kv, int dh, float scale,
                            float *scores) {
#if HAVE_X86
    if (kb_avx512_fits(dh)) {
        kb_attention_avx512(out, ld_out, q, ld_q, kb, v, 1, n_q, n_kv, dh, scale, scores);
        return;
    }
    if (cpu_has_avx2() && dh % 8 == 0 && dh <= 64) {
        cross_attention_avx2(out, ld_out, q, ld_q, kb, v, n_q, n_kv, dh, scale, scores);
        return;
    }
#endif
    kb_attention_scalar(out, ld_out, q, ld_q, kb, v, 1, n_q, n_kv, dh, scale, scores);
}
