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
               "  -r, --repeats N    runs per figure; medians are reported (default 3)\n"
               "      --json         one JSON object on stdout\n"
               "  FILE               also transcribe FILE end to end (greedy) and report the\n"
               "                     real-time factor\n");
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
            if (cli_int(optarg, 1, 1000, &repeats)) {
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

    double e2e = 0, audio_s = 0;
    int rc = 0;
    if (file) {
        AudioPcm pcm = {0};
        WhisperState *st = NULL;
        WhisperResult r = {0};
        WhisperParams wp = whisper_default_params();
        double *t = calloc((size_t)repeats, sizeof *t);
        rc = audio_decode_file(file, &pcm, msg, sizeof msg);
        if (!rc) rc = whisper_state_create(model, threads, &st, msg, sizeof msg);
        for (int i = 0; !rc && i < repeats; i++) {
            double t0 = di_now();
            rc = whisper_transcribe(st, pcm.samples, pcm.n_samples, &wp, &r, msg, sizeof msg);
            t[i] = di_now() - t0;
            whisper_result_free(&r);
        }
        if (!rc) { /* median */
            for (int i = 0; i < repeats; i++)
                for (int j = i + 1; j < repeats; j++)
                    if (t[j] < t[i]) {
                        double x = t[i];
                        t[i] = t[j];
                        t[j] = x;
                    }
            e2e = repeats % 2 ? t[repeats / 2] : 0.5 * (t[repeats / 2 - 1] + t[repeats / 2]);
            audio_s = pcm.duration;
        }
        free(t);
        whisper_state_free(st);
        audio_pcm_free(&pcm);
        if (rc) fprintf(stderr, "diarist bench: %s: %s\n", file, msg);
    }
    double rss_mb = (double)di_peak_rss() / (1024.0 * 1024.0);
    if (!rc && json) {
        printf("{\"model\":\"%s\",\"threads\":%d,\"repeats\":%d,\"blas_core\":\"%s\","
               "\"sgemm_gflops\":%.1f,\"encoder_ms\":%.1f,\"encoder_gflops\":%.1f,"
               "\"encoder_vs_sgemm\":%.3f,\"decoder_ms_per_token\":%.3f,"
               "\"decoder_batch5_ms_per_step\":%.3f,\"decoder_batch5_ms_per_token\":%.3f,"
               "\"peak_rss_mb\":%.1f",
               whisper_model_type(model), threads, repeats, whisper_blas_core(), b.sgemm_gflops,
               b.encoder_ms, b.encoder_gflops, b.encoder_gflops / b.sgemm_gflops,
               b.decoder_ms_per_token, b.decoder_batch5_ms_per_step, b.decoder_batch5_ms_per_token,
               rss_mb);
        if (file)
            printf(",\"audio_seconds\":%.2f,\"end_to_end_seconds\":%.3f,\"realtime_factor\":%.4f",
                   audio_s, e2e, audio_s > 0 ? e2e / audio_s : 0.0);
        printf("}\n");
    } else if (!rc) {
        printf("model               %s (%d threads, OpenBLAS %s kernels, medians of %d)\n",
               whisper_model_type(model), threads, whisper_blas_core(), repeats);
        printf("sgemm               %8.1f GFLOP/s (2048^3, this run)\n", b.sgemm_gflops);
        printf("encoder             %8.1f ms per 30 s window, %.1f GFLOP/s = %.0f%% of sgemm\n",
               b.encoder_ms, b.encoder_gflops, 100.0 * b.encoder_gflops / b.sgemm_gflops);
        printf("decoder             %8.3f ms per token (one sequence)\n", b.decoder_ms_per_token);
        printf("decoder, batch of 5 %8.3f ms per step, %.3f ms per token (%.2fx single)\n",
               b.decoder_batch5_ms_per_step, b.decoder_batch5_ms_per_token,
               b.decoder_batch5_ms_per_token / b.decoder_ms_per_token);
        if (file)
            printf("end to end          %8.3f s for %.1f s of audio: real-time factor %.4f\n", e2e,
                   audio_s, audio_s > 0 ? e2e / audio_s : 0.0);
        printf("peak RSS            %8.1f MB\n", rss_mb);
    }
    whisper_model_free(model);
    return rc ? 1 : 0;
}
