/* Tests of search.c: Whisper's decoding rules on hand-made logits whose
 * right answers can be worked out by hand. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "whisper/search.h"

/* A toy vocabulary: text 0..9 (3 is the blank), eot 10, sot 11, translate
 * 12, transcribe 13, solm 14, prev 15, nosp 16, notimestamps 17, and
 * timestamps 18..39 (0.00 s .. 0.42 s). */
enum { NV = 40, EOT = 10, SOT = 11, BLANK = 3, NOTS = 17, TB = 18 };

static const int SUPPRESS[] = {12, 13, 14, 15, 16};

static LogitRules toy_rules(int sample_begin, int without_timestamps) {
    LogitRules r;
    memset(&r, 0, sizeof r);
    r.n_vocab = NV;
    r.eot = EOT;
    r.timestamp_begin = TB;
    r.notimestamps = NOTS;
    r.sample_begin = sample_begin;
    r.without_timestamps = without_timestamps;
    r.max_initial_timestamp_index = 5;
    r.suppress_blank = 1;
    r.blank = BLANK;
    r.suppress = SUPPRESS;
    r.n_suppress = 5;
    return r;
}

static void fill(float *x, int n, float v) {
    for (int i = 0; i < n; i++)
        x[i] = v;
}

#define IS_NEG_INF(v) ((v) == -INFINITY)

/* ---- Logit rules -------------------------------------------------------- */

static void test_first_token_is_early_timestamp(void **st) {
    (void)st;
    LogitRules r = toy_rules(1, 0);
    int toks[] = {SOT};
    float lg[NV];
    fill(lg, NV, 0.0f);
    logit_rules_apply(&r, toks, 1, lg);
    for (int i = 0; i < TB; i++)
        assert_true(IS_NEG_INF(lg[i]));
    for (int i = TB; i <= TB + 5; i++)
        assert_false(IS_NEG_INF(lg[i]));
    for (int i = TB + 6; i < NV; i++)
        assert_true(IS_NEG_INF(lg[i]));
}

static void test_after_lone_timestamp(void **st) {
    (void)st;
    LogitRules r = toy_rules(1, 0);
    /* <|0.04|> text <|0.08|>: the closing partner (>= 0.08) or eot. */
    int toks[] = {SOT, TB + 2, 5, TB + 4};
    float lg[NV];
    fill(lg, NV, 0.0f);
    lg[EOT] = 5.0f; /* above log(18), so the timestamp mass does not force one */
    logit_rules_apply(&r, toks, 4, lg);
    for (int i = 0; i < EOT; i++)
        assert_true(IS_NEG_INF(lg[i]));
    assert_false(IS_NEG_INF(lg[EOT]));
    for (int i = TB; i < TB + 4; i++)
        assert_true(IS_NEG_INF(lg[i]));
    for (int i = TB + 4; i < NV; i++)
        assert_false(IS_NEG_INF(lg[i]));
}

static void test_after_pair_text_only(void **st) {
    (void)st;
    LogitRules r = toy_rules(1, 0);
    int pair[] = {SOT, TB + 2, 5, TB + 4, TB + 4};
    float lg[NV];
    fill(lg, NV, 0.0f);
    logit_rules_apply(&r, pair, 5, lg);
    for (int i = TB; i < NV; i++)
        assert_true(IS_NEG_INF(lg[i]));
    assert_false(IS_NEG_INF(lg[5]));
    assert_false(IS_NEG_INF(lg[EOT]));

    /* The window's first timestamp alone also counts as a closed pair. */
    int first[] = {SOT, TB + 2};
    fill(lg, NV, 0.0f);
    logit_rules_apply(&r, first, 2, lg);
    for (int i = TB; i < NV; i++)
        assert_true(IS_NEG_INF(lg[i]));
    assert_false(IS_NEG_INF(lg[5]));
}

static void test_timestamps_increase(void **st) {
    (void)st;
    LogitRules r = toy_rules(1, 0);
    int toks[] = {SOT, TB + 2, 5};
    float lg[NV];
    /* Text well above the timestamps so the probability-mass rule stays out. */
    fill(lg, TB, 5.0f);
    fill(lg + TB, NV - TB, 0.0f);
    logit_rules_apply(&r, toks, 3, lg);
    /* <|0.04|> again would make a zero-length segment. */
    for (int i = TB; i <= TB + 2; i++)
        assert_true(IS_NEG_INF(lg[i]));
    for (int i = TB + 3; i < NV; i++)
        assert_float_equal(lg[i], 0.0f, 0.0f);
    assert_float_equal(lg[5], 5.0f, 0.0f);
}

static void test_timestamp_mass_beats_text(void **st) {
    (void)st;
    LogitRules r = toy_rules(1, 0);
    int toks[] = {SOT, TB + 2, 5};
    float lg[NV];
    /* 19 allowed timestamps (TB+3 .. 39) at 0 each: log(19) = 2.944 beats
     * the best text token at 2.0, though every single one is below it. */
    fill(lg, TB, -10.0f);
    lg[1] = 2.0f;
    fill(lg + TB, NV - TB, 0.0f);
    logit_rules_apply(&r, toks, 3, lg);
    for (int i = 0; i < TB; i++)
        assert_true(IS_NEG_INF(lg[i]));
    assert_float_equal(lg[TB + 3], 0.0f, 0.0f);

    /* At 3.5 the text token beats log(19) and stays. */
    fill(lg, TB, -10.0f);
    lg[1] = 3.5f;
    fill(lg + TB, NV - TB, 0.0f);
    logit_rules_apply(&r, toks, 3, lg);
    assert_float_equal(lg[1], 3.5f, 0.0f);
    assert_float_equal(lg[EOT], -10.0f, 0.0f);
}

static void test_notimestamps_and_without(void **st) {
    (void)st;
    float lg[NV];
    for (int wo = 0; wo <= 1; wo++) {
        LogitRules r = toy_rules(1, wo);
        int toks[] = {SOT, 5};
        fill(lg, NV, 0.0f);
        logit_rules_apply(&r, toks, 2, lg);
        assert_true(IS_NEG_INF(lg[NOTS]));
    }
    /* Without timestamps the window may start with text, and timestamps
     * are not forced or limited. */
    LogitRules r = toy_rules(1, 1);
    int start[] = {SOT};
    fill(lg, NV, 0.0f);
    logit_rules_apply(&r, start, 1, lg);
    assert_false(IS_NEG_INF(lg[5]));
    assert_false(IS_NEG_INF(lg[NV - 1]));
    int pair[] = {SOT, TB + 2, TB + 2};
    fill(lg, NV, 0.0f);
    logit_rules_apply(&r, pair, 3, lg);
    assert_false(IS_NEG_INF(lg[TB]));
}

static void test_suppress_blank_only_at_start(void **st) {
    (void)st;
    LogitRules r = toy_rules(2, 1);
    int toks[] = {15, SOT, 5};
    float lg[NV];
    fill(lg, NV, 0.0f);
    logit_rules_apply(&r, toks, 2, lg); /* n_tokens == sample_begin */
    assert_true(IS_NEG_INF(lg[BLANK]));
    assert_true(IS_NEG_INF(lg[EOT]));
    assert_false(IS_NEG_INF(lg[4]));
    fill(lg, NV, 0.0f);
    logit_rules_apply(&r, toks, 3, lg);
    assert_false(IS_NEG_INF(lg[BLANK]));
    assert_false(IS_NEG_INF(lg[EOT]));
    /* The suppress list applies at every step. */
    for (int i = 0; i < 5; i++)
        assert_true(IS_NEG_INF(lg[SUPPRESS[i]]));

    r.suppress_blank = 0;
    fill(lg, NV, 0.0f);
    logit_rules_apply(&r, toks, 2, lg);
    assert_false(IS_NEG_INF(lg[BLANK]));
}

static void test_suppress_list(void **st) {
    (void)st;
    WhisperSpecials sp = {.eot = EOT,
                          .sot = SOT,
                          .translate = 12,
                          .transcribe = 13,
                          .solm = 14,
                          .prev = 15,
                          .nosp = 16,
                          .notimestamps = NOTS,
                          .timestamp_begin = TB};
    int non_speech[] = {1, 7, 13}; /* 13 doubles as transcribe */
    int out[3 + 7];
    int n = search_suppress_list(&sp, non_speech, 3, 1, out);
    int want[] = {1, 7, 11, 12, 13, 14, 15, 16, 17};
    assert_int_equal(n, 9);
    for (int i = 0; i < n; i++)
        assert_int_equal(out[i], want[i]);
    n = search_suppress_list(&sp, non_speech, 3, 0, out);
    assert_int_equal(n, 7);
    assert_int_equal(out[0], 11);
}

/* ---- Numerics and greedy ---------------------------------------------- */

static void test_log_softmax(void **st) {
    (void)st;
    float x[3] = {0.0f, -INFINITY, 0.0f}, y[3];
    search_log_softmax(x, 3, y);
    assert_float_equal(y[0], -logf(2.0f), 1e-6);
    assert_true(IS_NEG_INF(y[1]));
    assert_float_equal(y[2], -logf(2.0f), 1e-6);
    float z[4] = {1.0f, 3.0f, 3.0f, 2.0f};
    assert_int_equal(search_argmax(z, 4), 1);
    assert_float_equal(search_softmax_at(z, 4, 3), exp(2.0) / (exp(1.0) + 2 * exp(3.0) + exp(2.0)),
                       1e-9);
}

static void test_greedy_step_and_eot(void **st) {
    (void)st;
    float lg[NV];
    for (int i = 0; i < NV; i++)
        lg[i] = (float)(i % 7) * 0.25f;
    lg[4] = 3.0f;
    double lse = 0.0;
    for (int i = 0; i < NV; i++)
        lse += exp(lg[i]);
    lse = log(lse);
    double sum = -1.0;
    int tok = search_greedy_step(lg, NV, 5, EOT, 0.0f, NULL, &sum);
    assert_int_equal(tok, 4);
    assert_float_equal(sum, -1.0 + 3.0 - lse, 1e-6);

    /* An ended sequence stays ended and its sum stops growing. */
    double ended = -2.5;
    tok = search_greedy_step(lg, NV, EOT, EOT, 0.0f, NULL, &ended);
    assert_int_equal(tok, EOT);
    assert_float_equal(ended, -2.5, 0.0);
    DiRng rng;
    di_rng_seed(&rng, 7);
    tok = search_greedy_step(lg, NV, EOT, EOT, 1.0f, &rng, &ended);
    assert_int_equal(tok, EOT);
    assert_float_equal(ended, -2.5, 0.0);

    assert_float_equal(search_avg_logprob(-3.0, 5), -0.5, 1e-12);
}

static void test_sampling(void **st) {
    (void)st;
    float lg[NV];
    for (int i = 0; i < NV; i++)
        lg[i] = (float)((i * 7) % 11) * 0.1f;
    int argmax = search_argmax(lg, NV);
    DiRng a, b, c;
    di_rng_seed(&a, 42);
    di_rng_seed(&b, 42);
    di_rng_seed(&c, 43);
    int differ = 0, not_argmax = 0;
    for (int i = 0; i < 50; i++) {
        int ta = search_pick(lg, NV, 1.0f, &a);
        int tb = search_pick(lg, NV, 1.0f, &b);
        int tc = search_pick(lg, NV, 1.0f, &c);
        assert_int_equal(ta, tb);
        assert_true(ta >= 0 && ta < NV);
        differ += ta != tc;
        not_argmax += ta != argmax;
    }
    assert_true(differ > 0);
    assert_true(not_argmax > 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(search_pick(lg, NV, 0.0f, &a), argmax);

    /* Frequencies follow softmax(logits / T): p = 3/4 at T = 1, and at
     * T = 0.5 the odds square to 9:1. -inf tokens are never drawn. */
    float two[3] = {0.0f, logf(3.0f), -INFINITY};
    int hits = 0, hits_half = 0;
    for (int i = 0; i < 20000; i++) {
        int t = search_pick(two, 3, 1.0f, &a);
        assert_true(t != 2);
        hits += t == 1;
        hits_half += search_pick(two, 3, 0.5f, &a) == 1;
    }
    assert_float_equal(hits / 20000.0, 0.75, 0.015);
    assert_float_equal(hits_half / 20000.0, 0.9, 0.012);

    /* Over several of the sampler's 256-token blocks, most of them masked
     * and skipped by their sums: weights 1 : 2 : 1 in blocks 0, 1 and 2,
     * nothing ever drawn from the masked rest (the last block included). */
    enum { WIDE = 1000 };
    float *wide = malloc(sizeof(float) * WIDE);
    for (int i = 0; i < WIDE; i++)
        wide[i] = -INFINITY;
    wide[5] = 0.0f, wide[300] = logf(2.0f), wide[700] = 0.0f;
    int count[3] = {0, 0, 0};
    for (int i = 0; i < 20000; i++) {
        int t = search_pick(wide, WIDE, 1.0f, &a);
        assert_true(t == 5 || t == 300 || t == 700);
        count[t == 5 ? 0 : t == 300 ? 1 : 2]++;
    }
    assert_float_equal(count[0] / 20000.0, 0.25, 0.015);
    assert_float_equal(count[1] / 20000.0, 0.5, 0.015);
    assert_float_equal(count[2] / 20000.0, 0.25, 0.015);
    free(wide);
}

/* ---- Beam search ------------------------------------------------------ */

enum { BV = 20, B = 3 };

/* Sets row j of a [B][BV] logprob table: everything -20 except the given
 * (token, logprob) pairs. */
static void row(float *lp, int j, int n, const int *toks, const float *vals) {
    fill(lp + j * BV, BV, -20.0f);
    for (int i = 0; i < n; i++)
        lp[j * BV + toks[i]] = vals[i];
}

/* The scripted first two steps shared by the beam tests. */
static void beam_steps_1_2(BeamSearch *b) {
    float lp[B * BV];
    int next[B], src[B];
    for (int j = 0; j < B; j++)
        row(lp, j, 4, (int[]){1, 2, EOT, 3}, (float[]){-0.1f, -0.5f, -0.3f, -1.0f});
    assert_int_equal(beam_step(b, lp, next, src), 0);
    /* Identical beams give one candidate per token: 1, eot, 2, 3. eot
     * finishes; the later beam's duplicate is the recorded source. */
    assert_int_equal(next[0], 1);
    assert_int_equal(next[1], 2);
    assert_int_equal(next[2], 3);
    for (int j = 0; j < B; j++)
        assert_int_equal(src[j], B - 1);
    assert_float_equal(b->sum_logprob[0], -0.1, 1e-6);
    assert_float_equal(b->sum_logprob[1], -0.5, 1e-6);
    assert_float_equal(b->sum_logprob[2], -1.0, 1e-6);
    assert_int_equal(b->len, 2);
    assert_int_equal(b->n_finished, 1);
    assert_int_equal(b->finished[0].n_tokens, 2);
    assert_int_equal(b->finished[0].tokens[0], SOT);
    assert_int_equal(b->finished[0].tokens[1], EOT);
    assert_float_equal(b->finished[0].score, -0.3, 1e-6);

    row(lp, 0, 4, (int[]){4, EOT, 5, 6}, (float[]){-0.2f, -0.05f, -3.0f, -4.0f});
    row(lp, 1, 4, (int[]){4, EOT, 7, 8}, (float[]){-0.1f, -2.0f, -0.3f, -5.0f});
    row(lp, 2, 4, (int[]){9, EOT, 4, 5}, (float[]){-0.01f, -0.2f, -3.0f, -3.0f});
    assert_int_equal(beam_step(b, lp, next, src), 0);
    /* Ranking: [1,eot] -0.15, [1,4] -0.3, [2,4] -0.6, [2,7] -0.8, then
     * [3,9] -1.01 and [3,eot] -1.2, which come too late to count. */
    int want_next[B] = {4, 4, 7}, want_src[B] = {0, 1, 1};
    double want_sum[B] = {-0.3, -0.6, -0.8};
    for (int j = 0; j < B; j++) {
        assert_int_equal(next[j], want_next[j]);
        assert_int_equal(src[j], want_src[j]);
        assert_float_equal(b->sum_logprob[j], want_sum[j], 1e-6);
    }
    assert_int_equal(b->beams[0 * b->cap + 1], 1);
    assert_int_equal(b->beams[1 * b->cap + 1], 2);
    assert_int_equal(b->beams[2 * b->cap + 2], 7);
    assert_int_equal(b->n_finished, 2);
    assert_int_equal(b->finished[1].n_tokens, 3);
    assert_int_equal(b->finished[1].tokens[1], 1);
    assert_float_equal(b->finished[1].score, -0.15, 1e-6);
}

static void beam_step_3(BeamSearch *b, int *done) {
    float lp[B * BV];
    int next[B], src[B];
    row(lp, 0, 4, (int[]){EOT, 1, 2, 3}, (float[]){-0.1f, -1.0f, -2.0f, -3.0f});
    row(lp, 1, 4, (int[]){EOT, 1, 2, 3}, (float[]){-0.2f, -1.0f, -2.0f, -3.0f});
    row(lp, 2, 4, (int[]){1, 2, 3, EOT}, (float[]){-0.1f, -0.2f, -0.3f, -5.0f});
    *done = beam_step(b, lp, next, src);
    /* eot of beam 0 (-0.4) and beam 1 (-0.8) rank first; beam 2 fills
     * all three live places. */
    for (int j = 0; j < B; j++) {
        assert_int_equal(src[j], 2);
        assert_int_equal(next[j], j + 1);
    }
}

static void test_beam_search(void **st) {
    (void)st;
    int initial[] = {SOT};
    BeamSearch b;
    assert_int_equal(beam_init(&b, B, 1.0f, EOT, BV, initial, 1, 16), 0);
    assert_int_equal(b.max_candidates, 3);
    beam_steps_1_2(&b);
    int done = 0;
    beam_step_3(&b, &done);
    /* The third finished candidate completes the window; the fourth finds
     * the list full. */
    assert_int_equal(done, 1);
    assert_int_equal(b.n_finished, 3);
    assert_float_equal(b.finished[2].score, -0.4, 1e-6);
    int want[] = {SOT, 1, 4, EOT};
    assert_int_equal(b.finished[2].n_tokens, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(b.finished[2].tokens[i], want[i]);
    assert_int_equal(beam_finalize(&b), 0);
    assert_int_equal(b.n_finished, 3);
    beam_free(&b);
    beam_free(NULL);
}

static void test_beam_ties_keep_order(void **st) {
    (void)st;
    int initial[] = {SOT};
    BeamSearch b;
    assert_int_equal(beam_init(&b, 2, 1.0f, EOT, BV, initial, 1, 16), 0);
    float lp[2 * BV];
    int next[2], src[2];
    for (int j = 0; j < 2; j++)
        row(lp, j, 3, (int[]){1, 2, 3}, (float[]){-0.25f, -0.5f, -0.75f});
    assert_int_equal(beam_step(&b, lp, next, src), 0);
    /* Both continuations score exactly -0.75; like Python's stable sort,
     * the one gathered first (from beam 0) ranks first. */
    row(lp, 0, 1, (int[]){5}, (float[]){-0.5f});
    row(lp, 1, 1, (int[]){6}, (float[]){-0.25f});
    assert_int_equal(beam_step(&b, lp, next, src), 0);
    assert_int_equal(next[0], 5);
    assert_int_equal(src[0], 0);
    assert_int_equal(next[1], 6);
    assert_int_equal(src[1], 1);
    beam_free(&b);
}

static void test_beam_patience(void **st) {
    (void)st;
    int initial[] = {SOT};
    BeamSearch b;
    assert_int_equal(beam_init(&b, B, 2.0f, EOT, BV, initial, 1, 16), 0);
    assert_int_equal(b.max_candidates, 6);
    beam_steps_1_2(&b);
    int done = 1;
    beam_step_3(&b, &done);
    assert_int_equal(done, 0);
    assert_int_equal(b.n_finished, 4);
    assert_float_equal(b.finished[3].score, -0.8, 1e-6);
    beam_free(&b);

    /* Python's round(): 2.5 rounds to 2. */
    assert_int_equal(beam_init(&b, 5, 0.5f, EOT, BV, initial, 1, 16), 0);
    assert_int_equal(b.max_candidates, 2);
    beam_free(&b);
    assert_int_equal(beam_init(&b, 3, 0.0f, EOT, BV, initial, 1, 16), DI_EINVAL);
}

static void test_beam_finalize_fills(void **st) {
    (void)st;
    int initial[] = {SOT};
    BeamSearch b;
    assert_int_equal(beam_init(&b, B, 1.0f, EOT, BV, initial, 1, 16), 0);
    float lp[B * BV];
    int next[B], src[B];
    for (int j = 0; j < B; j++)
        row(lp, j, 4, (int[]){1, 2, EOT, 3}, (float[]){-0.1f, -0.5f, -0.3f, -1.0f});
    assert_int_equal(beam_step(&b, lp, next, src), 0);
    assert_int_equal(b.n_finished, 1);
    assert_int_equal(beam_finalize(&b), 0);
    /* The best two live beams, closed with eot, make up the three. */
    assert_int_equal(b.n_finished, 3);
    assert_int_equal(b.finished[1].tokens[1], 1);
    assert_int_equal(b.finished[1].tokens[2], EOT);
    assert_float_equal(b.finished[1].score, -0.1, 1e-6);
    assert_int_equal(b.finished[2].tokens[1], 2);
    assert_float_equal(b.finished[2].score, -0.5, 1e-6);
    beam_free(&b);
}

static void test_rank_length_normalised(void **st) {
    (void)st;
    /* The longer sequence has the lower sum but the better per-token
     * log-probability (-0.3 vs -0.5): it wins. */
    double sums[2] = {-1.0, -1.5};
    int lens[2] = {2, 5};
    assert_int_equal(search_rank(sums, lens, 2), 1);
    /* And a short one wins when its per-token log-probability is higher. */
    double sums2[3] = {-2.4, -0.6, -1.8};
    int lens2[3] = {6, 3, 4};
    assert_int_equal(search_rank(sums2, lens2, 3), 1);
    /* Ties go to the first. */
    double sums3[2] = {-1.0, -2.0};
    int lens3[2] = {1, 2};
    assert_int_equal(search_rank(sums3, lens3, 2), 0);
}

/* ---- Fallback ---------------------------------------------------------- */

static void test_compression_ratio(void **st) {
    (void)st;
    char rep[50 * 4 + 1];
    rep[0] = '\0';
    for (int i = 0; i < 50; i++)
        strcat(rep, i ? " the" : "the");
    double cr = 0.0;
    assert_int_equal(search_compression_ratio(rep, strlen(rep), &cr), 0);
    assert_true(cr > 2.4);
    const char *prose = "And so, my fellow Americans: ask not what your country can do for "
                        "you, ask what you can do for your country.";
    assert_int_equal(search_compression_ratio(prose, strlen(prose), &cr), 0);
    assert_true(cr < 2.4);
    assert_true(cr > 0.5);
    assert_int_equal(search_compression_ratio("", 0, &cr), 0);
    assert_float_equal(cr, 0.0, 0.0);
}

static void test_fallback_decisions(void **st) {
    (void)st;
    SearchThresholds th = {2.4, -1.0, 0.6};
    assert_true(search_needs_fallback(&th, 3.1, -0.3, 0.01)); /* repetitive */
    assert_true(search_needs_fallback(&th, 1.2, -1.5, 0.01)); /* unlikely */
    assert_false(search_needs_fallback(&th, 1.2, -0.3, 0.01));
    /* Silence: very likely no speech and unlikely text, so no retry... */
    assert_false(search_needs_fallback(&th, 1.2, -2.0, 0.9));
    /* ...and the window is skipped. */
    assert_true(search_should_skip(&th, -2.0, 0.9));
    /* A confident transcript overrides the no-speech probability. */
    assert_false(search_should_skip(&th, -0.5, 0.9));
    assert_false(search_should_skip(&th, -2.0, 0.3));
}

/* ---- Segments ----------------------------------------------------------- */

enum { T0 = 100 }; /* timestamp_begin for the segment tests */

static void test_segments_paired(void **st) {
    (void)st;
    SearchSpan sp[16];
    int n = 0, adv = 0;
    /* <0.00> a b <1.00><1.00> c d <2.50><2.50> e: two segments; seek
     * resumes at the last closing timestamp (125 steps * 2 frames). */
    int toks[] = {T0, 1, 2, T0 + 50, T0 + 50, 3, 4, T0 + 125, T0 + 125, 5};
    search_split_segments(toks, 10, T0, 1000, 3000, sp, &n, &adv);
    assert_int_equal(n, 2);
    assert_int_equal(sp[0].begin, 0);
    assert_int_equal(sp[0].end, 4);
    assert_float_equal(sp[0].start, 10.0, 1e-9);
    assert_float_equal(sp[0].stop, 11.0, 1e-9);
    assert_int_equal(sp[1].begin, 4);
    assert_int_equal(sp[1].end, 8);
    assert_float_equal(sp[1].start, 11.0, 1e-9);
    assert_float_equal(sp[1].stop, 12.5, 1e-9);
    assert_int_equal(adv, 250);

    /* Ending on a single timestamp closes a last segment and consumes the
     * whole window. */
    int single[] = {T0, 1, 2, T0 + 50, T0 + 50, 3, 4, T0 + 125};
    search_split_segments(single, 8, T0, 0, 2400, sp, &n, &adv);
    assert_int_equal(n, 2);
    assert_int_equal(sp[1].begin, 4);
    assert_int_equal(sp[1].end, 8);
    assert_float_equal(sp[1].stop, 2.5, 1e-9);
    assert_int_equal(adv, 2400);
}

static void test_segments_single_and_none(void **st) {
    (void)st;
    SearchSpan sp[8];
    int n = 0, adv = 0;
    /* No pair: one segment up to the last timestamp. */
    int single[] = {T0, 1, 2, T0 + 80};
    search_split_segments(single, 4, T0, 300, 3000, sp, &n, &adv);
    assert_int_equal(n, 1);
    assert_int_equal(sp[0].begin, 0);
    assert_int_equal(sp[0].end, 4);
    assert_float_equal(sp[0].start, 3.0, 1e-9);
    assert_float_equal(sp[0].stop, 4.6, 1e-9);
    assert_int_equal(adv, 3000);

    /* No timestamps: the segment spans the whole window. */
    int text[] = {1, 2, 3};
    search_split_segments(text, 3, T0, 6000, 1234, sp, &n, &adv);
    assert_int_equal(n, 1);
    assert_int_equal(sp[0].end, 3);
    assert_float_equal(sp[0].start, 60.0, 1e-9);
    assert_float_equal(sp[0].stop, 72.34, 1e-9);
    assert_int_equal(adv, 1234);

    /* A lone <0.00> does not shorten the window. */
    int zero[] = {T0, 1, 2};
    search_split_segments(zero, 3, T0, 0, 3000, sp, &n, &adv);
    assert_float_equal(sp[0].stop, 30.0, 1e-9);
}

static void test_strip(void **st) {
    (void)st;
    const char *s = " \t\xc2\xa0 Hello world \xe3\x80\x80\n";
    size_t b, e;
    search_strip(s, strlen(s), &b, &e);
    assert_int_equal(e - b, 11);
    assert_memory_equal(s + b, "Hello world", 11);
    search_strip("   ", 3, &b, &e);
    assert_int_equal(b, e);
    /* A multi-byte letter ending in a byte like 0xa0 is not a space. */
    const char *t = "x\xe4\xb8\xa0";
    search_strip(t, strlen(t), &b, &e);
    assert_int_equal(e - b, 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_token_is_early_timestamp),
        cmocka_unit_test(test_after_lone_timestamp),
        cmocka_unit_test(test_after_pair_text_only),
        cmocka_unit_test(test_timestamps_increase),
        cmocka_unit_test(test_timestamp_mass_beats_text),
        cmocka_unit_test(test_notimestamps_and_without),
        cmocka_unit_test(test_suppress_blank_only_at_start),
        cmocka_unit_test(test_suppress_list),
        cmocka_unit_test(test_log_softmax),
        cmocka_unit_test(test_greedy_step_and_eot),
        cmocka_unit_test(test_sampling),
        cmocka_unit_test(test_beam_search),
        cmocka_unit_test(test_beam_ties_keep_order),
        cmocka_unit_test(test_beam_patience),
        cmocka_unit_test(test_beam_finalize_fills),
        cmocka_unit_test(test_rank_length_normalised),
        cmocka_unit_test(test_compression_ratio),
        cmocka_unit_test(test_fallback_decisions),
        cmocka_unit_test(test_segments_paired),
        cmocka_unit_test(test_segments_single_and_none),
        cmocka_unit_test(test_strip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
