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
    fprintf(f, "usage: diarist bench -m MODEL [-t N] [-r REPEATS] [--json] [FILE]\n\n"
               "  -m, --model PATH   ggml Whisper model (default $DIARIST_MODEL)\n"
               "  -t, --threads N    threads (default: available cores, at most 8)\n"
               "  -r, --repeats N    runs per figure (default 3): medians, and ratios paired\n"
               "                     with a ceiling measured just before each run\n"
               "      --json         one JSON object on stdout\n"
               "  FILE               also transcribe FILE end to end (greedy, without\n"
               "                     temperature fallback, which random weights would never\n"
               "                     leave) and report the real-time factor and audio hours\n"
               "                     transcribed per hour\n");
}

/* End-to-end figures of one file: the median wall time of `repeats`
 * transcriptions and the audio's length. */
typedef struct {
    double seconds, audio_seconds;
} BenchFile;

/* Wall seconds per audio second, and its inverse: audio hours per hour. */
static double rtf(const BenchFile *f) {
    return f->audio_seconds > 0 ? f->seconds / f->audio_seconds : 0.0;
}

static double hours_per_hour(const BenchFile *f) {
    return f->seconds > 0 ? f->audio_seconds / f->seconds : 0.0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* OpenAI's greedy defaults, but one temperature only: with random weights
 * a window never passes the compression and log-probability checks, so
 * fallback would time six decodes of every window instead of one. */
static int bench_file(const WhisperModel *model, const char *file, int threads, int repeats,
                      BenchFile *out, char *msg, size_t cap) {
    AudioPcm pcm = {0};
    WhisperState *st = NULL;
    WhisperParams wp = whisper_default_params();
    wp.temperature_increment = 0;
    double *t = calloc((size_t)repeats, sizeof *t);
    int rc =
        t ? audio_decode_file(file, &pcm, msg, cap) : di_fail(msg, cap, DI_ENOMEM, "out of memory");
    if (!rc) rc = whisper_state_create(model, threads, &st, msg, cap);
    for (int i = 0; !rc && i < repeats; i++) {
        WhisperResult r = {0};
        double t0 = di_now();
        rc = whisper_transcribe(st, pcm.samples, pcm.n_samples, &wp, &r, msg, cap);
        t[i] = di_now() - t0;
        whisper_result_free(&r);
    }
    if (!rc) {
        qsort(t, (size_t)repeats, sizeof *t, cmp_double);
        out->seconds = repeats % 2 ? t[repeats / 2] : 0.5 * (t[repeats / 2 - 1] + t[repeats / 2]);
        out->audio_seconds = pcm.duration;
    }
    free(t);
    whisper_state_free(st);
    audio_pcm_free(&pcm);
    return rc;
}

static void print_json(const WhisperModel *model, int threads, int repeats, const WhisperBench *b,
                       const BenchFile *f, double rss_mb) {
    printf("{\"model\":\"%s\",\"threads\":%d,\"repeats\":%d,\"blas_core\":\"%s\","
           "\"sgemm_gflops\":%.1f,\"encoder_ms\":%.1f,\"encoder_gflops\":%.1f,"
           "\"encoder_vs_sgemm\":%.3f,\"decoder_ms_per_token\":%.3f,"
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
    if (f)
        printf(",\"audio_seconds\":%.2f,\"end_to_end_seconds\":%.3f,\"realtime_factor\":%.4f,"
               "\"audio_hours_per_hour\":%.3f",
               f->audio_seconds, f->seconds, rtf(f), hours_per_hour(f));
    printf("}\n");
}

static void print_text(const WhisperModel *model, int threads, int repeats, const WhisperBench *b,
                       const BenchFile *f, double rss_mb) {
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
    if (f)
        printf("end to end          %8.3f s for %.1f s of audio: real-time factor %.4f, %.1f audio "
               "hours per hour\n",
               f->seconds, f->audio_seconds, rtf(f), hours_per_hour(f));
    printf("peak RSS            %8.1f MB\n", rss_mb);
}

int cmd_bench(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"threads", required_argument, 0, 't'},
        {"repeats", required_argument, 0, 'r'}, {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    const char *model_path = NULL;
    int threads = cli_default_threads(), repeats = 3, json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:r:h", opts, NULL)) != -1) {
        switch (c) {
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
    const char *file = optind < argc ? argv[optind] : NULL;
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

    BenchFile f = {0};
    int rc = file ? bench_file(model, file, threads, repeats, &f, msg, sizeof msg) : 0;
    if (rc) fprintf(stderr, "diarist bench: %s: %s\n", file, msg);
    double rss_mb = (double)di_peak_rss() / (1024.0 * 1024.0);
    if (!rc && json)
        print_json(model, threads, repeats, &b, file ? &f : NULL, rss_mb);
    else if (!rc)
        print_text(model, threads, repeats, &b, file ? &f : NULL, rss_mb);
    whisper_model_free(model);
    return rc ? 1 : 0;
}
