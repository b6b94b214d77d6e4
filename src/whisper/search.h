/*
 * search: the decoding decisions of OpenAI Whisper's transcribe(), as pure
 * functions over float arrays so they can be tested on hand-made logits.
 *
 * Nothing here runs the model. transcribe.c feeds these functions the
 * decoder's logits and acts on what they return (which token to append,
 * which beam's cache to copy, where a segment starts and ends).
 *
 * Private to src/whisper (and its tests).
 */
#ifndef DIARIST_WHISPER_SEARCH_H
#define DIARIST_WHISPER_SEARCH_H

#include <stddef.h>
#include <stdint.h>

#include "whisper/whisper.h"

/* ---- Logit filters ------------------------------------------------------ */

/* What OpenAI's logit filters (SuppressBlank, SuppressTokens,
 * ApplyTimestampRules) need to know about one decoding window. */
typedef struct {
    int n_vocab;
    int eot;
    int timestamp_begin;
    int notimestamps;
    int sample_begin;                /* number of initial (prompt + sot) tokens */
    int without_timestamps;          /* 1 disables the timestamp rules */
    int max_initial_timestamp_index; /* 50 for 1.0 s; < 0 means no limit */
    int suppress_blank;
    int blank;           /* encode(" ")[0] */
    const int *suppress; /* ids always set to -inf */
    int n_suppress;
} LogitRules;

/* Writes OpenAI's suppress list for suppress_tokens="-1" into out (capacity
 * n_non_speech + 7): the non-speech ids (if suppress_non_speech) plus the
 * specials that are never valid output (translate, transcribe, sot, prev,
 * solm, nosp, notimestamps). Sorted, without duplicates; returns the count. */
int search_suppress_list(const WhisperSpecials *sp, const int *non_speech, int n_non_speech,
                         int suppress_non_speech, int *out);

/* Applies the filters in OpenAI's order to the logits of the next token,
 * given the sequence so far (initial tokens included). */
void logit_rules_apply(const LogitRules *r, const int *tokens, int n_tokens, float *logits);

/* ---- Small numerics ------------------------------------------------------ */

/* log(sum(exp(x))): float exponents (op_sum_exp) summed in double; -inf
 * when every entry is -inf. */
double search_logsumexp(const float *x, int n);
/* out[i] = x[i] - logsumexp(x); -inf entries stay -inf. out may equal x. */
void search_log_softmax(const float *x, int n, float *out);
/* Index of the first maximum. */
int search_argmax(const float *x, int n);
/* softmax(x)[id]: the no-speech probability is this at the sot position. */
double search_softmax_at(const float *x, int n, int id);

/* Chooses the next token: the argmax at temperature 0, otherwise a draw
 * from softmax(logits / temperature). */
int search_pick(const float *logits, int n, float temperature, DiRng *rng);

/* One step of OpenAI's GreedyDecoder for one sequence: a sequence that has
 * ended (last == eot) keeps emitting eot and its sum stops growing;
 * otherwise the token is picked and its log-probability under the filtered
 * logits at temperature 1 is added to *sum_logprob. Returns the token. */
int search_greedy_step(const float *logits, int n_vocab, int last, int eot, float temperature,
                       DiRng *rng, double *sum_logprob);

/* ---- Beam search ----------------------------------------------------- */

/* A finished candidate: the whole sequence (initial tokens, sampled tokens,
 * the closing eot) and its summed log-probability. */
typedef struct {
    int *tokens;
    int n_tokens;
    double score;
} SearchSeq;

/* OpenAI's BeamSearchDecoder for one audio window. */
typedef struct {
    int beam_size;
    int max_candidates; /* round(beam_size * patience) */
    int eot;
    int n_vocab;
    int cap;             /* longest sequence stored */
    int len;             /* current length of every live beam */
    int *beams;          /* [beam_size][cap] live sequences */
    double *sum_logprob; /* [beam_size] */
    SearchSeq *finished; /* in the order they were recorded */
    int n_finished;
    int finished_cap;
    /* Work space for one step. */
    int *next_beams;                       /* [beam_size][cap] */
    double *next_sum;                      /* [beam_size] */
    int *rep;                              /* [beam_size]: first beam with the same tokens */
    int *top_tok;                          /* [beam_size + 1] */
    float *top_lp;                         /* [beam_size + 1] */
    int *cand_tok, *cand_src, *cand_order; /* [beam_size * (beam_size + 1)] */
    double *cand_score;
} BeamSearch;

/* Starts beam_size identical beams holding the initial tokens; cap is the
 * longest sequence ever stored (initial tokens + sampled ones). */
int beam_init(BeamSearch *b, int beam_size, float patience, int eot, int n_vocab,
              const int *initial, int n_initial, int cap);
void beam_free(BeamSearch *b);
/* One step. logprobs is [beam_size][n_vocab], each row the log_softmax of
 * that beam's filtered logits. Writes the new last token of each beam and
 * the beam it grew from (the caller copies that beam's cache), appends the
 * tokens, and records finished candidates. Returns 1 when the window is
 * done (max_candidates finished), 0 to go on, or a negative DI_E* code
 * (DI_ERANGE when the beams are already cap tokens long). */
int beam_step(BeamSearch *b, const float *logprobs, int *next_tokens, int *sources);
/* If fewer than beam_size candidates finished, adds the live beams (best
 * first, each closed with eot) until there are beam_size. */
int beam_finalize(BeamSearch *b);

/* ---- Choosing the result --------------------------------------------- */

/* MaximumLikelihoodRanker without length penalty: the index of the first
 * maximum of sum_logprob[i] / length[i]. */
int search_rank(const double *sum_logprob, const int *length, int n);
/* OpenAI's avg_logprob: sum / (number of sampled tokens + 1). */
double search_avg_logprob(double sum_logprob, int n_tokens);
/* len(text) / len(zlib.compress(text)) at zlib's default level. */
int search_compression_ratio(const char *text, size_t len, double *ratio);

/* OpenAI transcribe()'s thresholds for one window's result. */
typedef struct {
    double compression_ratio; /* 2.4 */
    double logprob;           /* -1.0 */
    double no_speech;         /* 0.6 */
} SearchThresholds;
/* Too repetitive or too unlikely, unless it looks like silence. */
int search_needs_fallback(const SearchThresholds *t, double compression_ratio, double avg_logprob,
                          double no_speech_prob);
/* Silence: the window is skipped without a segment. */
int search_should_skip(const SearchThresholds *t, double avg_logprob, double no_speech_prob);

/* ---- Segments ---------------------------------------------------------- */

/* One segment cut from a window's sampled tokens: tokens [begin, end). */
typedef struct {
    int begin, end;
    double start, stop; /* seconds */
} SearchSpan;

/* OpenAI's segment splitting. tokens are the window's sampled tokens (no
 * eot); seek and segment_size are in mel frames. spans needs room for
 * n_tokens + 1 entries. Writes *n_spans and how many frames seek advances. */
void search_split_segments(const int *tokens, int n_tokens, int timestamp_begin, int seek,
                           int segment_size, SearchSpan *spans, int *n_spans, int *seek_advance);

/* Python's str.strip(): the bounds of text without leading and trailing
 * whitespace (ASCII and the common Unicode spaces). */
void search_strip(const char *text, size_t len, size_t *begin, size_t *end);

#endif
