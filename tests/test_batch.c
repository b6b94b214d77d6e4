/* Batched transcription (whisper.h, Batches): several audios decoded on one
 * state, in lockstep where they are greedy, give each one bit for bit the
 * transcript it gets alone; long audio cut at silences gives each piece
 * the transcript that piece gets alone, moved to its place in the file. */
#include "audio/audio.h"
#include "testutil.h"
#include "whisper/whisper_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RATE WHISPER_SAMPLE_RATE

static AudioPcm jfk;
static WhisperModel *micro, *tiny;

static int setup(void **state) {
    (void)state;
    char msg[512];
    if (audio_decode_file(tu_shared("samples/jfk.wav"), &jfk, msg, sizeof msg)) return -1;
    if (whisper_model_load(tu_shared("golden/ggml-micro-synthetic.en.bin"), &micro, msg,
                           sizeof msg))
        return -1;
    tiny = tu_synth_model("tiny", 11, "tiny.bin");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    audio_pcm_free(&jfk);
    whisper_model_free(micro);
    whisper_model_free(tiny);
    return 0;
}

/* Audio made of jfk.wav: `copies` copies from sample `from` on, each
 * followed by gap seconds of digital silence. */
static float *jfk_audio(int copies, size_t from, double gap, size_t *n) {
    size_t one = jfk.n_samples - from, g = (size_t)(gap * RATE);
    *n = (size_t)copies * (one + g);
    float *pcm = calloc(*n, sizeof *pcm);
    assert_non_null(pcm);
    for (int c = 0; c < copies; c++)
        memcpy(pcm + (size_t)c * (one + g), jfk.samples + from, one * sizeof *pcm);
    return pcm;
}

static void same_result(const WhisperResult *a, const WhisperResult *b, double offset,
                        int seek_offset) {
    assert_int_equal(a->n_segments, b->n_segments);
    for (int s = 0; s < a->n_segments; s++) {
        const WhisperSegment *x = &a->segments[s], *y = &b->segments[s];
        assert_string_equal(x->text, y->text);
        assert_int_equal(x->n_tokens, y->n_tokens);
        if (x->n_tokens) assert_memory_equal(x->tokens, y->tokens, sizeof(int) * x->n_tokens);
        assert_float_equal(x->start + offset, y->start, 1e-9);
        assert_float_equal(x->end + offset, y->end, 1e-9);
        assert_int_equal(x->seek + seek_offset, y->seek);
        /* Bit for bit: the same sums in the same order. */
        assert_true(x->avg_logprob == y->avg_logprob);
        assert_true(x->no_speech_prob == y->no_speech_prob);
        assert_true(x->temperature == y->temperature);
    }
}

typedef struct {
    int calls, err;
    char msg[512];
} Done;

static void on_done(void *ud, int err, const char *msg) {
    Done *d = ud;
    d->calls++;
    d->err = err;
    snprintf(d->msg, sizeof d->msg, "%s", msg);
}

/* Five audios of different lengths and settings through three lanes:
 * audios join as others leave, greedy windows share steps, beam search
 * and the temperature fallback run alone in between. */
static void batch_equals_alone(void **state) {
    (void)state;
    /* The sanitizer build runs the micro model only (the same code). */
    WhisperModel *models[2] = {micro, tiny};
    int n_models = getenv("DIARIST_TEST_LIGHT") ? 1 : 2;
    for (int mi = 0; mi < n_models; mi++) {
        WhisperModel *m = models[mi];
        char msg[512];
        enum { N = 6 };
        size_t n[N];
        float *pcm[N];
        WhisperParams p[N];
        pcm[0] = jfk_audio(1, 0, 0, &n[0]);
        pcm[1] = jfk_audio(6, 4000, 1.0, &n[1]); /* 63 s: three windows or more */
        pcm[2] = jfk_audio(2, 0, 3.0, &n[2]);
        pcm[3] = jfk_audio(1, 0, 0, &n[3]);
        n[3] = 100; /* under one mel frame: no window at all */
        pcm[4] = jfk_audio(3, 16000, 0.5, &n[4]);
        pcm[5] = jfk_audio(1, 8000, 0, &n[5]);
        for (int i = 0; i < N; i++) {
            p[i] = whisper_default_params();
            p[i].sample_len = 20;
        }
        p[0].temperature_increment = 0;
        p[1].temperature_increment = 0;
        p[2].beam_size = 3; /* beam search, then the fallback's sampling */
        p[4].initial_prompt = "Ask not.";
        p[4].temperature_increment = 0;
        p[5].seed = 5; /* greedy, then every fallback temperature */

        WhisperState *st;
        assert_int_equal(whisper_state_create(m, 2, &st, msg, sizeof msg), 0);
        WhisperResult alone[N], batched[N];
        for (int i = 0; i < N; i++)
            assert_int_equal(
                whisper_transcribe(st, pcm[i], n[i], &p[i], &alone[i], msg, sizeof msg), 0);
        whisper_state_free(st);

        /* A fresh state, so nothing carries over from the runs above. */
        assert_int_equal(whisper_state_create(m, 2, &st, msg, sizeof msg), 0);
        WhisperBatch *b;
        assert_int_equal(whisper_batch_create(st, 3, &b, msg, sizeof msg), 0);
        Done done[N];
        memset(done, 0, sizeof done);
        for (int i = 0; i < 4; i++)
            assert_int_equal(whisper_batch_add(b, pcm[i], n[i], &p[i], &batched[i], on_done,
                                               &done[i], msg, sizeof msg),
                             0);
        /* The audio with no window ended inside the add. */
        assert_int_equal(done[3].calls, 1);
        assert_int_equal(whisper_batch_pending(b), 3);
        assert_true(whisper_batch_step(b, msg, sizeof msg) >= 1);
        /* Two more join after the first step. */
        for (int i = 4; i < N; i++)
            assert_int_equal(whisper_batch_add(b, pcm[i], n[i], &p[i], &batched[i], on_done,
                                               &done[i], msg, sizeof msg),
                             0);
        int guard = 0;
        while (whisper_batch_step(b, msg, sizeof msg) > 0)
            assert_true(++guard < 100);
        WhisperBatchStats stats;
        whisper_batch_stats(b, &stats);
        whisper_batch_free(b);
        whisper_state_free(st);

        /* Some steps fed several sequences at once. */
        assert_true(stats.tokens > stats.steps);
        assert_true(stats.windows >= 8);
        for (int i = 0; i < N; i++) {
            assert_int_equal(done[i].calls, 1);
            assert_int_equal(done[i].err, 0);
            assert_string_equal(alone[i].text, batched[i].text);
            assert_string_equal(alone[i].language, batched[i].language);
            assert_float_equal(alone[i].duration, batched[i].duration, 1e-12);
            same_result(&alone[i], &batched[i], 0, 0);
            whisper_result_free(&alone[i]);
            whisper_result_free(&batched[i]);
            free(pcm[i]);
        }
        assert_true(alone[1].n_segments == 0); /* freed: zeroed */
    }
}

/* Cuts land in the pauses; silence everywhere cuts at the targets; short
 * audio is not cut; bad lengths are refused. */
static void split_finds_the_pauses(void **state) {
    (void)state;
    char msg[512];
    /* 100 s of a tone with 1 s pauses starting at 9.5, 21, 33, ... s. */
    size_t n = 100 * RATE;
    float *pcm = malloc(n * sizeof *pcm);
    assert_non_null(pcm);
    for (size_t i = 0; i < n; i++)
        pcm[i] = 0.3f * sinf((float)i * 0.07f);
    double pauses[8];
    for (int k = 0; k < 8; k++) {
        pauses[k] = 9.5 + 11.5 * k;
        size_t a = (size_t)(pauses[k] * RATE);
        memset(pcm + a, 0, RATE * sizeof *pcm);
    }
    size_t *cuts;
    int n_cuts;
    assert_int_equal(whisper_split_at_silences(pcm, n, 20.0f, &cuts, &n_cuts, msg, sizeof msg), 0);
    assert_true(n_cuts >= 3 && n_cuts <= 5);
    size_t prev = 0;
    for (int c = 0; c < n_cuts; c++) {
        double t = (double)cuts[c] / RATE;
        int in_pause = 0;
        for (int k = 0; k < 8; k++)
            in_pause |= t >= pauses[k] + 0.25 - 1e-9 && t <= pauses[k] + 0.75 + 1e-9;
        assert_true(in_pause);
        double len = (double)(cuts[c] - prev) / RATE;
        assert_true(len >= 15.0 - 1e-9 && len <= 25.0 + 1e-9);
        prev = cuts[c];
    }
    assert_true((double)(n - prev) / RATE >= 5.0);
    free(cuts);

    /* Silence everywhere: every half second ties, the target wins. */
    memset(pcm, 0, n * sizeof *pcm);
    assert_int_equal(whisper_split_at_silences(pcm, n, 30.0f, &cuts, &n_cuts, msg, sizeof msg), 0);
    assert_int_equal(n_cuts, 3); /* the last 40 s are over 1.25 chunks */
    assert_int_equal(cuts[0], 30 * RATE);
    assert_int_equal(cuts[1], 60 * RATE);
    assert_int_equal(cuts[2], 90 * RATE);
    free(cuts);

    /* Under 1.25 chunks: one piece. */
    assert_int_equal(
        whisper_split_at_silences(pcm, 37 * RATE, 30.0f, &cuts, &n_cuts, msg, sizeof msg), 0);
    assert_int_equal(n_cuts, 0);
    assert_null(cuts);
    assert_int_equal(whisper_split_at_silences(pcm, n, 4.0f, &cuts, &n_cuts, msg, sizeof msg),
                     DI_EINVAL);
    assert_non_null(strstr(msg, "at least 5"));
    assert_int_equal(whisper_split_at_silences(pcm, n, NAN, &cuts, &n_cuts, msg, sizeof msg),
                     DI_EINVAL);
    free(pcm);
}

/* A long audio cut into pieces: each piece's segments are what that piece
 * gives alone, at its offset in the file, and the text is theirs joined. */
static void chunks_decode_as_alone(void **state) {
    (void)state;
    char msg[512];
    size_t n;
    float *pcm = jfk_audio(4, 0, 3.0, &n); /* 4 x (11 s + 3 s of silence) */
    WhisperParams p = whisper_default_params();
    p.temperature_increment = 0;
    p.sample_len = 20;
    p.chunk_seconds = 14.0f;
    size_t *cuts;
    int n_cuts;
    assert_int_equal(
        whisper_split_at_silences(pcm, n, p.chunk_seconds, &cuts, &n_cuts, msg, sizeof msg), 0);
    assert_int_equal(n_cuts, 3);

    WhisperState *st;
    assert_int_equal(whisper_state_create(micro, 2, &st, msg, sizeof msg), 0);
    WhisperResult whole;
    Done done = {0};
    WhisperBatch *b;
    assert_int_equal(whisper_batch_create(st, 4, &b, msg, sizeof msg), 0);
    assert_int_equal(whisper_batch_add(b, pcm, n, &p, &whole, on_done, &done, msg, sizeof msg), 0);
    assert_int_equal(whisper_batch_pending(b), 4);
    while (whisper_batch_step(b, msg, sizeof msg) > 0) {
    }
    whisper_batch_free(b);
    assert_int_equal(done.calls, 1);
    assert_int_equal(done.err, 0);
    assert_float_equal(whole.duration, (double)n / RATE, 1e-9);

    /* whisper_transcribe with chunk_seconds does the same, one lane. */
    WhisperResult again;
    assert_int_equal(whisper_transcribe(st, pcm, n, &p, &again, msg, sizeof msg), 0);
    assert_string_equal(whole.text, again.text);
    same_result(&whole, &again, 0, 0);
    whisper_result_free(&again);

    WhisperParams alone_p = p;
    alone_p.chunk_seconds = 0;
    int at = 0;
    size_t text_at = 0;
    for (int c = 0; c <= n_cuts; c++) {
        size_t from = c ? cuts[c - 1] : 0, to = c < n_cuts ? cuts[c] : n;
        WhisperResult piece;
        assert_int_equal(
            whisper_transcribe(st, pcm + from, to - from, &alone_p, &piece, msg, sizeof msg), 0);
        assert_true(at + piece.n_segments <= whole.n_segments);
        WhisperResult view = whole;
        view.segments += at;
        view.n_segments = piece.n_segments;
        same_result(&piece, &view, (double)from / RATE, (int)(from / WHISPER_HOP));
        for (int s = 0; s < piece.n_segments; s++)
            assert_int_equal(whole.segments[at + s].id, at + s);
        size_t len = strlen(piece.text);
        assert_memory_equal(whole.text + text_at, piece.text, len);
        text_at += len;
        at += piece.n_segments;
        whisper_result_free(&piece);
    }
    assert_int_equal(at, whole.n_segments);
    assert_int_equal(text_at, strlen(whole.text));
    whisper_result_free(&whole);
    whisper_state_free(st);
    free(cuts);
    free(pcm);
}

/* Refusals come back from the call and call nothing; a batch freed with
 * audio in it tells each one. */
static void batch_errors(void **state) {
    (void)state;
    char msg[512];
    WhisperState *st;
    assert_int_equal(whisper_state_create(micro, 1, &st, msg, sizeof msg), 0);
    WhisperBatch *b = NULL;
    assert_int_equal(whisper_batch_create(st, 0, &b, msg, sizeof msg), DI_EINVAL);
    assert_int_equal(whisper_batch_create(st, WHISPER_BATCH_MAX_LANES + 1, &b, msg, sizeof msg),
                     DI_EINVAL);
    assert_null(b);
    assert_int_equal(whisper_batch_create(st, 2, &b, msg, sizeof msg), 0);
    WhisperParams p = whisper_default_params();
    p.beam_size = 99;
    Done done = {0};
    WhisperResult r;
    assert_int_equal(
        whisper_batch_add(b, jfk.samples, jfk.n_samples, &p, &r, on_done, &done, msg, sizeof msg),
        DI_EINVAL);
    p = whisper_default_params();
    p.chunk_seconds = 2.0f;
    size_t n;
    float *pcm = jfk_audio(2, 0, 0, &n);
    assert_int_equal(whisper_batch_add(b, pcm, n, &p, &r, on_done, &done, msg, sizeof msg),
                     DI_EINVAL);
    p.chunk_seconds = -1.0f;
    assert_int_equal(whisper_batch_add(b, pcm, n, &p, &r, on_done, &done, msg, sizeof msg),
                     DI_EINVAL);
    p.language = "de";
    p.chunk_seconds = 0;
    assert_int_equal(whisper_batch_add(b, pcm, n, &p, &r, on_done, &done, msg, sizeof msg),
                     DI_EINVAL);
    assert_int_equal(done.calls, 0);
    assert_int_equal(whisper_batch_pending(b), 0);
    assert_int_equal(whisper_batch_step(b, msg, sizeof msg), 0);

    p = whisper_default_params();
    p.sample_len = 4;
    assert_int_equal(whisper_batch_add(b, pcm, n, &p, &r, on_done, &done, msg, sizeof msg), 0);
    whisper_batch_free(b);
    assert_int_equal(done.calls, 1);
    assert_int_equal(done.err, DI_EINTERNAL);
    assert_null(r.text);
    whisper_state_free(st);
    free(pcm);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(split_finds_the_pauses),
        cmocka_unit_test(batch_errors),
        cmocka_unit_test(chunks_decode_as_alone),
        cmocka_unit_test(batch_equals_alone),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
