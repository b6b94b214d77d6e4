/*
 * Log-mel spectrogram, exactly as OpenAI Whisper's log_mel_spectrogram()
 * computes it:
 *
 *   1. the samples followed by pad_samples zeros (length L);
 *   2. an STFT with a 400-point periodic Hann window and hop 160, centred:
 *      the signal is extended by 200 samples on each side by reflection
 *      (numpy/torch "reflect": the edge sample itself is not repeated);
 *   3. 1 + L/160 frames, of which the last is dropped;
 *   4. power |X|^2 of the 201 non-negative frequency bins;
 *   5. the mel filter bank [n_mels][201];
 *   6. log10(max(x, 1e-10)), clamped from below at (global max - 8), then
 *      (x + 4) / 4.
 *
 * Everything up to the logarithm is done in double precision so that the
 * result matches a float64 reference to about 1e-7.
 *
 * The FFT is a small recursive mixed-radix decimation-in-time transform.
 * N = 400 = 4 * 4 * 5 * 5, so radix 4 has its own butterfly (multiplying
 * by -i is free) and every other prime up to FFT_MAX_RADIX uses a direct
 * r-point DFT butterfly.
 */
#include "whisper/whisper_impl.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N_BINS (WHISPER_N_FFT / 2 + 1) /* 201 */
#define FFT_MAX_RADIX 31
#define FFT_MAX_STAGES 32
#define FRAMES_PER_ITEM 64 /* frames per thread-pool work item */

/* ---- FFT ----------------------------------------------------------------- */

typedef struct {
    double re, im;
} Cpx;

/* A plan for one transform size: its radices, outermost first, and the
 * table of twiddle factors exp(-2*pi*i*k/n) for k in [0, n). Read-only once
 * made, so any number of threads may share it. */
typedef struct FftPlan {
    int n;
    int n_stages;
    int radix[FFT_MAX_STAGES];
    Cpx *tw;
} FftPlan;

void fft_plan_free(FftPlan *p) {
    if (!p) return;
    free(p->tw);
    free(p);
}

/* Splits n into radices, fours first (the cheapest butterfly), then the
 * primes in increasing order. Sizes with a prime factor above FFT_MAX_RADIX
 * are refused: their butterflies would be no better than a naive DFT. */
int fft_plan_create(int n, FftPlan **out) {
    if (!out) return DI_EINVAL;
    *out = NULL;
    if (n < 1 || n > (1 << 24)) return DI_EINVAL;
    FftPlan *p = calloc(1, sizeof *p);
    if (!p) return DI_ENOMEM;
    p->n = n;
    int rest = n;
    while (rest % 4 == 0) {
        p->radix[p->n_stages++] = 4;
        rest /= 4;
    }
    for (int f = 2; rest > 1 && f <= FFT_MAX_RADIX; f++) {
        while (rest % f == 0) {
            p->radix[p->n_stages++] = f;
            rest /= f;
        }
    }
    if (rest > 1) {
        free(p);
        return DI_EUNSUPPORTED;
    }
    p->tw = malloc((size_t)n * sizeof *p->tw);
    if (!p->tw) {
        free(p);
        return DI_ENOMEM;
    }
    for (int k = 0; k < n; k++) {
        double a = -2.0 * M_PI * (double)k / (double)n;
        p->tw[k].re = cos(a);
        p->tw[k].im = sin(a);
    }
    *out = p;
    return 0;
}

static inline Cpx cmul(Cpx a, Cpx b) {
    Cpx c = {a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
    return c;
}

/* The radix-4 butterfly on the four twiddled inputs t[0..3]. */
static void butterfly4(const Cpx *t, Cpx *out, int m, int j) {
    Cpx a = {t[0].re + t[2].re, t[0].im + t[2].im};
    Cpx b = {t[0].re - t[2].re, t[0].im - t[2].im};
    Cpx c = {t[1].re + t[3].re, t[1].im + t[3].im};
    Cpx d = {t[1].re - t[3].re, t[1].im - t[3].im};
    /* d * (-i) = (d.im, -d.re) */
    out[j] = (Cpx){a.re + c.re, a.im + c.im};
    out[m + j] = (Cpx){b.re + d.im, b.im - d.re};
    out[2 * m + j] = (Cpx){a.re - c.re, a.im - c.im};
    out[3 * m + j] = (Cpx){b.re - d.im, b.im + d.re};
}

/* Transforms the n inputs in[0], in[stride], ... into out[0..n). With
 * N = n * stride, the twiddle W_n^k is the table's entry k * stride.
 * Each of the r sub-transforms of length m = n / r goes into out[q*m ..],
 * then butterflies combine them: out[k*m + j] is the sum over q of
 * W_n^(q*j) * W_r^(q*k) * sub_q[j]. */
static void fft_rec(const FftPlan *p, const Cpx *in, int stride, Cpx *out, int n, int stage) {
    if (n == 1) {
        out[0] = in[0];
        return;
    }
    int r = p->radix[stage];
    int m = n / r;
    for (int q = 0; q < r; q++)
        fft_rec(p, in + q * stride, stride * r, out + q * m, m, stage + 1);

    Cpx t[FFT_MAX_RADIX];
    int root = stride * m; /* table step of W_r = W_N^(N/r) */
    for (int j = 0; j < m; j++) {
        t[0] = out[j];
        for (int q = 1; q < r; q++)
            t[q] = cmul(out[q * m + j], p->tw[q * j * stride]);
        if (r == 4) {
            butterfly4(t, out, m, j);
            continue;
        }
        for (int k = 0; k < r; k++) {
            Cpx s = t[0];
            for (int q = 1; q < r; q++) {
                Cpx v = cmul(t[q], p->tw[((q * k) % r) * root]);
                s.re += v.re;
                s.im += v.im;
            }
            out[k * m + j] = s;
        }
    }
}

/* Forward DFT of n complex values (interleaved re, im) from in to out
 * (distinct arrays): out[k] = sum_t in[t] * exp(-2*pi*i*k*t/n). */
void fft_run(const FftPlan *p, const double *in, double *out) {
    fft_rec(p, (const Cpx *)in, 1, (Cpx *)out, p->n, 0);
}

/* ---- Log-mel ------------------------------------------------------------- */

typedef struct {
    const float *filters; /* [n_mels][N_BINS] */
    int n_mels;
    int *lo, *hi; /* per filter, the range of bins with non-zero weight */
    const float *pcm;
    size_t n_samples; /* real samples; the rest of the signal is zeros */
    size_t len;       /* samples plus padding */
    int n_frames;
    const FftPlan *fft;
    double window[WHISPER_N_FFT];
    float *mel;        /* [n_mels][n_frames], log10 values first */
    double *block_max; /* largest log10 value per work item */
} MelJob;

/* Sample i of the signal extended by reflection on both sides, the way
 * numpy.pad(mode="reflect") does it even when the padding is longer than
 * the signal: the extension is periodic with period 2 * (len - 1). */
static float signal_at(const MelJob *job, long long i) {
    long long n = (long long)job->len;
    if (n == 1) i = 0;
    if (i < 0 || i >= n) {
        long long period = 2 * (n - 1);
        i %= period;
        if (i < 0) i += period;
        if (i >= n) i = period - i;
    }
    return (size_t)i < job->n_samples ? job->pcm[i] : 0.0f;
}

static void mel_frame(const MelJob *job, int t, Cpx *buf, Cpx *spec, double *power) {
    long long start = (long long)t * WHISPER_HOP - WHISPER_N_FFT / 2;
    for (int i = 0; i < WHISPER_N_FFT; i++) {
        buf[i].re = job->window[i] * (double)signal_at(job, start + i);
        buf[i].im = 0.0;
    }
    fft_run(job->fft, (const double *)buf, (double *)spec);
    for (int k = 0; k < N_BINS; k++)
        power[k] = spec[k].re * spec[k].re + spec[k].im * spec[k].im;
}

/* One work item: FRAMES_PER_ITEM frames from the STFT to log10. */
static void mel_item(void *ctx, int item, int thread) {
    (void)thread;
    MelJob *job = ctx;
    Cpx buf[WHISPER_N_FFT], spec[WHISPER_N_FFT];
    double power[N_BINS];
    int t0 = item * FRAMES_PER_ITEM;
    int t1 = t0 + FRAMES_PER_ITEM < job->n_frames ? t0 + FRAMES_PER_ITEM : job->n_frames;
    double best = -INFINITY;
    for (int t = t0; t < t1; t++) {
        mel_frame(job, t, buf, spec, power);
        for (int m = 0; m < job->n_mels; m++) {
            const float *f = job->filters + (size_t)m * N_BINS;
            double sum = 0.0;
            for (int k = job->lo[m]; k < job->hi[m]; k++)
                sum += (double)f[k] * power[k];
            double v = log10(sum > 1e-10 ? sum : 1e-10);
            if (v > best) best = v;
            job->mel[(size_t)m * job->n_frames + t] = (float)v;
        }
    }
    job->block_max[item] = best;
}

typedef struct {
    float *mel;
    size_t n;
    double floor; /* global max - 8 */
} ScaleJob;

#define SCALE_PER_ITEM 65536

static void scale_item(void *ctx, int item, int thread) {
    (void)thread;
    ScaleJob *job = ctx;
    size_t i0 = (size_t)item * SCALE_PER_ITEM;
    size_t i1 = i0 + SCALE_PER_ITEM < job->n ? i0 + SCALE_PER_ITEM : job->n;
    for (size_t i = i0; i < i1; i++) {
        double v = job->mel[i];
        if (v < job->floor) v = job->floor;
        job->mel[i] = (float)((v + 4.0) / 4.0);
    }
}

/* The filters are sparse (each mel band covers a few FFT bins); summing
 * only the non-zero range gives the same result, since adding exact zeros
 * changes nothing, and is several times faster. */
static void filter_ranges(const float *filters, int n_mels, int *lo, int *hi) {
    for (int m = 0; m < n_mels; m++) {
        const float *f = filters + (size_t)m * N_BINS;
        int a = 0, b = N_BINS;
        while (a < b && f[a] == 0.0f)
            a++;
        while (b > a && f[b - 1] == 0.0f)
            b--;
        lo[m] = a;
        hi[m] = b;
    }
}

int log_mel(const float *filters, int n_mels, const float *pcm, size_t n_samples,
            size_t pad_samples, int n_threads, float **mel, int *n_frames) {
    if (!mel || !n_frames) return DI_EINVAL;
    *mel = NULL;
    *n_frames = 0;
    if (!filters || n_mels <= 0 || n_mels > 1024 || (!pcm && n_samples > 0)) return DI_EINVAL;
    if (n_samples > SIZE_MAX / 2 || pad_samples > SIZE_MAX / 2) return DI_ERANGE;
    size_t len = n_samples + pad_samples;
    /* 1 + len/hop frames, less the last one Whisper drops. */
    size_t frames = len / WHISPER_HOP;
    if (frames == 0) return DI_ENOAUDIO;
    if (frames > INT_MAX || frames > SIZE_MAX / sizeof(float) / (size_t)n_mels) return DI_ERANGE;

    MelJob job = {0};
    job.filters = filters;
    job.n_mels = n_mels;
    job.pcm = pcm;
    job.n_samples = n_samples;
    job.len = len;
    job.n_frames = (int)frames;
    for (int i = 0; i < WHISPER_N_FFT; i++)
        job.window[i] = 0.5 - 0.5 * cos(2.0 * M_PI * (double)i / WHISPER_N_FFT);
    int n_items = (job.n_frames + FRAMES_PER_ITEM - 1) / FRAMES_PER_ITEM;

    FftPlan *fft = NULL;
    DiPool *pool = NULL;
    int err = fft_plan_create(WHISPER_N_FFT, &fft);
    job.fft = fft;
    job.lo = malloc((size_t)n_mels * sizeof *job.lo);
    job.hi = malloc((size_t)n_mels * sizeof *job.hi);
    job.mel = malloc(frames * (size_t)n_mels * sizeof *job.mel);
    job.block_max = malloc((size_t)n_items * sizeof *job.block_max);
    if (!err && (!job.lo || !job.hi || !job.mel || !job.block_max)) err = DI_ENOMEM;
    if (!err && n_threads > 1) err = di_pool_create(n_threads, &pool);
    if (err) goto done;

    filter_ranges(filters, n_mels, job.lo, job.hi);
    di_pool_run(pool, n_items, mel_item, &job);

    double best = -INFINITY;
    for (int i = 0; i < n_items; i++)
        if (job.block_max[i] > best) best = job.block_max[i];
    ScaleJob scale = {job.mel, frames * (size_t)n_mels, best - 8.0};
    di_pool_run(pool, (int)((scale.n + SCALE_PER_ITEM - 1) / SCALE_PER_ITEM), scale_item, &scale);

    *mel = job.mel;
    *n_frames = job.n_frames;
    job.mel = NULL;
done:
    di_pool_destroy(pool);
    fft_plan_free(fft);
    free(job.lo);
    free(job.hi);
    free(job.mel);
    free(job.block_max);
    return err;
}

int whisper_log_mel(const WhisperModel *model, const float *pcm, size_t n_samples,
                    size_t pad_samples, int n_threads, float **mel, int *n_frames, char *msg,
                    size_t cap) {
    if (mel) *mel = NULL;
    if (n_frames) *n_frames = 0;
    if (!model || !mel || !n_frames || (!pcm && n_samples > 0))
        return di_fail(msg, cap, DI_EINVAL, "whisper_log_mel: missing argument");
    if (!model->mel_filters)
        return di_fail(msg, cap, DI_EINVAL, "whisper_log_mel: model has no mel filters");
    int err = log_mel(model->mel_filters, model->hp.n_mels, pcm, n_samples, pad_samples, n_threads,
                      mel, n_frames);
    switch (err) {
    case 0:
        return 0;
    case DI_ENOAUDIO:
        return di_fail(msg, cap, err, "log-mel: %zu samples make no %d-sample frame",
                       n_samples + pad_samples, WHISPER_HOP);
    case DI_ENOMEM:
        return di_fail(msg, cap, err, "log-mel: out of memory for %zu samples",
                       n_samples + pad_samples);
    case DI_ERANGE:
        return di_fail(msg, cap, err, "log-mel: %zu samples is too long", n_samples + pad_samples);
    default:
        return di_fail(msg, cap, err, "log-mel: %s (n_mels %d)", di_strerror(err),
                       model->hp.n_mels);
    }
}
