/* Job callbacks and the worker's metrics, on real embedded backends, the
 * golden micro model and a real webhook receiver on loopback: a job that
 * ends (completed, error, dead letter) posts exactly its final JSON; 5xx
 * answers are retried with backoff, a 404 is not, and an unreachable
 * receiver gives up within the deadline without holding up the worker; a
 * finished job shows in the metrics registry. */
#include "fake_hook.h"
#include "metrics/metrics.h"
#include "testutil.h"
#include "worker/worker.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static WhisperModel *model;
static NoteGenerator *extractive;

/* ---- A fresh service per test -------------------------------------------- */

typedef struct {
    Store *store;
    Meta *meta;
    Queue *queue;
    Worker *worker;
    WorkerConfig cfg;
    char dir[4096];
} Env;

/* Callback settings that make a test of retries take a moment, not minutes. */
static CallbackConfig fast_callbacks(double deadline_s) {
    CallbackConfig c = callback_default_config();
    c.deadline_s = deadline_s;
    c.attempt_timeout_s = 2;
    c.backoff_base_s = 0.05;
    c.backoff_max_s = 0.2;
    c.drain_s = 1;
    return c;
}

static void env_open(Env *env, const char *name, int max_receives, double deadline_s) {
    memset(env, 0, sizeof *env);
    char url[8192], msg[512];
    snprintf(env->dir, sizeof env->dir, "%s", tu_tmp(name));
    mkdir(env->dir, 0755);
    snprintf(url, sizeof url, "%s/blobs", env->dir);
    mkdir(url, 0755);
    assert_int_equal(store_open(url, &env->store, msg, sizeof msg), 0);
    snprintf(url, sizeof url, "sqlite://%s/diarist.db", env->dir);
    assert_int_equal(meta_open(url, &env->meta, msg, sizeof msg), 0);
    snprintf(url, sizeof url, "sqlite://%s/diarist.db?queue=audio-processing-queue&max_receives=%d",
             env->dir, max_receives);
    assert_int_equal(queue_open(url, &env->queue, msg, sizeof msg), 0);
    WorkerConfig c = worker_default_config();
    c.store = env->store;
    c.meta = env->meta;
    c.queue = env->queue;
    c.model = model;
    c.notes = extractive;
    c.params.temperature_increment = 0;
    c.params.sample_len = 16;
    c.n_threads = 2;
    c.tmp_dir = env->dir;
    c.visibility_s = 30;
    c.wait_s = 0.3;
    c.stop_check_s = 0.1;
    c.backoff_base_s = 0.05;
    c.backoff_max_s = 0.2;
    c.max_receives = max_receives;
    c.callback = fast_callbacks(deadline_s);
    env->cfg = c;
    assert_int_equal(worker_create(&env->cfg, &env->worker, msg, sizeof msg), 0);
}

static void env_close(Env *env) {
    worker_free(env->worker);
    queue_close(env->queue);
    meta_close(env->meta);
    store_close(env->store);
}

/* A job as the API makes it, with a callback_url (NULL for none). */
static void seed_job(Env *env, const char *id, const char *name, const void *data, size_t n,
                     const char *callback) {
    char key[512], body[1024], msg[256];
    snprintf(key, sizeof key, "uploads/%s/%s", id, name);
    assert_int_equal(store_put(env->store, key, data, n, msg, sizeof msg), 0);
    Job job = {.job_id = (char *)id,
               .file_name = (char *)name,
               .file_path = key,
               .state = JOB_QUEUED,
               .callback_url = (char *)callback};
    assert_int_equal(meta_create(env->meta, &job, msg, sizeof msg), 0);
    snprintf(body, sizeof body,
             "{\"job_id\": \"%s\", \"file_path\": \"%s\", \"file_name\": \"%s\"}", id, key, name);
    assert_int_equal(queue_send(env->queue, body, strlen(body), NULL, 0, msg, sizeof msg), 0);
}

static void seed_jfk(Env *env, const char *id, const char *callback) {
    size_t n;
    void *wav = tu_read(tu_shared("samples/jfk.wav"), &n);
    assert_non_null(wav);
    seed_job(env, id, "jfk.wav", wav, n, callback);
    free(wav);
}

static void poll_one(Env *env) {
    char msg[256];
    assert_int_equal(worker_poll_once(env->worker, msg, sizeof msg), 1);
}

/* The job's record as GET /result/{id} would answer it, parsed. */
static json_t *result_of(Env *env, const char *id) {
    Job job = {0};
    char msg[256];
    assert_int_equal(meta_get(env->meta, id, &job, msg, sizeof msg), 0);
    char *s = meta_job_result_json(&job);
    meta_job_free(&job);
    assert_non_null(s);
    json_t *o = json_loads(s, 0, NULL);
    free(s);
    assert_non_null(o);
    return o;
}

/* ---- Reading the metrics registry ---------------------------------------- */

/* The value of the sample whose name and labels are exactly `series`, or
 * -1 when it is not rendered. */
static double metric(const char *series) {
    char *buf = NULL;
    size_t len = 0, cap = 0;
    assert_int_equal(metrics_render(&buf, &len, &cap), 0);
    assert_int_equal(strlen(buf), len);
    double v = -1;
    size_t n = strlen(series);
    for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (!strncmp(line, series, n) && line[n] == ' ') v = strtod(line + n + 1, NULL);
    free(buf);
    return v;
}

/* Waits up to seconds for a counter to reach want; its last value. */
static double wait_metric(const char *series, double want, double seconds) {
    double end = seconds + (double)time(NULL), v;
    while ((v = metric(series)) < want && (double)time(NULL) < end) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return v;
}

#define DELIVERED "diarist_callbacks_total{result=\"delivered\"}"
#define FAILED "diarist_callbacks_total{result=\"failed\"}"

/* ---- Tests --------------------------------------------------------------- */

static void completed_job_posts_its_result(void **state) {
    (void)state;
    metrics_reset();
    FakeHook *hook;
    assert_int_equal(fake_hook_start(&hook), 0);
    Env env;
    env_open(&env, "cb-complete", 5, 10);
    const char *id = "7a1d2c3b-0000-4000-8000-000000000001";
    seed_jfk(&env, id, fake_hook_url(hook));
    poll_one(&env);
    assert_int_equal(fake_hook_wait(hook, 1, 10), 1);
    const HookRequest *r = fake_hook_request(hook, 0);
    assert_string_equal(r->method, "POST");
    assert_string_equal(r->path, "/hook");
    assert_string_equal(r->content_type, "application/json");
    assert_string_equal(r->job_id, id);
    assert_int_equal(r->attempt, 1);
    assert_non_null(r->body);
    json_t *want = result_of(&env, id);
    assert_true(json_equal(r->body, want)); /* exactly what /result answers */
    json_decref(want);
    assert_string_equal(json_string_value(json_object_get(r->body, "status")), "completed");
    assert_true(strlen(json_string_value(json_object_get(r->body, "transcription"))) > 0);
    assert_non_null(strstr(json_string_value(json_object_get(r->body, "diary_note")), "## Mood"));
    assert_true(wait_metric(DELIVERED, 1, 5) == 1);
    assert_true(metric(FAILED) == 0);
    env_close(&env);
    assert_int_equal(fake_hook_count(hook), 1); /* once, not again at shutdown */
    fake_hook_stop(hook);
}

/* The figures a finished job leaves in the registry. */
static void finished_job_feeds_metrics(void **state) {
    (void)state;
    metrics_reset();
    Env env;
    env_open(&env, "cb-metrics", 5, 10);
    seed_jfk(&env, "7a1d2c3b-0000-4000-8000-000000000002", NULL);
    poll_one(&env);
    const char *stages[] = {"downloading", "transcribing", "generating_note", "total"};
    for (int i = 0; i < 4; i++) {
        char series[128];
        snprintf(series, sizeof series, "diarist_stage_seconds_count{stage=\"%s\"}", stages[i]);
        assert_true(metric(series) == 1);
        snprintf(series, sizeof series, "diarist_stage_seconds_bucket{stage=\"%s\",le=\"+Inf\"}",
                 stages[i]);
        assert_true(metric(series) == 1);
    }
    assert_float_equal(metric("diarist_audio_seconds_total"), 11.0, 1e-6);
    double compute = metric("diarist_transcribe_seconds_total");
    assert_true(compute > 0);
    assert_float_equal(metric("diarist_realtime_factor"), compute / 11.0, 1e-5);
    assert_true(metric("diarist_jobs_finished_total{state=\"completed\"}") == 1);
    assert_true(metric("diarist_jobs_finished_total{state=\"error\"}") == 0);
    assert_true(metric(DELIVERED) == 0); /* no callback_url, no delivery */
    env_close(&env);
}

static void errored_job_posts_its_reason(void **state) {
    (void)state;
    metrics_reset();
    FakeHook *hook;
    assert_int_equal(fake_hook_start(&hook), 0);
    Env env;
    env_open(&env, "cb-error", 5, 10);
    const char *id = "7a1d2c3b-0000-4000-8000-000000000003";
    const char text[] = "Dear diary, this is a text file pretending to be an mp3.\n";
    seed_job(&env, id, "memo.mp3", text, sizeof text - 1, fake_hook_url(hook));
    poll_one(&env);
    assert_int_equal(fake_hook_wait(hook, 1, 10), 1);
    const HookRequest *r = fake_hook_request(hook, 0);
    assert_string_equal(r->job_id, id);
    assert_string_equal(json_string_value(json_object_get(r->body, "status")), "error");
    assert_non_null(
        strstr(json_string_value(json_object_get(r->body, "error")), "cannot read the audio"));
    json_t *want = result_of(&env, id);
    assert_true(json_equal(r->body, want));
    json_decref(want);
    assert_true(metric("diarist_jobs_finished_total{state=\"error\"}") == 1);
    assert_true(metric("diarist_stage_seconds_count{stage=\"total\"}") == 1);
    env_close(&env);
    fake_hook_stop(hook);
}

/* A job the queue gave up on ends in error and calls back too. */
static void dead_lettered_job_posts_error(void **state) {
    (void)state;
    FakeHook *hook;
    assert_int_equal(fake_hook_start(&hook), 0);
    Env env;
    env_open(&env, "cb-dead", 2, 10);
    const char *id = "7a1d2c3b-0000-4000-8000-000000000004";
    seed_jfk(&env, id, fake_hook_url(hook));
    char msg[256];
    for (int i = 0; i < 2; i++) { /* a worker that dies each time */
        QueueMessage m = {0};
        assert_int_equal(queue_receive(env.queue, 1, 0, NULL, NULL, &m, msg, sizeof msg), 1);
        assert_int_equal(
            queue_change_visibility(env.queue, m.receipt, 0, "worker died", msg, sizeof msg), 0);
        queue_message_free(&m);
    }
    assert_int_equal(worker_poll_once(env.worker, msg, sizeof msg), 0);
    assert_int_equal(fake_hook_wait(hook, 1, 10), 1);
    const HookRequest *r = fake_hook_request(hook, 0);
    assert_string_equal(json_string_value(json_object_get(r->body, "status")), "error");
    assert_non_null(strstr(json_string_value(json_object_get(r->body, "error")), "worker died"));
    env_close(&env);
    fake_hook_stop(hook);
}

static void server_errors_are_retried(void **state) {
    (void)state;
    metrics_reset();
    FakeHook *hook;
    assert_int_equal(fake_hook_start(&hook), 0);
    fake_hook_push(hook, 500);
    fake_hook_push(hook, 503);
    CallbackConfig cfg = fast_callbacks(10);
    Callbacks *cb;
    char msg[256];
    assert_int_equal(callbacks_start(&cfg, &cb, msg, sizeof msg), 0);
    assert_int_equal(
        callbacks_post(cb, fake_hook_url(hook), "job-1", "{\"a\": 1}", msg, sizeof msg), 0);
    assert_true(wait_metric(DELIVERED, 1, 10) == 1);
    assert_int_equal(fake_hook_count(hook), 3);
    for (int i = 0; i < 3; i++) {
        const HookRequest *r = fake_hook_request(hook, i);
        assert_int_equal(r->attempt, i + 1);
        assert_string_equal(r->raw, "{\"a\": 1}");
        assert_string_equal(r->job_id, "job-1");
    }
    assert_true(metric(FAILED) == 0);
    callbacks_stop(cb);
    assert_int_equal(fake_hook_count(hook), 3);
    fake_hook_stop(hook);
}

static void client_errors_are_final(void **state) {
    (void)state;
    metrics_reset();
    FakeHook *hook;
    assert_int_equal(fake_hook_start(&hook), 0);
    fake_hook_push(hook, 404);
    CallbackConfig cfg = fast_callbacks(10);
    Callbacks *cb;
    char msg[256];
    assert_int_equal(callbacks_start(&cfg, &cb, msg, sizeof msg), 0);
    assert_int_equal(callbacks_post(cb, fake_hook_url(hook), "job-2", "{}", msg, sizeof msg), 0);
    assert_true(wait_metric(FAILED, 1, 10) == 1);
    struct timespec ts = {0, 400 * 1000 * 1000}; /* longer than two backoffs */
    nanosleep(&ts, NULL);
    assert_int_equal(fake_hook_count(hook), 1);
    assert_true(metric(DELIVERED) == 0);
    /* Only http(s) URLs are accepted at all. */
    assert_int_equal(callbacks_post(cb, "ftp://127.0.0.1/x", "job-3", "{}", msg, sizeof msg),
                     DI_EINVAL);
    assert_int_equal(callbacks_post(cb, "file:///etc/passwd", "job-3", "{}", msg, sizeof msg),
                     DI_EINVAL);
    callbacks_stop(cb);
    fake_hook_stop(hook);
}

/* Port 1 on loopback refuses every connection: the delivery retries in
 * the background while the worker goes on, and gives up at the deadline. */
static void unreachable_receiver_gives_up_in_time(void **state) {
    (void)state;
    metrics_reset();
    const double deadline = 3;
    Env env;
    env_open(&env, "cb-unreachable", 5, deadline);
    const char *text = "not audio at all";
    seed_job(&env, "7a1d2c3b-0000-4000-8000-000000000005", "a.mp3", text, strlen(text),
             "http://127.0.0.1:1/hook");
    seed_job(&env, "7a1d2c3b-0000-4000-8000-000000000006", "b.mp3", text, strlen(text), NULL);
    double t0 = (double)time(NULL);
    poll_one(&env);
    /* Had the worker waited for the delivery, it would have failed by now. */
    assert_true(metric(FAILED) == 0);
    poll_one(&env); /* the next job is taken at once */
    assert_true(metric("diarist_jobs_finished_total{state=\"error\"}") == 2);
    assert_true(metric(FAILED) == 0);
    assert_true(wait_metric(FAILED, 1, deadline + 3) == 1);
    assert_true((double)time(NULL) - t0 <= deadline + 2);
    assert_true(metric(DELIVERED) == 0);
    env_close(&env);
}

/* Stopping gives pending deliveries drain_s, then counts them failed. */
static void stop_drains_then_abandons(void **state) {
    (void)state;
    metrics_reset();
    CallbackConfig cfg = fast_callbacks(60);
    cfg.drain_s = 0.5;
    Callbacks *cb;
    char msg[256];
    assert_int_equal(callbacks_start(&cfg, &cb, msg, sizeof msg), 0);
    assert_int_equal(callbacks_post(cb, "http://127.0.0.1:1/hook", "job-4", "{}", msg, sizeof msg),
                     0);
    double t0 = (double)time(NULL);
    callbacks_stop(cb);
    assert_true((double)time(NULL) - t0 <= 2);
    assert_true(metric(FAILED) == 1);
    assert_true(metric(DELIVERED) == 0);
}

static void callback_urls_are_checked(void **state) {
    (void)state;
    assert_true(meta_callback_url_ok("http://example.com/hook"));
    assert_true(meta_callback_url_ok("https://example.com:8443/h?token=abc"));
    assert_false(meta_callback_url_ok(NULL));
    assert_false(meta_callback_url_ok(""));
    assert_false(meta_callback_url_ok("ftp://example.com/"));
    assert_false(meta_callback_url_ok("http://"));
    assert_false(meta_callback_url_ok("http:///path"));
    assert_false(meta_callback_url_ok("http://exa mple.com/"));
    assert_false(meta_callback_url_ok("javascript:alert(1)"));
    char *long_url = malloc(META_CALLBACK_URL_MAX + 2);
    assert_non_null(long_url);
    memset(long_url, 'a', META_CALLBACK_URL_MAX + 1);
    memcpy(long_url, "http://", 7);
    long_url[META_CALLBACK_URL_MAX + 1] = 0;
    assert_false(meta_callback_url_ok(long_url));
    long_url[META_CALLBACK_URL_MAX] = 0;
    assert_true(meta_callback_url_ok(long_url));
    free(long_url);
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
        cmocka_unit_test(completed_job_posts_its_result),
        cmocka_unit_test(finished_job_feeds_metrics),
        cmocka_unit_test(errored_job_posts_its_reason),
        cmocka_unit_test(dead_lettered_job_posts_error),
        cmocka_unit_test(server_errors_are_retried),
        cmocka_unit_test(client_errors_are_final),
        cmocka_unit_test(unreachable_receiver_gives_up_in_time),
        cmocka_unit_test(stop_drains_then_abandons),
        cmocka_unit_test(callback_urls_are_checked),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
