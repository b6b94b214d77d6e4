/*
 * search.c: the decoding rules of OpenAI Whisper's DecodingTask and
 * transcribe(), written as plain functions over logits and token lists.
 * See search.h for each function's contract.
 */
#include "whisper/search.h"
#include "whisper/whisper_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Seconds per mel frame and per timestamp step (two frames per encoder
 * position). */
#define FRAME_SECONDS ((double)WHISPER_HOP / WHISPER_SAMPLE_RATE)
#define TIMESTAMP_SECONDS (2.0 * WHISPER_HOP / WHISPER_SAMPLE_RATE)

/* ---- Logit filters ------------------------------------------------------ */

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int search_suppress_list(const WhisperSpecials *sp, const int *non_speech, int n_non_speech,
                         int suppress_non_speech, int *out) {
    int n = 0;
    if (suppress_non_speech && non_speech) {
        for (int i = 0; i < n_non_speech; i++)
            out[n++] = non_speech[i];
    }
    /* Specials that must never be sampled. OpenAI adds all but notimestamps
     * here; notimestamps is removed by its timestamp rules instead, and we
     * drop it always because it is never a valid output. */
    const int specials[7] = {sp->translate, sp->transcribe, sp->sot,         sp->prev,
                             sp->solm,      sp->nosp,       sp->notimestamps};
    for (int i = 0; i < 7; i++)
        out[n++] = specials[i];
    qsort(out, (size_t)n, sizeof *out, cmp_int);
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m == 0 || out[m - 1] != out[i]) out[m++] = out[i];
    }
    return m;
}

static void fill_neg_inf(float *logits, int from, int to) {
    for (int i = from < 0 ? 0 : from; i < to; i++)
        logits[i] = -INFINITY;
}

static void suppress_one(const LogitRules *r, float *logits, int id) {
    if (id >= 0 && id < r->n_vocab) logits[id] = -INFINITY;
}

/* OpenAI's ApplyTimestampRules: timestamps come in pairs (except right
 * before eot), never decrease, a window starts with one, and when the
 * timestamps together are more likely than any text token, one is forced. */
static void timestamp_rules(const LogitRules *r, const int *tokens, int n_tokens, float *logits) {
    const int tb = r->timestamp_begin, n = r->n_vocab;
    const int *sampled = tokens + r->sample_begin;
    int ns = n_tokens - r->sample_begin;
    if (ns < 0) ns = 0;

    int last_ts = ns >= 1 && sampled[ns - 1] >= tb;
    int penultimate_ts = ns < 2 || sampled[ns - 2] >= tb;
    if (last_ts) {
        if (penultimate_ts)
            fill_neg_inf(logits, tb, n); /* a pair just closed: text next */
        else
            fill_neg_inf(logits, 0, r->eot); /* a lone timestamp: its partner or eot */
    }

    int last_seen = -1;
    for (int i = ns - 1; i >= 0; i--) {
        if (sampled[i] >= tb) {
            last_seen = sampled[i];
            break;
        }
    }
    if (last_seen >= 0) {
        /* The partner of a lone timestamp may equal it; any later timestamp
         * must be strictly larger so every segment has nonzero length. */
        int lowest_allowed = (last_ts && !penultimate_ts) ? last_seen : last_seen + 1;
        fill_neg_inf(logits, tb, lowest_allowed < n ? lowest_allowed : n);
    }

    if (ns == 0) {
        fill_neg_inf(logits, 0, tb);
        if (r->max_initial_timestamp_index >= 0) {
            long first_banned = (long)tb + r->max_initial_timestamp_index + 1;
            if (first_banned < n) fill_neg_inf(logits, (int)first_banned, n);
        }
    }

    /* OpenAI compares log-softmax values; subtracting the same normaliser
     * from both sides changes nothing, so the raw logits are compared. */
    if (tb < n) {
        double ts_mass = search_logsumexp(logits + tb, n - tb);
        if (ts_mass > op_max(logits, tb)) fill_neg_inf(logits, 0, tb);
    }
}

void logit_rules_apply(const LogitRules *r, const int *tokens, int n_tokens, float *logits) {
    if (r->suppress_blank && n_tokens == r->sample_begin) {
        suppress_one(r, logits, r->blank);
        suppress_one(r, logits, r->eot);
    }
    for (int i = 0; i < r->n_suppress; i++)
        suppress_one(r, logits, r->suppress[i]);
    suppress_one(r, logits, r->notimestamps);
    if (!r->without_timestamps && r->timestamp_begin >= 0 && r->timestamp_begin <= r->n_vocab)
        timestamp_rules(r, tokens, n_tokens, logits);
}

/* ---- Small numerics ------------------------------------------------------ */

double search_logsumexp(const float *x, int n) {
    float max = op_max(x, n);
    if (max == -INFINITY) return -INFINITY;
    return max + log(op_sum_exp(x, n, max, 1.0f, NULL));
}

void search_log_softmax(const float *x, int n, float *out) {
    double lse = search_logsumexp(x, n);
    for (int i = 0; i < n; i++) {
        out[i] = lse == -INFINITY ? -INFINITY : (float)((double)x[i] - lse);
    }
}

int search_argmax(const float *x, int n) {
    float max = op_max(x, n);
    for (int i = 0; i < n; i++) {
        if (x[i] == max) return i;
    }
    return 0;
}

double search_softmax_at(const float *x, int n, int id) {
    if (id < 0 || id >= n) return 0.0;
    double lse = search_logsumexp(x, n);
    if (lse == -INFINITY) return 0.0;
    return exp((double)x[id] - lse);
}

/* Draws from softmax(logits / temperature) by walking the cumulative sum;
 * blocks whose whole mass lies below the draw are stepped over by their
 * sums, so only one block is walked token by token. */
#define PICK_BLOCK 256
int search_pick(const float *logits, int n, float temperature, DiRng *rng) {
    int best = search_argmax(logits, n);
    if (!(temperature > 0.0f) || !rng) return best;
    float max = logits[best], inv_t = 1.0f / temperature;
    if (!isfinite(max)) return best;
    double u = di_rng_uniform(rng) * op_sum_exp(logits, n, max, inv_t, NULL);
    double cum = 0.0;
    float w[PICK_BLOCK];
    int last_possible = best;
    for (int i0 = 0; i0 < n; i0 += PICK_BLOCK) {
        int len = n - i0 < PICK_BLOCK ? n - i0 : PICK_BLOCK;
        double block = op_sum_exp(logits + i0, len, max, inv_t, w);
        if (block <= 0.0) continue;
        if (cum + block <= u) {
            cum += block;
            for (int k = len - 1; k >= 0; k--) {
                if (w[k] > 0.0f) {
                    last_possible = i0 + k;
                    break;
                }
            }
            continue;
        }
        for (int k = 0; k < len; k++) {
            if (w[k] <= 0.0f) continue;
            cum += w[k];
            last_possible = i0 + k;
            if (cum > u) return i0 + k;
        }
    }
    /* Rounding can leave u a hair above the final sum. */
    return last_possible;
}

int search_greedy_step(const float *logits, int n_vocab, int last, int eot, float temperature,
                       DiRng *rng, double *sum_logprob) {
    if (last == eot) return eot;
    int tok = search_pick(logits, n_vocab, temperature, rng);
    *sum_logprob += (double)logits[tok] - search_logsumexp(logits, n_vocab);
    return tok;
}

/* ---- Beam search ------------------------------------------------------- */

void beam_free(BeamSearch *b) {
    if (!b) return;
    for (int i = 0; i < b->n_finished; i++)
        free(b->finished[i].tokens);
    free(b->finished);
    free(b->beams);
    free(b->sum_logprob);
    free(b->next_beams);
    free(b->next_sum);
    free(b->rep);
    free(b->top_tok);
    free(b->top_lp);
    free(b->cand_tok);
    free(b->cand_src);
    free(b->cand_order);
    free(b->cand_score);
    memset(b, 0, sizeof *b);
}

int beam_init(BeamSearch *b, int beam_size, float patience, int eot, int n_vocab,
              const int *initial, int n_initial, int cap) {
    memset(b, 0, sizeof *b);
    if (beam_size < 1 || !(patience > 0.0f) || n_vocab < beam_size + 2 || n_initial < 0 ||
        cap < n_initial || cap < 1)
        return DI_EINVAL;
    /* Python's round() rounds halves to even, as nearbyint() does. */
    double mc = nearbyint((double)beam_size * patience);
    if (!(mc >= 1.0) || mc > 1e6) return DI_EINVAL;
    b->beam_size = beam_size;
    b->max_candidates = (int)mc;
    b->eot = eot;
    b->n_vocab = n_vocab;
    b->cap = cap;
    b->len = n_initial;
    b->finished_cap = b->max_candidates + beam_size;
    size_t nb = (size_t)beam_size, nc = nb * (nb + 1);
    b->beams = malloc(nb * (size_t)cap * sizeof *b->beams);
    b->next_beams = malloc(nb * (size_t)cap * sizeof *b->next_beams);
    b->sum_logprob = calloc(nb, sizeof *b->sum_logprob);
    b->next_sum = calloc(nb, sizeof *b->next_sum);
    b->rep = malloc(nb * sizeof *b->rep);
    b->top_tok = malloc((nb + 1) * sizeof *b->top_tok);
    b->top_lp = malloc((nb + 1) * sizeof *b->top_lp);
    b->cand_tok = malloc(nc * sizeof *b->cand_tok);
    b->cand_src = malloc(nc * sizeof *b->cand_src);
    b->cand_order = malloc(nc * sizeof *b->cand_order);
    b->cand_score = malloc(nc * sizeof *b->cand_score);
    b->finished = calloc((size_t)b->finished_cap, sizeof *b->finished);
    if (!b->beams || !b->next_beams || !b->sum_logprob || !b->next_sum || !b->rep || !b->top_tok ||
        !b->top_lp || !b->cand_tok || !b->cand_src || !b->cand_order || !b->cand_score ||
        !b->finished) {
        beam_free(b);
        return DI_ENOMEM;
    }
    for (int j = 0; j < beam_size; j++) {
        if (n_initial > 0)
            memcpy(b->beams + (size_t)j * cap, initial, (size_t)n_initial * sizeof *initial);
    }
    return 0;
}

/* The k best entries of x, best first; equal values keep index order, like
 * a stable sort. */
static void top_k(const float *x, int n, int k, int *tok, float *val) {
    int count = 0;
    for (int i = 0; i < n; i++) {
        float v = x[i];
        if (count == k && !(v > val[count - 1])) continue;
        int pos = count < k ? count++ : k - 1;
        while (pos > 0 && val[pos - 1] < v) {
            val[pos] = val[pos - 1];
            tok[pos] = tok[pos - 1];
            pos--;
        }
        val[pos] = v;
        tok[pos] = i;
    }
}

/* Stores seq + [eot] with its score; an identical sequence already stored
 * just takes the new score, as a Python dict keyed by the sequence would. */
static int record_finished(BeamSearch *b, const int *seq, int len, double score) {
    for (int i = 0; i < b->n_finished; i++) {
        SearchSeq *f = &b->finished[i];
        if (f->n_tokens == len + 1 && memcmp(f->tokens, seq, (size_t)len * sizeof *seq) == 0) {
            f->score = score;
            return 0;
        }
    }
    if (b->n_finished >= b->finished_cap) return DI_EINTERNAL;
    int *copy = malloc((size_t)(len + 1) * sizeof *copy);
    if (!copy) return DI_ENOMEM;
    if (len > 0) memcpy(copy, seq, (size_t)len * sizeof *seq);
    copy[len] = b->eot;
    b->finished[b->n_finished++] = (SearchSeq){copy, len + 1, score};
    return 0;
}

/* Gathers every beam's beam_size + 1 best continuations. Beams with the
 * same tokens produce the same sequences; like OpenAI's dict keyed by
 * sequence, such a candidate keeps its first position while the later beam
 * overwrites its score and source. Returns the number of candidates. */
static int gather_candidates(BeamSearch *b, const float *logprobs) {
    const int nb = b->beam_size, k = nb + 1;
    for (int j = 0; j < nb; j++) {
        b->rep[j] = j;
        for (int i = 0; i < j; i++) {
            if (memcmp(b->beams + (size_t)i * b->cap, b->beams + (size_t)j * b->cap,
                       (size_t)b->len * sizeof(int)) == 0) {
                b->rep[j] = b->rep[i];
                break;
            }
        }
    }
    int n = 0;
    for (int j = 0; j < nb; j++) {
        top_k(logprobs + (size_t)j * b->n_vocab, b->n_vocab, k, b->top_tok, b->top_lp);
        for (int t = 0; t < k; t++) {
            double score = b->sum_logprob[j] + (double)b->top_lp[t];
            int c = 0;
            while (c < n &&
                   !(b->cand_tok[c] == b->top_tok[t] && b->rep[b->cand_src[c]] == b->rep[j]))
                c++;
            if (c == n) {
                b->cand_tok[n] = b->top_tok[t];
                n++;
            }
            b->cand_score[c] = score;
            b->cand_src[c] = j;
        }
    }
    return n;
}

int beam_step(BeamSearch *b, const float *logprobs, int *next_tokens, int *sources) {
    const int nb = b->beam_size;
    if (b->len >= b->cap) return DI_ERANGE;
    int n = gather_candidates(b, logprobs);

    /* Stable insertion sort by score, best first (Python's sorted(reverse=True)). */
    for (int i = 0; i < n; i++) {
        int c = i, pos = i;
        while (pos > 0 && b->cand_score[b->cand_order[pos - 1]] < b->cand_score[c]) {
            b->cand_order[pos] = b->cand_order[pos - 1];
            pos--;
        }
        b->cand_order[pos] = c;
    }

    /* Walk the ranking: eot candidates finish (while there is room), the
     * others become the new beams until beam_size are kept. */
    int saved = 0;
    for (int i = 0; i < n && saved < nb; i++) {
        int c = b->cand_order[i], src = b->cand_src[c];
        const int *prefix = b->beams + (size_t)src * b->cap;
        if (b->cand_tok[c] == b->eot) {
            if (b->n_finished < b->max_candidates) {
                int err = record_finished(b, prefix, b->len, b->cand_score[c]);
                if (err) return err;
            }
            continue;
        }
        int *dst = b->next_beams + (size_t)saved * b->cap;
        memcpy(dst, prefix, (size_t)b->len * sizeof *dst);
        dst[b->len] = b->cand_tok[c];
        b->next_sum[saved] = b->cand_score[c];
        next_tokens[saved] = b->cand_tok[c];
        sources[saved] = src;
        saved++;
    }
    /* Each beam offers beam_size + 1 distinct tokens, at most one of them
     * eot, so beam_size live candidates always exist. */
    if (saved < nb) return DI_EINTERNAL;

    int *swap = b->beams;
    b->beams = b->next_beams;
    b->next_beams = swap;
    memcpy(b->sum_logprob, b->next_sum, (size_t)nb * sizeof *b->sum_logprob);
    b->len++;
    return b->n_finished >= b->max_candidates;
}

int beam_finalize(BeamSearch *b) {
    const int nb = b->beam_size;
    int used[16 + 1] = {0};
    int *mark = nb <= 16 ? used : calloc((size_t)nb, sizeof *mark);
    if (!mark) return DI_ENOMEM;
    int err = 0;
    /* Best live beam first; ties go to the later beam, as numpy's reversed
     * argsort does. */
    while (b->n_finished < nb && !err) {
        int best = -1;
        for (int j = 0; j < nb; j++) {
            if (!mark[j] && (best < 0 || b->sum_logprob[j] >= b->sum_logprob[best])) best = j;
        }
        if (best < 0) break;
        mark[best] = 1;
        err = record_finished(b, b->beams + (size_t)best * b->cap, b->len, b->sum_logprob[best]);
    }
    if (mark != used) free(mark);
    return err;
}

/* ---- Choosing the result ------------------------------------------------ */

int search_rank(const double *sum_logprob, const int *length, int n) {
    int best = 0;
    double best_score = -INFINITY;
    for (int i = 0; i < n; i++) {
        double score = sum_logprob[i] / (length[i] > 0 ? length[i] : 1);
        if (i == 0 || score > best_score) {
            best = i;
            best_score = score;
        }
    }
    return best;
}

double search_avg_logprob(double sum_logprob, int n_tokens) {
    return sum_logprob / (n_tokens + 1);
}

int search_compression_ratio(const char *text, size_t len, double *ratio) {
    uLongf out_len = compressBound((uLong)len);
    Bytef *out = malloc(out_len);
    if (!out) return DI_ENOMEM;
    int zerr = compress2(out, &out_len, (const Bytef *)(text ? text : ""), (uLong)len,
                         Z_DEFAULT_COMPRESSION);
    free(out);
    if (zerr != Z_OK || out_len == 0) return DI_EINTERNAL;
    *ratio = (double)len / (double)out_len;
    return 0;
}

int search_needs_fallback(const SearchThresholds *t, double compression_ratio, double avg_logprob,
                          double no_speech_prob) {
    int fallback = compression_ratio > t->compression_ratio || avg_logprob < t->logprob;
    /* A silent window is unlikely text by nature; retrying cannot help. */
    if (no_speech_prob > t->no_speech && avg_logprob < t->logprob) fallback = 0;
    return fallback;
}

int search_should_skip(const SearchThresholds *t, double avg_logprob, double no_speech_prob) {
    return no_speech_prob > t->no_speech && !(avg_logprob > t->logprob);
}

/* ---- Segments ----------------------------------------------------------- */

void search_split_segments(const int *tokens, int n_tokens, int timestamp_begin, int seek,
                           int segment_size, SearchSpan *spans, int *n_spans, int *seek_advance) {
    const int tb = timestamp_begin;
    const double offset = (double)seek * WHISPER_HOP / WHISPER_SAMPLE_RATE;
    int single_ending = n_tokens >= 2 && tokens[n_tokens - 2] < tb && tokens[n_tokens - 1] >= tb;
    int n = 0, last = 0;
    for (int k = 1; k < n_tokens; k++) {
        if (tokens[k - 1] >= tb && tokens[k] >= tb) {
            spans[n++] = (SearchSpan){last, k, offset + (tokens[last] - tb) * TIMESTAMP_SECONDS,
                                      offset + (tokens[k - 1] - tb) * TIMESTAMP_SECONDS};
            last = k;
        }
    }
    if (n > 0) {
        if (single_ending) {
            spans[n++] =
                (SearchSpan){last, n_tokens, offset + (tokens[last] - tb) * TIMESTAMP_SECONDS,
                             offset + (tokens[n_tokens - 1] - tb) * TIMESTAMP_SECONDS};
            *seek_advance = segment_size;
        } else {
            /* Resume right after the last closed segment; the model is
             * re-run on whatever followed it. */
            *seek_advance = (tokens[last - 1] - tb) * 2;
        }
        *n_spans = n;
        return;
    }
    double duration = segment_size * FRAME_SECONDS;
    for (int k = n_tokens - 1; k >= 0; k--) {
        if (tokens[k] >= tb) {
            if (tokens[k] != tb) duration = (tokens[k] - tb) * TIMESTAMP_SECONDS;
            break;
        }
    }
    spans[0] = (SearchSpan){0, n_tokens, offset, offset + duration};
    *n_spans = 1;
    *seek_advance = segment_size;
}

/* Byte length of a whitespace character (as Python's str.isspace() sees
 * it) starting at s[i], or 0. */
static int space_at(const unsigned char *s, size_t len, size_t i) {
    unsigned char c = s[i];
    if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) return 1;
    if (c == 0xc2 && i + 1 < len && (s[i + 1] == 0x85 || s[i + 1] == 0xa0)) return 2;
    if (i + 2 >= len) return 0;
    unsigned char c1 = s[i + 1], c2 = s[i + 2];
    if (c == 0xe1 && c1 == 0x9a && c2 == 0x80) return 3; /* U+1680 */
    if (c == 0xe2 && c1 == 0x80 && (c2 <= 0x8a || c2 == 0xa8 || c2 == 0xa9 || c2 == 0xaf) &&
        c2 >= 0x80)
        return 3;                                        /* U+2000..200A, 2028, 2029, 202F */
    if (c == 0xe2 && c1 == 0x81 && c2 == 0x9f) return 3; /* U+205F */
    if (c == 0xe3 && c1 == 0x80 && c2 == 0x80) return 3; /* U+3000 */
    return 0;
}

void search_strip(const char *text, size_t len, size_t *begin, size_t *end) {
    const unsigned char *s = (const unsigned char *)text;
    size_t b = 0, e = len;
    int k;
    while (b < e && (k = space_at(s, e, b)) > 0)
        b += (size_t)k;
    for (;;) {
        int found = 0;
        /* A multi-byte space starts with a lead byte, so matching its exact
         * bytes at the end cannot split another character. */
        for (k = 1; k <= 3 && !found; k++) {
            if (e >= b + (size_t)k && space_at(s, e, e - (size_t)k) == k) {
                e -= (size_t)k;
                found = 1;
            }
        }
        if (!found) break;
    }
    *begin = b;
    *end = e;
}
