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

/* OpenBLAS with its own threads on a large square product: the ceiling our
 * matrix products can hope for on this machine. */
static double sgemm_gflops(int n_threads, int repeats) {
    const int n = 2048;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n),
          *c = malloc(sizeof(float) * n * n);
    double *t = calloc((size_t)repeats, sizeof *t), result = 0;
    if (a && b && c && t) {
        for (int i = 0; i < n * n; i++) {
            a[i] = (float)(((unsigned)i * 7919u) % 1000u) * 1e-3f;
            b[i] = (float)(((unsigned)i * 104729u) % 1000u) * 1e-3f;
        }
        openblas_set_num_threads(n_threads);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        for (int r = 0; r < repeats; r++) {
            double t0 = di_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1, a, n, b, n, 0, c, n);
            t[r] = di_now() - t0;
        }
        whisper_blas_single_thread();
        result = 2.0 * n * n * (double)n / median(t, repeats) / 1e9;
    }
    free(a);
    free(b);
    free(c);
    free(t);
    return result;
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

/* Both machine ceilings run in a child process so their buffers (48 MB of
 * matrices, 512 MiB of copy buffers) do not count towards the peak memory
 * reported for the engine. */
static double isolated(double (*measure)(int, int), int n_threads, int repeats) {
    int fds[2];
    if (pipe(fds) != 0) return measure(n_threads, repeats);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return measure(n_threads, repeats);
    }
    if (pid == 0) {
        close(fds[0]);
        double g = measure(n_threads, repeats);
        ssize_t w = write(fds[1], &g, sizeof g);
        _exit(w == (ssize_t)sizeof g ? 0 : 1);
    }
    close(fds[1]);
    double g = 0;
    ssize_t got = read(fds[0], &g, sizeof g);
    close(fds[0]);
    waitpid(pid, NULL, 0);
    return got == (ssize_t)sizeof g ? g : 0;
}

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

/* memcpy of a buffer far larger than any last-level cache, split over the
 * engine's own thread count: the rate at which this machine streams memory
 * now, which bounds a decoder step that must read every weight once.
 * Bytes copied (not read plus written) per second, in GB/s (1e9 B). */
static double memcpy_gbps(int n_threads, int repeats) {
    const size_t bytes = (size_t)256 << 20;
    int n = repeats < 5 ? 5 : repeats;
    char *src = malloc(bytes), *dst = malloc(bytes);
    double *t = calloc((size_t)n, sizeof *t), result = 0;
    DiPool *pool = NULL;
    if (src && dst && t && !di_pool_create(n_threads, &pool)) {
        CopyJob j = {dst, src, bytes, n_threads};
        memset(src, 1, bytes); /* fault every page in before timing */
        memset(dst, 0, bytes);
        di_pool_run(pool, j.n_chunks, copy_task, &j); /* warm-up */
        for (int r = 0; r < n; r++) {
            double t0 = di_now();
            if (n_threads > 1)
                di_pool_run(pool, j.n_chunks, copy_task, &j);
            else
                memcpy(dst, src, bytes);
            t[r] = di_now() - t0;
        }
        result = (double)bytes / median(t, n) / 1e9;
    }
    di_pool_destroy(pool);
    free(src);
    free(dst);
    free(t);
    return result;
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
    /* The caches are f32 (state.c, decoder.c): self-attention K and V up to
     * kv_len rows, cross-attention K and V over every audio position. */
    n += L * 2 * (size_t)kv_len * S * sizeof(float);
    n += L * 2 * (size_t)hp->n_audio_ctx * S * sizeof(float);
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

int whisper_bench(const WhisperModel *model, int n_threads, int repeats, WhisperBench *out,
                  char *msg, size_t cap) {
    if (!model || !out || repeats < 1 || repeats > 1000)
        return di_fail(msg, cap, DI_EINVAL, "bench needs a model and 1..1000 repeats");
    memset(out, 0, sizeof *out);
    const WhisperHparams *hp = &model->hp;
    if (hp->n_text_ctx < BENCH_TOKENS + 1)
        return di_fail(msg, cap, DI_EINVAL, "model context too short to benchmark");
    WhisperState *st;
    int rc = whisper_state_create(model, n_threads, &st, msg, cap);
    if (rc) return rc;
    size_t n_mel = (size_t)hp->n_mels * WHISPER_N_FRAMES;
    float *mel = malloc(n_mel * sizeof(float));
    double *t = calloc((size_t)repeats * 3, sizeof *t);
    if (!mel || !t) rc = di_fail(msg, cap, DI_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < n_mel; i++) /* a log-mel-like range */
        mel[i] = (float)((i * 2654435761u) % 2000) * 1e-3f - 0.5f;

    out->sgemm_gflops = rc ? 0 : isolated(sgemm_gflops, n_threads, repeats);
    out->memcpy_gbps = rc ? 0 : isolated(memcpy_gbps, n_threads, repeats);
    if (!rc) rc = whisper_encode(st, mel, WHISPER_N_FRAMES, 0, msg, cap); /* warm-up */
    for (int r = 0; !rc && r < repeats; r++) {
        double t0 = di_now();
        rc = whisper_encode(st, mel, WHISPER_N_FRAMES, 0, msg, cap);
        t[r] = (di_now() - t0) * 1000.0;
    }
    for (int r = 0; !rc && r < repeats; r++)
        rc = time_decode(st, 1, &t[repeats + r], msg, cap);
    for (int r = 0; !rc && r < repeats; r++)
        rc = time_decode(st, 5, &t[2 * repeats + r], msg, cap);
    if (!rc) {
        out->encoder_ms = median(t, repeats);
        out->encoder_flops = encoder_flops(hp);
        out->encoder_gflops = out->encoder_flops / (out->encoder_ms * 1e-3) / 1e9;
        out->decoder_ms_per_token = median(t + repeats, repeats);
        out->decoder_batch5_ms_per_step = median(t + 2 * repeats, repeats);
        out->decoder_batch5_ms_per_token = out->decoder_batch5_ms_per_step / 5.0;
        out->batch5_vs_single = out->decoder_batch5_ms_per_token / out->decoder_ms_per_token;
        out->decoder_bytes_per_token = timed_step_bytes(model, &out->decoder_kv_len);
        /* GB/s is 1e6 bytes per millisecond. */
        if (out->memcpy_gbps > 0) { /* 0 when the child could not measure */
            out->decoder_floor_ms_per_token =
                out->decoder_bytes_per_token / (out->memcpy_gbps * 1e6);
            out->decoder_vs_floor = out->decoder_ms_per_token / out->decoder_floor_ms_per_token;
        }
    }
    free(mel);
    free(t);
    whisper_state_free(st);
    return rc;
}
