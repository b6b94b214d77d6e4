/*
 * metrics: the process-wide figures a Prometheus scrape reads, beyond the
 * job and queue gauges the API counts from its backends.
 *
 * Workers feed it (stage durations, audio and compute seconds, finished
 * jobs, callback deliveries); the API's GET /metrics and, for a worker
 * running alone, metrics_serve's tiny server render it in the Prometheus
 * text format (version 0.0.4). There is one registry per process, so
 * `diarist run` (API and workers in one process) shows everything on one
 * page; a fleet scrapes each worker's own page.
 *
 *   diarist_stage_seconds{stage}          histogram: downloading, transcribing,
 *                                         generating_note, total (one job trip)
 *   diarist_audio_seconds_total           counter: seconds of audio transcribed
 *   diarist_transcribe_seconds_total      counter: wall seconds the engine took
 *   diarist_realtime_factor               gauge: the two above divided (lower
 *                                         is faster; rate() the counters for a
 *                                         recent figure)
 *   diarist_jobs_finished_total{state}    counter: completed, error
 *   diarist_callbacks_total{result}       counter: delivered, failed
 *
 * Every function is thread-safe (one mutex; the figures change a few times
 * per job, never in a hot loop). Nothing needs creating: the registry is a
 * static that lives as long as the process.
 */
#ifndef DIARIST_METRICS_H
#define DIARIST_METRICS_H

#include <stddef.h>

typedef enum {
    METRIC_STAGE_DOWNLOADING,
    METRIC_STAGE_TRANSCRIBING,
    METRIC_STAGE_GENERATING_NOTE,
    METRIC_STAGE_TOTAL,
    METRIC_STAGE_COUNT
} MetricStage;

/* Records one stage that took `seconds` (negative counts as 0). */
void metrics_observe_stage(MetricStage stage, double seconds);
/* The stage named as the job life cycle names it ("downloading", ...,
 * "total"); names it does not know are ignored. */
void metrics_observe_stage_named(const char *stage, double seconds);
/* One transcription: audio_s of audio in compute_s seconds of wall time. */
void metrics_add_transcription(double audio_s, double compute_s);
/* A job reached its end: completed (1) or error (0). */
void metrics_job_finished(int completed);
/* A callback delivery ended: delivered (1) or given up (0). */
void metrics_callback(int delivered);

/* Appends the registry in the text format to *buf (malloc'd, grown as
 * needed; *buf may start NULL with *len and *cap 0). 0 or DI_ENOMEM (then
 * *buf still holds what was there, for the caller to free). */
int metrics_render(char **buf, size_t *len, size_t *cap);

/* Forgets every figure; for tests that want a clean start. */
void metrics_reset(void);

/* ---- A scrape endpoint for a process without the API ------------------ */

typedef struct MetricsServer MetricsServer;

/* Serves GET /metrics (metrics_render) on host:port (port 0 = ephemeral)
 * on a background thread. DI_EINVAL for a bad address, DI_EIO when it
 * cannot bind. Freed by metrics_server_stop (NULL is fine). */
int metrics_serve(const char *host, int port, MetricsServer **out, char *msg, size_t cap);
/* The bound port. */
int metrics_server_port(const MetricsServer *s);
void metrics_server_stop(MetricsServer *s);

#endif
