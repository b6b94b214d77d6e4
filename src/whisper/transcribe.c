/*
 * transcribe.c: OpenAI Whisper's transcribe() loop on top of the encoder and
 * decoder passes: language detection, 30-second windows moved by the
 * timestamps the model emits, temperature fallback, and segments.
 *
 * The decisions themselves (logit rules, beam bookkeeping, thresholds,
 * segment cutting) live in search.c; this file runs the model and keeps
 * the lists.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "whisper/search.h"
#include "whisper/whisper_impl.h"

#define MAX_BEAM 16
#define MAX_BEST_OF 16
#define MAX_TEMPERATURES 1000

WhisperParams whisper_default_params(void) {
    WhisperParams p;
    memset(&p, 0, sizeof p);
    p.language = NULL;
    p.beam_size = 0;
    p.patience = 1.0f;
    p.best_of = 5;
    p.temperature = 0.0f;
    p.temperature_increment = 0.2f;
    p.compression_ratio_threshold = 2.4f;
    p.logprob_threshold = -1.0f;
    p.no_speech_threshold = 0.6f;
    p.condition_on_previous_text = 1;
    p.initial_prompt = NULL;
    p.without_timestamps = 0;
    p.max_initial_timestamp = 1.0f;
    p.suppress_blank = 1;
    p.suppress_non_speech = 1;
    p.sample_len = 0;
    p.seed = 0;
    return p;
}

void whisper_result_free(WhisperResult *result) {
    if (!result) return;
    for (int i = 0; i < result->n_segments; i++) {
        free(result->segments[i].text);
        free(result->segments[i].tokens);
    }
    free(result->segments);
    free(result->text);
    memset(result, 0, sizeof *result);
}

/* ---- Parameters --------------------------------------------------------- */

/* The temperatures tried in turn: temperature, + increment, ... up to 1.0,
 * the way np.arange(t, 1.0 + 1e-6, step) lists them. */
static int temperature_count(const WhisperParams *p) {
    if (!(p->temperature_increment > 0.0f)) return 1;
    double span = 1.0 + 1e-6 - p->temperature;
    if (span <= 0.0) return 1;
    double n = ceil(span / p->temperature_increment);
    return n > MAX_TEMPERATURES ? MAX_TEMPERATURES + 1 : (int)n;
}

static float temperature_at(const WhisperParams *p, int k) {
    return (float)((double)p->temperature + k * (double)p->temperature_increment);
}

static int check_params(const WhisperParams *p, char *msg, size_t cap) {
    if (p->beam_size < 0 || p->beam_size > MAX_BEAM)
        return di_fail(msg, cap, DI_EINVAL, "beam_size must be 0..%d (got %d)", MAX_BEAM,
                       p->beam_size);
    if (!(p->patience > 0.0f) || !isfinite(p->patience))
        return di_fail(msg, cap, DI_EINVAL, "patience must be a positive number");
    if (p->beam_size > 1 && p->beam_size * (double)p->patience > 4 * MAX_BEAM)
        return di_fail(msg, cap, DI_EINVAL, "beam_size * patience is too large");
    if (!(p->temperature >= 0.0f) || !isfinite(p->temperature))
        return di_fail(msg, cap, DI_EINVAL, "temperature must be >= 0");
    if (!(p->temperature_increment >= 0.0f) || !isfinite(p->temperature_increment))
        return di_fail(msg, cap, DI_EINVAL, "temperature_increment must be >= 0");
    if (temperature_count(p) > MAX_TEMPERATURES)
        return di_fail(msg, cap, DI_EINVAL, "temperature_increment is too small");
    int samples = p->temperature > 0.0f || temperature_count(p) > 1;
    if (samples && (p->best_of < 1 || p->best_of > MAX_BEST_OF))
        return di_fail(msg, cap, DI_EINVAL, "best_of must be 1..%d (got %d)", MAX_BEST_OF,
                       p->best_of);
    if (isnan(p->compression_ratio_threshold) || isnan(p->logprob_threshold) ||
        isnan(p->no_speech_threshold))
        return di_fail(msg, cap, DI_EINVAL, "thresholds must be numbers, not NaN");
    if (!(p->max_initial_timestamp >= 0.0f) || !isfinite(p->max_initial_timestamp))
        return di_fail(msg, cap, DI_EINVAL, "max_initial_timestamp must be >= 0");
    if (p->sample_len < 0)
        return di_fail(msg, cap, DI_EINVAL, "sample_len must be >= 0 (got %d)", p->sample_len);
    return 0;
}

/* The language index to decode in, or -1 to detect it. */
static int resolve_language(const WhisperModel *model, const WhisperParams *p, int *lang, char *msg,
                            size_t cap) {
    const char *code = p->language;
    int automatic = !code || !code[0] || !strcmp(code, "auto");
    if (!model->multilingual) {
        if (p->translate)
            return di_fail(msg, cap, DI_EINVAL, "this model is English-only and cannot translate");
        if (!automatic && strcmp(code, "en") != 0)
            return di_fail(msg, cap, DI_EINVAL,
                           "this model is English-only; language \"%s\" is not available", code);
        *lang = whisper_lang_id("en");
        return 0;
    }
    if (automatic) {
        *lang = -1;
        return 0;
    }
    int id = whisper_lang_id(code);
    if (id < 0) return di_fail(msg, cap, DI_EINVAL, "unknown language code \"%s\"", code);
    if (id >= model->tok.sp.n_languages)
        return di_fail(msg, cap, DI_EINVAL, "this model does not know language \"%s\"", code);
    *lang = id;
    return 0;
}

/* ---- Language detection ------------------------------------------------- */

int whisper_detect_language(WhisperState *state, const float *mel, int n_frames, int *lang,
                            float *probs, char *msg, size_t cap) {
    if (!state || !state->model || !mel || n_frames <= 0 || !lang)
        return di_fail(msg, cap, DI_EINVAL, "detect_language: missing state, mel or output");
    const WhisperModel *model = state->model;
    const WhisperSpecials *sp = &model->tok.sp;
    const int n_vocab = model->hp.n_vocab;
    if (!model->multilingual)
        return di_fail(msg, cap, DI_EUNSUPPORTED,
                       "this model is English-only and has no language tokens");
    int n_lang = sp->n_languages < whisper_lang_count() ? sp->n_languages : whisper_lang_count();
    if (n_lang <= 0 || sp->lang_begin < 0 || sp->lang_begin + n_lang > n_vocab)
        return di_fail(msg, cap, DI_EFORMAT, "the model's language tokens are out of range");

    int err = whisper_encode(state, mel, n_frames, 0, msg, cap);
    if (err) return err;
    err = decoder_reserve(state, 1, msg, cap);
    if (err) return err;
    float *logits = malloc((size_t)n_vocab * sizeof *logits);
    if (!logits) return di_fail(msg, cap, DI_ENOMEM, "out of memory for logits");
    int sot = sp->sot;
    err = decoder_forward(state, 1, &sot, 1, 0, logits, msg, cap);
    if (!err) {
        /* Only language tokens compete, as in OpenAI's detect_language. */
        const float *lang_logits = logits + sp->lang_begin;
        *lang = search_argmax(lang_logits, n_lang);
        if (probs) {
            for (int i = 0; i < whisper_lang_count(); i++)
                probs[i] = i < n_lang ? (float)search_softmax_at(lang_logits, n_lang, i) : 0.0f;
        }
    }
    free(logits);
    return err;
}

/* ---- One window --------------------------------------------------------- */

/* What decoding one window at one temperature produced. */
typedef struct {
    int *tokens; /* sampled tokens, cut before eot */
    int n_tokens;
    char *text; /* stripped, as OpenAI's DecodingResult.text */
    float temperature;
    double avg_logprob;
    double compression_ratio;
    double no_speech_prob;
} WindowResult;

static void window_result_free(WindowResult *r) {
    free(r->tokens);
    free(r->text);
    memset(r, 0, sizeof *r);
}

/* Buffers and settings shared by every window of one transcription. */
typedef struct {
    WhisperState *st;
    const WhisperModel *model;
    const WhisperParams *p;
    const WhisperSpecials *sp;
    int n_vocab, n_text_ctx, sample_len;
    int *suppress;
    int n_suppress;
    int seq_cap;   /* longest sequence: n_text_ctx + 1 */
    float *logits; /* [n_group_max][n_vocab] */
    int *seqs;     /* [n_group_max][seq_cap], greedy and sampling */
    double *sums;  /* [n_group_max] */
    int *next;     /* [n_group_max] */
    int *src;      /* [n_group_max] */
    DiRng rng;
    char *msg;
    size_t msg_cap;
} Decoder;

static void decoder_free(Decoder *d) {
    free(d->suppress);
    free(d->logits);
    free(d->seqs);
    free(d->sums);
    free(d->next);
    free(d->src);
}

static int decoder_init(Decoder *d, WhisperState *st, const WhisperParams *p, int n_group_max) {
    const WhisperModel *m = st->model;
    d->st = st;
    d->model = m;
    d->p = p;
    d->sp = &m->tok.sp;
    d->n_vocab = m->hp.n_vocab;
    d->n_text_ctx = m->hp.n_text_ctx;
    d->sample_len = p->sample_len > 0 ? p->sample_len : m->hp.n_text_ctx / 2;
    d->seq_cap = m->hp.n_text_ctx + 1;
    size_t g = (size_t)n_group_max;
    d->suppress = malloc((size_t)(m->tok.n_non_speech + 7) * sizeof *d->suppress);
    d->logits = malloc(g * (size_t)d->n_vocab * sizeof *d->logits);
    d->seqs = malloc(g * (size_t)d->seq_cap * sizeof *d->seqs);
    d->sums = malloc(g * sizeof *d->sums);
    d->next = malloc(g * sizeof *d->next);
    d->src = malloc(g * sizeof *d->src);
    if (!d->suppress || !d->logits || !d->seqs || !d->sums || !d->next || !d->src)
        return di_fail(d->msg, d->msg_cap, DI_ENOMEM, "out of memory for decoding buffers");
    d->n_suppress = search_suppress_list(d->sp, m->tok.non_speech, m->tok.n_non_speech,
                                         p->suppress_non_speech, d->suppress);
    di_rng_seed(&d->rng, p->seed);
    return decoder_reserve(st, n_group_max, d->msg, d->msg_cap);
}

static LogitRules window_rules(const Decoder *d, int sample_begin) {
    const WhisperParams *p = d->p;
    LogitRules r;
    memset(&r, 0, sizeof r);
    r.n_vocab = d->n_vocab;
    r.eot = d->sp->eot;
    r.timestamp_begin = d->sp->timestamp_begin;
    r.notimestamps = d->sp->notimestamps;
    r.sample_begin = sample_begin;
    r.without_timestamps = p->without_timestamps;
    /* OpenAI: round(max_initial_timestamp / 0.02), and 0 means no limit. */
    double index = nearbyint(p->max_initial_timestamp / 0.02);
    r.max_initial_timestamp_index =
        p->max_initial_timestamp > 0.0f ? (index < d->n_vocab ? (int)index : d->n_vocab) : -1;
    r.suppress_blank = p->suppress_blank;
    r.blank = d->model->tok.blank;
    r.suppress = d->suppress;
    r.n_suppress = d->n_suppress;
    return r;
}

/* Feeds the initial tokens to sequence 0, copies its cache to the others,
 * and leaves the last initial token's logits in every row of d->logits.
 * The raw logits at sot give the no-speech probability. */
static int prime(Decoder *d, const int *initial, int n_init, int sot_index, int n_group,
                 double *no_speech_prob) {
    const int nv = d->n_vocab;
    int err = decoder_forward(d->st, 1, initial, sot_index + 1, 0, d->logits, d->msg, d->msg_cap);
    if (err) return err;
    *no_speech_prob = search_softmax_at(d->logits, nv, d->sp->nosp);
    if (sot_index + 1 < n_init) {
        err = decoder_forward(d->st, 1, initial + sot_index + 1, n_init - sot_index - 1,
                              sot_index + 1, d->logits, d->msg, d->msg_cap);
        if (err) return err;
    }
    if (n_group > 1) {
        memset(d->src, 0, (size_t)n_group * sizeof *d->src);
        decoder_reorder(d->st, n_group, d->src, n_init);
        for (int g = 1; g < n_group; g++)
            memcpy(d->logits + (size_t)g * nv, d->logits, (size_t)nv * sizeof *d->logits);
    }
    return 0;
}

/* Length of the sampled part of seq: from sample_begin up to the first eot. */
static int sampled_length(const int *seq, int len, int sample_begin, int eot) {
    int end = sample_begin;
    while (end < len && seq[end] != eot)
        end++;
    return end - sample_begin;
}

/* Greedy decoding (temperature 0) or best_of independent samples: every
 * sequence advances in lockstep; ended ones keep being fed eot. Writes the
 * best sequence's sampled tokens (pointer into d->seqs) and its sum. */
static int run_sampling(Decoder *d, const LogitRules *r, const int *initial, int n_init,
                        int n_group, float temperature, const int **best_tokens, int *best_len,
                        double *best_sum) {
    const int nv = d->n_vocab, eot = d->sp->eot, sc = d->seq_cap;
    for (int g = 0; g < n_group; g++) {
        memcpy(d->seqs + (size_t)g * sc, initial, (size_t)n_init * sizeof *initial);
        d->sums[g] = 0.0;
    }
    int len = n_init;
    for (int i = 0; i < d->sample_len; i++) {
        int all_ended = 1;
        for (int g = 0; g < n_group; g++) {
            int *seq = d->seqs + (size_t)g * sc;
            float *row = d->logits + (size_t)g * nv;
            logit_rules_apply(r, seq, len, row);
            d->next[g] =
                search_greedy_step(row, nv, seq[len - 1], eot, temperature, &d->rng, &d->sums[g]);
            seq[len] = d->next[g];
            all_ended &= d->next[g] == eot;
        }
        len++;
        if (all_ended || len > d->n_text_ctx || i + 1 == d->sample_len) break;
        int err =
            decoder_forward(d->st, n_group, d->next, 1, len - 1, d->logits, d->msg, d->msg_cap);
        if (err) return err;
    }

    int lengths[MAX_BEST_OF > MAX_BEAM ? MAX_BEST_OF : MAX_BEAM];
    for (int g = 0; g < n_group; g++)
        lengths[g] = sampled_length(d->seqs + (size_t)g * sc, len, n_init, eot);
    int best = search_rank(d->sums, lengths, n_group);
    *best_tokens = d->seqs + (size_t)best * sc + n_init;
    *best_len = lengths[best];
    *best_sum = d->sums[best];
    return 0;
}

/* Beam search at temperature 0. Copies the best candidate's sampled tokens
 * into *out (caller frees). */
static int run_beam(Decoder *d, const LogitRules *r, const int *initial, int n_init, int beam_size,
                    int **out, int *out_len, double *out_sum) {
    const int nv = d->n_vocab, eot = d->sp->eot;
    BeamSearch b;
    int err = beam_init(&b, beam_size, d->p->patience, eot, nv, initial, n_init, d->seq_cap);
    if (err) return di_fail(d->msg, d->msg_cap, err, "cannot start beam search");
    for (int i = 0; i < d->sample_len; i++) {
        for (int j = 0; j < beam_size; j++) {
            float *row = d->logits + (size_t)j * nv;
            logit_rules_apply(r, b.beams + (size_t)j * b.cap, b.len, row);
            search_log_softmax(row, nv, row);
        }
        int done = beam_step(&b, d->logits, d->next, d->src);
        if (done < 0) {
            err = di_fail(d->msg, d->msg_cap, done, "beam search step failed");
            goto out;
        }
        if (done || b.len > d->n_text_ctx || i + 1 == d->sample_len) break;
        int moved = 0;
        for (int j = 0; j < beam_size; j++)
            moved |= d->src[j] != j;
        /* The new beams grew from these sources; their caches hold every
         * position fed so far (all but the token just appended). */
        if (moved) decoder_reorder(d->st, beam_size, d->src, b.len - 1);
        err =
            decoder_forward(d->st, beam_size, d->next, 1, b.len - 1, d->logits, d->msg, d->msg_cap);
        if (err) goto out;
    }
    err = beam_finalize(&b);
    if (err) {
        err = di_fail(d->msg, d->msg_cap, err, "beam search finalize failed");
        goto out;
    }

    int n = b.n_finished;
    int *lengths = malloc((size_t)n * sizeof *lengths);
    double *scores = malloc((size_t)n * sizeof *scores);
    if (!lengths || !scores) {
        free(lengths);
        free(scores);
        err = di_fail(d->msg, d->msg_cap, DI_ENOMEM, "out of memory ranking beams");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        lengths[i] = sampled_length(b.finished[i].tokens, b.finished[i].n_tokens, n_init, eot);
        scores[i] = b.finished[i].score;
    }
    int best = search_rank(scores, lengths, n);
    *out_len = lengths[best];
    *out_sum = scores[best];
    *out = malloc((size_t)(*out_len > 0 ? *out_len : 1) * sizeof **out);
    if (*out)
        memcpy(*out, b.finished[best].tokens + n_init, (size_t)*out_len * sizeof **out);
    else
        err = di_fail(d->msg, d->msg_cap, DI_ENOMEM, "out of memory for tokens");
    free(lengths);
    free(scores);
out:
    beam_free(&b);
    return err;
}

/* Text of ordinary tokens as a new string ("" for none). */
static char *detokenize(const WhisperModel *model, const int *tokens, int n) {
    if (n <= 0) return strdup("");
    return whisper_detokenize(model, tokens, n);
}

/* OpenAI's DecodingTask.run for one window at one temperature. */
static int decode_window(Decoder *d, const int *initial, int n_init, int sot_index,
                         float temperature, WindowResult *res) {
    const WhisperParams *p = d->p;
    int beam = temperature == 0.0f && p->beam_size > 1;
    int n_group = temperature > 0.0f ? p->best_of : (beam ? p->beam_size : 1);
    LogitRules rules = window_rules(d, n_init);
    memset(res, 0, sizeof *res);
    res->temperature = temperature;

    int err = prime(d, initial, n_init, sot_index, n_group, &res->no_speech_prob);
    if (err) return err;

    double sum = 0.0;
    if (beam) {
        err = run_beam(d, &rules, initial, n_init, n_group, &res->tokens, &res->n_tokens, &sum);
        if (err) return err;
    } else {
        const int *best;
        err = run_sampling(d, &rules, initial, n_init, n_group, temperature, &best, &res->n_tokens,
                           &sum);
        if (err) return err;
        res->tokens = malloc((size_t)(res->n_tokens > 0 ? res->n_tokens : 1) * sizeof *res->tokens);
        if (!res->tokens) return di_fail(d->msg, d->msg_cap, DI_ENOMEM, "out of memory");
        memcpy(res->tokens, best, (size_t)res->n_tokens * sizeof *best);
    }
    res->avg_logprob = search_avg_logprob(sum, res->n_tokens);

    char *raw = detokenize(d->model, res->tokens, res->n_tokens);
    if (!raw) return di_fail(d->msg, d->msg_cap, DI_ENOMEM, "out of memory for text");
    size_t b, e;
    search_strip(raw, strlen(raw), &b, &e);
    memmove(raw, raw + b, e - b);
    raw[e - b] = '\0';
    res->text = raw;
    err = search_compression_ratio(raw, e - b, &res->compression_ratio);
    if (err) return di_fail(d->msg, d->msg_cap, err, "compression ratio failed");
    return 0;
}

/* ---- The transcription loop -------------------------------------------- */

/* Growing lists of tokens and segments for the result. */
typedef struct {
    int *all; /* initial prompt tokens, then every kept segment token */
    int n_all, cap_all;
    WhisperSegment *segs;
    int n_segs, cap_segs;
} Transcript;

static int push_tokens(Transcript *t, const int *tokens, int n) {
    if (t->n_all + n > t->cap_all) {
        int cap = t->cap_all ? t->cap_all : 256;
        while (cap < t->n_all + n)
            cap *= 2;
        int *grown = realloc(t->all, (size_t)cap * sizeof *grown);
        if (!grown) return DI_ENOMEM;
        t->all = grown;
        t->cap_all = cap;
    }
    if (n > 0) memcpy(t->all + t->n_all, tokens, (size_t)n * sizeof *tokens);
    t->n_all += n;
    return 0;
}

static WhisperSegment *push_segment(Transcript *t) {
    if (t->n_segs == t->cap_segs) {
        int cap = t->cap_segs ? 2 * t->cap_segs : 16;
        WhisperSegment *grown = realloc(t->segs, (size_t)cap * sizeof *grown);
        if (!grown) return NULL;
        t->segs = grown;
        t->cap_segs = cap;
    }
    WhisperSegment *s = &t->segs[t->n_segs++];
    memset(s, 0, sizeof *s);
    s->id = t->n_segs - 1;
    return s;
}

static int is_blank(const char *text) {
    size_t b, e;
    search_strip(text, strlen(text), &b, &e);
    return b == e;
}

/* Cuts a window's tokens into segments (OpenAI's rules) and appends them.
 * Returns how many frames seek advances through *advance. */
static int add_segments(Transcript *t, const WhisperModel *model, const WindowResult *res, int seek,
                        int segment_size, int *advance) {
    const int tb = model->tok.sp.timestamp_begin;
    SearchSpan *spans = malloc((size_t)(res->n_tokens + 1) * sizeof *spans);
    if (!spans) return DI_ENOMEM;
    int n_spans = 0, err = 0;
    search_split_segments(res->tokens, res->n_tokens, tb, seek, segment_size, spans, &n_spans,
                          advance);
    for (int i = 0; i < n_spans && !err; i++) {
        WhisperSegment *s = push_segment(t);
        if (!s) {
            err = DI_ENOMEM;
            break;
        }
        const int *toks = res->tokens + spans[i].begin;
        int n = spans[i].end - spans[i].begin;
        s->seek = seek;
        s->start = spans[i].start;
        s->end = spans[i].stop;
        s->temperature = res->temperature;
        s->avg_logprob = (float)res->avg_logprob;
        s->compression_ratio = (float)res->compression_ratio;
        s->no_speech_prob = (float)res->no_speech_prob;
        s->text = detokenize(model, toks, n);
        if (!s->text) {
            err = DI_ENOMEM;
            break;
        }
        /* OpenAI keeps instantaneous or empty segments in place but clears
         * them, so they add nothing to the text or the next prompt. */
        if (s->start == s->end || is_blank(s->text)) {
            s->text[0] = '\0';
            continue;
        }
        s->tokens = malloc((size_t)n * sizeof *s->tokens);
        if (!s->tokens) {
            err = DI_ENOMEM;
            break;
        }
        memcpy(s->tokens, toks, (size_t)n * sizeof *toks);
        s->n_tokens = n;
        err = push_tokens(t, toks, n);
    }
    free(spans);
    return err;
}

/* The initial tokens of a window: [prev] + the last n_text_ctx/2 - 1 prompt
 * tokens + the sot sequence, or the sot sequence alone. */
static int build_initial(const Transcript *t, int prompt_from, const int *sot_seq, int n_sot,
                         int n_text_ctx, int *initial, int *sot_index, int prev) {
    int n = 0, n_prompt = t->n_all - prompt_from;
    int max_prompt = n_text_ctx / 2 - 1;
    if (n_prompt > max_prompt) n_prompt = max_prompt;
    if (n_prompt > 0) {
        initial[n++] = prev;
        memcpy(initial + n, t->all + t->n_all - n_prompt, (size_t)n_prompt * sizeof *initial);
        n += n_prompt;
    }
    *sot_index = n;
    memcpy(initial + n, sot_seq, (size_t)n_sot * sizeof *initial);
    return n + n_sot;
}

/* Encodes " " + strip(prompt) into the start of the token list. */
static int add_initial_prompt(Transcript *t, const WhisperModel *model, const char *prompt,
                              char *msg, size_t cap) {
    size_t b, e;
    search_strip(prompt, strlen(prompt), &b, &e);
    char *text = malloc(e - b + 2);
    if (!text) return di_fail(msg, cap, DI_ENOMEM, "out of memory for the prompt");
    text[0] = ' ';
    memcpy(text + 1, prompt + b, e - b);
    text[e - b + 1] = '\0';
    int *ids = NULL, n = 0;
    int err = whisper_tokenize(model, text, &ids, &n, msg, cap);
    free(text);
    if (err) return err;
    err = push_tokens(t, ids, n);
    free(ids);
    return err ? di_fail(msg, cap, err, "out of memory for the prompt") : 0;
}

/* Decodes one window, retrying at higher temperatures while the result
 * looks repetitive or unlikely. */
static int decode_with_fallback(Decoder *d, const int *initial, int n_init, int sot_index,
                                WindowResult *res) {
    const WhisperParams *p = d->p;
    SearchThresholds th = {p->compression_ratio_threshold, p->logprob_threshold,
                           p->no_speech_threshold};
    int n_temps = temperature_count(p);
    for (int k = 0; k < n_temps; k++) {
        window_result_free(res);
        int err = decode_window(d, initial, n_init, sot_index, temperature_at(p, k), res);
        if (err) return err;
        if (!search_needs_fallback(&th, res->compression_ratio, res->avg_logprob,
                                   res->no_speech_prob))
            break;
        di_log("debug", "fallback at temperature %.2f: compression %.3f, avg_logprob %.3f",
               res->temperature, res->compression_ratio, res->avg_logprob);
    }
    return 0;
}

/* The seek loop over the whole mel. */
static int transcribe_windows(Decoder *d, const float *mel, int n_frames, const int *sot_seq,
                              int n_sot, double duration, Transcript *t) {
    const WhisperParams *p = d->p;
    const WhisperModel *model = d->model;
    const int content_frames = n_frames - WHISPER_N_FRAMES;
    SearchThresholds th = {p->compression_ratio_threshold, p->logprob_threshold,
                           p->no_speech_threshold};
    int *initial = malloc((size_t)(d->n_text_ctx / 2 + n_sot + 1) * sizeof *initial);
    if (!initial) {
        return di_fail(d->msg, d->msg_cap, DI_ENOMEM, "out of memory for a window");
    }
    int err = 0, seek = 0, prompt_from = 0;
    WindowResult res;
    memset(&res, 0, sizeof res);
    while (seek < content_frames && !err) {
        int size =
            content_frames - seek < WHISPER_N_FRAMES ? content_frames - seek : WHISPER_N_FRAMES;
        /* The window reads 3000 frames from seek; past the audio they are
         * the log-mel of the 30 s of silence appended to it. That is what
         * the model saw in training for short audio (OpenAI pads the audio,
         * then takes the mel) and what whisper.cpp feeds it; OpenAI's
         * transcribe() instead zero-fills the last window's mel, which the
         * model never saw and which changes its output on short files. */
        err = whisper_encode(d->st, mel, n_frames, seek, d->msg, d->msg_cap);
        if (err) break;
        int sot_index;
        int n_init = build_initial(t, prompt_from, sot_seq, n_sot, d->n_text_ctx, initial,
                                   &sot_index, d->sp->prev);
        err = decode_with_fallback(d, initial, n_init, sot_index, &res);
        if (err) break;

        int advance = size;
        if (!search_should_skip(&th, res.avg_logprob, res.no_speech_prob)) {
            err = add_segments(t, model, &res, seek, size, &advance);
            if (err) {
                err = di_fail(d->msg, d->msg_cap, err, "out of memory for segments");
                break;
            }
            if (!p->condition_on_previous_text || res.temperature > 0.5f) prompt_from = t->n_all;
        }
        /* The timestamp rules make every advance positive; should a model
         * break them anyway, move on rather than decode the same window again. */
        seek += advance > 0 ? advance : size;
        if (p->progress) {
            int done = seek < content_frames ? seek : content_frames;
            p->progress(p->progress_ud, done * (double)WHISPER_HOP / WHISPER_SAMPLE_RATE, duration);
        }
    }
    window_result_free(&res);
    free(initial);
    return err;
}

static void set_language(WhisperResult *out, int lang) {
    const char *code = lang >= 0 ? whisper_lang_code(lang) : NULL;
    snprintf(out->language, sizeof out->language, "%s", code ? code : "");
}

int whisper_transcribe(WhisperState *state, const float *pcm, size_t n_samples,
                       const WhisperParams *params, WhisperResult *out, char *msg, size_t cap) {
    if (!out) return di_fail(msg, cap, DI_EINVAL, "transcribe: no result to fill");
    memset(out, 0, sizeof *out);
    if (!state || !state->model || (!pcm && n_samples > 0))
        return di_fail(msg, cap, DI_EINVAL, "transcribe: missing state or audio");
    WhisperParams defaults = whisper_default_params();
    const WhisperParams *p = params ? params : &defaults;
    int err = check_params(p, msg, cap);
    if (err) return err;
    const WhisperModel *model = state->model;
    const WhisperSpecials *sp = &model->tok.sp;
    if (model->hp.n_text_ctx < 16)
        return di_fail(msg, cap, DI_EUNSUPPORTED, "n_text_ctx %d is too small",
                       model->hp.n_text_ctx);
    int lang = -1;
    err = resolve_language(model, p, &lang, msg, cap);
    if (err) return err;
    out->duration = (double)n_samples / WHISPER_SAMPLE_RATE;
    set_language(out, lang);

    float *mel = NULL;
    int n_frames = 0;
    Transcript t;
    memset(&t, 0, sizeof t);
    Decoder d;
    memset(&d, 0, sizeof d);
    d.msg = msg;
    d.msg_cap = cap;

    /* Under one mel frame of audio there is nothing to decode. */
    if (n_samples >= WHISPER_HOP) {
        err = whisper_log_mel(model, pcm, n_samples, WHISPER_N_SAMPLES, state->n_threads, &mel,
                              &n_frames, msg, cap);
        if (err) goto fail;
    }
    if (n_frames > WHISPER_N_FRAMES) {
        if (lang < 0) {
            err = whisper_detect_language(state, mel, n_frames, &lang, NULL, msg, cap);
            if (err) goto fail;
            set_language(out, lang);
        }
        int sot_seq[4], n_sot = 0;
        sot_seq[n_sot++] = sp->sot;
        if (model->multilingual) {
            sot_seq[n_sot++] = sp->lang_begin + lang;
            sot_seq[n_sot++] = p->translate ? sp->translate : sp->transcribe;
        }
        if (p->without_timestamps) sot_seq[n_sot++] = sp->notimestamps;

        if (p->initial_prompt) {
            err = add_initial_prompt(&t, model, p->initial_prompt, msg, cap);
            if (err) goto fail;
        }
        int n_prompt_tokens = t.n_all;
        int beam = p->beam_size > 1 ? p->beam_size : 1;
        int sampled = p->temperature > 0.0f || temperature_count(p) > 1;
        int n_group_max = sampled && p->best_of > beam ? p->best_of : beam;
        err = decoder_init(&d, state, p, n_group_max);
        if (err) goto fail;
        err = transcribe_windows(&d, mel, n_frames, sot_seq, n_sot, out->duration, &t);
        if (err) goto fail;
        out->text = detokenize(model, t.all + n_prompt_tokens, t.n_all - n_prompt_tokens);
    } else {
        out->text = strdup("");
    }
    if (!out->text) {
        err = di_fail(msg, cap, DI_ENOMEM, "out of memory for the text");
        goto fail;
    }
    out->segments = t.segs;
    out->n_segments = t.n_segs;
    t.segs = NULL;
    t.n_segs = 0;
    free(t.all);
    free(mel);
    decoder_free(&d);
    return 0;

fail:
    for (int i = 0; i < t.n_segs; i++) {
        free(t.segs[i].text);
        free(t.segs[i].tokens);
    }
    free(t.segs);
    free(t.all);
    free(mel);
    decoder_free(&d);
    whisper_result_free(out);
    return err;
}
