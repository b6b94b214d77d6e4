/* Tests of the log-mel spectrogram (src/whisper/mel.c): against the golden
 * mel of jfk.wav, thread-count invariance, the FFT against a naive DFT,
 * silence, and signals too short for plain reflection. */
#include "testutil.h"

#include "whisper/whisper_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_BINS 201

static uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t rd_u16(const uint8_t *p) {
    return (uint16_t)(p[0] | p[1] << 8);
}

/* The mel filters [n_mels][201] from a ggml model file's header. */
static float *load_filters(int *n_mels) {
    size_t size = 0;
    uint8_t *d = tu_read(tu_shared("golden/ggml-micro-synthetic.en.bin"), &size);
    assert_non_null(d);
    assert_true(size > 4 + 44 + 8);
    assert_int_equal(rd_u32(d), 0x67676d6c);
    size_t o = 4 + 44;
    int nm = (int)rd_u32(d + o), nf = (int)rd_u32(d + o + 4);
    o += 8;
    assert_int_equal(nf, N_BINS);
    assert_true(nm > 0 && nm <= 128);
    assert_true(o + (size_t)nm * nf * 4 <= size);
    float *f = malloc((size_t)nm * nf * sizeof *f);
    assert_non_null(f);
    memcpy(f, d + o, (size_t)nm * nf * sizeof *f);
    free(d);
    *n_mels = nm;
    return f;
}

/* 16-bit mono PCM from a RIFF/WAVE file, walking the chunks to find "fmt "
 * and "data" (the data need not start at byte 44). */
static float *load_wav(const char *path, size_t *n) {
    size_t size = 0;
    uint8_t *d = tu_read(path, &size);
    assert_non_null(d);
    assert_true(size >= 12 && !memcmp(d, "RIFF", 4) && !memcmp(d + 8, "WAVE", 4));
    size_t o = 12;
    int have_fmt = 0;
    float *pcm = NULL;
    while (o + 8 <= size) {
        uint32_t len = rd_u32(d + o + 4);
        const uint8_t *body = d + o + 8;
        assert_true(len <= size - o - 8);
        if (!memcmp(d + o, "fmt ", 4)) {
            assert_true(len >= 16);
            assert_int_equal(rd_u16(body), 1);     /* PCM */
            assert_int_equal(rd_u16(body + 2), 1); /* mono */
            assert_int_equal(rd_u32(body + 4), 16000);
            assert_int_equal(rd_u16(body + 14), 16);
            have_fmt = 1;
        } else if (!memcmp(d + o, "data", 4)) {
            assert_true(have_fmt);
            *n = len / 2;
            pcm = malloc((*n ? *n : 1) * sizeof *pcm);
            assert_non_null(pcm);
            for (size_t i = 0; i < *n; i++)
                pcm[i] = (int16_t)rd_u16(body + 2 * i) / 32768.0f;
            break;
        }
        o += 8 + len + (len & 1);
    }
    free(d);
    assert_non_null(pcm);
    return pcm;
}

static uint64_t rng_state = 88172645463325252ull;
static double rnd(void) { /* xorshift64, uniform in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / (double)(1ull << 52) - 1.0;
}

static void test_jfk_matches_golden(void **state) {
    (void)state;
    int n_mels = 0;
    float *filters = load_filters(&n_mels);
    assert_int_equal(n_mels, 80);
    size_t n = 0;
    float *pcm = load_wav(tu_shared("samples/jfk.wav"), &n);
    assert_int_equal(n, 176000);
    size_t gsize = 0;
    float *golden = tu_read(tu_shared("golden/jfk_mel_80x3000.f32"), &gsize);
    assert_non_null(golden);
    assert_int_equal(gsize, 80 * 3000 * sizeof(float));

    /* Through the public wrapper, with a model that has only what it needs. */
    WhisperModel model;
    memset(&model, 0, sizeof model);
    model.hp.n_mels = n_mels;
    model.mel_filters = filters;
    float *mel = NULL;
    int n_frames = 0;
    char msg[256] = "";
    int err =
        whisper_log_mel(&model, pcm, n, WHISPER_N_SAMPLES - n, 1, &mel, &n_frames, msg, sizeof msg);
    assert_int_equal(err, 0);
    assert_int_equal(n_frames, 3000);
    double max_diff = 0.0;
    for (size_t i = 0; i < 80 * 3000; i++) {
        double d = fabs((double)mel[i] - (double)golden[i]);
        if (d > max_diff) max_diff = d;
    }
    printf("jfk mel vs golden: max |diff| = %.3g\n", max_diff);
    assert_true(max_diff < 1e-4);
    free(mel);
    free(golden);
    free(pcm);
    free(filters);
}

static void test_threads_bitwise_identical(void **state) {
    (void)state;
    int n_mels = 0;
    float *filters = load_filters(&n_mels);
    /* 70 s of noise with a loud burst: many work items of uneven content. */
    size_t n = 70 * 16000;
    float *pcm = malloc(n * sizeof *pcm);
    assert_non_null(pcm);
    for (size_t i = 0; i < n; i++)
        pcm[i] = (float)(rnd() * (i > 300000 && i < 400000 ? 0.9 : 0.01));
    float *a = NULL, *b = NULL, *c = NULL;
    int na = 0, nb = 0, nc = 0;
    assert_int_equal(log_mel(filters, n_mels, pcm, n, 12345, 1, &a, &na), 0);
    assert_int_equal(log_mel(filters, n_mels, pcm, n, 12345, 2, &b, &nb), 0);
    assert_int_equal(log_mel(filters, n_mels, pcm, n, 12345, 5, &c, &nc), 0);
    assert_int_equal(na, (int)((n + 12345) / 160));
    assert_int_equal(na, nb);
    assert_int_equal(na, nc);
    assert_memory_equal(a, b, (size_t)na * n_mels * sizeof *a);
    assert_memory_equal(a, c, (size_t)na * n_mels * sizeof *a);
    free(a);
    free(b);
    free(c);
    free(pcm);
    free(filters);
}

/* The FFT against the defining sum, in long double, for sizes made of
 * every supported radix. */
static void test_fft_vs_naive_dft(void **state) {
    (void)state;
    const int sizes[] = {1, 2, 3, 4, 5, 7, 8, 12, 16, 25, 31, 60, 64, 100, 210, 400, 1024, 29 * 4};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        int n = sizes[s];
        FftPlan *p = NULL;
        assert_int_equal(fft_plan_create(n, &p), 0);
        double *in = malloc(2 * (size_t)n * sizeof *in);
        double *out = malloc(2 * (size_t)n * sizeof *out);
        assert_non_null(in);
        assert_non_null(out);
        for (int i = 0; i < 2 * n; i++)
            in[i] = rnd();
        fft_run(p, in, out);
        double max_err = 0.0;
        for (int k = 0; k < n; k++) {
            long double re = 0, im = 0;
            for (int t = 0; t < n; t++) {
                long double a = -2.0L * 3.14159265358979323846264338327950288L *
                                (long double)((long long)k * t % n) / n;
                re += in[2 * t] * cosl(a) - in[2 * t + 1] * sinl(a);
                im += in[2 * t] * sinl(a) + in[2 * t + 1] * cosl(a);
            }
            double e = fabs((double)(re - out[2 * k])) + fabs((double)(im - out[2 * k + 1]));
            if (e > max_err) max_err = e;
        }
        assert_true(max_err < 1e-12 * n + 1e-13);
        free(in);
        free(out);
        fft_plan_free(p);
    }
    /* A prime above the largest radix is refused, not computed slowly. */
    FftPlan *p = NULL;
    assert_int_equal(fft_plan_create(37, &p), DI_EUNSUPPORTED);
    assert_null(p);
    assert_int_equal(fft_plan_create(0, &p), DI_EINVAL);
    fft_plan_free(NULL);
}

/* Silence: every band's power is 0, so every value is log10(1e-10) = -10,
 * which is also the maximum, so the clamp at max - 8 does nothing and the
 * result is (-10 + 4) / 4 = -1.5 everywhere. */
static void test_silence(void **state) {
    (void)state;
    int n_mels = 0;
    float *filters = load_filters(&n_mels);
    float *zeros = calloc(16000, sizeof *zeros);
    assert_non_null(zeros);
    float *mel = NULL;
    int n_frames = 0;
    assert_int_equal(log_mel(filters, n_mels, zeros, 16000, 480000 - 16000, 3, &mel, &n_frames), 0);
    assert_int_equal(n_frames, 3000);
    const float expect = (float)((log10(1e-10) + 4.0) / 4.0);
    assert_true(expect == -1.5f);
    for (size_t i = 0; i < (size_t)n_frames * n_mels; i++)
        assert_true(mel[i] == expect);
    free(mel);
    /* No samples at all, only padding, is the same silence. */
    assert_int_equal(log_mel(filters, n_mels, NULL, 0, 480000, 1, &mel, &n_frames), 0);
    assert_int_equal(n_frames, 3000);
    for (size_t i = 0; i < (size_t)n_frames * n_mels; i++)
        assert_true(mel[i] == expect);
    free(mel);
    free(zeros);
    free(filters);
}

/* numpy.pad(x, 200, mode="reflect"), done the way numpy does it: reflect
 * what is already there, again and again, until the padding is filled. */
static double *reflect_pad(const double *x, int n, int pad) {
    int total = n + 2 * pad;
    double *y = calloc((size_t)total, sizeof *y);
    assert_non_null(y);
    memcpy(y + pad, x, (size_t)n * sizeof *y);
    int lo = pad, hi = pad + n; /* filled range [lo, hi) */
    while (lo > 0 || hi < total) {
        int width = hi - lo;
        if (width == 1) { /* a single sample reflects onto itself */
            while (lo > 0)
                y[--lo] = y[pad];
            while (hi < total)
                y[hi++] = y[pad];
            break;
        }
        int take = width - 1;
        int left = take < lo ? take : lo;
        for (int i = 1; i <= left; i++)
            y[lo - i] = y[lo + i];
        int right = take < total - hi ? take : total - hi;
        for (int i = 1; i <= right; i++)
            y[hi - 1 + i] = y[hi - 1 - i];
        lo -= left;
        hi += right;
    }
    return y;
}

/* A plain, slow log-mel of a short signal: explicit padding, naive DFT. */
static double *reference_mel(const float *filters, int n_mels, const float *x, int n, int pad,
                             int *n_frames) {
    int len = n + pad;
    double *sig = calloc((size_t)len, sizeof *sig);
    assert_non_null(sig);
    for (int i = 0; i < n; i++)
        sig[i] = x[i];
    double *y = reflect_pad(sig, len, 200);
    int nf = len / 160;
    double *out = malloc((size_t)nf * n_mels * sizeof *out);
    assert_non_null(out);
    double best = -1e300;
    for (int t = 0; t < nf; t++) {
        double power[N_BINS];
        for (int k = 0; k < N_BINS; k++) {
            double re = 0, im = 0;
            for (int i = 0; i < 400; i++) {
                double w = 0.5 - 0.5 * cos(2 * M_PI * i / 400);
                double a = -2 * M_PI * (double)(k * i % 400) / 400;
                re += w * y[t * 160 + i] * cos(a);
                im += w * y[t * 160 + i] * sin(a);
            }
            power[k] = re * re + im * im;
        }
        for (int m = 0; m < n_mels; m++) {
            double s = 0;
            for (int k = 0; k < N_BINS; k++)
                s += filters[m * N_BINS + k] * power[k];
            double v = log10(s > 1e-10 ? s : 1e-10);
            out[m * nf + t] = v;
            if (v > best) best = v;
        }
    }
    for (int i = 0; i < nf * n_mels; i++)
        out[i] = ((out[i] > best - 8 ? out[i] : best - 8) + 4) / 4;
    free(y);
    free(sig);
    *n_frames = nf;
    return out;
}

/* Signals shorter than the 200-sample reflection: no reads out of bounds
 * (run under ASan), and the numpy-style repeated reflection. */
static void test_short_signals(void **state) {
    (void)state;
    int n_mels = 0;
    float *filters = load_filters(&n_mels);
    float x[10];
    for (int i = 0; i < 10; i++)
        x[i] = (float)(0.5 * sin(i * 0.7) + 0.1 * i);
    float *mel = NULL;
    int n_frames = -1;

    /* Ten samples alone make no frame. */
    assert_int_equal(log_mel(filters, n_mels, x, 10, 0, 1, &mel, &n_frames), DI_ENOAUDIO);
    assert_null(mel);
    assert_int_equal(n_frames, 0);

    const int cases[][2] = {{10, 470}, {10, 150}, {1, 159}, {170, 0}, {300, 100}, {10, 2000}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int n = cases[c][0], pad = cases[c][1];
        float *sig = malloc((size_t)n * sizeof *sig); /* exact size, so ASan sees overreads */
        assert_non_null(sig);
        for (int i = 0; i < n; i++)
            sig[i] = x[i % 10] * (1.0f + 0.01f * (float)i);
        assert_int_equal(log_mel(filters, n_mels, sig, (size_t)n, (size_t)pad, 2, &mel, &n_frames),
                         0);
        int ref_frames = 0;
        double *ref = reference_mel(filters, n_mels, sig, n, pad, &ref_frames);
        assert_int_equal(n_frames, ref_frames);
        for (int i = 0; i < n_frames * n_mels; i++)
            assert_true(fabs(mel[i] - ref[i]) < 1e-5);
        free(ref);
        free(mel);
        free(sig);
    }
    free(filters);
}

static void test_bad_arguments(void **state) {
    (void)state;
    float f[N_BINS] = {0};
    float *mel = NULL;
    int n_frames = 0;
    float x[200] = {0};
    assert_int_equal(log_mel(NULL, 1, x, 200, 0, 1, &mel, &n_frames), DI_EINVAL);
    assert_int_equal(log_mel(f, 0, x, 200, 0, 1, &mel, &n_frames), DI_EINVAL);
    assert_int_equal(log_mel(f, 1, NULL, 200, 0, 1, &mel, &n_frames), DI_EINVAL);
    assert_int_equal(log_mel(f, 1, x, 200, 0, 1, NULL, &n_frames), DI_EINVAL);
    char msg[128] = "";
    assert_int_equal(whisper_log_mel(NULL, x, 200, 0, 1, &mel, &n_frames, msg, sizeof msg),
                     DI_EINVAL);
    assert_true(strlen(msg) > 0);
    WhisperModel model;
    memset(&model, 0, sizeof model);
    model.hp.n_mels = 1;
    model.mel_filters = f;
    assert_int_equal(whisper_log_mel(&model, x, 100, 0, 1, &mel, &n_frames, msg, sizeof msg),
                     DI_ENOAUDIO);
    assert_null(mel);
    assert_non_null(strstr(msg, "100 samples"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jfk_matches_golden), cmocka_unit_test(test_threads_bitwise_identical),
        cmocka_unit_test(test_fft_vs_naive_dft),   cmocka_unit_test(test_silence),
        cmocka_unit_test(test_short_signals),      cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
