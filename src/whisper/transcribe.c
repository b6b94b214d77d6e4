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
    /* Where this transcription's sequences live in the state: the first
     * self-attention cache and the encoded window. Alone they are 0 and 0;
     * in a batch, a window decoded greedily in lockstep with others has its
     * lane's cache, and every other decode starts at cache 0. */
    int self_base, cross;
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

static int dec_forward(Decoder *d, int n_seq, const int *tokens, int n_tok, int n_past,
                       float *logits) {
    DecSeq seqs[MAX_BEST_OF > MAX_BEAM ? MAX_BEST_OF : MAX_BEAM];
    for (int s = 0; s < n_seq; s++)
        seqs[s] = (DecSeq){d->self_base + s, d->cross, n_past};
    return decoder_forward_seqs(d->st, n_seq, seqs, tokens, n_tok, logits, d->msg, d->msg_cap);
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
    int err = dec_forward(d, 1, initial, sot_index + 1, 0, d->logits);
    if (err) return err;
    *no_speech_prob = search_softmax_at(d->logits, nv, d->sp->nosp);
    if (sot_index + 1 < n_init) {
        err = dec_forward(d, 1, initial + sot_index + 1, n_init - sot_index - 1, sot_index + 1,
                          d->logits);
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
        int err = dec_forward(d, n_group, d->next, 1, len - 1, d->logits);
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
        err = dec_forward(d, beam_size, d->next, 1, b.len - 1, d->logits);
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

/* The rest of DecodingTask.run once the best sequence is chosen: its
 * tokens (copied), average log-probability, stripped text and
 * compression ratio. */
static int finish_window(Decoder *d, const int *tokens, int n_tokens, double sum,
                         WindowResult *res) {
    res->n_tokens = n_tokens;
    res->tokens = malloc((size_t)(n_tokens > 0 ? n_tokens : 1) * sizeof *res->tokens);
    if (!res->tokens) return di_fail(d->msg, d->msg_cap, DI_ENOMEM, "out of memory");
    if (n_tokens > 0) memcpy(res->tokens, tokens, (size_t)n_tokens * sizeof *tokens);
    res->avg_logprob = search_avg_logprob(sum, n_tokens);
    char *raw = detokenize(d->model, res->tokens, n_tokens);
    if (!raw) return di_fail(d->msg, d->msg_cap, DI_ENOMEM, "out of memory for text");
    size_t b, e;
    search_strip(raw, strlen(raw), &b, &e);
    memmove(raw, raw + b, e - b);
    raw[e - b] = '\0';
    res->text = raw;
    int err = search_compression_ratio(raw, e - b, &res->compression_ratio);
    if (err) return di_fail(d->msg, d->msg_cap, err, "compression ratio failed");
    return 0;
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
        int *tokens = NULL, n = 0;
        err = run_beam(d, &rules, initial, n_init, n_group, &tokens, &n, &sum);
        if (!err) err = finish_window(d, tokens, n, sum, res);
        free(tokens);
        return err;
    }
    const int *best;
    int n = 0;
    err = run_sampling(d, &rules, initial, n_init, n_group, temperature, &best, &n, &sum);
    return err ? err : finish_window(d, best, n, sum, res);
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

/* Decodes one window from the k_first-th temperature on, retrying at
 * higher temperatures while the result looks repetitive or unlikely. res
 * may hold the result of an earlier temperature; it is replaced. */
static int decode_with_fallback(Decoder *d, const int *initial, int n_init, int sot_index,
                                int k_first, WindowResult *res) {
    const WhisperParams *p = d->p;
    SearchThresholds th = {p->compression_ratio_threshold, p->logprob_threshold,
                           p->no_speech_threshold};
    int n_temps = temperature_count(p);
    if (k_first > 0 &&
        !search_needs_fallback(&th, res->compression_ratio, res->avg_logprob, res->no_speech_prob))
        return 0;
    if (k_first > 0)
        di_log("debug", "fallback at temperature %.2f: compression %.3f, avg_logprob %.3f",
               res->temperature, res->compression_ratio, res->avg_logprob);
    for (int k = k_first; k < n_temps; k++) {
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

/* ---- Batches of audio ---------------------------------------------------
 *
 * A WhisperBatch transcribes any number of audios (items) together. Each
 * whisper_batch_step moves up to max_lanes items one window on: every
 * window is encoded into its lane's cross-attention slot, then the windows
 * whose first decode is greedy (OpenAI's default) decode in lockstep, one
 * decoder step for all of them, so each weight read serves every window;
 * what needs more (beam search, sampling, the temperature fallback) decodes
 * alone from there. Items join and leave between steps, so a long audio
 * never holds up the short ones behind it.
 *
 * A sequence's logits do not depend on the batch it is in (the few-row
 * kernels sum every row in the same order, and no batch reaches the sgemm
 * path), so an item's transcript is bit for bit the one it gets alone.
 * whisper_transcribe is a batch of one.
 */

/* One audio, or one chunk of a long one. */
typedef struct Item {
    WhisperParams p;
    Decoder d;
    float *mel;
    int n_frames, content_frames;
    int sot_seq[4], n_sot;
    Transcript t;
    int n_prompt_tokens;
    int seek, prompt_from;
    int *initial;
    int n_init, sot_index;
    WindowResult res;
    /* Lockstep greedy decoding of the current window. */
    int lockstep, live, len, step;
    double sum;
    struct Parent *parent;
    int chunk;            /* index among the parent's chunks */
    WhisperResult result; /* this chunk's own result */
    int err;
    char msg[512];
} Item;

/* An audio as the caller added it: one item, or one per chunk. */
typedef struct Parent {
    WhisperResult *out;
    void (*done)(void *ud, int err, const char *msg);
    void *ud;
    void (*progress)(void *ud, double done, double total);
    void *progress_ud;
    double duration;
    int n_chunks, n_left;
    WhisperResult *chunks; /* [n_chunks] */
    double *chunk_offset;  /* [n_chunks] seconds */
    double *chunk_done;    /* seconds done of each chunk, for progress */
    int err;
    char msg[512];
} Parent;

struct WhisperBatch {
    WhisperState *st;
    int max_lanes;
    Item **items; /* in the order added: the oldest get lanes first */
    int n_items, cap_items;
    float *logits; /* [max_lanes][n_vocab] */
    WhisperBatchStats stats;
};

static void item_free(Item *it) {
    if (!it) return;
    free(it->mel);
    free(it->initial);
    window_result_free(&it->res);
    for (int i = 0; i < it->t.n_segs; i++) {
        free(it->t.segs[i].text);
        free(it->t.segs[i].tokens);
    }
    free(it->t.segs);
    free(it->t.all);
    decoder_free(&it->d);
    whisper_result_free(&it->result);
    free(it);
}

static void parent_free(Parent *pa) {
    if (!pa) return;
    for (int i = 0; i < pa->n_chunks; i++)
        whisper_result_free(&pa->chunks[i]);
    free(pa->chunks);
    free(pa->chunk_offset);
    free(pa->chunk_done);
    free(pa);
}

/* Joins the chunks' results into the parent's, times and seeks moved by
 * each chunk's offset. */
static int merge_chunks(Parent *pa) {
    WhisperResult *out = pa->out;
    memset(out, 0, sizeof *out);
    out->duration = pa->duration;
    snprintf(out->language, sizeof out->language, "%s", pa->chunks[0].language);
    int n = 0;
    size_t text_len = 0;
    for (int c = 0; c < pa->n_chunks; c++) {
        n += pa->chunks[c].n_segments;
        text_len += strlen(pa->chunks[c].text ? pa->chunks[c].text : "");
    }
    out->segments = calloc((size_t)(n > 0 ? n : 1), sizeof *out->segments);
    out->text = malloc(text_len + 1);
    if (!out->segments || !out->text) {
        whisper_result_free(out);
        return DI_ENOMEM;
    }
    out->text[0] = '\0';
    size_t at = 0;
    for (int c = 0; c < pa->n_chunks; c++) {
        WhisperResult *r = &pa->chunks[c];
        double off = pa->chunk_offset[c];
        int seek_off = (int)lround(off * WHISPER_SAMPLE_RATE / WHISPER_HOP);
        for (int i = 0; i < r->n_segments; i++) {
            WhisperSegment *s = &out->segments[out->n_segments];
            *s = r->segments[i];
            s->id = out->n_segments++;
            s->start += off;
            s->end += off;
            s->seek += seek_off;
        }
        /* The segments' strings now belong to out. */
        free(r->segments);
        r->segments = NULL;
        r->n_segments = 0;
        size_t len = strlen(r->text ? r->text : "");
        memcpy(out->text + at, r->text ? r->text : "", len);
        at += len;
        out->text[at] = '\0';
    }
    return 0;
}

/* An item ended (err 0: its result is in it->result). The parent's caller
 * hears once every chunk has. */
static void item_ended(Item *it) {
    Parent *pa = it->parent;
    if (it->err && !pa->err) {
        pa->err = it->err;
        snprintf(pa->msg, sizeof pa->msg, "%s", it->msg);
    }
    if (!it->err) {
        pa->chunks[it->chunk] = it->result;
        memset(&it->result, 0, sizeof it->result);
    }
    if (--pa->n_left > 0) return;
    int err = pa->err;
    if (!err) {
        if (pa->n_chunks == 1) {
            *pa->out = pa->chunks[0];
            memset(&pa->chunks[0], 0, sizeof pa->chunks[0]);
        } else if (merge_chunks(pa)) {
            err = DI_ENOMEM;
            snprintf(pa->msg, sizeof pa->msg, "out of memory joining the chunks' results");
        }
    }
    if (pa->done) pa->done(pa->ud, err, err ? pa->msg : "");
    parent_free(pa);
}

static void item_progress(Item *it) {
    Parent *pa = it->parent;
    if (!pa->progress) return;
    int done = it->seek < it->content_frames ? it->seek : it->content_frames;
    pa->chunk_done[it->chunk] = done * (double)WHISPER_HOP / WHISPER_SAMPLE_RATE;
    double sum = 0;
    for (int c = 0; c < pa->n_chunks; c++)
        sum += pa->chunk_done[c];
    pa->progress(pa->progress_ud, sum, pa->duration);
}

static void set_language(WhisperResult *out, int lang) {
    const char *code = lang >= 0 ? whisper_lang_code(lang) : NULL;
    snprintf(out->language, sizeof out->language, "%s", code ? code : "");
}

/* Everything before the first window: the mel, the language, the prompt.
 * Audio shorter than one mel frame has no window, and ends at once with
 * empty text (*ended = 1). */
static int item_start(WhisperState *st, Item *it, const float *pcm, size_t n_samples, int *ended) {
    char *msg = it->msg;
    size_t cap = sizeof it->msg;
    const WhisperModel *model = st->model;
    const WhisperSpecials *sp = &model->tok.sp;
    const WhisperParams *p = &it->p;
    *ended = 0;
    int lang = -1;
    int err = resolve_language(model, p, &lang, msg, cap);
    if (err) return err;
    it->result.duration = (double)n_samples / WHISPER_SAMPLE_RATE;
    set_language(&it->result, lang);
    it->d.msg = msg;
    it->d.msg_cap = cap;

    /* Under one mel frame of audio there is nothing to decode. */
    if (n_samples >= WHISPER_HOP) {
        err = whisper_log_mel(model, pcm, n_samples, WHISPER_N_SAMPLES, st->n_threads, &it->mel,
                              &it->n_frames, msg, cap);
        if (err) return err;
    }
    if (it->n_frames <= WHISPER_N_FRAMES) {
        it->result.text = strdup("");
        if (!it->result.text) return di_fail(msg, cap, DI_ENOMEM, "out of memory for the text");
        *ended = 1;
        return 0;
    }
    it->content_frames = it->n_frames - WHISPER_N_FRAMES;
    if (lang < 0) {
        st->cross_slot = 0; /* between steps every slot is free */
        err = whisper_detect_language(st, it->mel, it->n_frames, &lang, NULL, msg, cap);
        if (err) return err;
        set_language(&it->result, lang);
    }
    it->sot_seq[it->n_sot++] = sp->sot;
    if (model->multilingual) {
        it->sot_seq[it->n_sot++] = sp->lang_begin + lang;
        it->sot_seq[it->n_sot++] = p->translate ? sp->translate : sp->transcribe;
    }
    if (p->without_timestamps) it->sot_seq[it->n_sot++] = sp->notimestamps;
    if (p->initial_prompt) {
        err = add_initial_prompt(&it->t, model, p->initial_prompt, msg, cap);
        if (err) return err;
    }
    it->n_prompt_tokens = it->t.n_all;
    int beam = p->beam_size > 1 ? p->beam_size : 1;
    int sampled = p->temperature > 0.0f || temperature_count(p) > 1;
    int n_group_max = sampled && p->best_of > beam ? p->best_of : beam;
    err = decoder_init(&it->d, st, p, n_group_max);
    if (err) return err;
    it->initial = malloc((size_t)(it->d.n_text_ctx / 2 + it->n_sot + 1) * sizeof *it->initial);
    if (!it->initial) return di_fail(msg, cap, DI_ENOMEM, "out of memory for a window");
    return 0;
}

/* After the last window: the text of every kept token. */
static int item_finish(Item *it) {
    const WhisperModel *model = it->d.model;
    it->result.text =
        detokenize(model, it->t.all + it->n_prompt_tokens, it->t.n_all - it->n_prompt_tokens);
    if (!it->result.text) return di_fail(it->msg, sizeof it->msg, DI_ENOMEM, "out of memory");
    it->result.segments = it->t.segs;
    it->result.n_segments = it->t.n_segs;
    it->t.segs = NULL;
    it->t.n_segs = 0;
    return 0;
}

/* The window at it->seek is encoded in lane `lane`: set up its prompt and,
 * for a greedy first decode, feed the prompt so lockstep can begin. */
static int window_begin(WhisperBatch *b, Item *it, int lane) {
    Decoder *d = &it->d;
    const WhisperParams *p = &it->p;
    double t0 = di_now();
    b->st->cross_slot = lane;
    int err = whisper_encode(b->st, it->mel, it->n_frames, it->seek, it->msg, sizeof it->msg);
    b->stats.encode_s += di_now() - t0;
    b->stats.windows++;
    if (err) return err;
    d->cross = lane;
    d->self_base = 0;
    it->n_init = build_initial(&it->t, it->prompt_from, it->sot_seq, it->n_sot, d->n_text_ctx,
                               it->initial, &it->sot_index, d->sp->prev);
    window_result_free(&it->res);
    it->lockstep = p->temperature == 0.0f && p->beam_size <= 1;
    if (!it->lockstep) return 0;
    d->self_base = lane;
    it->res.temperature = 0.0f;
    t0 = di_now();
    err = prime(d, it->initial, it->n_init, it->sot_index, 1, &it->res.no_speech_prob);
    b->stats.decode_s += di_now() - t0;
    if (err) return err;
    memcpy(d->seqs, it->initial, (size_t)it->n_init * sizeof *it->initial);
    it->sum = 0.0;
    it->len = it->n_init;
    it->step = 0;
    it->live = 1;
    return 0;
}

/* One greedy step of a lockstep window, on the logits in d->logits (row
 * 0): run_sampling's loop body for one sequence at temperature 0. Returns
 * 1 while the window needs another decoder step. */
static int lockstep_pick(Item *it) {
    Decoder *d = &it->d;
    LogitRules r = window_rules(d, it->n_init);
    int *seq = d->seqs;
    logit_rules_apply(&r, seq, it->len, d->logits);
    int tok = search_greedy_step(d->logits, d->n_vocab, seq[it->len - 1], d->sp->eot, 0.0f, &d->rng,
                                 &it->sum);
    seq[it->len++] = tok;
    d->next[0] = tok;
    int more = tok != d->sp->eot && it->len <= d->n_text_ctx && it->step + 1 < d->sample_len;
    it->step++;
    return more;
}

typedef struct {
    Item **items;
    int *more;
} PickJob;

static void pick_task(void *ctx, int i, int thread) {
    (void)thread;
    PickJob *j = ctx;
    j->more[i] = lockstep_pick(j->items[i]);
}

/* Lockstep greedy decoding of every window that asked for it: each
 * decoder step feeds all live windows' last tokens at once. The picks
 * (logit rules, a log-softmax over the vocabulary) are independent per
 * window, so they share the state's threads too. */
static void lockstep_run(WhisperBatch *b, Item **lane_items, int n_lanes) {
    const int nv = b->st->model->hp.n_vocab;
    DecSeq seqs[WHISPER_BATCH_MAX_LANES];
    int toks[WHISPER_BATCH_MAX_LANES], who[WHISPER_BATCH_MAX_LANES];
    int more[WHISPER_BATCH_MAX_LANES];
    Item *live[WHISPER_BATCH_MAX_LANES];
    for (;;) {
        int n_live = 0;
        for (int l = 0; l < n_lanes; l++) {
            Item *it = lane_items[l];
            if (it && it->lockstep && it->live && !it->err) {
                who[n_live] = l;
                live[n_live++] = it;
            }
        }
        if (n_live == 0) return;
        PickJob pj = {live, more};
        di_pool_run(b->st->pool, n_live, pick_task, &pj);
        int n = 0;
        for (int i = 0; i < n_live; i++) {
            live[i]->live = more[i];
            if (!more[i]) continue;
            seqs[n] = (DecSeq){who[i], who[i], live[i]->len - 1};
            toks[n] = live[i]->d.next[0];
            live[n++] = live[i];
        }
        if (n == 0) return;
        double t0 = di_now();
        char msg[512];
        int err = decoder_forward_seqs(b->st, n, seqs, toks, 1, b->logits, msg, sizeof msg);
        b->stats.decode_s += di_now() - t0;
        b->stats.steps++;
        b->stats.tokens += n;
        for (int i = 0; i < n; i++) {
            Item *it = live[i];
            if (err) {
                it->err = err;
                snprintf(it->msg, sizeof it->msg, "%s", msg);
                continue;
            }
            memcpy(it->d.logits, b->logits + (size_t)i * nv, (size_t)nv * sizeof(float));
        }
    }
}

/* The window's decode is done (res holds the kept temperature's result):
 * cut segments, move seek, and say whether the item has more windows. */
static int window_end(Item *it, int *more) {
    const WhisperParams *p = &it->p;
    SearchThresholds th = {p->compression_ratio_threshold, p->logprob_threshold,
                           p->no_speech_threshold};
    int size = it->content_frames - it->seek < WHISPER_N_FRAMES ? it->content_frames - it->seek
                                                                : WHISPER_N_FRAMES;
    int advance = size;
    if (!search_should_skip(&th, it->res.avg_logprob, it->res.no_speech_prob)) {
        int err = add_segments(&it->t, it->d.model, &it->res, it->seek, size, &advance);
        if (err) return di_fail(it->msg, sizeof it->msg, err, "out of memory for segments");
        if (!p->condition_on_previous_text || it->res.temperature > 0.5f)
            it->prompt_from = it->t.n_all;
    }
    /* The timestamp rules make every advance positive; should a model
     * break them anyway, move on rather than decode the same window again. */
    it->seek += advance > 0 ? advance : size;
    item_progress(it);
    *more = it->seek < it->content_frames;
    return 0;
}

int whisper_batch_create(WhisperState *state, int max_lanes, WhisperBatch **out, char *msg,
                         size_t cap) {
    if (!out) return di_fail(msg, cap, DI_EINVAL, "batch: no output pointer");
    *out = NULL;
    if (!state) return di_fail(msg, cap, DI_EINVAL, "batch: no state");
    if (max_lanes < 1 || max_lanes > WHISPER_BATCH_MAX_LANES)
        return di_fail(msg, cap, DI_EINVAL, "batch size must be 1..%d (got %d)",
                       WHISPER_BATCH_MAX_LANES, max_lanes);
    WhisperBatch *b = calloc(1, sizeof *b);
    if (!b) return di_fail(msg, cap, DI_ENOMEM, "out of memory for a batch");
    b->st = state;
    b->max_lanes = max_lanes;
    b->logits = malloc((size_t)max_lanes * state->model->hp.n_vocab * sizeof *b->logits);
    int err = b->logits ? cross_reserve(state, max_lanes, msg, cap)
                        : di_fail(msg, cap, DI_ENOMEM, "out of memory for a batch");
    if (!err) err = decoder_reserve(state, max_lanes, msg, cap);
    if (err) {
        whisper_batch_free(b);
        return err;
    }
    *out = b;
    return 0;
}

void whisper_batch_free(WhisperBatch *b) {
    if (!b) return;
    for (int i = 0; i < b->n_items; i++) {
        b->items[i]->err = DI_EINTERNAL;
        snprintf(b->items[i]->msg, sizeof b->items[i]->msg, "the batch was freed first");
        item_ended(b->items[i]);
        item_free(b->items[i]);
    }
    free(b->items);
    free(b->logits);
    if (b->st) b->st->cross_slot = 0;
    free(b);
}

int whisper_batch_pending(const WhisperBatch *b) {
    return b ? b->n_items : 0;
}

void whisper_batch_stats(const WhisperBatch *b, WhisperBatchStats *out) {
    if (b && out) *out = b->stats;
}

/* Room for n more items, so adding them cannot fail halfway. */
static int reserve_items(WhisperBatch *b, int n) {
    if (b->n_items + n <= b->cap_items) return 0;
    int cap = b->cap_items ? b->cap_items : 16;
    while (cap < b->n_items + n)
        cap *= 2;
    Item **grown = realloc(b->items, (size_t)cap * sizeof *grown);
    if (!grown) return DI_ENOMEM;
    b->items = grown;
    b->cap_items = cap;
    return 0;
}

int whisper_batch_add(WhisperBatch *b, const float *pcm, size_t n_samples,
                      const WhisperParams *params, WhisperResult *out,
                      void (*done)(void *ud, int err, const char *msg), void *ud, char *msg,
                      size_t cap) {
    if (!b || !out) return di_fail(msg, cap, DI_EINVAL, "batch_add: missing batch or result");
    memset(out, 0, sizeof *out);
    if (!pcm && n_samples > 0) return di_fail(msg, cap, DI_EINVAL, "batch_add: missing audio");
    WhisperParams defaults = whisper_default_params();
    const WhisperParams *p = params ? params : &defaults;
    int err = check_params(p, msg, cap);
    if (err) return err;
    if (!(p->chunk_seconds >= 0.0f) || !isfinite(p->chunk_seconds))
        return di_fail(msg, cap, DI_EINVAL, "chunk_seconds must be >= 0");
    if (b->st->model->hp.n_text_ctx < 16)
        return di_fail(msg, cap, DI_EUNSUPPORTED, "n_text_ctx %d is too small",
                       b->st->model->hp.n_text_ctx);
    int lang = -1;
    err = resolve_language(b->st->model, p, &lang, msg, cap);
    if (err) return err;

    size_t *cuts = NULL;
    int n_cuts = 0;
    if (p->chunk_seconds > 0.0f) {
        err = whisper_split_at_silences(pcm, n_samples, p->chunk_seconds, &cuts, &n_cuts, msg, cap);
        if (err) return err;
    }
    int n_chunks = n_cuts + 1;
    Parent *pa = calloc(1, sizeof *pa);
    Item **its = calloc((size_t)n_chunks, sizeof *its);
    int *ended = calloc((size_t)n_chunks, sizeof *ended);
    if (pa) {
        pa->chunks = calloc((size_t)n_chunks, sizeof *pa->chunks);
        pa->chunk_offset = calloc((size_t)n_chunks, sizeof *pa->chunk_offset);
        pa->chunk_done = calloc((size_t)n_chunks, sizeof *pa->chunk_done);
    }
    if (!pa || !its || !ended || !pa->chunks || !pa->chunk_offset || !pa->chunk_done) {
        err = di_fail(msg, cap, DI_ENOMEM, "out of memory for a batch item");
        goto fail;
    }
    pa->out = out;
    pa->done = done;
    pa->ud = ud;
    pa->progress = p->progress;
    pa->progress_ud = p->progress_ud;
    pa->duration = (double)n_samples / WHISPER_SAMPLE_RATE;
    pa->n_chunks = pa->n_left = n_chunks;
    if (reserve_items(b, n_chunks)) {
        err = di_fail(msg, cap, DI_ENOMEM, "out of memory for a batch item");
        goto fail;
    }
    for (int c = 0; c < n_chunks; c++) {
        size_t from = c ? cuts[c - 1] : 0, to = c < n_cuts ? cuts[c] : n_samples;
        Item *it = its[c] = calloc(1, sizeof *it);
        if (!it) {
            err = di_fail(msg, cap, DI_ENOMEM, "out of memory for a batch item");
            goto fail;
        }
        it->p = *p;
        /* The chunks of one audio speak its first chunk's language. */
        if (c > 0 && lang < 0 && its[0]->result.language[0])
            it->p.language = whisper_lang_code(whisper_lang_id(its[0]->result.language));
        it->parent = pa;
        it->chunk = c;
        pa->chunk_offset[c] = (double)from / WHISPER_SAMPLE_RATE;
        err = item_start(b->st, it, pcm ? pcm + from : NULL, to - from, &ended[c]);
        if (err) {
            di_fail(msg, cap, err, "%s", it->msg);
            goto fail;
        }
    }
    free(cuts);
    for (int c = 0; c < n_chunks; c++)
        if (!ended[c]) b->items[b->n_items++] = its[c];
    /* Chunks with nothing to decode end now; when all do, so does the audio. */
    for (int c = 0; c < n_chunks; c++) {
        if (!ended[c]) continue;
        item_ended(its[c]);
        item_free(its[c]);
    }
    free(ended);
    free(its);
    return 0;
fail:
    for (int c = 0; its && c < n_chunks; c++)
        item_free(its[c]);
    free(its);
    free(ended);
    parent_free(pa);
    free(cuts);
    memset(out, 0, sizeof *out);
    return err;
}

/* The end of whisper_transcribe's batch of one. */
typedef struct {
    int err;
    char msg[512];
} Outcome;

static void outcome_done(void *ud, int err, const char *msg) {
    Outcome *o = ud;
    o->err = err;
    snprintf(o->msg, sizeof o->msg, "%s", msg);
}

int whisper_batch_step(WhisperBatch *b, char *msg, size_t cap) {
    if (!b) return di_fail(msg, cap, DI_EINVAL, "batch_step: no batch");
    int n_lanes = b->n_items < b->max_lanes ? b->n_items : b->max_lanes;
    if (n_lanes == 0) return 0;
    Item *lane_items[WHISPER_BATCH_MAX_LANES];
    for (int l = 0; l < n_lanes; l++) {
        Item *it = lane_items[l] = b->items[l];
        it->err = window_begin(b, it, l);
    }
    lockstep_run(b, lane_items, n_lanes);
    for (int l = 0; l < n_lanes; l++) {
        Item *it = lane_items[l];
        Decoder *d = &it->d;
        int more = 0;
        if (!it->err && it->lockstep) {
            int n = sampled_length(d->seqs, it->len, it->n_init, d->sp->eot);
            it->err = finish_window(d, d->seqs + it->n_init, n, it->sum, &it->res);
        }
        if (!it->err) {
            /* Everything else decodes alone, from cache 0. */
            d->self_base = 0;
            double t0 = di_now();
            it->err = decode_with_fallback(d, it->initial, it->n_init, it->sot_index,
                                           it->lockstep ? 1 : 0, &it->res);
            b->stats.decode_s += di_now() - t0;
        }
        if (!it->err) it->err = window_end(it, &more);
        if (!it->err && !more) it->err = item_finish(it);
        if (it->err || !more) lane_items[l] = NULL;
    }
    /* Drop the ended items, keeping the order of the rest. */
    int kept = 0;
    for (int i = 0; i < b->n_items; i++) {
        Item *it = b->items[i];
        int ended = i < n_lanes && lane_items[i] == NULL;
        if (!ended) {
            b->items[kept++] = it;
            continue;
        }
        item_ended(it);
        item_free(it);
    }
    b->n_items = kept;
    b->st->cross_slot = 0;
    return b->n_items;
}

int whisper_transcribe(WhisperState *state, const float *pcm, size_t n_samples,
                       const WhisperParams *params, WhisperResult *out, char *msg, size_t cap) {
    if (!out) return di_fail(msg, cap, DI_EINVAL, "transcribe: no result to fill");
    memset(out, 0, sizeof *out);
    if (!state || !state->model || (!pcm && n_samples > 0))
        return di_fail(msg, cap, DI_EINVAL, "transcribe: missing state or audio");
    WhisperBatch *b = NULL;
    int err = whisper_batch_create(state, 1, &b, msg, cap);
    if (err) return err;
    Outcome oc = {0, {0}};
    err = whisper_batch_add(b, pcm, n_samples, params, out, outcome_done, &oc, msg, cap);
    while (!err && whisper_batch_pending(b) > 0)
        whisper_batch_step(b, msg, cap);
    whisper_batch_free(b);
    if (err) return err;
    if (oc.err) {
        whisper_result_free(out);
        return di_fail(msg, cap, oc.err, "%s", oc.msg);
    }
    return 0;
}
