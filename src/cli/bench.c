/* diarist bench: the engine's speed on this machine, with the machine's own
 * sgemm rate from the same run so the figures can be compared. */
#include "audio/audio.h"
#include "cli/cli.h"
#include "whisper/whisper.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: diarist bench -m MODEL [-t N] [-r REPEATS] [--json] [-b N] [--chunk S] "
               "[FILE...]\n\n"
               "  -m, --model PATH   ggml Whisper model (default $DIARIST_MODEL)\n"
               "  -t, --threads N    threads (default: available cores, at most 8)\n"
               "  -r, --repeats N    runs per figure (default 3): medians, and ratios paired\n"
               "                     with a ceiling measured just before each run\n"
               "      --json         one JSON object on stdout\n"
               "  FILE...            also transcribe the files end to end (greedy, without\n"
               "                     temperature fallback, which random weights would never\n"
               "                     leave), one after another, and report the real-time\n"
               "                     factor and audio hours transcribed per hour\n"
               "  -b, --batch N      ... and all at once through a batch of N lanes (1..7),\n"
               "                     round by round after the one-by-one run; the speedup is\n"
               "                     the median of the rounds' paired ratios\n"
               "      --chunk S      ... cutting files over 1.25 x S seconds at silences\n"
               "      --rounds N     rounds of the files (default 1)\n"
               "      --sample-len N at most N tokens per window (default 224); random\n"
               "                     weights rarely stop earlier, so 100 times a window of\n"
               "                     typical speech\n");
}

/* The files end to end: one after another (a batch of one lane, which is
 * whisper_transcribe), and with lanes > 1 all at once; medians over rounds. */
typedef struct {
    int n_files, lanes;
    double audio_seconds;
    double seconds;             /* one by one, median */
    double batched_seconds;     /* all at once, median (= seconds with one lane) */
    double speedup;             /* median of per-round seconds / batched_seconds */
    WhisperBatchStats one, all; /* of the last round */
} BenchFiles;

static double hours_per_hour(double audio_s, double s) {
    return s > 0 ? audio_s / s : 0.0;
}

/* Audio hours per hour if every 30 s window decoded 100 tokens (about what
 * speech gives), from a run's encode cost per window and decode cost per
 * token: comparable across engines whose random weights stop at
 * different lengths. */
static double hours_per_hour_at_100(const WhisperBatchStats *st) {
    if (st->windows <= 0 || st->tokens <= 0) return 0.0;
    double per_window = st->encode_s / st->windows + 100.0 * st->decode_s / st->tokens;
    return per_window > 0 ? 30.0 / per_window : 0.0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void ignore_done(void *ud, int err, const char *msg) {
    int *first_err = ud;
    if (err && !*first_err) {
        *first_err = err;
        di_log("error", "bench: %s", msg);
    }
}

/* Runs every file through a batch of `lanes` lanes, added all at once, or
 * with lanes 1 one after another; wall seconds in *seconds. */
static int run_files(WhisperState *st, AudioPcm *pcm, int n, int lanes, const WhisperParams *wp,
                     double *seconds, WhisperBatchStats *stats, char *msg, size_t cap) {
    WhisperBatch *b;
    int rc = whisper_batch_create(st, lanes, &b, msg, cap), failed = 0;
    if (rc) return rc;
    WhisperResult *r = calloc((size_t)n, sizeof *r);
    if (!r) {
        whisper_batch_free(b);
        return di_fail(msg, cap, DI_ENOMEM, "out of memory");
    }
    double t0 = di_now();
    for (int i = 0; i < n && !rc && !failed; i++) {
        rc = whisper_batch_add(b, pcm[i].samples, pcm[i].n_samples, wp, &r[i], ignore_done, &failed,
                               msg, cap);
        /* One by one: the next file starts when this one is done. */
        while (!rc && (lanes == 1 || i == n - 1) && whisper_batch_pending(b) > 0)
            whisper_batch_step(b, msg, cap);
    }
    *seconds = di_now() - t0;
    whisper_batch_stats(b, stats);
    whisper_batch_free(b);
    for (int i = 0; i < n; i++)
        whisper_result_free(&r[i]);
    free(r);
    if (!rc && failed) rc = di_fail(msg, cap, failed, "a file failed to transcribe");
    return rc;
}

/* OpenAI's greedy defaults, but one temperature only: with random weights
 * a window never passes the compression and log-probability checks, so
 * fallback would time six decodes of every window instead of one. */
static int bench_files(const WhisperModel *model, char **files, int n, int threads, int lanes,
                       float chunk, int rounds, int sample_len, BenchFiles *out, char *msg,
                       size_t cap) {
    WhisperParams wp = whisper_default_params();
    wp.temperature_increment = 0;
    wp.chunk_seconds = chunk;
    wp.sample_len = sample_len;
    AudioPcm *pcm = calloc((size_t)n, sizeof *pcm);
    double *one = calloc((size_t)rounds, sizeof *one), *all = calloc((size_t)rounds, sizeof *all);
    double *ratio = calloc((size_t)rounds, sizeof *ratio);
    WhisperState *st = NULL;
    int rc = pcm && one && all && ratio ? 0 : di_fail(msg, cap, DI_ENOMEM, "out of memory");
    memset(out, 0, sizeof *out);
    out->n_files = n;
    out->lanes = lanes;
    for (int i = 0; i < n && !rc; i++) {
        rc = audio_decode_file(files[i], &pcm[i], msg, cap);
        out->audio_seconds += pcm[i].duration;
    }
    if (!rc) rc = whisper_state_create(model, threads, &st, msg, cap);
    for (int k = 0; k < rounds && !rc; k++) {
        rc = run_files(st, pcm, n, 1, &wp, &one[k], &out->one, msg, cap);
        all[k] = one[k];
        out->all = out->one;
        if (!rc && lanes > 1) rc = run_files(st, pcm, n, lanes, &wp, &all[k], &out->all, msg, cap);
        ratio[k] = all[k] > 0 ? one[k] / all[k] : 0;
    }
    if (!rc) {
        out->seconds = median(one, rounds);
        out->batched_seconds = median(all, rounds);
        out->speedup = median(ratio, rounds);
    }
    whisper_state_free(st);
    for (int i = 0; pcm && i < n; i++)
        audio_pcm_free(&pcm[i]);
    free(pcm);
    free(one);
    free(all);
    free(ratio);
    return rc;
}

static void print_json(const WhisperModel *model, int threads, int repeats, const WhisperBench *b,
                       const BenchFiles *f, double rss_mb) {
    printf("{\"model\":\"%s\",\"threads\":%d,\"repeats\":%d,\"blas_core\":\"%s\","
           "\"sgemm_gflops\":%.1f,\"encoder_ms\":%.1f,\"encoder_gflops\":%.1f,"
           "\"encoder_vs_sgemm\":%.4f,\"decoder_ms_per_token\":%.3f,"
           "\"decoder_batch5_ms_per_step\":%.3f,\"decoder_batch5_ms_per_token\":%.3f,"
           "\"peak_rss_mb\":%.1f",
           whisper_model_type(model), threads, repeats, whisper_blas_core(), b->sgemm_gflops,
           b->encoder_ms, b->encoder_gflops, b->encoder_vs_sgemm, b->decoder_ms_per_token,
           b->decoder_batch5_ms_per_step, b->decoder_batch5_ms_per_token, rss_mb);
    printf(",\"encoder_gflop\":%.3f,\"memcpy_gbps\":%.4f,\"decoder_kv_len\":%.2f,"
           "\"decoder_bytes_per_token\":%.0f,\"decoder_floor_ms_per_token\":%.6f,"
           "\"decoder_vs_floor\":%.4f,\"batch5_vs_single\":%.4f",
           b->encoder_flops / 1e9, b->memcpy_gbps, b->decoder_kv_len, b->decoder_bytes_per_token,
           b->decoder_floor_ms_per_token, b->decoder_vs_floor, b->batch5_vs_single);
    const char *names[3] = {"encoder_vs_sgemm_runs", "decoder_vs_floor_runs",
                            "batch5_vs_single_runs"};
    const double *runs[3] = {b->encoder_vs_sgemm_runs, b->decoder_vs_floor_runs,
                             b->batch5_vs_single_runs};
    for (int k = 0; k < 3; k++) {
        printf(",\"%s\":[", names[k]);
        for (int r = 0; r < b->repeats; r++)
            printf("%s%.4f", r ? "," : "", runs[k][r]);
        printf("]");
    }
    if (f) {
        /* The headline figures are the batched run's (the one-by-one run's
         * with one lane). */
        const WhisperBatchStats *a = &f->all;
        printf(",\"files\":%d,\"lanes\":%d,\"audio_seconds\":%.2f,\"end_to_end_seconds\":%.3f,"
               "\"realtime_factor\":%.4f,\"audio_hours_per_hour\":%.3f,"
               "\"one_by_one_seconds\":%.3f,\"one_by_one_audio_hours_per_hour\":%.3f,"
               "\"batch_speedup\":%.3f,\"windows\":%ld,\"tokens\":%ld,\"decoder_steps\":%ld,"
               "\"encoder_ms_per_window\":%.2f,\"decoder_ms_per_token_amortized\":%.3f,"
               "\"audio_hours_per_hour_at_100_tokens\":%.3f,"
               "\"one_by_one_audio_hours_per_hour_at_100_tokens\":%.3f",
               f->n_files, f->lanes, f->audio_seconds, f->batched_seconds,
               f->audio_seconds > 0 ? f->batched_seconds / f->audio_seconds : 0,
               hours_per_hour(f->audio_seconds, f->batched_seconds), f->seconds,
               hours_per_hour(f->audio_seconds, f->seconds), f->speedup, a->windows, a->tokens,
               a->steps, a->windows ? 1e3 * a->encode_s / a->windows : 0,
               a->tokens ? 1e3 * a->decode_s / a->tokens : 0, hours_per_hour_at_100(a),
               hours_per_hour_at_100(&f->one));
    }
    printf("}\n");
}

static void print_text(const WhisperModel *model, int threads, int repeats, const WhisperBench *b,
                       const BenchFiles *f, double rss_mb) {
    printf("model               %s (%d threads, OpenBLAS %s kernels, medians of %d)\n",
           whisper_model_type(model), threads, whisper_blas_core(), repeats);
    printf("sgemm               %8.1f GFLOP/s (2048^3, this run)\n", b->sgemm_gflops);
    printf("memcpy              %8.2f GB/s (256 MiB, this run)\n", b->memcpy_gbps);
    printf("encoder             %8.1f ms per 30 s window of %.1f GFLOP: %.1f GFLOP/s = %.0f%% of "
           "sgemm\n",
           b->encoder_ms, b->encoder_flops / 1e9, b->encoder_gflops, 100.0 * b->encoder_vs_sgemm);
    printf("decoder             %8.3f ms per token (one sequence)\n", b->decoder_ms_per_token);
    printf("decoder floor       %8.3f ms per token: %.1f MB read per step (KV length %.1f) at "
           "memcpy speed; decoder is %.2fx the floor\n",
           b->decoder_floor_ms_per_token, b->decoder_bytes_per_token / 1e6, b->decoder_kv_len,
           b->decoder_vs_floor);
    printf("decoder, batch of 5 %8.3f ms per step, %.3f ms per token (%.2fx single)\n",
           b->decoder_batch5_ms_per_step, b->decoder_batch5_ms_per_token, b->batch5_vs_single);
    if (f) {
        printf("end to end          %8.3f s for %d files, %.1f s of audio, one by one: real-time "
               "factor %.4f, %.1f audio hours per hour (%.1f at 100 tokens per window)\n",
               f->seconds, f->n_files, f->audio_seconds,
               f->audio_seconds > 0 ? f->seconds / f->audio_seconds : 0,
               hours_per_hour(f->audio_seconds, f->seconds), hours_per_hour_at_100(&f->one));
        if (f->lanes > 1)
            printf(
                "batched             %8.3f s on %d lanes: %.1f audio hours per hour (%.1f at 100 "
                "tokens per window), %.2fx one by one; %ld windows, %ld tokens in %ld steps\n",
                f->batched_seconds, f->lanes, hours_per_hour(f->audio_seconds, f->batched_seconds),
                hours_per_hour_at_100(&f->all), f->speedup, f->all.windows, f->all.tokens,
                f->all.steps);
    }
    printf("peak RSS            %8.1f MB\n", rss_mb);
}

int cmd_bench(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"threads", required_argument, 0, 't'},
        {"repeats", required_argument, 0, 'r'}, {"json", no_argument, 0, 'j'},
        {"batch", required_argument, 0, 'b'},   {"chunk", required_argument, 0, 'c'},
        {"rounds", required_argument, 0, 'R'},  {"sample-len", required_argument, 0, 'S'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    const char *model_path = NULL;
    int threads = cli_default_threads(), repeats = 3, json = 0, lanes = 1, rounds = 1, c;
    int sample_len = 0;
    float chunk = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:r:b:h", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            if (cli_int(optarg, 1, WHISPER_BATCH_MAX_LANES, &lanes)) {
                fprintf(stderr, "diarist bench: invalid --batch '%s' (1..%d)\n", optarg,
                        WHISPER_BATCH_MAX_LANES);
                return 2;
            }
            break;
        case 'c':
            if (cli_float(optarg, 5, 86400, &chunk)) {
                fprintf(stderr, "diarist bench: invalid --chunk '%s' (at least 5 seconds)\n",
                        optarg);
                return 2;
            }
            break;
        case 'S':
            if (cli_int(optarg, 1, 224, &sample_len)) {
                fprintf(stderr, "diarist bench: invalid --sample-len '%s' (1..224)\n", optarg);
                return 2;
            }
            break;
        case 'R':
            if (cli_int(optarg, 1, 100, &rounds)) {
                fprintf(stderr, "diarist bench: invalid --rounds '%s'\n", optarg);
                return 2;
            }
            break;
        case 'm':
            model_path = optarg;
            break;
        case 't':
            if (cli_int(optarg, 1, 256, &threads)) {
                fprintf(stderr, "diarist bench: invalid --threads '%s'\n", optarg);
                return 2;
            }
            break;
        case 'r':
            if (cli_int(optarg, 1, WHISPER_BENCH_MAX_REPEATS, &repeats)) {
                fprintf(stderr, "diarist bench: invalid --repeats '%s'\n", optarg);
                return 2;
            }
            break;
        case 'j':
            json = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    model_path = cli_model_path(model_path);
    if (!model_path) {
        fprintf(stderr, "diarist bench: no model: pass -m PATH|NAME or set DIARIST_MODEL (see "
                        "diarist model list)\n");
        return 2;
    }
    int n_files = argc - optind;
    char msg[1024];
    WhisperModel *model;
    if (whisper_model_load(model_path, &model, msg, sizeof msg)) {
        fprintf(stderr, "diarist bench: %s\n", msg);
        return 1;
    }
    WhisperBench b;
    if (whisper_bench(model, threads, repeats, &b, msg, sizeof msg)) {
        fprintf(stderr, "diarist bench: %s\n", msg);
        whisper_model_free(model);
        return 1;
    }

    BenchFiles f = {0};
    int rc = n_files ? bench_files(model, argv + optind, n_files, threads, lanes, chunk, rounds,
                                   sample_len, &f, msg, sizeof msg)
                     : 0;
    if (rc) fprintf(stderr, "diarist bench: %s\n", msg);
    double rss_mb = (double)di_peak_rss() / (1024.0 * 1024.0);
    if (!rc && json)
        print_json(model, threads, repeats, &b, n_files ? &f : NULL, rss_mb);
    else if (!rc)
        print_text(model, threads, repeats, &b, n_files ? &f : NULL, rss_mb);
    whisper_model_free(model);
    return rc ? 1 : 0;
}
