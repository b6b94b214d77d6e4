/* Quantized weights (quant.c and the loader): ggml's q4_0, q5_0, q5_1 and
 * q8_0 blocks decode bit for bit as the format defines them, the reference
 * quantizer stays within each format's step, quantized synthetic models
 * load (and malformed ones are refused clearly), and a quantized model's
 * encoder output and logits stay close to the same model in f16. */
#include "testutil.h"
#include "whisper/whisper_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_VOCAB 51864

static const int TYPES[] = {TENSOR_Q8_0, TENSOR_Q5_1, TENSOR_Q5_0, TENSOR_Q4_0};
static const char *const TYPE_NAMES[] = {"q8_0", "q5_1", "q5_0", "q4_0"};
static const int FTYPES[] = {7, 9, 8, 2}; /* llama.cpp's file types for them */

/* ---- Bit-exact decoding of hand-built blocks ---------------------------- */

/* The expected values are computed here straight from the format text,
 * with ggml's own shift expressions for the fifth bit. */
static void check_row(int type, const uint8_t *blk, const float *want, int n) {
    float got[64];
    quant_dequant_row(type, blk, got, n);
    for (int j = 0; j < n; j++) {
        if (memcmp(&got[j], &want[j], sizeof(float))) {
            fprintf(stderr, "type %d weight %d: got %.9g, want %.9g\n", type, j, got[j], want[j]);
            fail();
        }
    }
}

static void row_bytes(void **state) {
    (void)state;
    assert_int_equal(quant_row_bytes(TENSOR_Q4_0, 64), 36);
    assert_int_equal(quant_row_bytes(TENSOR_Q5_0, 64), 44);
    assert_int_equal(quant_row_bytes(TENSOR_Q5_1, 64), 48);
    assert_int_equal(quant_row_bytes(TENSOR_Q8_0, 64), 68);
    assert_int_equal(quant_row_bytes(TENSOR_F16, 64), 128);
    assert_int_equal(quant_row_bytes(TENSOR_F32, 64), 256);
    assert_false(quant_is_block_type(3)); /* q4_1 */
    assert_false(quant_is_block_type(TENSOR_F16));
}

static void q8_0_bits(void **state) {
    (void)state;
    uint8_t b[68];
    float want[64];
    /* Block 0: d = 0.5 (f16 0x3800); block 1: d = -3.0 (0xC200). */
    const uint16_t d[2] = {0x3800, 0xC200};
    const float df[2] = {0.5f, -3.0f};
    for (int k = 0; k < 2; k++) {
        uint8_t *p = b + 34 * k;
        p[0] = (uint8_t)d[k];
        p[1] = (uint8_t)(d[k] >> 8);
        for (int j = 0; j < 32; j++) {
            int q = k ? 127 - 8 * j : -128 + 7 * j; /* covers -128 and 127 */
            p[2 + j] = (uint8_t)(int8_t)q;
            want[32 * k + j] = df[k] * (float)q;
        }
    }
    check_row(TENSOR_Q8_0, b, want, 64);
}

static void q4_0_bits(void **state) {
    (void)state;
    uint8_t b[36];
    float want[64];
    const uint16_t d[2] = {0x3800, 0x3C00}; /* 0.5, 1.0 */
    const float df[2] = {0.5f, 1.0f};
    for (int k = 0; k < 2; k++) {
        uint8_t *p = b + 18 * k;
        p[0] = (uint8_t)d[k];
        p[1] = (uint8_t)(d[k] >> 8);
        for (int j = 0; j < 16; j++) {
            int lo = k ? (j * 5) % 16 : j, hi = 15 - lo;
            p[2 + j] = (uint8_t)(lo | hi << 4);
            want[32 * k + j] = df[k] * (float)(lo - 8);
            want[32 * k + j + 16] = df[k] * (float)(hi - 8);
        }
    }
    check_row(TENSOR_Q4_0, b, want, 64);
}

/* One q5 block (q5_1 when has_m) with the given qh and nibbles. */
static void q5_block(uint8_t *p, int has_m, uint16_t d, uint16_t m, uint32_t qh,
                     const uint8_t *qs) {
    p[0] = (uint8_t)d;
    p[1] = (uint8_t)(d >> 8);
    int o = 2;
    if (has_m) {
        p[2] = (uint8_t)m;
        p[3] = (uint8_t)(m >> 8);
        o = 4;
    }
    for (int i = 0; i < 4; i++)
        p[o + i] = (uint8_t)(qh >> (8 * i));
    memcpy(p + o + 4, qs, 16);
}

/* Expected q5 values, as the format defines them. */
static void q5_want(float *w, int has_m, float d, float m, uint32_t qh, const uint8_t *qs) {
    for (int j = 0; j < 16; j++) {
        uint32_t xh0 = ((qh >> j) << 4) & 0x10, xh1 = (qh >> (j + 12)) & 0x10;
        int q0 = (int)((qs[j] & 0x0Fu) | xh0), q1 = (int)((qs[j] >> 4) | xh1);
        w[j] = has_m ? d * (float)q0 + m : d * (float)(q0 - 16);
        w[j + 16] = has_m ? d * (float)q1 + m : d * (float)(q1 - 16);
    }
}

static void q5_bits(int type) {
    int has_m = type == TENSOR_Q5_1, bb = has_m ? 24 : 22;
    /* d = -1.0 (0xBC00) or 0.25 (0x3400), m = -2.0 (0xC000). */
    uint16_t d = has_m ? 0x3400 : 0xBC00, m = 0xC000;
    float df = has_m ? 0.25f : -1.0f, mf = -2.0f;
    uint8_t qs[16], b[64 * 24];
    float want[64];
    for (int j = 0; j < 16; j++)
        qs[j] = (uint8_t)(j * 37 + 11);
    /* A mixed mask over two blocks... */
    const uint32_t masks[2] = {0xA5C3961Eu, 0x5A3C69E1u};
    for (int k = 0; k < 2; k++) {
        q5_block(b + bb * k, has_m, d, m, masks[k], qs);
        q5_want(want + 32 * k, has_m, df, mf, masks[k], qs);
    }
    check_row(type, b, want, 64);
    /* ...then every single fifth bit on its own, with zero nibbles, so a
     * bit landing on the wrong weight shows. */
    uint8_t zero[16] = {0};
    for (int i = 0; i < 32; i++) {
        q5_block(b, has_m, d, m, 1u << i, zero);
        q5_want(want, has_m, df, mf, 1u << i, zero);
        for (int j = 0; j < 32; j++) {
            float code = j == i ? 16.0f : 0.0f;
            assert_true(want[j] == (has_m ? df * code + mf : df * (code - 16)));
        }
        check_row(type, b, want, 32);
    }
}

static void q5_0_bits(void **state) {
    (void)state;
    q5_bits(TENSOR_Q5_0);
}

static void q5_1_bits(void **state) {
    (void)state;
    q5_bits(TENSOR_Q5_1);
}

/* ---- Reference quantization round trip ---------------------------------- */

/* Bound on |x - dequant(quant(x))| within one block, from the format: half a
 * step, a full step for the one side q4_0/q5_0 clamp, plus what rounding
 * the scale (and q5_1's offset) to f16 adds at the largest code. */
static double block_bound(int type, const float *x) {
    float amax = 0, lo = x[0], hi = x[0];
    for (int j = 0; j < 32; j++) {
        amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
        lo = x[j] < lo ? x[j] : lo;
        hi = x[j] > hi ? x[j] : hi;
    }
    const double h = 1.0 / 2048; /* f16 relative rounding, 2^-11 */
    switch (type) {
    case TENSOR_Q8_0:
        return amax / 127.0 * (0.5 + 127 * h) + 1e-7;
    case TENSOR_Q4_0:
        return amax / 8.0 * (1 + 8 * h) + 1e-7;
    case TENSOR_Q5_0:
        return amax / 16.0 * (1 + 16 * h) + 1e-7;
    default:
        return (hi - lo) / 31.0 * (0.5 + 31 * h) + fabsf(lo) * h + 1e-7;
    }
}

static void round_trip(void **state) {
    (void)state;
    enum { N = 32 * 256 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    uint8_t *q = malloc(N * 2);
    DiRng rng;
    di_rng_seed(&rng, 42);
    for (int i = 0; i < N; i++)
        x[i] = (float)((di_rng_uniform(&rng) - 0.5) * 0.2 * (1 + i / 512));
    for (int j = 0; j < 32; j++) { /* an all-zero block and a constant one */
        x[j] = 0;
        x[32 + j] = -0.75f;
    }
    for (size_t t = 0; t < 4; t++) {
        quant_quantize_row(TYPES[t], x, q, N);
        quant_dequant_row(TYPES[t], q, y, N);
        double worst = 0; /* error / bound */
        for (int b = 0; b < N / 32; b++) {
            double bound = block_bound(TYPES[t], x + 32 * b);
            for (int j = 32 * b; j < 32 * b + 32; j++) {
                double e = fabs((double)x[j] - y[j]);
                worst = e / bound > worst ? e / bound : worst;
                assert_true(e <= bound);
            }
        }
        for (int j = 0; j < 32; j++)
            assert_true(y[j] == 0);
        printf("# %s round trip: worst error %.3f of the bound\n", TYPE_NAMES[t], worst);
    }
    free(x);
    free(y);
    free(q);
}

/* ---- Loading ------------------------------------------------------------ */

static WhisperSynthSpec micro_spec(int ftype) {
    WhisperSynthSpec spec = {.seed = 7,
                             .vocab_from = tu_shared("golden/ggml-micro-synthetic.en.bin")};
    assert_int_equal(whisper_synth_preset("micro", &spec.hp), 0);
    spec.hp.ftype = ftype;
    return spec;
}

static WhisperModel *micro_model(int ftype, const char *file) {
    char msg[512];
    WhisperSynthSpec spec = micro_spec(ftype);
    const char *path = tu_tmp(file);
    int rc = whisper_synth_write(path, &spec, msg, sizeof msg);
    if (rc) fprintf(stderr, "synth: %s\n", msg);
    assert_int_equal(rc, 0);
    WhisperModel *m = NULL;
    rc = whisper_model_load(path, &m, msg, sizeof msg);
    if (rc) fprintf(stderr, "load: %s\n", msg);
    assert_int_equal(rc, 0);
    remove(path);
    return m;
}

static void quantized_models_load(void **state) {
    (void)state;
    for (size_t t = 0; t < 4; t++) {
        WhisperModel *m = micro_model(FTYPES[t], "q.bin");
        const Weights *w = &m->w;
        assert_int_equal(m->hp.ftype, FTYPES[t]);
        /* Matrices stay quantized in memory; conv weights are f16 and the
         * rest f32, as whisper.cpp's quantizer leaves them. */
        assert_int_equal(w->tok_emb.type, TYPES[t]);
        assert_int_equal(w->enc[0].fc1_w.type, TYPES[t]);
        assert_int_equal(w->dec[1].cross.k_w.type, TYPES[t]);
        assert_int_equal(w->conv1_w.type, TENSOR_F16);
        assert_int_equal(w->enc[0].fc1_b.type, TENSOR_F32);
        whisper_model_free(m);
    }
}

static void gen_model_quantize_option(void **state) {
    (void)state;
    const char *path = tu_tmp("cli-q5_0.bin");
    assert_int_equal(tu_sh("'%s' gen-model --preset micro --quantize q5_0 '%s' 2>/dev/null",
                           tu_bin(), path),
                     0);
    char msg[512];
    WhisperModel *m = NULL;
    assert_int_equal(whisper_model_load(path, &m, msg, sizeof msg), 0);
    assert_int_equal(m->w.dec[0].fc2_w.type, TENSOR_Q5_0);
    whisper_model_free(m);
    remove(path);
    assert_int_not_equal(tu_sh("'%s' gen-model --quantize q4_1 '%s' 2>/dev/null", tu_bin(), path),
                         0);
}

/* Bytes of a tensor's data for a ggml type, computed here from the format. */
static size_t data_bytes(int type, size_t count) {
    switch (type) {
    case 0:
        return count * 4;
    case 1:
        return count * 2;
    case 2:
        return count / 32 * 18;
    case 6:
        return count / 32 * 22;
    case 7:
        return count / 32 * 24;
    default:
        return count / 32 * 34;
    }
}

static int32_t get32(const uint8_t *b, size_t off) {
    int32_t v;
    memcpy(&v, b + off, 4);
    return v;
}

/* Offset of tensor `name`'s header in a model file, walking it. */
static size_t find_tensor(const uint8_t *b, size_t size, const char *name, size_t *data_off,
                          size_t *data_len) {
    size_t p = 4 + 11 * 4;
    p += 8 + (size_t)get32(b, p) * (size_t)get32(b, p + 4) * 4;
    int n_vocab = get32(b, p);
    p += 4;
    for (int i = 0; i < n_vocab; i++)
        p += 4 + (size_t)get32(b, p);
    while (p < size) {
        int32_t n_dims = get32(b, p), name_len = get32(b, p + 4), type = get32(b, p + 8);
        size_t count = 1;
        for (int i = 0; i < n_dims; i++)
            count *= (size_t)get32(b, p + 12 + 4 * (size_t)i);
        size_t d = p + 12 + 4 * (size_t)n_dims + (size_t)name_len;
        if ((size_t)name_len == strlen(name) && !memcmp(b + d - name_len, name, strlen(name))) {
            *data_off = d;
            *data_len = data_bytes(type, count);
            return p;
        }
        p = d + data_bytes(type, count);
    }
    fail_msg("tensor %s not found", name);
    return 0;
}

/* Loads a model from memory; the code, with a message on failure. */
static int load_buf(const uint8_t *b, size_t n, char *msg, size_t cap) {
    WhisperModel *m = NULL;
    msg[0] = 0;
    int rc = whisper_model_load_buffer(b, n, &m, msg, cap);
    whisper_model_free(m);
    if (rc) printf("# refused: %s\n", msg);
    return rc;
}

static uint8_t *synth_bytes(WhisperSynthSpec spec, size_t *size) {
    char msg[512];
    const char *path = tu_tmp("bytes.bin");
    assert_int_equal(whisper_synth_write(path, &spec, msg, sizeof msg), 0);
    uint8_t *b = tu_read(path, size);
    assert_non_null(b);
    remove(path);
    return b;
}

static void malformed_quantized_refused(void **state) {
    (void)state;
    char msg[512];
    size_t size, off, len;
    /* A quantized tensor cut short. */
    uint8_t *b = synth_bytes(micro_spec(8), &size);
    assert_int_equal(load_buf(b, size, msg, sizeof msg), 0);
    find_tensor(b, size, "decoder.token_embedding.weight", &off, &len);
    assert_int_equal(load_buf(b, off + len - 5, msg, sizeof msg), DI_EFORMAT);
    assert_non_null(strstr(msg, "decoder.token_embedding.weight"));
    /* Unsupported types, named in the message. */
    size_t h = find_tensor(b, size, "decoder.blocks.0.mlp.0.weight", &off, &len);
    memcpy(b + h + 8, &(int32_t){3}, 4); /* q4_1 */
    assert_int_equal(load_buf(b, size, msg, sizeof msg), DI_EUNSUPPORTED);
    assert_non_null(strstr(msg, "q4_1"));
    memcpy(b + h + 8, &(int32_t){12}, 4); /* q4_k */
    assert_int_equal(load_buf(b, size, msg, sizeof msg), DI_EUNSUPPORTED);
    assert_non_null(strstr(msg, "q4_k"));
    memcpy(b + h + 8, &(int32_t){6}, 4);
    memcpy(b + 4 + 10 * 4, &(int32_t){2003}, 4); /* file type q4_1 */
    assert_int_equal(load_buf(b, size, msg, sizeof msg), DI_EUNSUPPORTED);
    assert_non_null(strstr(msg, "q4_1"));
    free(b);

    /* Quantized where only f32 or f16 may be: a bias, a 3-D conv weight. */
    b = synth_bytes(micro_spec(1), &size);
    h = find_tensor(b, size, "encoder.blocks.0.mlp.0.bias", &off, &len);
    memcpy(b + h + 8, &(int32_t){8}, 4);
    assert_int_equal(load_buf(b, size, msg, sizeof msg), DI_EFORMAT);
    assert_non_null(strstr(msg, "must be f32"));
    memcpy(b + h + 8, &(int32_t){0}, 4);
    h = find_tensor(b, size, "encoder.conv2.weight", &off, &len);
    memcpy(b + h + 8, &(int32_t){8}, 4);
    assert_int_equal(load_buf(b, size, msg, sizeof msg), DI_EFORMAT);
    assert_non_null(strstr(msg, "2-D"));
    free(b);

    /* Rows that are not whole blocks: width 48. */
    WhisperSynthSpec spec = micro_spec(1);
    spec.hp.n_audio_state = spec.hp.n_text_state = 48;
    b = synth_bytes(spec, &size);
    h = find_tensor(b, size, "decoder.token_embedding.weight", &off, &len);
    memcpy(b + h + 8, &(int32_t){8}, 4);
    assert_int_equal(load_buf(b, size, msg, sizeof msg), DI_EFORMAT);
    assert_non_null(strstr(msg, "blocks of 32"));
    free(b);
    /* ...which the generator will not write either. */
    spec.hp.ftype = 8;
    assert_int_equal(whisper_synth_write(tu_tmp("w48.bin"), &spec, msg, sizeof msg), DI_EINVAL);
}

/* ---- Accuracy against the f16 model -------------------------------------- */

static double cosine(const float *a, const float *b, size_t n, double *max_diff, double *rms) {
    double ab = 0, aa = 0, bb = 0, md = 0;
    for (size_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
        double d = fabs((double)a[i] - b[i]);
        md = d > md ? d : md;
    }
    *max_diff = md;
    *rms = sqrt(aa / (double)n);
    return ab / sqrt(aa * bb);
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Tolerances per type: cosine floors, max |diff| as a multiple of the f16
 * logits' rms, and the share of teacher-forced steps whose argmax agrees.
 * Measured on micro, seed 7 (encoder cos; logits worst cos, max|diff|/rms,
 * agreement): q8_0 1.000000; 0.99992, 0.058, 16/17. q5_1 0.99998; 0.9963,
 * 0.41, 12/17. q5_0 0.99997; 0.9954, 0.46, 13/17. q4_0 0.99988; 0.9725,
 * 1.04, 9/17. The random model's logits are nearly flat at the top, so the
 * argmax of a step flips on small changes; the floors leave margin for
 * another BLAS or CPU while still failing on a misplaced bit or scale,
 * which drops cosines far lower. */
typedef struct {
    double enc_cos, logit_cos, logit_rel, agree;
} Tol;
static const Tol TOL[] = {
    {0.99999, 0.9998, 0.12, 0.85}, /* q8_0 */
    {0.9999, 0.99, 0.8, 0.55},     /* q5_1 */
    {0.9999, 0.99, 0.8, 0.55},     /* q5_0 */
    {0.9995, 0.94, 2.0, 0.35},     /* q4_0 */
};

enum { N_TF = 17 };

/* Encoder output and teacher-forced logits of one model. */
static void run_model(WhisperModel *m, const float *mel, const int32_t *tok, float *enc,
                      float *logits) {
    char msg[512];
    WhisperState *st;
    assert_int_equal(whisper_state_create(m, 2, &st, msg, sizeof msg), 0);
    assert_int_equal(whisper_encode(st, mel, 3000, 0, msg, sizeof msg), 0);
    memcpy(enc, whisper_encoder_output(st), sizeof(float) * 1500 * 128);
    for (int i = 0; i < N_TF; i++) {
        const float *l;
        assert_int_equal(whisper_decode(st, &tok[i], 1, i, &l, msg, sizeof msg), 0);
        memcpy(logits + (size_t)i * N_VOCAB, l, sizeof(float) * N_VOCAB);
    }
    whisper_state_free(st);
}

static void close_to_f16(void **state) {
    (void)state;
    size_t n;
    float *mel = tu_read(tu_shared("golden/jfk_mel_80x3000.f32"), &n);
    int32_t *tok = tu_read(tu_shared("golden/micro_tf_tokens_17.i32"), &n);
    assert_non_null(mel);
    assert_non_null(tok);
    float *enc_ref = malloc(sizeof(float) * 1500 * 128), *enc = malloc(sizeof(float) * 1500 * 128);
    float *ref = malloc(sizeof(float) * N_TF * N_VOCAB), *got = malloc(sizeof(float) * N_TF * N_VOCAB);
    WhisperModel *m = micro_model(1, "f16.bin");
    run_model(m, mel, tok, enc_ref, ref);
    whisper_model_free(m);
    for (size_t t = 0; t < 4; t++) {
        m = micro_model(FTYPES[t], "q.bin");
        run_model(m, mel, tok, enc, got);
        whisper_model_free(m);
        double md, rms, ec = cosine(enc_ref, enc, 1500 * 128, &md, &rms);
        double enc_rel = md / rms, worst_cos = 1, worst_rel = 0;
        int agree = 0;
        for (int i = 0; i < N_TF; i++) {
            const float *a = ref + (size_t)i * N_VOCAB, *b = got + (size_t)i * N_VOCAB;
            double c = cosine(a, b, N_VOCAB, &md, &rms);
            worst_cos = c < worst_cos ? c : worst_cos;
            worst_rel = md / rms > worst_rel ? md / rms : worst_rel;
            agree += argmax(a, N_VOCAB) == argmax(b, N_VOCAB);
        }
        printf("# %s vs f16: encoder cos %.6f max|diff|/rms %.4f; logits worst cos %.6f "
               "max|diff|/rms %.4f; argmax agrees %d/%d\n",
               TYPE_NAMES[t], ec, enc_rel, worst_cos, worst_rel, agree, N_TF);
        assert_true(ec >= TOL[t].enc_cos);
        assert_true(worst_cos >= TOL[t].logit_cos);
        assert_true(worst_rel <= TOL[t].logit_rel);
        assert_true(agree >= TOL[t].agree * N_TF);
    }
    free(enc_ref);
    free(enc);
    free(ref);
    free(got);
    free(mel);
    free(tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(row_bytes),
        cmocka_unit_test(q8_0_bits),
        cmocka_unit_test(q4_0_bits),
        cmocka_unit_test(q5_0_bits),
        cmocka_unit_test(q5_1_bits),
        cmocka_unit_test(round_trip),
        cmocka_unit_test(quantized_models_load),
        cmocka_unit_test(gen_model_quantize_option),
        cmocka_unit_test(malformed_quantized_refused),
        cmocka_unit_test(close_to_f16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
