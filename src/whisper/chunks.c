/*
 * chunks.c: where a long audio is cut so its pieces can decode side by side
 * (whisper.h, chunk_seconds). A cut should fall where nobody speaks; the
 * quietest stretch near the cut's target is the best guess without a
 * voice-activity model, and in speech with pauses it is a pause.
 */
#include "whisper/whisper_impl.h"

#include <math.h>
#include <stdlib.h>

#define FRAME 160       /* 10 ms at 16 kHz */
#define QUIET_FRAMES 50 /* the half second whose energy is measured */

int whisper_split_at_silences(const float *pcm, size_t n_samples, float chunk_seconds,
                              size_t **cuts, int *n_cuts, char *msg, size_t cap) {
    if (!cuts || !n_cuts || (!pcm && n_samples > 0))
        return di_fail(msg, cap, DI_EINVAL, "split: missing audio or output");
    *cuts = NULL;
    *n_cuts = 0;
    if (!(chunk_seconds >= 5.0f) || !isfinite(chunk_seconds))
        return di_fail(msg, cap, DI_EINVAL, "chunk_seconds must be at least 5 (got %g)",
                       (double)chunk_seconds);
    size_t n_frames = n_samples / FRAME;
    size_t chunk = (size_t)(chunk_seconds * WHISPER_SAMPLE_RATE / FRAME); /* in frames */
    if (n_frames < chunk + chunk / 4 || n_frames < QUIET_FRAMES) return 0;

    /* quiet[f]: the energy of frames f .. f + QUIET_FRAMES - 1. */
    size_t n_quiet = n_frames - QUIET_FRAMES + 1;
    double *energy = malloc(n_frames * sizeof *energy);
    double *quiet = malloc(n_quiet * sizeof *quiet);
    size_t max_cuts = n_frames / chunk + 1;
    size_t *out = malloc(max_cuts * sizeof *out);
    if (!energy || !quiet || !out) {
        free(energy);
        free(quiet);
        free(out);
        return di_fail(msg, cap, DI_ENOMEM, "out of memory splitting the audio");
    }
    for (size_t f = 0; f < n_frames; f++) {
        double e = 0;
        for (int i = 0; i < FRAME; i++) {
            double x = pcm[f * FRAME + i];
            e += x * x;
        }
        energy[f] = e;
    }
    /* Summed afresh each time (a running sum would drift): true silence
     * then sums to exactly 0 everywhere, and ties resolve by distance. */
    for (size_t f = 0; f < n_quiet; f++) {
        double q = 0;
        for (int i = 0; i < QUIET_FRAMES; i++)
            q += energy[f + i];
        quiet[f] = q;
    }

    int n = 0;
    size_t pos = 0; /* frame where the current piece starts */
    while (n_frames - pos >= chunk + chunk / 4 && (size_t)n < max_cuts) {
        size_t target = pos + chunk, lo = target - chunk / 4, hi = target + chunk / 4;
        /* Leave the last piece at least a quarter chunk. */
        if (hi + chunk / 4 > n_frames) hi = n_frames - chunk / 4;
        size_t best = lo;
        double best_q = INFINITY, best_dist = INFINITY;
        for (size_t c = lo; c <= hi; c++) {
            /* c is a candidate cut: the middle of the half second from f. */
            if (c < QUIET_FRAMES / 2 || c - QUIET_FRAMES / 2 >= n_quiet) continue;
            double q = quiet[c - QUIET_FRAMES / 2];
            double dist = fabs((double)c - (double)target);
            if (q < best_q || (q == best_q && dist < best_dist)) {
                best_q = q;
                best = c;
                best_dist = dist;
            }
        }
        out[n++] = best * FRAME;
        pos = best;
    }
    free(energy);
    free(quiet);
    if (n == 0) {
        free(out);
        return 0;
    }
    *cuts = out;
    *n_cuts = n;
    return 0;
}
