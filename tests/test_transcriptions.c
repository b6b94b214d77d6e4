/* POST /v1/audio/transcriptions end to end: a real Api on loopback, real
 * embedded backends, a real worker thread with the golden micro model, and
 * libcurl as the OpenAI-style client. A second Api whose queue no worker
 * reads shows the 504 and a clean stop while a request waits. */
#include "api/api.h"
#include "audio/audio.h"
#include "core/core.h"
#include "output/output.h"
#include "testutil.h"
#include "worker/worker.h"

#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static Store *g_store;
static Meta *g_meta;
static Queue *g_queue;      /* read by the worker */
static Queue *g_idle_queue; /* read by nobody */
static Api *g_api;          /* jobs go to the worker */
static Api *g_idle;         /* jobs wait forever; 2 s sync limit */
static WhisperModel *g_model;
static NoteGenerator *g_notes;
static char g_blobs[4096];
static atomic_int g_stop;
static pthread_t g_worker;
static WorkerConfig g_wcfg;

/* Every state the worker wrote, to see that no note was attempted. */
static pthread_mutex_t g_ev_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_note_states;

static void on_stage(void *ud, const char *job_id, JobState s, double seconds) {
    (void)ud, (void)job_id, (void)seconds;
    pthread_mutex_lock(&g_ev_lock);
    g_note_states += s == JOB_GENERATING_NOTE;
    pthread_mutex_unlock(&g_ev_lock);
}

/* ---- The client --------------------------------------------------------- */

typedef struct {
    long code;
    char *body;
    size_t len;
    char ctype[256];
    CURLcode curl;
} Resp;

static size_t on_body(char *p, size_t sz, size_t n, void *ud) {
    Resp *r = ud;
    char *grown = realloc(r->body, r->len + sz * n + 1);
    if (!grown) return 0;
    memcpy(grown + r->len, p, sz * n);
    r->len += sz * n;
    grown[r->len] = 0;
    r->body = grown;
    return sz * n;
}

static void resp_free(Resp *r) {
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* POSTs a form: `fields` are name/value pairs ending in NULL; file_name
 * NULL sends no `file` part. Never asserts (also used from a thread). */
static void post_form(Api *api, const char *path, const char *file_name, const void *data, size_t n,
                      const char **fields, Resp *r) {
    memset(r, 0, sizeof *r);
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", api_port(api), path);
    CURL *c = curl_easy_init();
    curl_mime *mime = curl_mime_init(c);
    for (int i = 0; fields && fields[i]; i += 2) {
        curl_mimepart *part = curl_mime_addpart(mime);
        curl_mime_name(part, fields[i]);
        curl_mime_data(part, fields[i + 1], CURL_ZERO_TERMINATED);
    }
    if (file_name) {
        curl_mimepart *part = curl_mime_addpart(mime);
        curl_mime_name(part, "file");
        curl_mime_filename(part, file_name);
        curl_mime_data(part, data, n);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L);
    r->curl = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->code);
    char *ct = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    snprintf(r->ctype, sizeof r->ctype, "%s", ct ? ct : "");
    curl_mime_free(mime);
    curl_easy_cleanup(c);
    if (!r->body) r->body = calloc(1, 1);
}

static void *g_jfk;
static size_t g_jfk_len;

/* The transcription endpoint with jfk.wav and the given fields. */
static void transcribe(Api *api, const char **fields, Resp *r) {
    post_form(api, "/v1/audio/transcriptions", "jfk.wav", g_jfk, g_jfk_len, fields, r);
    if (r->curl != CURLE_OK) fprintf(stderr, "curl: %s\n", curl_easy_strerror(r->curl));
    assert_int_equal(r->curl, CURLE_OK);
}

static json_t *parse(const Resp *r) {
    json_t *j = json_loads(r->body, 0, NULL);
    if (!j) fprintf(stderr, "not JSON: %s\n", r->body);
    assert_non_null(j);
    return j;
}

static const char *jstr(json_t *o, const char *key) {
    return json_string_value(json_object_get(o, key));
}

/* An error answer: the project's detail and OpenAI's error object agree. */
static void assert_error(const Resp *r, long code, const char *type, const char *needle) {
    if (r->code != code) fprintf(stderr, "%ld: %s\n", r->code, r->body);
    assert_int_equal(r->code, code);
    json_t *j = parse(r);
    json_t *err = json_object_get(j, "error");
    assert_true(json_is_object(err));
    assert_string_equal(jstr(err, "type"), type);
    assert_true(json_is_null(json_object_get(err, "code")));
    assert_non_null(json_object_get(err, "param"));
    const char *detail = jstr(j, "detail");
    if (detail) assert_string_equal(detail, jstr(err, "message"));
    if (needle && !strstr(jstr(err, "message"), needle))
        fail_msg("'%s' not in '%s'", needle, jstr(err, "message"));
    json_decref(j);
}

static long count_files(void) {
    char cmd[8300];
    snprintf(cmd, sizeof cmd, "find '%s' -type f | wc -l", g_blobs);
    FILE *p = popen(cmd, "r");
    long n = -1;
    if (p) {
        if (fscanf(p, "%ld", &n) != 1) n = -1;
        pclose(p);
    }
    return n;
}

static int64_t count_jobs(void) {
    int64_t counts[JOB_STATE_COUNT], total = 0;
    char msg[256];
    assert_int_equal(meta_count_by_state(g_meta, counts, msg, sizeof msg), 0);
    for (int i = 0; i < JOB_STATE_COUNT; i++)
        total += counts[i];
    return total;
}

/* After an answer nothing of the recording is left. */
static void assert_nothing_kept(void) {
    assert_int_equal(count_jobs(), 0);
    assert_int_equal(count_files(), 0);
}

/* ---- Tests -------------------------------------------------------------- */

static void formats_have_their_shapes(void **state) {
    (void)state;
    Resp r;
    const char *json_fields[] = {"model", "whisper-1", NULL};
    transcribe(g_api, json_fields, &r);
    if (r.code != 200) fprintf(stderr, "%s\n", r.body);
    assert_int_equal(r.code, 200);
    assert_non_null(strstr(r.ctype, "application/json"));
    json_t *j = parse(&r);
    assert_int_equal(json_object_size(j), 1);
    assert_true(json_is_string(json_object_get(j, "text")));
    char text[4096];
    snprintf(text, sizeof text, "%s", jstr(j, "text"));
    json_decref(j);
    resp_free(&r);
    assert_nothing_kept();

    const char *txt_fields[] = {"response_format", "text", NULL};
    transcribe(g_api, txt_fields, &r);
    assert_int_equal(r.code, 200);
    assert_non_null(strstr(r.ctype, "text/plain"));
    assert_true(r.len > 0 && r.body[r.len - 1] == '\n');
    assert_int_equal(strncmp(r.body, text, strlen(text)), 0); /* the same transcript */
    resp_free(&r);

    const char *srt_fields[] = {"response_format", "srt", NULL};
    transcribe(g_api, srt_fields, &r);
    assert_int_equal(r.code, 200);
    assert_non_null(strstr(r.ctype, "application/x-subrip"));
    if (strlen(text)) assert_int_equal(strncmp(r.body, "1\n00:00:", 8), 0);
    resp_free(&r);

    const char *vtt_fields[] = {"response_format", "vtt", NULL};
    transcribe(g_api, vtt_fields, &r);
    assert_int_equal(r.code, 200);
    assert_non_null(strstr(r.ctype, "text/vtt"));
    assert_int_equal(strncmp(r.body, "WEBVTT\n", 7), 0);
    resp_free(&r);

    const char *verbose_fields[] = {"response_format", "verbose_json", "language", "en", NULL};
    transcribe(g_api, verbose_fields, &r);
    assert_int_equal(r.code, 200);
    assert_non_null(strstr(r.ctype, "application/json"));
    j = parse(&r);
    assert_string_equal(jstr(j, "task"), "transcribe");
    assert_string_equal(jstr(j, "language"), "english");
    assert_true(fabs(json_number_value(json_object_get(j, "duration")) - 11.0) < 0.1);
    assert_string_equal(jstr(j, "text"), text);
    assert_true(json_is_array(json_object_get(j, "segments")));
    json_decref(j);
    resp_free(&r);
    assert_nothing_kept();
    /* "note": false reached the worker: it never made a note. */
    assert_int_equal(g_note_states, 0);
}

/* The text the engine itself gives for jfk.wav with these settings. */
static char *engine_text(const char *prompt, float temperature) {
    AudioPcm pcm = {0};
    char msg[512];
    assert_int_equal(audio_decode_memory(g_jfk, g_jfk_len, &pcm, msg, sizeof msg), 0);
    WhisperState *st = NULL;
    assert_int_equal(whisper_state_create(g_model, 1, &st, msg, sizeof msg), 0);
    WhisperParams p = g_wcfg.params;
    p.initial_prompt = prompt;
    p.temperature = temperature;
    WhisperResult res = {0};
    assert_int_equal(whisper_transcribe(st, pcm.samples, pcm.n_samples, &p, &res, msg, sizeof msg),
                     0);
    char *out = NULL;
    assert_int_equal(output_render(&res, OUT_TEXT, NULL, &out, msg, sizeof msg), 0);
    whisper_result_free(&res);
    whisper_state_free(st);
    audio_pcm_free(&pcm);
    return out;
}

static void options_reach_the_worker(void **state) {
    (void)state;
    Resp r;
    /* The temperature: every segment was decoded at it, with no fallback. */
    const char *temp_fields[] = {"response_format", "verbose_json", "temperature", "0.2", NULL};
    transcribe(g_api, temp_fields, &r);
    assert_int_equal(r.code, 200);
    json_t *j = parse(&r);
    json_t *segs = json_object_get(j, "segments"), *s;
    size_t i;
    json_array_foreach(segs, i, s) {
        assert_true(fabs(json_number_value(json_object_get(s, "temperature")) - 0.2) < 1e-4);
    }
    json_decref(j);
    resp_free(&r);

    /* The prompt: the answer is what the engine gives with that prompt. */
    const char *prompt = "Ask not what your country can do for you.";
    char *want = engine_text(prompt, 0);
    char *plain = engine_text(NULL, 0);
    const char *prompt_fields[] = {"response_format", "text", "prompt", prompt, NULL};
    transcribe(g_api, prompt_fields, &r);
    assert_int_equal(r.code, 200);
    assert_string_equal(r.body, want);
    if (strcmp(want, plain) == 0) fprintf(stderr, "note: the prompt did not change the text\n");
    free(want);
    free(plain);
    resp_free(&r);

    /* The language: an English-only model cannot transcribe French, and
     * says so; the client asked for it, so it is a 400. */
    const char *fr_fields[] = {"language", "fr", NULL};
    transcribe(g_api, fr_fields, &r);
    assert_error(&r, 400, "invalid_request_error", "English-only");
    resp_free(&r);
    assert_nothing_kept();
}

static void bad_requests_are_refused(void **state) {
    (void)state;
    Resp r;
    const char *fmt[] = {"response_format", "xml", NULL};
    transcribe(g_api, fmt, &r);
    assert_error(&r, 400, "invalid_request_error", "response_format");
    resp_free(&r);
    const char *hot[] = {"temperature", "1.5", NULL};
    transcribe(g_api, hot, &r);
    assert_error(&r, 400, "invalid_request_error", "temperature");
    resp_free(&r);
    const char *nan[] = {"temperature", "warm", NULL};
    transcribe(g_api, nan, &r);
    assert_error(&r, 400, "invalid_request_error", "temperature");
    resp_free(&r);
    const char *lang[] = {"language", "klingon", NULL};
    transcribe(g_api, lang, &r);
    assert_error(&r, 400, "invalid_request_error", "language");
    resp_free(&r);
    char long_model[200];
    memset(long_model, 'm', sizeof long_model - 1);
    long_model[sizeof long_model - 1] = 0;
    const char *big[] = {"model", long_model, NULL};
    transcribe(g_api, big, &r);
    assert_error(&r, 400, "invalid_request_error", "model");
    resp_free(&r);

    const char *notes = "Dear diary, this is plainly text and not a recording at all.\n";
    post_form(g_api, "/v1/audio/transcriptions", "notes.txt", notes, strlen(notes), NULL, &r);
    assert_error(&r, 415, "invalid_request_error", "audio");
    resp_free(&r);
    const char *only_model[] = {"model", "whisper-1", NULL};
    post_form(g_api, "/v1/audio/transcriptions", NULL, NULL, 0, only_model, &r);
    assert_error(&r, 422, "invalid_request_error", "Field required");
    json_t *j = parse(&r);
    assert_string_equal(jstr(json_object_get(j, "error"), "param"), "file");
    assert_true(json_is_array(json_object_get(j, "detail"))); /* FastAPI's shape kept */
    json_decref(j);
    resp_free(&r);
    post_form(g_api, "/v1/audio/transcriptions", "empty.wav", "", 0, NULL, &r);
    assert_error(&r, 400, "invalid_request_error", "empty");
    resp_free(&r);
    assert_nothing_kept();
}

static void a_long_wait_is_a_504_and_the_job_stays(void **state) {
    (void)state;
    Resp r;
    double t0 = di_now();
    const char *fields[] = {"language", "EN", "prompt", "Hello.", "temperature", "0.3", NULL};
    transcribe(g_idle, fields, &r);
    double took = di_now() - t0;
    assert_error(&r, 504, "server_error", "/status/");
    assert_true(took >= 1.9 && took < 6);
    json_t *j = parse(&r);
    const char *at = strstr(jstr(j, "detail"), "job ");
    assert_non_null(at);
    char id[37];
    snprintf(id, sizeof id, "%s", at + 4);
    json_decref(j);
    resp_free(&r);
    assert_true(api_valid_job_id(id));

    /* Still queued, with its audio, and its message carries the options. */
    Job job = {0};
    char msg[256];
    assert_int_equal(meta_get(g_meta, id, &job, msg, sizeof msg), 0);
    assert_int_equal(job.state, JOB_QUEUED);
    assert_null(job.callback_url);
    meta_job_free(&job);
    assert_int_equal(count_files(), 1);
    QueueMessage m;
    assert_int_equal(queue_receive(g_idle_queue, 0, 30, NULL, NULL, &m, msg, sizeof msg), 1);
    json_t *body = json_loadb(m.body, m.body_len, 0, NULL);
    assert_string_equal(jstr(body, "job_id"), id);
    assert_non_null(jstr(body, "file_path"));
    assert_string_equal(jstr(body, "file_name"), "jfk.wav");
    json_t *opt = json_object_get(body, "options");
    assert_string_equal(jstr(opt, "language"), "en");
    assert_string_equal(jstr(opt, "prompt"), "Hello.");
    assert_true(fabs(json_number_value(json_object_get(opt, "temperature")) - 0.3) < 1e-9);
    assert_true(json_is_false(json_object_get(opt, "note")));
    json_decref(body);
    assert_int_equal(queue_delete(g_idle_queue, m.receipt, msg, sizeof msg), 0);
    queue_message_free(&m);

    /* The client can poll it, then delete it. */
    char path[128];
    snprintf(path, sizeof path, "uploads/%s/", id);
    assert_int_equal(store_delete_prefix(g_store, path, msg, sizeof msg), 0);
    assert_int_equal(meta_delete(g_meta, id, msg, sizeof msg), 0);
    assert_nothing_kept();
}

typedef struct {
    Api *api;
    Resp r;
} Waiting;

static void *wait_thread(void *arg) {
    Waiting *w = arg;
    post_form(w->api, "/v1/audio/transcriptions", "jfk.wav", g_jfk, g_jfk_len, NULL, &w->r);
    return NULL;
}

/* api_stop with a request waiting: the request ends, nothing hangs or
 * leaks, and the job is left for whoever runs next. */
static void stop_while_waiting(void **state) {
    (void)state;
    ApiConfig cfg;
    api_config_defaults(&cfg);
    snprintf(cfg.host, sizeof cfg.host, "127.0.0.1");
    cfg.port = 0;
    cfg.store = g_store;
    cfg.meta = g_meta;
    cfg.queue = g_idle_queue;
    Api *api = NULL;
    char msg[256];
    assert_int_equal(api_start(&cfg, &api, msg, sizeof msg), 0);
    Waiting w = {.api = api};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, wait_thread, &w), 0);
    for (int i = 0; i < 500 && count_jobs() == 0; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(count_jobs(), 1);
    struct timespec ts = {0, 200 * 1000 * 1000}; /* well into its wait */
    nanosleep(&ts, NULL);
    double t0 = di_now();
    api_stop(api);
    pthread_join(th, NULL);
    assert_true(di_now() - t0 < 5);
    /* Either the 503 made it out or the connection closed under it. */
    if (w.r.curl == CURLE_OK) assert_error(&w.r, 503, "server_error", "stopping");
    resp_free(&w.r);
    QueueMessage m;
    assert_int_equal(queue_receive(g_idle_queue, 0, 30, NULL, NULL, &m, msg, sizeof msg), 1);
    json_t *body = json_loadb(m.body, m.body_len, 0, NULL);
    char id[64];
    snprintf(id, sizeof id, "%s", jstr(body, "job_id"));
    json_decref(body);
    assert_int_equal(queue_delete(g_idle_queue, m.receipt, msg, sizeof msg), 0);
    queue_message_free(&m);
    char path[128];
    snprintf(path, sizeof path, "uploads/%s/", id);
    assert_int_equal(store_delete_prefix(g_store, path, msg, sizeof msg), 0);
    assert_int_equal(meta_delete(g_meta, id, msg, sizeof msg), 0);
    assert_nothing_kept();
}

/* ---- Setup -------------------------------------------------------------- */

static void *worker_thread(void *arg) {
    (void)arg;
    char msg[256];
    if (worker_run(&g_wcfg, msg, sizeof msg)) fprintf(stderr, "worker: %s\n", msg);
    return NULL;
}

static int setup(void **state) {
    (void)state;
    setenv("DIARIST_LOG_LEVEL", "warn", 0);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char url[8300], msg[512];
    g_jfk = tu_read(tu_shared("samples/jfk.wav"), &g_jfk_len);
    if (!g_jfk) return -1;
    snprintf(g_blobs, sizeof g_blobs, "%s/blobs", tu_tmpdir());
    snprintf(url, sizeof url, "file://%s", g_blobs);
    tu_sh("mkdir -p '%s'", g_blobs);
    if (store_open(url, &g_store, msg, sizeof msg)) goto fail;
    snprintf(url, sizeof url, "sqlite://%s/t.db", tu_tmpdir());
    if (meta_open(url, &g_meta, msg, sizeof msg)) goto fail;
    snprintf(url, sizeof url, "sqlite://%s/t.db?queue=audio-processing-queue", tu_tmpdir());
    if (queue_open(url, &g_queue, msg, sizeof msg)) goto fail;
    snprintf(url, sizeof url, "sqlite://%s/t.db?queue=idle", tu_tmpdir());
    if (queue_open(url, &g_idle_queue, msg, sizeof msg)) goto fail;
    if (whisper_model_load(tu_shared("golden/ggml-micro-synthetic.en.bin"), &g_model, msg,
                           sizeof msg))
        goto fail;
    /* A note generator, so that only "note": false keeps the note away. */
    NoteConfig nc = notes_config_from_env();
    if (notes_extractive_create(&nc, &g_notes, msg, sizeof msg)) goto fail;

    ApiConfig cfg;
    api_config_defaults(&cfg);
    snprintf(cfg.host, sizeof cfg.host, "127.0.0.1");
    cfg.port = 0;
    cfg.store = g_store;
    cfg.meta = g_meta;
    cfg.queue = g_queue;
    cfg.threads = 2;
    if (api_start(&cfg, &g_api, msg, sizeof msg)) goto fail;
    setenv("DIARIST_SYNC_TIMEOUT_S", "2", 1);
    if (api_config_from_env(&cfg, msg, sizeof msg)) goto fail;
    unsetenv("DIARIST_SYNC_TIMEOUT_S");
    if (cfg.sync_timeout_s != 2) return -1;
    /* Shorter than the wait: a suspended connection must not time out. */
    cfg.timeout_s = 1;
    cfg.queue = g_idle_queue;
    if (api_start(&cfg, &g_idle, msg, sizeof msg)) goto fail;

    WorkerConfig w = worker_default_config();
    w.store = g_store;
    w.meta = g_meta;
    w.queue = g_queue;
    w.model = g_model;
    w.notes = g_notes;
    w.params.temperature_increment = 0;
    w.params.sample_len = 16;
    w.tmp_dir = tu_tmpdir();
    w.visibility_s = 30;
    w.wait_s = 0.3;
    w.stop_check_s = 0.1;
    w.stop = &g_stop;
    w.on_stage = on_stage;
    g_wcfg = w;
    if (pthread_create(&g_worker, NULL, worker_thread, NULL)) return -1;
    return 0;
fail:
    fprintf(stderr, "setup: %s\n", msg);
    return -1;
}

static int teardown(void **state) {
    (void)state;
    atomic_store(&g_stop, 1);
    pthread_join(g_worker, NULL);
    api_stop(g_api);
    api_stop(g_idle);
    queue_close(g_queue);
    queue_close(g_idle_queue);
    meta_close(g_meta);
    store_close(g_store);
    notes_generator_free(g_notes);
    whisper_model_free(g_model);
    free(g_jfk);
    curl_global_cleanup();
    tu_sh("rm -rf '%s'", tu_tmpdir());
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(formats_have_their_shapes),
        cmocka_unit_test(options_reach_the_worker),
        cmocka_unit_test(bad_requests_are_refused),
        cmocka_unit_test(a_long_wait_is_a_504_and_the_job_stays),
        cmocka_unit_test(stop_while_waiting),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
