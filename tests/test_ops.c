/* The engine's kernels against plain double-precision loops: matrix
 * products on every path (one row, a few rows, many rows; f16 and f32
 * weights; widths that leave tails), the decoder's f16 attention, and a
 * batch of different sequences against each decoded alone. Thread counts
 * must not change a single bit. */
#include "testutil.h"
#include "whisper/whisper_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static WhisperModel *model;

static int setup(void **state) {
    (void)state;
    char msg[512];
    return whisper_model_load(tu_shared("golden/ggml-micro-synthetic.en.bin"), &model, msg,
                              sizeof msg)
               ? -1
               : 0;
}

static int teardown(void **state) {
    (void)state;
    whisper_model_free(model);
    return 0;
}

static float rnd(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) & 0xffff) / 32768.0f - 1.0f;
}

static WhisperState *new_state(int threads) {
    char msg[512];
    WhisperState *st;
    assert_int_equal(whisper_state_create(model, threads, &st, msg, sizeof msg), 0);
    return st;
}

/* Runs y = x W^T (+ bias) for M random rows on 1 and 2 threads: the two
 * must agree bit for bit, and both with a double loop over wf, the weights
 * as W's own type holds them. */
static void check_matmul(WhisperState *st1, WhisperState *st2, const Tensor *w, const float *wf,
                         const float *bias, int M, uint64_t *seed) {
    int K = w->ne[0], N = w->ne[1];
    Tensor b = {TENSOR_F32, 1, {N, 1, 1}, bias};
    float *x = malloc(sizeof(float) * M * K);
    float *y1 = malloc(sizeof(float) * M * N), *y2 = malloc(sizeof(float) * M * N);
    for (int i = 0; i < M * K; i++)
        x[i] = rnd(seed);
    op_matmul(st1, y1, x, M, K, w, bias ? &b : NULL);
    op_matmul(st2, y2, x, M, K, w, bias ? &b : NULL);
    if (memcmp(y1, y2, sizeof(float) * M * N))
        fail_msg("type %d M %d K %d N %d: 1 and 2 threads differ", w->type, M, K, N);
    for (int m = 0; m < M; m++) {
        for (int n = 0; n < N; n++) {
            double ref = bias ? bias[n] : 0, mag = 0;
            for (int k = 0; k < K; k++) {
                ref += (double)x[m * K + k] * wf[n * K + k];
                mag += fabs((double)x[m * K + k] * wf[n * K + k]);
            }
            if (fabs(y1[m * N + n] - ref) > 1e-5 * mag + 1e-6)
                fail_msg("type %d M %d K %d N %d at (%d,%d): %g vs %g", w->type, M, K, N, m, n,
                         y1[m * N + n], ref);
        }
    }
    /* Each output is the same sum whichever rows of W share its pass: row n
     * alone, as a one-row W, gives y[.][n] bit for bit. */
    if (M < 8 && (w->type == TENSOR_F16 || w->type == TENSOR_F32)) {
        size_t row_bytes = (size_t)K * (w->type == TENSOR_F16 ? 2 : 4);
        float *y_one = malloc(sizeof(float) * M), *y_all = malloc(sizeof(float) * M * N);
        op_matmul(st1, y_all, x, M, K, w, NULL);
        for (int n = 0; n < N; n++) {
            Tensor one = {w->type, 2, {K, 1, 1}, (char *)w->data + (size_t)n * row_bytes};
            op_matmul(st1, y_one, x, M, K, &one, NULL);
            for (int m = 0; m < M; m++) {
                float want = y_all[m * N + n];
                if (y_one[m] != want)
                    fail_msg("type %d M %d K %d N %d: row %d alone %.9g, among others %.9g",
                             w->type, M, K, N, n, y_one[m], want);
            }
        }
        free(y_one), free(y_all);
    }
    /* Many rows on AVX-512 go through our own kernel, whose every output is
     * one FMA chain over k in order, however the rows, columns and k are
     * cut into tiles and passes: a plain fmaf loop gives the same bits. */
    if (M >= 256 && (di_cpu_features() & DI_CPU_AVX512)) {
        float *y0 = malloc(sizeof(float) * M * N);
        op_matmul(st2, y0, x, M, K, w, NULL);
        for (int m = 0; m < M; m++) {
            for (int n = 0; n < N; n++) {
                float chain = 0;
                for (int k = 0; k < K; k++)
                    chain = fmaf(x[m * K + k], wf[n * K + k], chain);
                if (y0[m * N + n] != chain)
                    fail_msg("type %d M %d K %d N %d at (%d,%d): %.9g, FMA chain %.9g", w->type, M,
                             K, N, m, n, y0[m * N + n], chain);
            }
        }
        free(y0);
    }
    /* The steps op_matmul_ex adds, block by block: GELU of that product,
     * then its sum into a residual. */
    float *g = malloc(sizeof(float) * M * N), *r = malloc(sizeof(float) * M * N),
          *r0 = malloc(sizeof(float) * M * N);
    for (int i = 0; i < M * N; i++)
        r[i] = r0[i] = rnd(seed);
    op_matmul_ex(st2, g, x, M, K, w, bias ? &b : NULL, 1, r);
    for (int i = 0; i < M * N; i++) {
        double v = y1[i],
               want = 0.5 * v * (1 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
        if (fabs(g[i] - want) > 1e-5 * fabs(want) + 1e-6)
            fail_msg("type %d M %d K %d N %d at %d: gelu %g, want %g", w->type, M, K, N, i, g[i],
                     want);
        if (r[i] != r0[i] + g[i])
            fail_msg("type %d M %d K %d N %d at %d: residual %g, want %g", w->type, M, K, N, i,
                     r[i], r0[i] + g[i]);
    }
    free(x), free(y1), free(y2), free(g), free(r), free(r0);
}

/* y = x W^T + b for every row count and shape the engine meets. */
static void matmul_matches_reference(void **state) {
    (void)state;
    WhisperState *st1 = new_state(1), *st2 = new_state(2);
    /* 263: two row chunks of 131 and 132, tiles of 6 rows and a tail of 5. */
    const int Ms[] = {1, 2, 5, 7, 8, 40, 263};
    /* 40: no AVX-512 few-row path (not a multiple of 16); 200: a full pass
     * of the many-row kernel and a partial one. */
    const int Ks[] = {128, 40, 512, 200};
    const int Ns[] = {131, 64, 7}; /* odd widths leave a lone last row */
    uint64_t seed = 1;
    for (int type = TENSOR_F32; type <= TENSOR_F16; type++) {
        for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++) {
            for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++) {
                int K = Ks[ki], N = Ns[ni];
                float *wf = malloc(sizeof(float) * K * N), *bias = malloc(sizeof(float) * N);
                uint16_t *wh = malloc(sizeof(uint16_t) * K * N);
                for (int i = 0; i < K * N; i++) {
                    wh[i] = di_f32_to_f16(rnd(&seed));
                    wf[i] = di_f16_to_f32(wh[i]); /* the same values in both types */
                }
                for (int n = 0; n < N; n++)
                    bias[n] = rnd(&seed);
                Tensor w = {type, 2, {K, N, 1}, type == TENSOR_F16 ? (void *)wh : (void *)wf};
                for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
                    check_matmul(st1, st2, &w, wf, bias, Ms[mi], &seed);
                free(wf), free(wh), free(bias);
            }
        }
    }
    whisper_state_free(st1);
    whisper_state_free(st2);
}

/* The same for block-quantized weights: every row count against the rows
 * widened by the format's own decoder (test_quant checks that bit for bit). */
static void quantized_matmul_matches_reference(void **state) {
    (void)state;
    WhisperState *st1 = new_state(1), *st2 = new_state(2);
    const int types[] = {TENSOR_Q4_0, TENSOR_Q5_0, TENSOR_Q5_1, TENSOR_Q8_0};
    const int Ms[] = {1, 3, 5, 7, 8, 300};
    const int K = 256, N = 67;
    uint64_t seed = 11;
    float *wf = malloc(sizeof(float) * K * N), *wq = malloc(sizeof(float) * K * N);
    uint8_t *packed = malloc(quant_row_bytes(TENSOR_Q8_0, K) * N);
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
        int type = types[t];
        size_t rb = quant_row_bytes(type, K);
        for (int i = 0; i < K * N; i++)
            wf[i] = rnd(&seed);
        for (int n = 0; n < N; n++) {
            quant_quantize_row(type, wf + n * K, packed + n * rb, K);
            quant_dequant_row(type, packed + n * rb, wq + n * K, K);
        }
        Tensor w = {type, 2, {K, N, 1}, packed};
        for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
            check_matmul(st1, st2, &w, wq, NULL, Ms[mi], &seed);
    }
    free(wf), free(wq), free(packed);
    whisper_state_free(st1);
    whisper_state_free(st2);
}

/* softmax(q k^T * scale, causal) v with f16 keys and values, in double. */
static void attention_reference(double *out, const float *q, int ld_q, const uint16_t *k,
                                const uint16_t *v, int ld_kv, int n_q, int n_kv, int dh,
                                float scale, int causal_base) {
    double *p = malloc(sizeof(double) * n_kv);
    for (int i = 0; i < n_q; i++) {
        int last = causal_base >= 0 ? causal_base + i : n_kv - 1;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j <= last; j++) {
            double s = 0;
            for (int c = 0; c < dh; c++)
                s += (double)q[i * ld_q + c] * di_f16_to_f32(k[j * ld_kv + c]);
            p[j] = s * scale;
            mx = p[j] > mx ? p[j] : mx;
        }
        for (int j = 0; j <= last; j++)
            sum += p[j] = exp(p[j] - mx);
        for (int c = 0; c < dh; c++) {
            double o = 0;
            for (int j = 0; j <= last; j++)
                o += p[j] / sum * di_f16_to_f32(v[j * ld_kv + c]);
            out[i * dh + c] = o;
        }
    }
    free(p);
}

static void f16_attention_matches_reference(void **state) {
    (void)state;
    const int dhs[] = {64, 24};           /* 24: the portable path */
    const int n_kvs[] = {1, 7, 65, 1500}; /* blocks of 64 and of 8, with tails */
    uint64_t seed = 9;
    for (size_t di = 0; di < 2; di++) {
        for (size_t ki = 0; ki < sizeof n_kvs / sizeof *n_kvs; ki++) {
            int dh = dhs[di], n_kv = n_kvs[ki], ld = 3 * dh; /* one head of three */
            for (int causal = 0; causal <= 1; causal++) {
                int n_q = causal ? (n_kv < 5 ? n_kv : 5) : 6;
                int base = causal ? n_kv - n_q : -1;
                float *q = malloc(sizeof(float) * n_q * ld),
                      *out = malloc(sizeof(float) * n_q * ld);
                uint16_t *k = malloc(sizeof(uint16_t) * n_kv * ld),
                         *v = malloc(sizeof(uint16_t) * n_kv * ld);
                float *scores = malloc(sizeof(float) * n_q * (n_kv + 2)),
                      *kvbuf = malloc(sizeof(float) * 64 * dh);
                double *ref = malloc(sizeof(double) * n_q * dh);
                for (int i = 0; i < n_q * ld; i++)
                    q[i] = 2 * rnd(&seed);
                for (int i = 0; i < n_kv * ld; i++) {
                    k[i] = di_f32_to_f16(2 * rnd(&seed));
                    v[i] = di_f32_to_f16(rnd(&seed));
                }
                float scale = 1.0f / sqrtf((float)dh);
                op_attention_f16(out + dh, ld, q + dh, ld, k + dh, v + dh, ld, n_q, n_kv, dh, scale,
                                 base, scores, kvbuf);
                attention_reference(ref, q + dh, ld, k + dh, v + dh, ld, n_q, n_kv, dh, scale,
                                    base);
                for (int i = 0; i < n_q; i++)
                    for (int c = 0; c < dh; c++)
                        if (fabs(out[i * ld + dh + c] - ref[i * dh + c]) > 2e-5)
                            fail_msg("dh %d n_kv %d causal %d at (%d,%d): %g vs %g", dh, n_kv,
                                     causal, i, c, out[i * ld + dh + c], ref[i * dh + c]);
                free(q), free(out), free(k), free(v), free(scores), free(kvbuf), free(ref);
            }
        }
    }
}

/* Attention over keys in transposed blocks of 64: the decoder's
 * cross-attention over a window's f16 cache and the encoder's over f32
 * heads. Against doubles, for head sizes of whole vectors (64, 16), masked
 * lanes (24, 20) and more than a vector kernel takes (96), key counts with
 * and without a tail block, and 13 queries (two groups of six and one); and
 * each query's output equals, bit for bit, that query's alone, which is
 * what lets beams and batched jobs share a step. ctest runs this again with
 * DIARIST_CPU=avx2 and =portable for the other paths. */
static void cross_attention_matches_reference(void **state) {
    (void)state;
    const int dhs[] = {64, 16, 24, 20, 96};
    const int n_kvs[] = {1, 7, 33, 65, 1500};
    const int n_q = 13;
    uint64_t seed = 21;
    for (size_t di = 0; di < sizeof dhs / sizeof *dhs; di++) {
        for (size_t ki = 0; ki < sizeof n_kvs / sizeof *n_kvs; ki++) {
            int dh = dhs[di], n_kv = n_kvs[ki], ld = 3 * dh;
            float *q = malloc(sizeof(float) * n_q * ld), *out = malloc(sizeof(float) * n_q * ld),
                  *one = malloc(sizeof(float) * dh), *scores = malloc(sizeof(float) * n_q * n_kv),
                  *out32 = malloc(sizeof(float) * n_q * ld),
                  *kb32 = malloc(sizeof(float) * dh * n_kv),
                  *v32 = malloc(sizeof(float) * n_kv * dh);
            uint16_t *kb = malloc(sizeof(uint16_t) * dh * n_kv),
                     *krows = malloc(sizeof(uint16_t) * n_kv * dh),
                     *v = malloc(sizeof(uint16_t) * n_kv * dh);
            double *ref = malloc(sizeof(double) * n_q * dh);
            for (int i = 0; i < n_q * ld; i++)
                q[i] = 2 * rnd(&seed);
            for (int j = 0; j < n_kv; j++)
                for (int c = 0; c < dh; c++) {
                    int j0 = j / ATTN_KEY_BLOCK * ATTN_KEY_BLOCK,
                        nk = n_kv - j0 < ATTN_KEY_BLOCK ? n_kv - j0 : ATTN_KEY_BLOCK;
                    size_t at = (size_t)j0 * dh + (size_t)c * nk + (size_t)(j - j0);
                    krows[j * dh + c] = kb[at] = di_f32_to_f16(2 * rnd(&seed));
                    v[j * dh + c] = di_f32_to_f16(rnd(&seed));
                    kb32[at] = di_f16_to_f32(kb[at]);
                    v32[j * dh + c] = di_f16_to_f32(v[j * dh + c]);
                }
            float scale = 1.0f / sqrtf((float)dh);
            op_cross_attention_f16(out + dh, ld, q + dh, ld, kb, v, n_q, n_kv, dh, scale, scores);
            op_encoder_attention(out32 + dh, ld, q + dh, ld, kb32, v32, n_q, n_kv, dh, scale,
                                 scores);
            attention_reference(ref, q + dh, ld, krows, v, dh, n_q, n_kv, dh, scale, -1);
            for (int i = 0; i < n_q; i++) {
                for (int c = 0; c < dh; c++) {
                    double want = ref[i * dh + c];
                    if (fabs(out[i * ld + dh + c] - want) > 2e-5 ||
                        fabs(out32[i * ld + dh + c] - want) > 2e-5)
                        fail_msg("dh %d n_kv %d at (%d,%d): f16 %g, f32 %g vs %g", dh, n_kv, i, c,
                                 out[i * ld + dh + c], out32[i * ld + dh + c], want);
                }
                op_cross_attention_f16(one, dh, q + i * ld + dh, ld, kb, v, 1, n_kv, dh, scale,
                                       scores);
                if (memcmp(one, out + i * ld + dh, sizeof(float) * dh) != 0)
                    fail_msg("dh %d n_kv %d: query %d of %d differs from the query alone", dh, n_kv,
                             i, n_q);
                op_encoder_attention(one, dh, q + i * ld + dh, ld, kb32, v32, 1, n_kv, dh, scale,
                                     scores);
                if (memcmp(one, out32 + i * ld + dh, sizeof(float) * dh) != 0)
                    fail_msg("dh %d n_kv %d: f32 query %d of %d differs from the query alone", dh,
                             n_kv, i, n_q);
            }
            free(q), free(out), free(one), free(scores), free(kb), free(krows), free(v), free(ref);
            free(out32), free(kb32), free(v32);
        }
    }
}

/* Softmax (with masked entries and a wide range) and GELU against libm, at
 * lengths that leave tails for every vector width. */
static void softmax_and_gelu_match_libm(void **state) {
    (void)state;
    WhisperState *st = new_state(2);
    uint64_t seed = 3;
    const int ns[] = {1, 7, 17, 33, 1500};
    for (size_t t = 0; t < sizeof ns / sizeof *ns; t++) {
        int n = ns[t];
        float *x = malloc(sizeof(float) * n);
        double *ref = malloc(sizeof(double) * n), mx = -INFINITY, sum = 0;
        for (int i = 0; i < n; i++) {
            x[i] = 40 * rnd(&seed);
            if (i % 5 == 3) x[i] = -INFINITY; /* a causal mask */
            mx = x[i] > mx ? x[i] : mx;
        }
        for (int i = 0; i < n; i++)
            sum += ref[i] = exp((double)x[i] - mx);
        op_softmax(x, n);
        for (int i = 0; i < n; i++)
            if (fabs(x[i] - ref[i] / sum) > 1e-6 + 1e-5 * ref[i] / sum)
                fail_msg("softmax n %d at %d: %g vs %g", n, i, x[i], ref[i] / sum);
        for (int i = 0; i < n; i++)
            x[i] = 12 * rnd(&seed);
        x[0] = -100, x[n - 1] = 100;
        /* GELU as op_matmul_ex applies it: after a product by the identity,
         * which is exact. */
        float *y = malloc(sizeof(float) * n), *eye = calloc((size_t)n * n, sizeof(float));
        for (int i = 0; i < n; i++)
            eye[(size_t)i * n + i] = 1;
        Tensor id = {TENSOR_F32, 2, {n, n, 1}, eye};
        op_matmul_ex(st, y, x, 1, n, &id, NULL, 1, NULL);
        for (int i = 0; i < n; i++) {
            double v = x[i],
                   g = 0.5 * v * (1 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
            if (fabs(y[i] - g) > 1e-5 * fabs(g) + 1e-6)
                fail_msg("gelu(%g) = %g, want %g", v, y[i], g);
        }
        free(x), free(ref), free(y), free(eye);
    }
    float masked[3] = {-INFINITY, -INFINITY, -INFINITY};
    op_softmax(masked, 3); /* all masked: uniform, not NaN */
    for (int i = 0; i < 3; i++)
        assert_float_equal(masked[i], 1.0f / 3, 1e-7);
    whisper_state_free(st);
}

/* The sampler's sums over the vocabulary: each e[i] within a few ulp of
 * libm's exp in double, -inf and anything below e^-87.3 exactly 0, the sum
 * close to the double one; the maximum skips NaN. Lengths leave tails. */
static void sum_exp_and_max_match_libm(void **state) {
    (void)state;
    uint64_t seed = 11;
    const int ns[] = {0, 1, 5, 16, 23, 257, 51865};
    for (size_t t = 0; t < sizeof ns / sizeof *ns; t++) {
        int n = ns[t];
        float *x = malloc(sizeof(float) * (n + 1)), *e = malloc(sizeof(float) * (n + 1));
        float mx = -INFINITY;
        for (int i = 0; i < n; i++) {
            x[i] = 30 * rnd(&seed);
            if (i % 7 == 2) x[i] = -INFINITY; /* suppressed tokens */
            if (i % 11 == 4) x[i] = -200;     /* far below the floor */
            mx = x[i] > mx ? x[i] : mx;
        }
        assert_true(op_max(x, n) == mx);
        const float scales[] = {1.0f, 1.0f / 0.6f};
        for (int s = 0; s < 2; s++) {
            float shift = n ? mx : 0, scale = scales[s];
            double sum = op_sum_exp(x, n, shift, scale, e), ref = 0;
            for (int i = 0; i < n; i++) {
                float v = (x[i] - shift) * scale;
                double want = v >= -87.3f ? exp((double)v) : 0.0;
                ref += want;
                if (want == 0.0 ? e[i] != 0.0f : fabs(e[i] - want) > 4e-7 * want)
                    fail_msg("n %d scale %g: exp(%g) = %g, want %g", n, scale, v, e[i], want);
            }
            if (fabs(sum - ref) > 1e-6 * ref) fail_msg("n %d: sum %.9g, want %.9g", n, sum, ref);
            assert_true(op_sum_exp(x, n, shift, scale, NULL) == sum); /* out changes nothing */
        }
        if (n > 3) {
            x[n / 2] = NAN;
            float want = -INFINITY;
            for (int i = 0; i < n; i++)
                want = x[i] > want ? x[i] : want;
            assert_true(op_max(x, n) == want);
            x[n - 1] = 1000;
            assert_true(op_max(x, n) == 1000);
        }
        free(x), free(e);
    }
    assert_true(op_max(NULL, 0) == -INFINITY);
}

/* Three different sequences decoded as one batch give the logits each gets
 * alone: the batch shares the cross-attention read, not its results. */
static void batch_matches_single_sequences(void **state) {
    (void)state;
    char msg[512];
    const WhisperHparams *hp = whisper_model_hparams(model);
    WhisperState *st = new_state(2);
    size_t n_mel = (size_t)hp->n_mels * WHISPER_N_FRAMES;
    float *mel = malloc(n_mel * sizeof(float));
    uint64_t seed = 5;
    for (size_t i = 0; i < n_mel; i++)
        mel[i] = rnd(&seed);
    assert_int_equal(whisper_encode(st, mel, WHISPER_N_FRAMES, 0, msg, sizeof msg), 0);
    const int n_seq = 3, V = hp->n_vocab;
    int tokens[3][4] = {{50257, 50362, 400, 11}, {50257, 50362, 1200, 7}, {50257, 13, 14, 15}};
    float *single = malloc(sizeof(float) * n_seq * V), *batch = malloc(sizeof(float) * n_seq * V);
    for (int s = 0; s < n_seq; s++) {
        assert_int_equal(decoder_forward(st, 1, tokens[s], 3, 0, NULL, msg, sizeof msg), 0);
        assert_int_equal(
            decoder_forward(st, 1, tokens[s] + 3, 1, 3, single + (size_t)s * V, msg, sizeof msg),
            0);
    }
    int prompt[3 * 3], last[3];
    for (int s = 0; s < n_seq; s++) {
        memcpy(prompt + 3 * s, tokens[s], 3 * sizeof(int));
        last[s] = tokens[s][3];
    }
    assert_int_equal(decoder_forward(st, n_seq, prompt, 3, 0, NULL, msg, sizeof msg), 0);
    assert_int_equal(decoder_forward(st, n_seq, last, 1, 3, batch, msg, sizeof msg), 0);
    for (int s = 0; s < n_seq; s++) {
        double worst = 0;
        for (int i = 0; i < V; i++) {
            double d = fabs(batch[(size_t)s * V + i] - single[(size_t)s * V + i]);
            worst = d > worst ? d : worst;
        }
        assert_true(worst < 1e-3);
    }
    /* And the sequences really differ, so the comparison means something. */
    assert_true(fabs(single[0] - single[V]) + fabs(single[1] - single[V + 1]) > 1e-6);
    free(single), free(batch), free(mel);
    whisper_state_free(st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matmul_matches_reference),
        cmocka_unit_test(quantized_matmul_matches_reference),
        cmocka_unit_test(f16_attention_matches_reference),
        cmocka_unit_test(cross_attention_matches_reference),
        cmocka_unit_test(softmax_and_gelu_match_libm),
        cmocka_unit_test(sum_exp_and_max_match_libm),
        cmocka_unit_test(batch_matches_single_sequences),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
