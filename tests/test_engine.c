/* The engine agrees with itself: synthetic tiny- and base-sized models run
 * through every decoding mode without NaN, thread count does not change the
 * tokens, and silence is skipped into an empty transcript. */
#include "audio/audio.h"
#include "testutil.h"
#include "whisper/whisper_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static AudioPcm jfk;

static int setup(void **state) {
    (void)state;
    char msg[512];
    return audio_decode_file(tu_shared("samples/jfk.wav"), &jfk, msg, sizeof msg) ? -1 : 0;
}

static int teardown(void **state) {
    (void)state;
    audio_pcm_free(&jfk);
    return 0;
}

/* Runs one transcription and checks the result is well-formed. */
static void run_mode(WhisperModel *m, int threads, const WhisperParams *p, const float *pcm,
                     size_t n, WhisperResult *r) {
    char msg[512];
    WhisperState *st;
    assert_int_equal(whisper_state_create(m, threads, &st, msg, sizeof msg), 0);
    memset(r, 0, sizeof *r);
    int rc = whisper_transcribe(st, pcm, n, p, r, msg, sizeof msg);
    if (rc) fprintf(stderr, "transcribe: %s\n", msg);
    assert_int_equal(rc, 0);
    assert_non_null(r->text);
    const WhisperSpecials *sp = whisper_specials(m);
    for (int s = 0; s < r->n_segments; s++) {
        const WhisperSegment *g = &r->segments[s];
        assert_false(isnan(g->avg_logprob) || isnan(g->no_speech_prob) ||
                     isnan(g->compression_ratio));
        assert_true(g->avg_logprob <= 0);
        assert_true(g->no_speech_prob >= 0 && g->no_speech_prob <= 1);
        assert_true(g->start >= 0 && g->end >= g->start);
        assert_true(g->end <= r->duration + 30.0);
        for (int t = 0; t < g->n_tokens; t++)
            assert_true(g->tokens[t] >= 0 && g->tokens[t] < whisper_model_hparams(m)->n_vocab &&
                        g->tokens[t] != sp->eot);
    }
    whisper_state_free(st);
}

static int same_tokens(const WhisperResult *a, const WhisperResult *b) {
    if (a->n_segments != b->n_segments) return 0;
    for (int s = 0; s < a->n_segments; s++) {
        if (a->segments[s].n_tokens != b->segments[s].n_tokens) return 0;
        if (memcmp(a->segments[s].tokens, b->segments[s].tokens,
                   sizeof(int) * (size_t)a->segments[s].n_tokens))
            return 0;
    }
    return 1;
}

static void tiny_every_mode(void **state) {
    (void)state;
    /* The sanitizer build runs these on the micro model: the same head
     * width (64) and vocabulary, so the same kernel paths, at a fraction of
     * tiny's cost under ASan's checks of every vector load. */
    int light = getenv("DIARIST_TEST_LIGHT") != NULL;
    WhisperModel *m = tu_synth_model(light ? "micro" : "tiny", 7, "tiny.bin");
    WhisperResult r, r2;

    WhisperParams p = whisper_default_params(); /* greedy, timestamps, fallback */
    run_mode(m, 2, &p, jfk.samples, jfk.n_samples, &r);
    assert_true(r.n_segments >= 1);
    /* Random weights repeat themselves: every temperature is tried. */
    assert_float_equal(r.segments[0].temperature, 1.0, 1e-6);
    whisper_result_free(&r);

    p = whisper_default_params();
    p.beam_size = 5;
    p.best_of = 5;
    p.temperature_increment = 0;
    run_mode(m, 2, &p, jfk.samples, jfk.n_samples, &r);
    assert_true(r.n_segments >= 1);
    whisper_result_free(&r);

    p = whisper_default_params();
    p.beam_size = 5;
    p.patience = 2.0f;
    p.without_timestamps = 1;
    p.initial_prompt = "Kennedy, inauguration, 1961.";
    p.temperature_increment = 0;
    run_mode(m, 1, &p, jfk.samples, jfk.n_samples, &r);
    whisper_result_free(&r);

    p = whisper_default_params();
    p.temperature = 0.6f;
    p.best_of = 3;
    p.temperature_increment = 0;
    p.seed = 42;
    run_mode(m, 2, &p, jfk.samples, jfk.n_samples, &r);
    run_mode(m, 2, &p, jfk.samples, jfk.n_samples, &r2);
    assert_true(same_tokens(&r, &r2)); /* sampling is seeded */
    whisper_result_free(&r);
    whisper_result_free(&r2);

    /* One and two threads agree token for token. */
    p = whisper_default_params();
    p.temperature_increment = 0;
    run_mode(m, 1, &p, jfk.samples, jfk.n_samples, &r);
    run_mode(m, 2, &p, jfk.samples, jfk.n_samples, &r2);
    assert_true(same_tokens(&r, &r2));
    whisper_result_free(&r);
    whisper_result_free(&r2);

    /* Long-form: 75 s of audio seeks through several windows. */
    size_t n = 75 * 16000;
    float *longpcm = calloc(n, sizeof(float));
    for (size_t i = 0; i < n; i++)
        longpcm[i] = jfk.samples[i % jfk.n_samples];
    p.sample_len = 24;
    run_mode(m, 2, &p, longpcm, n, &r);
    assert_true(r.n_segments >= 3);
    for (int s = 1; s < r.n_segments; s++)
        assert_true(r.segments[s].seek >= r.segments[s - 1].seek);
    assert_true(r.segments[r.n_segments - 1].seek > 0);
    whisper_result_free(&r);
    free(longpcm);

    /* Nothing to hear: empty result, not an error. */
    run_mode(m, 2, &p, jfk.samples, 0, &r);
    assert_int_equal(r.n_segments, 0);
    assert_string_equal(r.text, "");
    whisper_result_free(&r);
    whisper_model_free(m);
}

static void base_modes_and_threads(void **state) {
    (void)state;
    /* The sanitizer build runs the same code paths on micro only: base
     * adds size, not paths, and would cost most of that build's time. */
    if (getenv("DIARIST_TEST_LIGHT")) {
        fprintf(stderr, "base-sized model skipped (DIARIST_TEST_LIGHT)\n");
        skip();
    }
    WhisperModel *m = tu_synth_model("base", 7, "base.bin");
    assert_string_equal(whisper_model_type(m), "base.en");
    WhisperResult r, r2;
    WhisperParams p = whisper_default_params();
    p.temperature_increment = 0;
    p.sample_len = 48;
    run_mode(m, 1, &p, jfk.samples, jfk.n_samples, &r);
    run_mode(m, 2, &p, jfk.samples, jfk.n_samples, &r2);
    assert_true(same_tokens(&r, &r2));
    whisper_result_free(&r);
    whisper_result_free(&r2);
    p.beam_size = 5;
    run_mode(m, 2, &p, jfk.samples, jfk.n_samples, &r);
    assert_true(r.n_segments >= 1);
    whisper_result_free(&r);
    p.beam_size = 0;
    p.temperature = 0.4f;
    p.best_of = 5;
    run_mode(m, 2, &p, jfk.samples, jfk.n_samples, &r);
    whisper_result_free(&r);
    whisper_model_free(m);
}

/* A model rigged so the decoder always sees the same vector and the
 * no-speech token dominates: every window must be skipped as silence
 * (no-speech probability > 0.6 and average log-probability < -1). */
static void no_speech_window_is_skipped(void **state) {
    (void)state;
    WhisperModel *m = tu_synth_model("micro", 7, "micro.bin");
    const WhisperHparams *hp = whisper_model_hparams(m);
    int S = hp->n_text_state;
    float *g = (float *)m->w.dec_ln_w.data, *b = (float *)m->w.dec_ln_b.data;
    for (int i = 0; i < S; i++)
        g[i] = 0, b[i] = i == 0 ? 1.0f : 0.0f;
    uint16_t *emb = (uint16_t *)m->w.tok_emb.data;
    int nosp = whisper_specials(m)->nosp;
    emb[(size_t)nosp * S] = di_f32_to_f16(30.0f);

    WhisperParams p = whisper_default_params();
    WhisperResult r;
    run_mode(m, 2, &p, jfk.samples, jfk.n_samples, &r);
    assert_int_equal(r.n_segments, 0);
    assert_string_equal(r.text, "");
    assert_float_equal(r.duration, 11.0, 1e-9);
    whisper_result_free(&r);

    /* With the threshold above 1 nothing counts as silence. */
    p.no_speech_threshold = 1.0f;
    p.temperature_increment = 0;
    p.sample_len = 8;
    run_mode(m, 2, &p, jfk.samples, jfk.n_samples, &r);
    assert_true(r.n_segments >= 1);
    assert_true(r.segments[0].no_speech_prob > 0.99f);
    whisper_result_free(&r);
    whisper_model_free(m);
}

/* Multilingual layouts: language detection, forced languages and
 * translation on an 80-mel 51865-token model and a large-v3-style
 * 128-mel 51866-token one (generated mel filters and byte vocabulary). */
static void multilingual_layouts(void **state) {
    (void)state;
    char msg[512];
    for (int v3 = 0; v3 <= 1; v3++) {
        WhisperSynthSpec spec = {.seed = 3};
        assert_int_equal(whisper_synth_preset("micro", &spec.hp), 0);
        spec.hp.n_vocab = v3 ? 51866 : 51865;
        spec.hp.n_mels = v3 ? 128 : 80;
        if (!v3) spec.vocab_from = tu_shared("golden/ggml-micro-synthetic.en.bin");
        const char *path = tu_tmp("multi.bin");
        assert_int_equal(whisper_synth_write(path, &spec, msg, sizeof msg), 0);
        WhisperModel *m;
        assert_int_equal(whisper_model_load(path, &m, msg, sizeof msg), 0);
        assert_true(whisper_model_is_multilingual(m));
        assert_int_equal(whisper_specials(m)->n_languages, v3 ? 100 : 99);

        WhisperParams p = whisper_default_params();
        p.temperature_increment = 0;
        p.sample_len = 16;
        WhisperResult r;
        run_mode(m, 2, &p, jfk.samples, jfk.n_samples, &r); /* auto-detect */
        int lang = whisper_lang_id(r.language);
        assert_true(lang >= 0 && lang < whisper_specials(m)->n_languages);
        whisper_result_free(&r);

        p.language = "de";
        p.translate = 1;
        run_mode(m, 1, &p, jfk.samples, jfk.n_samples, &r);
        assert_string_equal(r.language, "de");
        whisper_result_free(&r);
        whisper_model_free(m);
        remove(path);
    }
}

static void bad_params_are_refused(void **state) {
    (void)state;
    WhisperModel *m = tu_synth_model("micro", 7, "micro2.bin");
    char msg[512];
    WhisperState *st;
    assert_int_equal(whisper_state_create(m, 1, &st, msg, sizeof msg), 0);
    WhisperResult r = {0};
    WhisperParams p = whisper_default_params();
    p.beam_size = -1;
    assert_int_equal(whisper_transcribe(st, jfk.samples, jfk.n_samples, &p, &r, msg, sizeof msg),
                     DI_EINVAL);
    p = whisper_default_params();
    p.language = "de"; /* English-only model */
    assert_int_equal(whisper_transcribe(st, jfk.samples, jfk.n_samples, &p, &r, msg, sizeof msg),
                     DI_EINVAL);
    assert_non_null(strstr(msg, "de"));
    p = whisper_default_params();
    p.translate = 1;
    assert_int_equal(whisper_transcribe(st, jfk.samples, jfk.n_samples, &p, &r, msg, sizeof msg),
                     DI_EINVAL);
    whisper_state_free(st);
    assert_int_equal(whisper_state_create(m, 0, &st, msg, sizeof msg), DI_EINVAL);
    whisper_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tiny_every_mode),
        cmocka_unit_test(base_modes_and_threads),
        cmocka_unit_test(no_speech_window_is_skipped),
        cmocka_unit_test(multilingual_layouts),
        cmocka_unit_test(bad_params_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
