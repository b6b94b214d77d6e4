/*
 * whisper: diarist's Whisper inference engine, a pure library.
 *
 * It takes 16 kHz mono float PCM and returns text; it knows nothing of files
 * other than the model, nor of HTTP, storage or queues.
 *
 * Ownership:
 * - A WhisperModel is loaded once (whisper_model_load), is read-only after
 *   that, and may be shared by any number of threads.
 * - A WhisperState holds one run's buffers and caches. Create one per
 *   concurrent transcription; a state is used by one thread at a time.
 *   The model must outlive its states.
 * - A WhisperResult is filled by whisper_transcribe and freed by
 *   whisper_result_free. Every _free accepts NULL.
 *
 * Errors: functions return 0 or a negative DI_E* code (core.h) and write a
 * readable message into the caller's msg buffer.
 */
#ifndef DIARIST_WHISPER_H
#define DIARIST_WHISPER_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

#define WHISPER_SAMPLE_RATE 16000
#define WHISPER_N_FFT 400
#define WHISPER_HOP 160
#define WHISPER_CHUNK_SECONDS 30
#define WHISPER_N_SAMPLES (WHISPER_SAMPLE_RATE * WHISPER_CHUNK_SECONDS) /* 480000 */
#define WHISPER_N_FRAMES (WHISPER_N_SAMPLES / WHISPER_HOP)              /* 3000 */

/* The model's blueprint, in the order the file stores it. */
typedef struct {
    int n_vocab;
    int n_audio_ctx;   /* encoder positions (1500) */
    int n_audio_state; /* encoder width */
    int n_audio_head;
    int n_audio_layer;
    int n_text_ctx; /* decoder positions (448) */
    int n_text_state;
    int n_text_head;
    int n_text_layer;
    int n_mels;
    int ftype; /* 0 = f32, 1 = f16 (after ftype %= 1000) */
} WhisperHparams;

typedef struct WhisperModel WhisperModel;
typedef struct WhisperState WhisperState;

/* ---- CPU kernels ------------------------------------------------------- */

/* The OpenBLAS kernel family in use ("SkylakeX", "Haswell", ...). */
const char *whisper_blas_core(void);
/* The OPENBLAS_CORETYPE this CPU should run when OpenBLAS picked a weaker
 * family than its features allow, else NULL. OpenBLAS reads that variable
 * only at load time, so a program acts on it by re-executing itself. */
const char *whisper_blas_better_core(void);
/* Keeps OpenBLAS to the calling thread; states bring their own threads. */
void whisper_blas_single_thread(void);

/* ---- Model ------------------------------------------------------------- */

int whisper_model_load(const char *path, WhisperModel **out, char *msg, size_t cap);
/* Parses a model already in memory; the model keeps its own copy. */
int whisper_model_load_buffer(const void *data, size_t size, WhisperModel **out, char *msg,
                              size_t cap);
void whisper_model_free(WhisperModel *model);
const WhisperHparams *whisper_model_hparams(const WhisperModel *model);
int whisper_model_is_multilingual(const WhisperModel *model);
/* Short description like "base" or "custom (S=128, 2+2 layers)". */
const char *whisper_model_type(const WhisperModel *model);
size_t whisper_model_bytes(const WhisperModel *model);

/* ---- Tokens ------------------------------------------------------------ */

/* Special token ids, derived from n_vocab the way Whisper derives them. */
typedef struct {
    int eot, sot, translate, transcribe, solm, prev, nosp, notimestamps, timestamp_begin;
    int lang_begin; /* first language token (sot + 1) */
    int n_languages;
} WhisperSpecials;
const WhisperSpecials *whisper_specials(const WhisperModel *model);

/* Raw bytes of one token (not NUL-terminated; may be part of a UTF-8
 * character). Special tokens return their "<|name|>" form. */
const char *whisper_token_bytes(const WhisperModel *model, int id, int *len);
/* Decodes ordinary tokens (ids below eot) to a new UTF-8 string; specials
 * are skipped. Bytes that do not form valid UTF-8 are replaced by U+FFFD.
 * Caller frees. */
char *whisper_detokenize(const WhisperModel *model, const int *ids, int n);
/* Byte-level BPE encoding of text, as OpenAI's tokenizer does it. *ids is
 * allocated (caller frees) and *n set. */
int whisper_tokenize(const WhisperModel *model, const char *text, int **ids, int *n, char *msg,
                     size_t cap);
/* Language code ("en") <-> index; -1 when unknown. */
int whisper_lang_id(const char *code);
const char *whisper_lang_code(int id);
int whisper_lang_count(void);

/* ---- Audio features ---------------------------------------------------- */

/* Log-mel spectrogram exactly as OpenAI Whisper computes it, of pcm followed
 * by pad_samples zero samples. *mel is allocated [n_mels][*n_frames]
 * (mel-bin major), caller frees. */
int whisper_log_mel(const WhisperModel *model, const float *pcm, size_t n_samples,
                    size_t pad_samples, int n_threads, float **mel, int *n_frames, char *msg,
                    size_t cap);

/* ---- States and low-level passes (tests, benchmarks) -------------------- */

int whisper_state_create(const WhisperModel *model, int n_threads, WhisperState **out, char *msg,
                         size_t cap);
void whisper_state_free(WhisperState *state);

/* Runs the encoder on mel frames [offset, offset + 3000) of a mel of
 * n_frames frames laid out [n_mels][n_frames]; frames past the end read as 0.
 * Also computes every decoder layer's cross-attention keys and values. */
int whisper_encode(WhisperState *state, const float *mel, int n_frames, int offset, char *msg,
                   size_t cap);
/* Encoder output [n_audio_ctx][n_audio_state] of the last whisper_encode. */
const float *whisper_encoder_output(const WhisperState *state);

/* Feeds n tokens of one sequence at positions n_past.. and returns the
 * logits of the last one ([n_vocab], valid until the next call). */
int whisper_decode(WhisperState *state, const int *tokens, int n, int n_past, const float **logits,
                   char *msg, size_t cap);

/* ---- Transcription ----------------------------------------------------- */

typedef struct {
    const char *language; /* NULL or "auto": detect (multilingual models) */
    int translate;
    int beam_size;                     /* 0 or 1 with best_of at T=0 means greedy */
    float patience;                    /* beam search; 1.0 by default */
    int best_of;                       /* candidates sampled at T > 0 */
    float temperature;                 /* the first temperature tried */
    float temperature_increment;       /* fallback step; 0 disables fallback */
    float compression_ratio_threshold; /* 2.4 */
    float logprob_threshold;           /* -1.0 */
    float no_speech_threshold;         /* 0.6 */
    int condition_on_previous_text;    /* 1 */
    const char *initial_prompt;        /* NULL for none */
    int without_timestamps;
    float max_initial_timestamp; /* 1.0 s */
    int suppress_blank;          /* 1 */
    int suppress_non_speech;     /* 1: OpenAI's suppress_tokens="-1" */
    int sample_len;              /* tokens per window; 0 = n_text_ctx / 2 */
    uint64_t seed;               /* for sampling at T > 0 */
    /* 0: the audio decodes as one piece, window after window. Otherwise
     * audio longer than 1.25 x this many seconds (at least 5) is cut near
     * every multiple of it, at the quietest half second within a quarter
     * chunk either way, and the pieces decode independently (each from an
     * empty prompt), so one long file fills several lanes of a batch.
     * See whisper_split_at_silences. */
    float chunk_seconds;
    /* Called after each window with seconds done and total; may be NULL. */
    void (*progress)(void *ud, double done, double total);
    void *progress_ud;
} WhisperParams;

/* OpenAI Whisper's transcribe() defaults (greedy, fallback on). */
WhisperParams whisper_default_params(void);

typedef struct {
    int id;            /* 0-based */
    int seek;          /* mel frame the window started at */
    double start, end; /* seconds */
    char *text;
    int *tokens; /* every sampled token, timestamps included */
    int n_tokens;
    float temperature;
    float avg_logprob;
    float compression_ratio;
    float no_speech_prob;
} WhisperSegment;

typedef struct {
    char language[16];
    double duration; /* seconds of audio */
    WhisperSegment *segments;
    int n_segments;
    char *text; /* all segments joined */
} WhisperResult;

int whisper_transcribe(WhisperState *state, const float *pcm, size_t n_samples,
                       const WhisperParams *params, WhisperResult *out, char *msg, size_t cap);
void whisper_result_free(WhisperResult *result);

/* ---- Batches ----------------------------------------------------------
 *
 * A WhisperBatch transcribes several audios on one state at once: each
 * step moves up to max_lanes of them one 30 s window on, decoding their
 * greedy windows in lockstep so each weight read serves them all. Audios
 * join and leave between steps. Each one's transcript is bit for bit what
 * whisper_transcribe gives it alone (chunking aside, see chunk_seconds).
 * One thread drives a batch; the state must not be used otherwise while
 * the batch lives. */

/* At most 7 lanes: a step's products then stay in the few-row kernels,
 * whose sums per row do not depend on the number of rows. Past that they
 * would go to sgemm, which rounds differently, and the few-row kernels are
 * compute-bound by then anyway. */
#define WHISPER_BATCH_MAX_LANES 7

typedef struct WhisperBatch WhisperBatch;

typedef struct {
    long windows; /* encoded */
    long steps;   /* lockstep decoder steps */
    long tokens;  /* sequences fed by those steps */
    double encode_s, decode_s;
} WhisperBatchStats;

int whisper_batch_create(WhisperState *state, int max_lanes, WhisperBatch **out, char *msg,
                         size_t cap);
/* Audios still in the batch end with an error (their done is called). */
void whisper_batch_free(WhisperBatch *batch);
/* Adds an audio (read now, not kept). When its last window is done, *out
 * is filled and done(ud, 0, "") is called from whisper_batch_step; on an
 * error there, done(ud, err, message) and *out stays empty. An error
 * returned by this call itself (bad params, no memory) means done is never
 * called. done may be NULL. params->progress is called from steps too. */
int whisper_batch_add(WhisperBatch *batch, const float *pcm, size_t n_samples,
                      const WhisperParams *params, WhisperResult *out,
                      void (*done)(void *ud, int err, const char *msg), void *ud, char *msg,
                      size_t cap);
/* One window of each of the first max_lanes audios. Returns how many
 * audios remain, or a negative code for a bad batch. Errors of one audio
 * go to its done, not here. */
int whisper_batch_step(WhisperBatch *batch, char *msg, size_t cap);
int whisper_batch_pending(const WhisperBatch *batch); /* pieces not yet done */
void whisper_batch_stats(const WhisperBatch *batch, WhisperBatchStats *out);

/* Where chunk_seconds cuts n_samples of 16 kHz audio: *cuts (allocated,
 * caller frees; NULL when none) gets the sample offsets, ascending. Each
 * cut is the middle of the quietest half second (least energy) within a
 * quarter chunk of its target, so where speech pauses there, it lands in
 * the pause and no word is split; ties go to the point nearest the target. */
int whisper_split_at_silences(const float *pcm, size_t n_samples, float chunk_seconds,
                              size_t **cuts, int *n_cuts, char *msg, size_t cap);

/* Detects the spoken language from the first window of a mel; writes the
 * language index and, if probs is not NULL, whisper_lang_count() probabilities. */
int whisper_detect_language(WhisperState *state, const float *mel, int n_frames, int *lang,
                            float *probs, char *msg, size_t cap);

/* ---- Synthetic models (synth.c) ----------------------------------------- */

/* No real Whisper weights can be fetched where diarist is tested, so tests
 * and benchmarks use models with the real architecture and seeded random
 * weights, written in the same ggml format. */
typedef struct {
    WhisperHparams hp; /* dimensions; hp.ftype 0 (f32), 1 (f16), 2 (q4_0), 7 (q8_0),
                          8 (q5_0) or 9 (q5_1): llama.cpp's enum, as in ggml files */
    uint64_t seed;
    const char *vocab_from; /* ggml model whose mel filters and vocabulary are
                               copied; NULL generates them */
} WhisperSynthSpec;
/* Dimensions of a named size: micro, tiny, base, small, medium, large,
 * large-v3-turbo. DI_EINVAL for other names. */
int whisper_synth_preset(const char *name, WhisperHparams *hp);
int whisper_synth_write(const char *path, const WhisperSynthSpec *spec, char *msg, size_t cap);

/* ---- Benchmarks -------------------------------------------------------- */

#define WHISPER_BENCH_MAX_REPEATS 100

/* Each ceiling (sgemm, memcpy) is measured right before the engine run it
 * is compared with, and a ratio is the median of those paired ratios, so
 * it holds up on a machine whose speed drifts. The other figures are plain
 * medians over the runs. */
typedef struct {
    int repeats;
    double sgemm_gflops;                /* OpenBLAS sgemm 2048^3 on n_threads, this run */
    double encoder_ms;                  /* per 30 s window */
    double encoder_gflops;              /* encoder FLOPs / encoder time */
    double encoder_flops;               /* FLOPs counted per window */
    double encoder_vs_sgemm;            /* encoder GFLOP/s over sgemm's, paired */
    double decoder_ms_per_token;        /* one sequence */
    double decoder_batch5_ms_per_step;  /* 5 sequences in lockstep */
    double decoder_batch5_ms_per_token; /* the same divided by 5 */
    double batch5_vs_single;            /* batch-5 ms per token / single ms per token, paired */
    double memcpy_gbps; /* 256 MiB memcpy on n_threads, bytes copied per ns, this run */
    /* The decoder's memory floor: what a single-sequence step reads (weights
     * in their stored type, the caches), averaged over the steps that
     * decoder_ms_per_token times, and that at memcpy speed. */
    double decoder_kv_len;             /* mean self-attention rows per timed step */
    double decoder_bytes_per_token;    /* mean bytes read per timed step */
    double decoder_floor_ms_per_token; /* bytes / (memcpy_gbps * 1e6) */
    double decoder_vs_floor;           /* decoder time over the floor, paired */
    /* The paired ratio of each run. */
    double encoder_vs_sgemm_runs[WHISPER_BENCH_MAX_REPEATS];
    double decoder_vs_floor_runs[WHISPER_BENCH_MAX_REPEATS];
    double batch5_vs_single_runs[WHISPER_BENCH_MAX_REPEATS];
} WhisperBench;

/* Times the engine's parts on synthetic input with a fresh state of
 * n_threads over `repeats` runs (1..WHISPER_BENCH_MAX_REPEATS). */
int whisper_bench(const WhisperModel *model, int n_threads, int repeats, WhisperBench *out,
                  char *msg, size_t cap);
/* Bytes one decoder step of one sequence reads when its self-attention
 * cache holds kv_len rows (the new token's included): every decoder weight
 * it uses in its stored type, the whole token embedding (the logits
 * projection), and the f16 self- and cross-attention keys and values.
 * Activations, which stay in cache, are left out. 0 for bad arguments. */
size_t whisper_decoder_step_bytes(const WhisperModel *model, int kv_len);

#endif
