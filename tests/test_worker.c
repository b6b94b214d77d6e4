/* The worker pipeline on real embedded backends and the golden micro model:
 * seed-shaped jobs go through every state to completed; bad audio, bad
 * bodies, redeliveries and failing notes end the way the contract wants;
 * worker_run stops promptly. */
#include "testutil.h"
#include "worker/worker.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static WhisperModel *model;
static NoteGenerator *extractive;

/* ---- Recording the states a worker writes ------------------------------- */

#define MAX_EVENTS 64
typedef struct {
    pthread_mutex_t lock;
    JobState states[MAX_EVENTS];
    int n;
} Events;

static void record(void *ud, const char *job_id, JobState s, double seconds) {
    (void)job_id;
    assert_true(seconds >= 0);
    Events *e = ud;
    pthread_mutex_lock(&e->lock);
    if (e->n < MAX_EVENTS) e->states[e->n++] = s;
    pthread_mutex_unlock(&e->lock);
}

static int count_state(const Events *e, JobState s) {
    int n = 0;
    for (int i = 0; i < e->n; i++)
        n += e->states[i] == s;
    return n;
}

/* ---- A fresh service per test -------------------------------------------- */

typedef struct {
    Store *store;
    Meta *meta;
    Queue *queue;
    Worker *worker;
    WorkerConfig cfg;
    Events ev;
    char dir[4096]; /* downloads land here */
} Env;

static void env_open(Env *env, const char *name, int max_receives, NoteGenerator *notes) {
    memset(env, 0, sizeof *env);
    pthread_mutex_init(&env->ev.lock, NULL);
    char *dir = env->dir, url[8192], msg[512];
    snprintf(env->dir, sizeof env->dir, "%s", tu_tmp(name));
    mkdir(dir, 0755);
    snprintf(url, sizeof url, "%s/blobs", dir);
    mkdir(url, 0755);
    assert_int_equal(store_open(url, &env->store, msg, sizeof msg), 0);
    snprintf(url, sizeof url, "sqlite://%s/diarist.db", dir);
    assert_int_equal(meta_open(url, &env->meta, msg, sizeof msg), 0);
    snprintf(url, sizeof url, "sqlite://%s/diarist.db?queue=audio-processing-queue&max_receives=%d",
             dir, max_receives);
    assert_int_equal(queue_open(url, &env->queue, msg, sizeof msg), 0);

    WorkerConfig c = worker_default_config();
    c.store = env->store;
    c.meta = env->meta;
    c.queue = env->queue;
    c.model = model;
    c.notes = notes;
    c.params.temperature_increment = 0;
    c.params.sample_len = 16;
    c.n_threads = 2;
    c.tmp_dir = dir;
    c.visibility_s = 30;
    c.wait_s = 0.3;
    c.stop_check_s = 0.1;
    c.backoff_base_s = 0.05;
    c.backoff_max_s = 0.2;
    c.max_receives = max_receives;
    c.on_stage = record;
    c.stage_ud = &env->ev;
    env->cfg = c;
    assert_int_equal(worker_create(&env->cfg, &env->worker, msg, sizeof msg), 0);
}

static void env_close(Env *env) {
    worker_free(env->worker);
    queue_close(env->queue);
    meta_close(env->meta);
    store_close(env->store);
    pthread_mutex_destroy(&env->ev.lock);
}

static void send_body(Env *env, const char *body) {
    char msg[256];
    assert_int_equal(queue_send(env->queue, body, strlen(body), NULL, 0, msg, sizeof msg), 0);
}

/* Creates a job the way the seed's API does: the blob at
 * uploads/{id}/{name}, a queued record, and the seed's message body. */
static void seed_job(Env *env, const char *id, const char *name, const void *data, size_t n) {
    char key[512], body[1024], msg[256];
    snprintf(key, sizeof key, "uploads/%s/%s", id, name);
    assert_int_equal(store_put(env->store, key, data, n, msg, sizeof msg), 0);
    Job job = {
        .job_id = (char *)id, .file_name = (char *)name, .file_path = key, .state = JOB_QUEUED};
    assert_int_equal(meta_create(env->meta, &job, msg, sizeof msg), 0);
    snprintf(body, sizeof body,
             "{\"job_id\": \"%s\", \"file_path\": \"%s\", \"file_name\": \"%s\"}", id, key, name);
    send_body(env, body);
}

static void seed_jfk(Env *env, const char *id) {
    size_t n;
    void *wav = tu_read(tu_shared("samples/jfk.wav"), &n);
    assert_non_null(wav);
    seed_job(env, id, "jfk.wav", wav, n);
    free(wav);
}

static QueueDepth depth(Env *env) {
    QueueDepth d;
    char msg[256];
    assert_int_equal(queue_depth(env->queue, &d, msg, sizeof msg), 0);
    return d;
}

/* Polls until the queue holds nothing visible or in flight. */
static void drain(Env *env) {
    char msg[256];
    for (int i = 0; i < 200; i++) {
        QueueDepth d = depth(env);
        if (d.visible == 0 && d.in_flight == 0) return;
        assert_true(worker_poll_once(env->worker, msg, sizeof msg) >= 0);
    }
    fail_msg("the queue never drained");
}

static void get_job(Env *env, const char *id, Job *job) {
    char msg[256];
    assert_int_equal(meta_get(env->meta, id, job, msg, sizeof msg), 0);
}

/* ---- Tests --------------------------------------------------------------- */

static void seed_job_completes(void **state) {
    (void)state;
    Env env;
    env_open(&env, "complete", 5, extractive);
    const char *id = "6f1d2c3b-0000-4000-8000-000000000001";
    seed_jfk(&env, id);
    drain(&env);

    Job job = {0};
    get_job(&env, id, &job);
    assert_int_equal(job.state, JOB_COMPLETED);
    assert_null(job.error);
    assert_non_null(job.transcription);
    assert_true(strlen(job.transcription) > 0);
    assert_string_equal(job.language, "en");
    assert_float_equal(job.duration, 11.0, 0.01);
    assert_int_equal(job.attempts, 1);
    json_t *doc = json_loads(job.segments_json, 0, NULL);
    assert_non_null(doc);
    assert_true(json_is_array(json_object_get(doc, "segments")));
    assert_true(json_array_size(json_object_get(doc, "segments")) >= 1);
    json_decref(doc);
    assert_non_null(job.note_markdown);
    assert_non_null(strstr(job.note_markdown, "## Mood"));
    assert_non_null(job.note_json);
    assert_null(job.note_error);
    assert_true(job.note_created_at > 0);
    meta_job_free(&job);

    QueueDepth d = depth(&env);
    assert_int_equal(d.visible + d.in_flight + d.dead, 0);
    JobState want[] = {JOB_DOWNLOADING, JOB_TRANSCRIBING, JOB_GENERATING_NOTE, JOB_COMPLETED};
    assert_int_equal(env.ev.n, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(env.ev.states[i], want[i]);
    /* The download was a temp file and is gone. */
    assert_int_equal(tu_sh("ls %s | grep -q '^diarist-'", tu_tmp("complete")) == 0, 0);
    env_close(&env);
}

/* A job left mid-way by a worker that died is taken up again and
 * completes; a redelivery of a completed job only removes the message. */
static void redelivery_completes_exactly_once(void **state) {
    (void)state;
    Env env;
    env_open(&env, "redeliver", 5, extractive);
    char msg[256];
    const char *id = "6f1d2c3b-0000-4000-8000-000000000002";
    seed_jfk(&env, id);
    /* The first worker got as far as transcribing and died. */
    assert_int_equal(
        meta_transition(env.meta, id, JOB_MASK(JOB_QUEUED), JOB_DOWNLOADING, NULL, msg, sizeof msg),
        0);
    assert_int_equal(meta_transition(env.meta, id, JOB_MASK(JOB_DOWNLOADING), JOB_TRANSCRIBING,
                                     NULL, msg, sizeof msg),
                     0);
    drain(&env);
    Job job = {0};
    get_job(&env, id, &job);
    assert_int_equal(job.state, JOB_COMPLETED);
    assert_int_equal(job.attempts, 2);
    assert_non_null(job.note_markdown);
    double note_at = job.note_created_at;
    char *text = strdup(job.transcription);
    meta_job_free(&job);
    int events = env.ev.n;

    /* The same message again, as after a crash between completing and
     * deleting it. */
    char body[512];
    snprintf(
        body, sizeof body,
        "{\"job_id\": \"%s\", \"file_path\": \"uploads/%s/jfk.wav\", \"file_name\": \"jfk.wav\"}",
        id, id);
    send_body(&env, body);
    assert_int_equal(worker_poll_once(env.worker, msg, sizeof msg), 1);
    QueueDepth d = depth(&env);
    assert_int_equal(d.visible + d.in_flight + d.dead, 0);
    assert_int_equal(env.ev.n, events); /* no state written */
    get_job(&env, id, &job);
    assert_int_equal(job.state, JOB_COMPLETED);
    assert_int_equal(job.attempts, 2);
    assert_float_equal(job.note_created_at, note_at, 1e-9); /* still the one note */
    assert_string_equal(job.transcription, text);
    meta_job_free(&job);
    free(text);

    /* A message for a deleted job is dropped too. */
    assert_int_equal(meta_delete(env.meta, id, msg, sizeof msg), 0);
    send_body(&env, body);
    assert_int_equal(worker_poll_once(env.worker, msg, sizeof msg), 1);
    d = depth(&env);
    assert_int_equal(d.visible + d.in_flight + d.dead, 0);
    env_close(&env);
}

static void text_file_fails_with_reason(void **state) {
    (void)state;
    Env env;
    env_open(&env, "notaudio", 5, extractive);
    const char *id = "6f1d2c3b-0000-4000-8000-000000000003";
    const char text[] = "Dear diary, this is a text file pretending to be an mp3.\n";
    seed_job(&env, id, "voice memo.mp3", text, sizeof text - 1);
    drain(&env);
    Job job = {0};
    get_job(&env, id, &job);
    assert_int_equal(job.state, JOB_ERROR);
    assert_non_null(job.error);
    assert_non_null(strstr(job.error, "cannot read the audio"));
    assert_null(job.transcription);
    assert_null(job.note_markdown);
    meta_job_free(&job);
    QueueDepth d = depth(&env);
    assert_int_equal(d.visible + d.in_flight + d.dead, 0);
    assert_int_equal(env.ev.states[env.ev.n - 1], JOB_ERROR);
    assert_int_equal(count_state(&env.ev, JOB_DOWNLOADING), 1); /* no retry */

    /* A blob that is missing is just as final. */
    const char *id2 = "6f1d2c3b-0000-4000-8000-000000000004";
    seed_job(&env, id2, "gone.wav", text, sizeof text - 1);
    char key[256], msg[256];
    snprintf(key, sizeof key, "uploads/%s/gone.wav", id2);
    assert_int_equal(store_delete(env.store, key, msg, sizeof msg), 0);
    drain(&env);
    get_job(&env, id2, &job);
    assert_int_equal(job.state, JOB_ERROR);
    assert_non_null(strstr(job.error, "cannot fetch the audio"));
    meta_job_free(&job);
    env_close(&env);
}

static void malformed_bodies_are_dead_lettered(void **state) {
    (void)state;
    Env env;
    env_open(&env, "malformed", 5, extractive);
    send_body(&env, "this is not json");
    send_body(&env, "{\"job_id\": \"x\"}");
    send_body(&env, "[1, 2, 3]");
    send_body(&env, "{\"job_id\": 7, \"file_path\": \"a\", \"file_name\": \"b\"}");
    drain(&env);
    QueueDepth d = depth(&env);
    assert_int_equal(d.dead, 4);
    assert_int_equal(d.visible + d.in_flight, 0);
    assert_int_equal(env.ev.n, 0);
    env_close(&env);
}

/* A note generator that is always down. */
static int failing_generate(NoteGenerator *g, const NoteRequest *req, json_t **entry, char *msg,
                            size_t cap) {
    (void)g;
    (void)req;
    *entry = NULL;
    return di_fail(msg, cap, DI_EIO, "chat server unavailable");
}

static NoteGenerator failing_notes = {.name = "failing", .generate = failing_generate};

static void check_note_failed_job(Env *env, const char *id) {
    Job job = {0};
    get_job(env, id, &job);
    assert_int_equal(job.state, JOB_COMPLETED);
    assert_non_null(job.transcription);
    assert_true(strlen(job.transcription) > 0);
    assert_non_null(job.note_error);
    assert_non_null(strstr(job.note_error, "chat server unavailable"));
    assert_null(job.note_markdown);
    assert_null(job.note_json);
    assert_true(job.note_created_at == 0);
    meta_job_free(&job);
    /* Transcribed once; the retries only tried the note again. */
    assert_int_equal(count_state(&env->ev, JOB_TRANSCRIBING), 1);
    assert_int_equal(count_state(&env->ev, JOB_COMPLETED), 1);
    QueueDepth d = depth(env);
    assert_int_equal(d.visible + d.in_flight, 0);
}

static void failed_note_keeps_transcript(void **state) {
    (void)state;
    Env env;
    env_open(&env, "notefail", 3, &failing_notes);
    const char *id = "6f1d2c3b-0000-4000-8000-000000000005";
    seed_jfk(&env, id);
    char msg[256];

    /* After the first attempt: transcript kept, failure recorded, job
     * waiting for its note, message scheduled for a retry. */
    assert_int_equal(worker_poll_once(env.worker, msg, sizeof msg), 1);
    Job job = {0};
    get_job(&env, id, &job);
    assert_int_equal(job.state, JOB_GENERATING_NOTE);
    assert_non_null(job.transcription);
    assert_non_null(job.note_error);
    assert_null(job.note_markdown);
    meta_job_free(&job);
    assert_int_equal(depth(&env).in_flight, 1);

    /* The worker knows the limit: the last receive completes the job. */
    drain(&env);
    check_note_failed_job(&env, id);
    assert_int_equal(depth(&env).dead, 0);
    env_close(&env);

    /* Left to the queue's dead letter instead, the job completes too. */
    env_open(&env, "notefail-dead", 2, &failing_notes);
    env.cfg.max_receives = 0;
    worker_free(env.worker);
    assert_int_equal(worker_create(&env.cfg, &env.worker, msg, sizeof msg), 0);
    seed_jfk(&env, id);
    drain(&env);
    check_note_failed_job(&env, id);
    assert_int_equal(depth(&env).dead, 1);
    env_close(&env);
}

/* A job whose failures are all transient ends in error with the last
 * reason when the queue gives up. */
static void dead_letter_marks_job_error(void **state) {
    (void)state;
    Env env;
    env_open(&env, "deadjob", 2, extractive);
    const char *id = "6f1d2c3b-0000-4000-8000-000000000006";
    seed_jfk(&env, id);
    char msg[256];
    /* A queue message whose lease keeps running out: receive it and never
     * answer, as a worker that dies each time would. */
    for (int i = 0; i < 2; i++) {
        QueueMessage m = {0};
        assert_int_equal(queue_receive(env.queue, 1, 0, NULL, NULL, &m, msg, sizeof msg), 1);
        assert_int_equal(
            queue_change_visibility(env.queue, m.receipt, 0, "worker died", msg, sizeof msg), 0);
        queue_message_free(&m);
    }
    assert_int_equal(worker_poll_once(env.worker, msg, sizeof msg), 0);
    Job job = {0};
    get_job(&env, id, &job);
    assert_int_equal(job.state, JOB_ERROR);
    assert_non_null(job.error);
    assert_non_null(strstr(job.error, "worker died"));
    meta_job_free(&job);
    assert_int_equal(depth(&env).dead, 1);
    env_close(&env);
}

typedef struct {
    WorkerConfig cfg;
    int rc;
} RunArgs;

static void *run_thread(void *arg) {
    RunArgs *a = arg;
    char msg[256];
    a->rc = worker_run(&a->cfg, msg, sizeof msg);
    return NULL;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void stop_flag_stops_idle_workers(void **state) {
    (void)state;
    Env env;
    env_open(&env, "stop", 5, extractive);
    atomic_int stop = 0;
    RunArgs a = {.cfg = env.cfg, .rc = -1};
    a.cfg.n_workers = 2;
    a.cfg.n_threads = 1;
    a.cfg.wait_s = QUEUE_MAX_WAIT_S; /* the real long poll */
    a.cfg.stop_check_s = 0.25;
    a.cfg.stop = &stop;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_thread, &a), 0);
    /* Work arriving while it runs is done. */
    const char *id = "6f1d2c3b-0000-4000-8000-000000000007";
    seed_jfk(&env, id);
    Job job = {0};
    for (int i = 0; i < 600; i++) {
        get_job(&env, id, &job);
        int done = job.state == JOB_COMPLETED;
        meta_job_free(&job);
        if (done) break;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    get_job(&env, id, &job);
    assert_int_equal(job.state, JOB_COMPLETED);
    meta_job_free(&job);

    double t0 = now_s();
    atomic_store(&stop, 1);
    pthread_join(th, NULL);
    double took = now_s() - t0;
    assert_int_equal(a.rc, 0);
    assert_true(took < 2.0);

    /* Bad settings are refused, not run. */
    char msg[256];
    a.cfg.n_workers = 0;
    assert_int_equal(worker_run(&a.cfg, msg, sizeof msg), DI_EINVAL);
    WorkerConfig bad = a.cfg;
    bad.model = NULL;
    Worker *w = NULL;
    assert_int_equal(worker_create(&bad, &w, msg, sizeof msg), DI_EINVAL);
    assert_null(w);
    env_close(&env);
}

/* Jobs given to workers sharing one batched engine end with the very
 * transcripts (text and segments) a lone worker writes for the same
 * audio, one job after another. */
static void batched_workers_match_one_by_one(void **state) {
    (void)state;
    Env env;
    env_open(&env, "batched", 5, NULL);
    const char *longwav = tu_tmp("long.wav");
    const char *jfk = tu_shared("samples/jfk.wav");
    assert_int_equal(
        tu_sh("sox %s %s %s %s %s %s %s 2>/dev/null", jfk, jfk, jfk, jfk, jfk, jfk, longwav), 0);
    size_t n_long;
    void *wav_long = tu_read(longwav, &n_long);
    assert_non_null(wav_long);

    /* One by one, on the lone worker. */
    seed_jfk(&env, "6f1d2c3b-0000-4000-8000-000000000100");
    seed_job(&env, "6f1d2c3b-0000-4000-8000-000000000101", "long.wav", wav_long, n_long);
    drain(&env);
    Job ref[2] = {{0}, {0}};
    get_job(&env, "6f1d2c3b-0000-4000-8000-000000000100", &ref[0]);
    get_job(&env, "6f1d2c3b-0000-4000-8000-000000000101", &ref[1]);
    assert_int_equal(ref[0].state, JOB_COMPLETED);
    assert_int_equal(ref[1].state, JOB_COMPLETED);

    /* Five at once on three lanes: two of them wait for a lane. */
    const char *ids[5] = {
        "6f1d2c3b-0000-4000-8000-000000000110", "6f1d2c3b-0000-4000-8000-000000000111",
        "6f1d2c3b-0000-4000-8000-000000000112", "6f1d2c3b-0000-4000-8000-000000000113",
        "6f1d2c3b-0000-4000-8000-000000000114"};
    for (int i = 0; i < 5; i++) {
        if (i % 2)
            seed_job(&env, ids[i], "long.wav", wav_long, n_long);
        else
            seed_jfk(&env, ids[i]);
    }
    atomic_int stop = 0;
    RunArgs a = {.cfg = env.cfg, .rc = -1};
    a.cfg.batch = 3;
    a.cfg.n_workers = 1; /* raised to the batch */
    a.cfg.stop = &stop;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_thread, &a), 0);
    for (int i = 0; i < 5; i++) {
        Job job = {0};
        for (int tries = 0; tries < 3000; tries++) {
            get_job(&env, ids[i], &job);
            int ended = job.state == JOB_COMPLETED || job.state == JOB_ERROR;
            if (ended) break;
            meta_job_free(&job);
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        assert_int_equal(job.state, JOB_COMPLETED);
        const Job *want = &ref[i % 2];
        assert_string_equal(job.transcription, want->transcription);
        assert_string_equal(job.segments_json, want->segments_json);
        assert_float_equal(job.duration, want->duration, 1e-9);
        meta_job_free(&job);
    }
    atomic_store(&stop, 1);
    pthread_join(th, NULL);
    assert_int_equal(a.rc, 0);

    char msg[256];
    a.cfg.batch = WHISPER_BATCH_MAX_LANES + 1;
    assert_int_equal(worker_run(&a.cfg, msg, sizeof msg), DI_EINVAL);
    meta_job_free(&ref[0]);
    meta_job_free(&ref[1]);
    free(wav_long);
    env_close(&env);
}

static int setup(void **state) {
    (void)state;
    char msg[512];
    if (whisper_model_load(tu_shared("golden/ggml-micro-synthetic.en.bin"), &model, msg,
                           sizeof msg)) {
        fprintf(stderr, "%s\n", msg);
        return -1;
    }
    NoteConfig nc = notes_config_from_env();
    if (notes_extractive_create(&nc, &extractive, msg, sizeof msg)) {
        fprintf(stderr, "%s\n", msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    notes_generator_free(extractive);
    whisper_model_free(model);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(seed_job_completes),
        cmocka_unit_test(redelivery_completes_exactly_once),
        cmocka_unit_test(text_file_fails_with_reason),
        cmocka_unit_test(malformed_bodies_are_dead_lettered),
        cmocka_unit_test(failed_note_keeps_transcript),
        cmocka_unit_test(dead_letter_marks_job_error),
        cmocka_unit_test(stop_flag_stops_idle_workers),
        cmocka_unit_test(batched_workers_match_one_by_one),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
