/* The engine against whisper.cpp's own outputs on the synthetic micro model
 * (../shared/golden, read in place). Tolerances are the golden README's. */
#include "audio/audio.h"
#include "testutil.h"
#include "whisper/whisper.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_VOCAB 51864

static WhisperModel *model;

static int setup(void **state) {
    (void)state;
    char msg[512];
    if (whisper_model_load(tu_shared("golden/ggml-micro-synthetic.en.bin"), &model, msg,
                           sizeof msg)) {
        fprintf(stderr, "%s\n", msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    whisper_model_free(model);
    return 0;
}

static float *read_f32(const char *rel, size_t expect) {
    size_t n;
    float *v = tu_read(tu_shared(rel), &n);
    assert_non_null(v);
    assert_int_equal(n, expect * sizeof(float));
    return v;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d; /* NaN counts as the largest difference */
    }
    return m;
}

static size_t argmax(const float *v, size_t n) {
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

/* jfk.wav through FFmpeg and our log-mel: within 1e-4 of OpenAI's definition. */
static void mel_matches_openai(void **state) {
    (void)state;
    char msg[512];
    AudioPcm pcm = {0};
    assert_int_equal(audio_decode_file(tu_shared("samples/jfk.wav"), &pcm, msg, sizeof msg), 0);
    assert_int_equal(pcm.n_samples, 176000);
    float *mel = NULL;
    int n_frames = 0;
    assert_int_equal(whisper_log_mel(model, pcm.samples, pcm.n_samples,
                                     WHISPER_N_SAMPLES - pcm.n_samples, 2, &mel, &n_frames, msg,
                                     sizeof msg),
                     0);
    assert_int_equal(n_frames, 3000);
    float *ref = read_f32("golden/jfk_mel_80x3000.f32", 80 * 3000);
    double d = max_abs_diff(mel, ref, 80 * 3000);
    printf("# mel max |diff| = %.3g\n", d);
    assert_true(d < 1e-4);
    free(ref);
    free(mel);
    audio_pcm_free(&pcm);
}

static void encoder_matches_whisper_cpp(void **state) {
    (void)state;
    char msg[512];
    float *mel = read_f32("golden/jfk_mel_80x3000.f32", 80 * 3000);
    float *ref = read_f32("golden/micro_encoder_out_1500x128.f32", 1500 * 128);
    for (int threads = 1; threads <= 2; threads++) {
        WhisperState *st;
        assert_int_equal(whisper_state_create(model, threads, &st, msg, sizeof msg), 0);
        assert_int_equal(whisper_encode(st, mel, 3000, 0, msg, sizeof msg), 0);
        double d = max_abs_diff(whisper_encoder_output(st), ref, 1500 * 128);
        printf("# encoder (%d threads) max |diff| = %.3g\n", threads, d);
        assert_true(d < 5e-3);
        whisper_state_free(st);
    }
    free(ref);
    free(mel);
}

/* Teacher-forced logits one token at a time, and the same prefix as one
 * batch: within 2e-3 of whisper.cpp with the same argmax everywhere. */
static void logits_match_whisper_cpp(void **state) {
    (void)state;
    char msg[512];
    size_t n;
    int32_t *tok = tu_read(tu_shared("golden/micro_tf_tokens_17.i32"), &n);
    assert_int_equal(n, 17 * 4);
    float *ref = read_f32("golden/micro_tf_logits_17x51864.f32", 17 * N_VOCAB);
    float *mel = read_f32("golden/jfk_mel_80x3000.f32", 80 * 3000);
    WhisperState *st;
    assert_int_equal(whisper_state_create(model, 2, &st, msg, sizeof msg), 0);
    assert_int_equal(whisper_encode(st, mel, 3000, 0, msg, sizeof msg), 0);
    double worst = 0;
    for (int i = 0; i < 17; i++) {
        const float *logits;
        assert_int_equal(whisper_decode(st, &tok[i], 1, i, &logits, msg, sizeof msg), 0);
        double d = max_abs_diff(logits, ref + (size_t)i * N_VOCAB, N_VOCAB);
        worst = d > worst ? d : worst;
        assert_int_equal(argmax(logits, N_VOCAB), argmax(ref + (size_t)i * N_VOCAB, N_VOCAB));
    }
    printf("# teacher-forced logits max |diff| = %.3g\n", worst);
    assert_true(worst < 2e-3);
    for (int k = 1; k <= 17; k += 8) {
        const float *logits;
        assert_int_equal(whisper_decode(st, (const int *)tok, k, 0, &logits, msg, sizeof msg), 0);
        assert_true(max_abs_diff(logits, ref + (size_t)(k - 1) * N_VOCAB, N_VOCAB) < 2e-3);
    }
    /* Positions past the context are refused, not read out of bounds. */
    const float *logits;
    assert_int_equal(whisper_decode(st, (const int *)tok, 1, 448, &logits, msg, sizeof msg),
                     DI_ERANGE);
    int bad = N_VOCAB;
    assert_int_equal(whisper_decode(st, &bad, 1, 0, &logits, msg, sizeof msg), DI_EINVAL);
    whisper_state_free(st);
    free(mel);
    free(ref);
    free(tok);
}

/* The token ids of micro_greedy.json (whisper-cli -bs 1 -bo 1 -nf). */
static int *golden_greedy_tokens(int *n) {
    json_error_t err;
    json_t *root = json_load_file(tu_shared("golden/micro_greedy.json"), 0, &err);
    assert_non_null(root);
    json_t *segs = json_object_get(root, "transcription");
    assert_true(json_is_array(segs));
    int *ids = malloc(sizeof(int) * 4096), count = 0;
    size_t i, j;
    json_t *seg, *tok;
    json_array_foreach(segs, i, seg) {
        json_array_foreach(json_object_get(seg, "tokens"), j, tok) {
            int id = (int)json_integer_value(json_object_get(tok, "id"));
            if (id < 50257 && count < 4096) ids[count++] = id; /* text tokens only */
        }
    }
    json_decref(root);
    *n = count;
    return ids;
}

static void greedy_matches_whisper_cpp(void **state) {
    (void)state;
    char msg[512];
    int n_ref;
    int *ref = golden_greedy_tokens(&n_ref);
    assert_int_equal(n_ref, 220);
    AudioPcm pcm = {0};
    assert_int_equal(audio_decode_file(tu_shared("samples/jfk.wav"), &pcm, msg, sizeof msg), 0);
    WhisperParams p = whisper_default_params();
    p.temperature_increment = 0; /* -nf */
    p.without_timestamps = 1;    /* whisper.cpp forces this for the micro model */
    for (int threads = 1; threads <= 2; threads++) {
        WhisperState *st;
        assert_int_equal(whisper_state_create(model, threads, &st, msg, sizeof msg), 0);
        WhisperResult r = {0};
        assert_int_equal(
            whisper_transcribe(st, pcm.samples, pcm.n_samples, &p, &r, msg, sizeof msg), 0);
        assert_string_equal(r.language, "en");
        assert_int_equal(r.n_segments, 1);
        /* whisper.cpp stops a window at 220 tokens, OpenAI Whisper at 224. */
        assert_true(r.segments[0].n_tokens >= 220);
        for (int i = 0; i < 220; i++)
            assert_int_equal(r.segments[0].tokens[i], ref[i]);
        assert_float_equal(r.segments[0].temperature, 0.0, 1e-9);
        assert_true(r.segments[0].compression_ratio > 2.4f); /* "NJNJNJ..." */
        assert_non_null(strstr(r.text, "NJNJNJ"));
        whisper_result_free(&r);
        whisper_state_free(st);
    }
    audio_pcm_free(&pcm);
    free(ref);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mel_matches_openai),
        cmocka_unit_test(encoder_matches_whisper_cpp),
        cmocka_unit_test(logits_match_whisper_cpp),
        cmocka_unit_test(greedy_matches_whisper_cpp),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
