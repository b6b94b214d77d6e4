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

/* The sgemm measurement runs in a child process so its 48 MB of matrices
 * do not count towards the peak memory reported for the engine. */
static double sgemm_gflops_isolated(int n_threads, int repeats) {
    int fds[2];
    if (pipe(fds) != 0) return sgemm_gflops(n_threads, repeats);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return sgemm_gflops(n_threads, repeats);
    }
    if (pid == 0) {
        close(fds[0]);
        double g = sgemm_gflops(n_threads, repeats);
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

    out->sgemm_gflops = rc ? 0 : sgemm_gflops_isolated(n_threads, repeats);
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
    }
    free(mel);
    free(t);
    whisper_state_free(st);
    return rc;
}
