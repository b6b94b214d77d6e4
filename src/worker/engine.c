/*
 * engine.c: one WhisperState shared by every worker thread of a process,
 * driven by a thread of its own through a WhisperBatch (worker.h, Engine).
 *
 * Workers hand their audio over and sleep; the engine thread adds what has
 * arrived to the batch between steps, so a job that comes in while others
 * decode joins them at their next window, and wakes each worker when its
 * audio is done.
 */
#include "worker/worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct Engine;

/* One audio handed over by a worker, on that worker's stack. */
typedef struct Request {
    struct Engine *engine;
    const float *pcm;
    size_t n_samples;
    const WhisperParams *params;
    WhisperResult *out;
    int finished, err;
    char msg[512];
    struct Request *next;
} Request;

struct Engine {
    WhisperState *state;
    WhisperBatch *batch;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work; /* the engine thread waits here for requests */
    pthread_cond_t done; /* workers wait here for their results */
    Request *head, *tail;
    int stop;
};

/* Called on the engine thread, from an add or a step. */
static void request_done(void *ud, int err, const char *msg) {
    Request *r = ud;
    Engine *e = r->engine;
    pthread_mutex_lock(&e->lock);
    r->err = err;
    if (msg != r->msg) snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "");
    r->finished = 1;
    pthread_cond_broadcast(&e->done);
    pthread_mutex_unlock(&e->lock);
}

static void *engine_main(void *arg) {
    Engine *e = arg;
    char msg[512];
    for (;;) {
        pthread_mutex_lock(&e->lock);
        while (!e->head && !e->stop && whisper_batch_pending(e->batch) == 0)
            pthread_cond_wait(&e->work, &e->lock);
        Request *list = e->head;
        e->head = e->tail = NULL;
        int quit = e->stop && !list && whisper_batch_pending(e->batch) == 0;
        pthread_mutex_unlock(&e->lock);
        if (quit) return NULL;
        /* New audio joins between steps, in arrival order. */
        while (list) {
            Request *r = list;
            list = r->next;
            char why[512];
            int rc = whisper_batch_add(e->batch, r->pcm, r->n_samples, r->params, r->out,
                                       request_done, r, why, sizeof why);
            if (rc) request_done(r, rc, why);
        }
        if (whisper_batch_pending(e->batch) > 0) whisper_batch_step(e->batch, msg, sizeof msg);
    }
}

/* Everything but the thread, which is stopped (or never started). */
static void engine_free(Engine *e) {
    whisper_batch_free(e->batch);
    whisper_state_free(e->state);
    pthread_cond_destroy(&e->work);
    pthread_cond_destroy(&e->done);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

int engine_start(const WhisperModel *model, int n_threads, int lanes, Engine **out, char *msg,
                 size_t cap) {
    if (!out) return di_fail(msg, cap, DI_EINVAL, "engine_start: no output pointer");
    *out = NULL;
    Engine *e = calloc(1, sizeof *e);
    if (!e) return di_fail(msg, cap, DI_ENOMEM, "engine: out of memory");
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->work, NULL);
    pthread_cond_init(&e->done, NULL);
    int rc = whisper_state_create(model, n_threads, &e->state, msg, cap);
    if (!rc) rc = whisper_batch_create(e->state, lanes, &e->batch, msg, cap);
    if (!rc && pthread_create(&e->thread, NULL, engine_main, e))
        rc = di_fail(msg, cap, DI_ENOMEM, "engine: cannot start its thread");
    if (rc) {
        engine_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

int engine_transcribe(Engine *e, const float *pcm, size_t n_samples, const WhisperParams *params,
                      WhisperResult *out, char *msg, size_t cap) {
    if (!e || !out) return di_fail(msg, cap, DI_EINVAL, "engine_transcribe: missing argument");
    Request r = {.engine = e, .pcm = pcm, .n_samples = n_samples, .params = params, .out = out};
    pthread_mutex_lock(&e->lock);
    if (e->stop) {
        pthread_mutex_unlock(&e->lock);
        return di_fail(msg, cap, DI_EINTERNAL, "the engine is stopping");
    }
    if (e->tail)
        e->tail->next = &r;
    else
        e->head = &r;
    e->tail = &r;
    pthread_cond_signal(&e->work);
    while (!r.finished)
        pthread_cond_wait(&e->done, &e->lock);
    pthread_mutex_unlock(&e->lock);
    if (r.err) return di_fail(msg, cap, r.err, "%s", r.msg);
    return 0;
}

void engine_stop(Engine *e) {
    if (!e) return;
    /* What was handed over is finished first: its workers are waiting. */
    pthread_mutex_lock(&e->lock);
    e->stop = 1;
    pthread_cond_signal(&e->work);
    pthread_mutex_unlock(&e->lock);
    pthread_join(e->thread, NULL);
    engine_free(e);
}
