/*
 * Benchmarks of the engine's parts, reported beside the machine's own sgemm
 * rate measured in the same run: these machines are shared and noisy, so
 * only figures taken together can be compared.
 */
#include "whisper/whisper_impl.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define BENCH_TOKENS 32

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- The machine's ceilings, measured beside each engine figure -------- */

/* A child process measures the machine's ceilings on request: OpenBLAS with
 * its own threads on a large square product (the most our matrix products
 * can hope for) and memcpy of a buffer far larger than any cache (the rate
 * at which this machine streams memory, which bounds a decoder step that
 * must read every weight once). Asked right before each engine run, they
 * are taken under the same load as the figure they are compared with:
 * shared machines drift by 2x within a minute, and a ratio of a ceiling
 * and an engine time taken a minute apart drifts with them. In a child,
 * their buffers (48 MB of matrices, 512 MiB to copy) stay out of the peak
 * memory reported for the engine. */
typedef struct {
    pid_t pid;
    int to, from; /* pipe ends: requests, answers */
} Ceiling;

#define SGEMM_N 2048
#define COPY_BYTES ((size_t)256 << 20)

typedef struct {
    char *dst;
    const char *src;
    size_t bytes;
    int n_chunks;
} CopyJob;

/* One contiguous slice per task, cut at cache-line boundaries. */
static void copy_task(void *ctx, int i, int thread) {
    (void)thread;
    const CopyJob *j = ctx;
    size_t lines = j->bytes / 64;
    size_t a = lines * (size_t)i / (size_t)j->n_chunks * 64;
    size_t b = i + 1 == j->n_chunks ? j->bytes : lines * (size_t)(i + 1) / (size_t)j->n_chunks * 64;
    memcpy(j->dst + a, j->src + a, b - a);
}

/* The child: answers 's' with one sgemm's GFLOP/s and 'm' with one copy's
 * GB/s (bytes copied, not read plus written, per ns), 0 when it cannot. */
static void ceiling_serve(int in, int out, int n_threads) {
    const size_t n = SGEMM_N;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n),
          *c = malloc(sizeof(float) * n * n);
    char *src = malloc(COPY_BYTES), *dst = malloc(COPY_BYTES);
    DiPool *pool = NULL;
    int ok = a && b && c && src && dst && !di_pool_create(n_threads, &pool);
    CopyJob cj = {dst, src, COPY_BYTES, n_threads};
    if (ok) {
        for (size_t i = 0; i < n * n; i++) {
            a[i] = (float)((i * 7919u) % 1000u) * 1e-3f;
            b[i] = (float)((i * 104729u) % 1000u) * 1e-3f;
        }
        memset(src, 1, COPY_BYTES); /* fault every page in before timing */
        memset(dst, 0, COPY_BYTES);
        openblas_set_num_threads(n_threads);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, (int)n, 1, a, (int)n,
                    b, (int)n, 0, c, (int)n); /* warm-up */
        di_pool_run(pool, cj.n_chunks, copy_task, &cj);
    }
    char what;
    while (read(in, &what, 1) == 1) {
        double g = 0, t0 = di_now();
        if (ok && what == 's') {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, (int)n, 1, a,
                        (int)n, b, (int)n, 0, c, (int)n);
            g = 2.0 * (double)n * n * n / (di_now() - t0) / 1e9;
        } else if (ok && what == 'm') {
            di_pool_run(pool, cj.n_chunks, copy_task, &cj);
            g = (double)COPY_BYTES / (di_now() - t0) / 1e9;
        }
        if (write(out, &g, sizeof g) != (ssize_t)sizeof g) break;
    }
    di_pool_destroy(pool);
    free(a), free(b), free(c), free(src), free(dst);
}

static int ceiling_start(Ceiling *c, int n_threads) {
    int req[2], ans[2];
    c->pid = -1;
    if (pipe(req) != 0) return -1;
    if (pipe(ans) != 0) {
        close(req[0]), close(req[1]);
        return -1;
    }
    c->pid = fork();
    if (c->pid == 0) {
        close(req[1]), close(ans[0]);
        ceiling_serve(req[0], ans[1], n_threads);
        _exit(0);
    }
    close(req[0]), close(ans[1]);
    c->to = req[1], c->from = ans[0];
    if (c->pid < 0) {
        close(c->to), close(c->from);
        return -1;
    }
    return 0;
}

/* One measurement; 0 when the child is gone or could not measure. */
static double ceiling_measure(Ceiling *c, char what) {
    double g = 0;
    if (c->pid <= 0 || write(c->to, &what, 1) != 1) return 0;
    return read(c->from, &g, sizeof g) == (ssize_t)sizeof g ? g : 0;
}

static void ceiling_stop(Ceiling *c) {
    if (c->pid <= 0) return;
    close(c->to), close(c->from);
    waitpid(c->pid, NULL, 0);
    c->pid = -1;
}

/* Milliseconds per decoding step of n_seq sequences, averaged over a run of
 * BENCH_TOKENS steps after a one-token prompt. */
static int time_decode(WhisperState *st, int n_seq, double *ms, char *msg, size_t cap) {
    const WhisperModel *m = st->model;
    int tokens[64], rc;
    for (int s = 0; s < n_seq; s++)
        tokens[s] = m->tok.sp.sot;
    if ((rc = decoder_forward(st, n_seq, tokens, 1, 0, NULL, msg, cap))) return rc;
    double t0 = di_now();
    for (int i = 1; i <= BENCH_TOKENS; i++) {
        for (int s = 0; s < n_seq; s++)
            tokens[s] = 220 + 17 * i + s;
        if ((rc = decoder_forward(st, n_seq, tokens, 1, i, NULL, msg, cap))) return rc;
    }
    *ms = (di_now() - t0) * 1000.0 / BENCH_TOKENS;
    return 0;
}

/* In the tensor's stored type, quantized blocks included. */
static size_t tensor_bytes(const Tensor *t) {
    return quant_row_bytes(t->type, t->ne[0]) * (size_t)t->ne[1] * (size_t)t->ne[2];
}

static size_t attn_bytes(const AttnWeights *a, int self) {
    size_t n = tensor_bytes(&a->q_w) + tensor_bytes(&a->q_b) + tensor_bytes(&a->o_w) +
               tensor_bytes(&a->o_b);
    /* Cross-attention's key and value projections run once per window, in
     * whisper_encode, not per token. */
    if (self) n += tensor_bytes(&a->k_w) + tensor_bytes(&a->v_w) + tensor_bytes(&a->v_b);
    return n;
}

static size_t dec_block_bytes(const Block *b) {
    return tensor_bytes(&b->attn_ln_w) + tensor_bytes(&b->attn_ln_b) + attn_bytes(&b->attn, 1) +
           tensor_bytes(&b->cross_ln_w) + tensor_bytes(&b->cross_ln_b) + attn_bytes(&b->cross, 0) +
           tensor_bytes(&b->mlp_ln_w) + tensor_bytes(&b->mlp_ln_b) + tensor_bytes(&b->fc1_w) +
           tensor_bytes(&b->fc1_b) + tensor_bytes(&b->fc2_w) + tensor_bytes(&b->fc2_b);
}

size_t whisper_decoder_step_bytes(const WhisperModel *m, int kv_len) {
    if (!m || kv_len < 1) return 0;
    const WhisperHparams *hp = &m->hp;
    size_t S = (size_t)hp->n_text_state, L = (size_t)hp->n_text_layer;
    size_t n = tensor_bytes(&m->w.tok_emb) /* the logits read all of it */
               + S * sizeof(float)         /* one row of positions */
               + tensor_bytes(&m->w.dec_ln_w) + tensor_bytes(&m->w.dec_ln_b);
    for (size_t l = 0; l < L; l++)
        n += dec_block_bytes(&m->w.dec[l]);
    /* The caches are f16 (state.c, decoder.c): self-attention K and V up to
     * kv_len rows, cross-attention K and V over every audio position. */
    n += L * 2 * (size_t)kv_len * S * sizeof(uint16_t);
    n += L * 2 * (size_t)hp->n_audio_ctx * S * sizeof(uint16_t);
    return n;
}

/* Mean bytes per timed step of time_decode: step i (1..BENCH_TOKENS) runs at
 * n_past = i and attends over i + 1 cache rows. */
static double timed_step_bytes(const WhisperModel *m, double *kv_len) {
    double sum = 0, rows = 0;
    for (int i = 1; i <= BENCH_TOKENS; i++) {
        sum += (double)whisper_decoder_step_bytes(m, i + 1);
        rows += i + 1;
    }
    *kv_len = rows / BENCH_TOKENS;
    return sum / BENCH_TOKENS;
}

/* Median of the per-run ratios num[r] / den[r]: each ratio pairs figures
 * taken seconds apart, under the same load. */
static double paired_ratio(const double *num, const double *den, int n, double *runs) {
    double tmp[WHISPER_BENCH_MAX_REPEATS];
    for (int r = 0; r < n; r++)
        tmp[r] = runs[r] = den[r] > 0 ? num[r] / den[r] : 0;
    return median(tmp, n);
}

int whisper_bench(const WhisperModel *model, int n_threads, int repeats, WhisperBench *out,
                  char *msg, size_t cap) {
    if (!model || !out || repeats < 1 || repeats > WHISPER_BENCH_MAX_REPEATS)
        return di_fail(msg, cap, DI_EINVAL, "bench needs a model and 1..%d repeats",
                       WHISPER_BENCH_MAX_REPEATS);
    memset(out, 0, sizeof *out);
    out->repeats = repeats;
    const WhisperHparams *hp = &model->hp;
    if (hp->n_text_ctx < BENCH_TOKENS + 1)
        return di_fail(msg, cap, DI_EINVAL, "model context too short to benchmark");
    /* Forked before the state's threads exist. */
    Ceiling ceil;
    if (ceiling_start(&ceil, n_threads))
        return di_fail(msg, cap, DI_EIO, "cannot start the process that measures the machine");
    WhisperState *st;
    int rc = whisper_state_create(model, n_threads, &st, msg, cap);
    if (rc) {
        ceiling_stop(&ceil);
        return rc;
    }
    size_t n_mel = (size_t)hp->n_mels * WHISPER_N_FRAMES;
    float *mel = malloc(n_mel * sizeof(float));
    enum { SGEMM, ENC, ENC_GF, COPY, DEC1, DEC5, DEC5_TOK, FLOOR, N_FIG };
    double fig[N_FIG][WHISPER_BENCH_MAX_REPEATS];
    if (!mel) rc = di_fail(msg, cap, DI_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < n_mel; i++) /* a log-mel-like range */
        mel[i] = (float)((i * 2654435761u) % 2000) * 1e-3f - 0.5f;
    out->encoder_flops = encoder_flops(hp);
    out->decoder_bytes_per_token = timed_step_bytes(model, &out->decoder_kv_len);

    if (!rc) rc = whisper_encode(st, mel, WHISPER_N_FRAMES, 0, msg, cap); /* warm-up */
    for (int r = 0; !rc && r < repeats; r++) {
        fig[SGEMM][r] = ceiling_measure(&ceil, 's');
        double t0 = di_now();
        rc = whisper_encode(st, mel, WHISPER_N_FRAMES, 0, msg, cap);
        fig[ENC][r] = (di_now() - t0) * 1000.0;
        fig[ENC_GF][r] = out->encoder_flops / (fig[ENC][r] * 1e-3) / 1e9;
    }
    for (int r = 0; !rc && r < repeats; r++) {
        fig[COPY][r] = ceiling_measure(&ceil, 'm');
        /* GB/s is 1e6 bytes per millisecond. */
        fig[FLOOR][r] = fig[COPY][r] > 0 ? out->decoder_bytes_per_token / (fig[COPY][r] * 1e6) : 0;
        rc = time_decode(st, 1, &fig[DEC1][r], msg, cap);
        if (!rc) rc = time_decode(st, 5, &fig[DEC5][r], msg, cap);
        fig[DEC5_TOK][r] = fig[DEC5][r] / 5.0;
    }
    ceiling_stop(&ceil);
    if (!rc) {
        out->encoder_vs_sgemm =
            paired_ratio(fig[ENC_GF], fig[SGEMM], repeats, out->encoder_vs_sgemm_runs);
        out->decoder_vs_floor =
            paired_ratio(fig[DEC1], fig[FLOOR], repeats, out->decoder_vs_floor_runs);
        out->batch5_vs_single =
            paired_ratio(fig[DEC5_TOK], fig[DEC1], repeats, out->batch5_vs_single_runs);
        out->sgemm_gflops = median(fig[SGEMM], repeats);
        out->memcpy_gbps = median(fig[COPY], repeats);
        out->encoder_ms = median(fig[ENC], repeats);
        out->encoder_gflops = out->encoder_flops / (out->encoder_ms * 1e-3) / 1e9;
        out->decoder_ms_per_token = median(fig[DEC1], repeats);
        out->decoder_batch5_ms_per_step = median(fig[DEC5], repeats);
        out->decoder_batch5_ms_per_token = out->decoder_batch5_ms_per_step / 5.0;
        if (out->memcpy_gbps > 0) /* 0 when the child could not measure */
            out->decoder_floor_ms_per_token =
                out->decoder_bytes_per_token / (out->memcpy_gbps * 1e6);
    }
    free(mel);
    whisper_state_free(st);
    return rc;
}
