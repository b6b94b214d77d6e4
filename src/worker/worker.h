/*
 * worker: the transcription workers. Each takes one queue message at a
 * time (the seed's body {"job_id", "file_path", "file_name"}) and moves the
 * job through the contract's life cycle:
 *   queued -> downloading -> transcribing -> generating_note -> completed
 * or to error with a readable reason.
 *
 * Rules the pipeline keeps (issue 5, items 4-6):
 * - Each state is written (meta_transition, conditional on the states the
 *   worker expects) BEFORE the work it announces. A failed write is retried
 *   a few times; if it still fails the message is released for a later
 *   retry (queue_change_visibility), never ignored.
 * - Results are idempotent: a message redelivered after a crash finds the
 *   job completed and is simply deleted; a job found in generating_note
 *   with its transcript saved goes straight to the note.
 * - Permanent failures (not audio, no audio stream, blob missing) end the
 *   job in error and delete the message; transient ones (store or meta
 *   errors, out of memory) release it with exponential backoff. A body
 *   that is not the seed's JSON is dead-lettered at once. When the queue
 *   dead-letters a message after too many receives the job ends in error
 *   with the last reason, except that a job whose transcript is saved and
 *   only the note failed ends completed with its note_error.
 * - A failed note is recorded with meta_set_note_error, never stored as
 *   the note.
 * - While a message is worked on, a heartbeat thread extends its lease
 *   every visibility_s / 3 seconds, so long files are not handed to a
 *   second worker.
 * - One JSON log line per stage (job id, stage, seconds), and the same
 *   figures in the process's metrics registry (metrics/metrics.h): stage
 *   durations, seconds of audio and of engine time, finished jobs.
 * - A job that ends (completed or error, by any path) with a callback_url
 *   has its final JSON posted there in the background (Callbacks below).
 *
 * Ownership: the config's handles (store, meta, queue, model, notes) are
 * the caller's and must outlive the workers; they are shared by every
 * worker thread (all of them are thread-safe). A Worker made by
 * worker_create is freed by worker_free (NULL is fine).
 */
#ifndef DIARIST_WORKER_H
#define DIARIST_WORKER_H

#include <stdatomic.h>
#include <stddef.h>

#include "meta/meta.h"
#include "notes/notes.h"
#include "queue/queue.h"
#include "store/store.h"
#include "whisper/whisper.h"

/* ---- Callbacks ------------------------------------------------------------
 *
 * A job uploaded with a callback_url has its final JSON (meta_job_result_json,
 * the same object GET /result/{id} answers) POSTed there when it reaches
 * completed or error, whichever path got it there (the pipeline, a permanent
 * failure, the dead letter). The POST carries Content-Type application/json,
 * X-Diarist-Job-Id and X-Diarist-Attempt (1, 2, ...).
 *
 * Deliveries run on a small pool of background threads (Callbacks), never
 * on the worker's own: a slow or dead receiver cannot hold up the next job.
 * A 2xx answer is delivered; connection errors, timeouts, 408, 429 and 5xx
 * are retried with exponential backoff and full jitter until deadline_s
 * after the job ended; any other answer (a 404, a redirect) is final. Each
 * outcome is one log line and a diarist_callbacks_total count.
 *
 * Guarantee: at least once while the process lives. A receiver may see a
 * job twice (its 2xx got lost, or a message redelivered after a crash
 * between the final state and the message's deletion posts again), so it
 * should dedupe on X-Diarist-Job-Id. Pending deliveries live in memory
 * only: at shutdown they get drain_s seconds, and a crash loses them; the
 * result stays readable at GET /result/{id}.
 */
typedef struct {
    double deadline_s;        /* retry until this long after the job ended, 300
                                 (DIARIST_CALLBACK_DEADLINE_S) */
    double attempt_timeout_s; /* one POST, 10 */
    double backoff_base_s;    /* first retry within [0, base], 1; doubles per attempt */
    double backoff_max_s;     /* cap on one delay, 60 */
    double drain_s;           /* at shutdown, what is pending gets this long, 5 */
    int n_threads;            /* deliveries in flight at once, 2 */
    int max_pending;          /* more than this waiting: new ones are dropped, 10000 */
} CallbackConfig;

CallbackConfig callback_default_config(void);
/* Reads DIARIST_CALLBACK_DEADLINE_S (seconds, 1..86400) over cfg. */
int callback_config_from_env(CallbackConfig *cfg, char *msg, size_t cap);

typedef struct Callbacks Callbacks;

/* Starts the delivery threads. Freed by callbacks_stop (NULL is fine). */
int callbacks_start(const CallbackConfig *cfg, Callbacks **out, char *msg, size_t cap);
/* Queues one delivery of json (copied) to url for job_id; returns at once.
 * DI_EINVAL for a URL meta_callback_url_ok refuses, DI_ENOMEM, or DI_ERANGE
 * when max_pending are waiting. */
int callbacks_post(Callbacks *cb, const char *url, const char *job_id, const char *json, char *msg,
                   size_t cap);
/* Gives what is pending up to drain_s, logs what is left as abandoned,
 * stops the threads and frees. */
void callbacks_stop(Callbacks *cb);

/* ---- Engine ---------------------------------------------------------------
 *
 * The workers of one process may share one engine: a WhisperState driven by
 * a thread of its own through a WhisperBatch of `lanes` lanes. Each worker
 * hands its audio to engine_transcribe and waits; audio from several jobs
 * (and the pieces of long audio cut at chunk_seconds) decodes together, a
 * 30 s window per lane per step, so every weight read serves them all.
 * Each job's transcript is bit for bit what it gets alone (see whisper.h,
 * Batches). One state also means one set of buffers, not one per worker.
 */
typedef struct Engine Engine;

int engine_start(const WhisperModel *model, int n_threads, int lanes, Engine **out, char *msg,
                 size_t cap);
/* Blocks until the audio is transcribed (any number of threads may call
 * at once); the engine's errors as whisper_transcribe's. */
int engine_transcribe(Engine *e, const float *pcm, size_t n_samples, const WhisperParams *params,
                      WhisperResult *out, char *msg, size_t cap);
/* Finishes what was handed over, then stops the thread and frees. */
void engine_stop(Engine *e);

/* ---- Workers -------------------------------------------------------------- */

/* Told after each state a worker writes: the job, its new state, and how
 * long the stage that just ended took (0 for the first). Called from
 * worker threads; may be NULL. For metrics and tests. */
typedef void (*WorkerStageFn)(void *ud, const char *job_id, JobState state, double seconds);

typedef struct {
    Store *store;
    Meta *meta;
    Queue *queue;
    const WhisperModel *model; /* loaded once, shared read-only */
    NoteGenerator *notes;      /* NULL: jobs complete without a note */
    WhisperParams params;      /* decoding settings (progress fields are the worker's) */
    const char *timezone;      /* dates notes in this IANA zone; NULL = UTC */
    const char *tmp_dir;       /* downloads go here; NULL = $TMPDIR or /tmp */
    int n_workers;             /* worker threads in worker_run */
    int n_threads;             /* engine threads per worker, or of the shared engine */
    int batch;                 /* > 1: worker_run shares one engine of this many lanes
                                  (DIARIST_BATCH) among at least as many workers;
                                  1: each worker has a state of its own */
    Engine *engine;            /* the shared engine; NULL: each worker its own state */
    double visibility_s;       /* lease per receive, 300; heartbeat every third of it */
    double wait_s;             /* long poll per receive, 20 */
    double stop_check_s;       /* longest a receive waits before looking at *stop, 1 */
    double backoff_base_s;     /* first retry delay, 10; doubles per receive */
    double backoff_max_s;      /* cap on one retry delay, 600 */
    int max_receives;          /* the queue's limit; on the last receive a failed note
                                  completes the job (0 = leave it to the dead letter) */
    int write_retries;         /* attempts for one meta write, 4 */
    double write_retry_s;      /* first pause between them, 0.05, doubling */
    atomic_int *stop;          /* set (e.g. by SIGTERM) to stop taking work; may be NULL */
    WorkerStageFn on_stage;
    void *stage_ud;
    Callbacks *callbacks;    /* deliveries; NULL: each Worker (or worker_run's set)
                                starts its own from `callback` and stops it at the end */
    CallbackConfig callback; /* settings for that one */
} WorkerConfig;

/* The defaults above, with the engine's params at OpenAI's defaults and
 * handles NULL. */
WorkerConfig worker_default_config(void);

typedef struct Worker Worker;

/* One worker: a WhisperState of its own plus the config (copied; the
 * handles in it are borrowed). DI_EINVAL if a required handle is missing. */
int worker_create(const WorkerConfig *cfg, Worker **out, char *msg, size_t cap);
void worker_free(Worker *w);

/* Receives at most one message (waiting up to wait_s, in slices of
 * stop_check_s) and processes it. Returns 1 when a message was handled
 * (whatever became of its job), 0 when none came, or a negative error from
 * the queue. */
int worker_poll_once(Worker *w, char *msg, size_t cap);

/* Processes one received message to its end: deleted, released for a
 * retry, or dead-lettered. Exposed so tests can replay a delivery. */
void worker_process(Worker *w, const QueueMessage *m);

/* Runs cfg->n_workers threads until *cfg->stop is set; each finishes the
 * message it holds before it returns. 0, or an error if no worker could
 * be started. */
int worker_run(const WorkerConfig *cfg, char *msg, size_t cap);

#endif
