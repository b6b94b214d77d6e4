/* The HTTP API against real backends in a scratch directory, driven by a
 * real HTTP client (libcurl) over loopback. */
#include "api/api.h"
#include "core/core.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static Store *g_store;
static Meta *g_meta;
static Queue *g_queue;
static Api *g_api;   /* large limit */
static Api *g_small; /* 64 KiB limit, 1 s connection timeout */
static char g_blobs[4096];

typedef struct {
    long code;
    char *body;
    size_t len;
    char headers[8192];
    size_t hlen;
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

static size_t on_header(char *p, size_t sz, size_t n, void *ud) {
    Resp *r = ud;
    size_t k = sz * n;
    if (r->hlen + k < sizeof r->headers) {
        memcpy(r->headers + r->hlen, p, k);
        r->hlen += k;
        r->headers[r->hlen] = 0;
    }
    return k;
}

static void resp_free(Resp *r) {
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* Performs the request; mime may be NULL. */
static void perform(Api *api, const char *method, const char *path, curl_mime *mime,
                    struct curl_slist *hdrs, Resp *r) {
    memset(r, 0, sizeof *r);
    char url[8192];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", api_port(api), path);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    if (mime) curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    if (hdrs) curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) fprintf(stderr, "curl: %s\n", curl_easy_strerror(rc));
    assert_int_equal(rc, CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->code);
    curl_easy_cleanup(c);
    if (!r->body) r->body = calloc(1, 1);
}

static void get(const char *path, Resp *r) {
    perform(g_api, "GET", path, NULL, NULL, r);
}

/* POSTs a multipart upload with a `file` part (name may be NULL for none). */
static void upload_to(Api *api, const char *name, const void *data, size_t n, Resp *r) {
    CURL *dummy = curl_easy_init();
    curl_mime *mime = curl_mime_init(dummy);
    curl_mimepart *part = curl_mime_addpart(mime);
    if (name) {
        curl_mime_name(part, "file");
        curl_mime_filename(part, name);
        curl_mime_data(part, data, n);
    } else {
        curl_mime_name(part, "callback_url");
        curl_mime_data(part, "http://example.invalid/cb", CURL_ZERO_TERMINATED);
    }
    perform(api, "POST", "/upload-audio/", mime, NULL, r);
    curl_mime_free(mime);
    curl_easy_cleanup(dummy);
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

/* A 16 kHz mono 16-bit WAV header for `data_bytes` of samples. */
static void wav_header(unsigned char h[44], uint32_t data_bytes) {
    memcpy(h, "RIFF", 4);
    uint32_t v = 36 + data_bytes;
    memcpy(h + 4, &v, 4);
    memcpy(h + 8, "WAVEfmt ", 8);
    v = 16;
    memcpy(h + 16, &v, 4);
    uint16_t fmt = 1, ch = 1, align = 2, bits = 16;
    memcpy(h + 20, &fmt, 2);
    memcpy(h + 22, &ch, 2);
    v = 16000;
    memcpy(h + 24, &v, 4);
    v = 32000;
    memcpy(h + 28, &v, 4);
    memcpy(h + 32, &align, 2);
    memcpy(h + 34, &bits, 2);
    memcpy(h + 36, "data", 4);
    memcpy(h + 40, &data_bytes, 4);
}

/* Uploads jfk.wav under `name`; returns the job id (static buffer). */
static const char *upload_jfk(const char *name) {
    static char id[64];
    size_t n;
    void *wav = tu_read(tu_shared("samples/jfk.wav"), &n);
    assert_non_null(wav);
    Resp r;
    upload_to(g_api, name, wav, n, &r);
    free(wav);
    if (r.code != 200) fprintf(stderr, "upload: %ld %s\n", r.code, r.body);
    assert_int_equal(r.code, 200);
    json_t *j = parse(&r);
    snprintf(id, sizeof id, "%s", jstr(j, "job_id"));
    json_decref(j);
    resp_free(&r);
    /* Consume the job's message so each test sees only its own. */
    QueueMessage m;
    char msg[256];
    assert_int_equal(queue_receive(g_queue, 0, 30, NULL, NULL, &m, msg, sizeof msg), 1);
    assert_non_null(strstr(m.body, id));
    assert_int_equal(queue_delete(g_queue, m.receipt, msg, sizeof msg), 0);
    queue_message_free(&m);
    return id;
}

/* ---- Tests ------------------------------------------------------------ */

static void test_root_and_cors(void **state) {
    (void)state;
    Resp r;
    get("/", &r);
    assert_int_equal(r.code, 200);
    assert_string_equal(r.body, "{\"message\": \"Audio Transcription API is running\"}");
    assert_non_null(strcasestr(r.headers, "Access-Control-Allow-Origin: *"));
    assert_non_null(strcasestr(r.headers, "Content-Type: application/json"));
    resp_free(&r);

    struct curl_slist *h = curl_slist_append(NULL, "Origin: http://example.com");
    h = curl_slist_append(h, "Access-Control-Request-Method: POST");
    h = curl_slist_append(h, "Access-Control-Request-Headers: content-type");
    perform(g_api, "OPTIONS", "/upload-audio/", NULL, h, &r);
    curl_slist_free_all(h);
    assert_int_equal(r.code, 200);
    assert_non_null(strcasestr(r.headers, "Access-Control-Allow-Origin: *"));
    assert_non_null(strcasestr(r.headers, "Access-Control-Allow-Methods:"));
    assert_non_null(strstr(r.headers, "POST"));
    assert_non_null(strcasestr(r.headers, "Access-Control-Allow-Headers: content-type"));
    resp_free(&r);
}

static void test_upload_jfk(void **state) {
    (void)state;
    size_t n;
    void *wav = tu_read(tu_shared("samples/jfk.wav"), &n);
    assert_non_null(wav);
    Resp r;
    upload_to(g_api, "jfk.wav", wav, n, &r);
    assert_int_equal(r.code, 200);
    assert_non_null(strcasestr(r.headers, "Access-Control-Allow-Origin: *"));
    json_t *j = parse(&r);
    const char *id = jstr(j, "job_id");
    assert_non_null(id);
    assert_true(api_valid_job_id(id));
    assert_int_equal(id[14], '4');
    assert_non_null(strchr("89ab", id[19]));
    char expect[256];
    snprintf(expect, sizeof expect, "{\"job_id\": \"%s\", \"status\": \"queued\"}", id);
    assert_string_equal(r.body, expect);

    /* The blob, byte for byte. */
    char key[256], msg[256];
    snprintf(key, sizeof key, "uploads/%s/jfk.wav", id);
    StoreReader *rd;
    assert_int_equal(store_open_read(g_store, key, &rd, msg, sizeof msg), 0);
    assert_int_equal(store_reader_size(rd), n);
    unsigned char *got = malloc(n);
    size_t have = 0, k;
    do {
        assert_int_equal(store_read(rd, got + have, n - have, &k, msg, sizeof msg), 0);
        have += k;
    } while (k && have < n);
    store_reader_close(rd);
    assert_int_equal(have, n);
    assert_memory_equal(got, wav, n);
    free(got);
    free(wav);

    /* The record, with the seed's fields. */
    Job job;
    assert_int_equal(meta_get(g_meta, id, &job, msg, sizeof msg), 0);
    assert_string_equal(job.job_id, id);
    assert_string_equal(job.file_name, "jfk.wav");
    assert_string_equal(job.file_path, key);
    assert_int_equal(job.state, JOB_QUEUED);
    assert_true(job.created_at > 1e9);
    meta_job_free(&job);

    /* The queue holds exactly the seed's body. */
    QueueMessage m;
    assert_int_equal(queue_receive(g_queue, 0, 30, NULL, NULL, &m, msg, sizeof msg), 1);
    char body[512];
    snprintf(
        body, sizeof body,
        "{\"job_id\": \"%s\", \"file_path\": \"uploads/%s/jfk.wav\", \"file_name\": \"jfk.wav\"}",
        id, id);
    assert_string_equal(m.body, body);
    assert_int_equal(m.body_len, strlen(body));
    assert_int_equal(queue_delete(g_queue, m.receipt, msg, sizeof msg), 0);
    queue_message_free(&m);
    QueueDepth d;
    assert_int_equal(queue_depth(g_queue, &d, msg, sizeof msg), 0);
    assert_int_equal(d.visible, 0);
    json_decref(j);
    resp_free(&r);
}

static void test_traversal_name(void **state) {
    (void)state;
    const char *id = upload_jfk("../../etc/passwd.wav");
    Job job;
    char msg[256], prefix[128];
    assert_int_equal(meta_get(g_meta, id, &job, msg, sizeof msg), 0);
    assert_string_equal(job.file_name, "../../etc/passwd.wav");
    snprintf(prefix, sizeof prefix, "uploads/%s/", id);
    assert_memory_equal(job.file_path, prefix, strlen(prefix));
    assert_null(strchr(job.file_path + strlen(prefix), '/'));
    assert_null(strstr(job.file_path, ".."));
    uint64_t size;
    assert_int_equal(store_stat(g_store, job.file_path, &size, msg, sizeof msg), 0);
    assert_true(size > 1000);
    meta_job_free(&job);
}

static const char *SEGMENTS =
    "{\"task\": \"transcribe\", \"language\": \"english\", \"duration\": 11.0, \"text\": "
    "\"And so my fellow Americans, ask not.\", \"segments\": ["
    "{\"id\": 0, \"seek\": 0, \"start\": 0.0, \"end\": 5.0, \"text\": \" And so my fellow "
    "Americans,\", \"tokens\": [], \"temperature\": 0.0, \"avg_logprob\": -0.2, "
    "\"compression_ratio\": 1.1, \"no_speech_prob\": 0.01},"
    "{\"id\": 1, \"seek\": 0, \"start\": 5.0, \"end\": 8.25, \"text\": \" ask not.\", "
    "\"tokens\": [], \"temperature\": 0.0, \"avg_logprob\": -0.3, \"compression_ratio\": 1.0, "
    "\"no_speech_prob\": 0.02}]}";

static void test_status_and_result(void **state) {
    (void)state;
    char id[64], path[256], expect[512], msg[256];
    snprintf(id, sizeof id, "%s", upload_jfk("jfk.wav"));
    Resp r;
    snprintf(path, sizeof path, "/status/%s", id);
    get(path, &r);
    assert_int_equal(r.code, 200);
    snprintf(expect, sizeof expect,
             "{\"job_id\": \"%s\", \"status\": \"queued\", \"file_name\": \"jfk.wav\"}", id);
    assert_string_equal(r.body, expect);
    resp_free(&r);

    snprintf(path, sizeof path, "/result/%s", id);
    get(path, &r);
    assert_int_equal(r.code, 200);
    snprintf(expect, sizeof expect,
             "{\"job_id\": \"%s\", \"status\": \"queued\", \"message\": \"Processing not yet "
             "complete\"}",
             id);
    assert_string_equal(r.body, expect);
    resp_free(&r);

    snprintf(path, sizeof path, "/jobs/%s/transcript?format=srt", id);
    get(path, &r);
    assert_int_equal(r.code, 409);
    resp_free(&r);

    /* Completed, no note yet. */
    const char *text = "And so my fellow Americans, ask not.";
    assert_int_equal(meta_set_transcript(g_meta, id, text, "en", 11.0, SEGMENTS, msg, sizeof msg),
                     0);
    assert_int_equal(
        meta_transition(g_meta, id, JOB_MASK_ANY, JOB_COMPLETED, NULL, msg, sizeof msg), 0);
    snprintf(path, sizeof path, "/result/%s", id);
    get(path, &r);
    assert_int_equal(r.code, 200);
    json_t *j = parse(&r);
    assert_string_equal(jstr(j, "status"), "completed");
    assert_string_equal(jstr(j, "transcription"), text);
    assert_string_equal(jstr(j, "message"), "Note generation pending");
    assert_null(json_object_get(j, "diary_note"));
    assert_string_equal(jstr(j, "language"), "en");
    assert_int_equal(json_array_size(json_object_get(j, "segments")), 2);
    /* The seed's keys come first, in its order. */
    const char *keys[] = {"job_id", "status", "transcription", "message"};
    void *it = json_object_iter(j);
    for (int i = 0; i < 4; i++, it = json_object_iter_next(j, it))
        assert_string_equal(json_object_iter_key(it), keys[i]);
    json_decref(j);
    resp_free(&r);

    assert_int_equal(meta_set_note_error(g_meta, id, "the note service is down", msg, sizeof msg),
                     0);
    get(path, &r);
    j = parse(&r);
    assert_string_equal(jstr(j, "note_error"), "the note service is down");
    json_decref(j);
    resp_free(&r);

    /* With a note. */
    assert_int_equal(
        meta_put_note(g_meta, id, "# Diary\nA day.", "{\"title\": \"A day\"}", 0, msg, sizeof msg),
        0);
    get(path, &r);
    j = parse(&r);
    assert_string_equal(jstr(j, "status"), "completed");
    assert_string_equal(jstr(j, "diary_note"), "# Diary\nA day.");
    assert_null(json_object_get(j, "message"));
    assert_string_equal(jstr(json_object_get(j, "note"), "title"), "A day");
    it = json_object_iter_next(
        j, json_object_iter_next(j, json_object_iter_next(j, json_object_iter(j))));
    assert_string_equal(json_object_iter_key(it), "diary_note");
    json_decref(j);
    resp_free(&r);

    /* Transcripts. */
    snprintf(path, sizeof path, "/jobs/%s/transcript?format=srt", id);
    get(path, &r);
    assert_int_equal(r.code, 200);
    assert_non_null(strcasestr(r.headers, "Content-Type: application/x-subrip"));
    assert_non_null(
        strstr(r.body, "1\n00:00:00,000 --> 00:00:05,000\nAnd so my fellow Americans,"));
    assert_non_null(strstr(r.body, "00:00:05,000 --> 00:00:08,250\nask not."));
    resp_free(&r);
    snprintf(path, sizeof path, "/jobs/%s/transcript?format=vtt", id);
    get(path, &r);
    assert_int_equal(r.code, 200);
    assert_non_null(strcasestr(r.headers, "Content-Type: text/vtt"));
    assert_memory_equal(r.body, "WEBVTT", 6);
    assert_non_null(strstr(r.body, "00:00:05.000 --> 00:00:08.250"));
    resp_free(&r);
    snprintf(path, sizeof path, "/jobs/%s/transcript?format=txt", id);
    get(path, &r);
    assert_int_equal(r.code, 200);
    assert_string_equal(r.body, "And so my fellow Americans, ask not.\n");
    resp_free(&r);
    snprintf(path, sizeof path, "/jobs/%s/transcript?format=docx", id);
    get(path, &r);
    assert_int_equal(r.code, 400);
    resp_free(&r);

    /* An error job tells why. */
    char id2[64];
    snprintf(id2, sizeof id2, "%s", upload_jfk("b.wav"));
    assert_int_equal(meta_transition(g_meta, id2, JOB_MASK_ANY, JOB_ERROR,
                                     "could not decode the audio", msg, sizeof msg),
                     0);
    snprintf(path, sizeof path, "/result/%s", id2);
    get(path, &r);
    snprintf(
        expect, sizeof expect,
        "{\"job_id\": \"%s\", \"status\": \"error\", \"error\": \"could not decode the audio\"}",
        id2);
    assert_string_equal(r.body, expect);
    resp_free(&r);
}

static void test_not_found(void **state) {
    (void)state;
    char lng[700], path[800];
    memset(lng, 'a', sizeof lng - 1);
    lng[sizeof lng - 1] = 0;
    const char *job_paths[] = {"/status/0b7c9a52-1f4e-4c2a-9d3b-5e6f7a8b9c0d",
                               "/result/0b7c9a52-1f4e-4c2a-9d3b-5e6f7a8b9c0d", "/status/not-a-uuid",
                               "/jobs/not-a-uuid/transcript", NULL};
    Resp r;
    for (int i = 0; job_paths[i]; i++) {
        get(job_paths[i], &r);
        assert_int_equal(r.code, 404);
        assert_string_equal(r.body, "{\"detail\": \"Job not found\"}");
        resp_free(&r);
    }
    snprintf(path, sizeof path, "/status/%s", lng);
    get(path, &r);
    assert_int_equal(r.code, 404);
    resp_free(&r);
    /* Ids that smuggle a path never reach a lookup. */
    const char *sneaky[] = {"/status/../x", "/result/..%2F..%2Fetc", "/jobs/..%2Fx/transcript",
                            "/status/%2e%2e", NULL};
    for (int i = 0; sneaky[i]; i++) {
        get(sneaky[i], &r);
        assert_int_equal(r.code, 404);
        resp_free(&r);
    }
    get("/nope", &r);
    assert_int_equal(r.code, 404);
    assert_string_equal(r.body, "{\"detail\": \"Not Found\"}");
    resp_free(&r);
    perform(g_api, "DELETE", "/", NULL, NULL, &r);
    assert_int_equal(r.code, 405);
    resp_free(&r);
    get("/upload-audio/", &r);
    assert_int_equal(r.code, 405);
    resp_free(&r);
}

/* An audio upload with a callback_url part. */
static void upload_with_callback(const char *callback, Resp *r) {
    size_t n;
    void *wav = tu_read(tu_shared("samples/jfk.wav"), &n);
    assert_non_null(wav);
    CURL *dummy = curl_easy_init();
    curl_mime *mime = curl_mime_init(dummy);
    curl_mimepart *part = curl_mime_addpart(mime);
    curl_mime_name(part, "file");
    curl_mime_filename(part, "cb.wav");
    curl_mime_data(part, wav, n);
    part = curl_mime_addpart(mime);
    curl_mime_name(part, "callback_url");
    curl_mime_data(part, callback, CURL_ZERO_TERMINATED);
    perform(g_api, "POST", "/upload-audio/", mime, NULL, r);
    curl_mime_free(mime);
    curl_easy_cleanup(dummy);
    free(wav);
}

static void test_bad_uploads(void **state) {
    (void)state;
    long files = count_files();
    int64_t jobs = count_jobs();
    Resp r;
    upload_to(g_api, NULL, NULL, 0, &r);
    assert_int_equal(r.code, 422);
    json_t *j = parse(&r);
    json_t *d0 = json_array_get(json_object_get(j, "detail"), 0);
    assert_string_equal(jstr(d0, "type"), "missing");
    assert_string_equal(json_string_value(json_array_get(json_object_get(d0, "loc"), 1)), "file");
    json_decref(j);
    resp_free(&r);

    const char *text = "Dear diary, this is plainly a text file and not audio at all.\n";
    upload_to(g_api, "notes.wav", text, strlen(text), &r);
    assert_int_equal(r.code, 415);
    j = parse(&r);
    assert_non_null(jstr(j, "detail"));
    json_decref(j);
    resp_free(&r);

    upload_to(g_api, "empty.wav", "", 0, &r);
    assert_int_equal(r.code, 400);
    j = parse(&r);
    assert_non_null(jstr(j, "detail"));
    json_decref(j);
    resp_free(&r);

    /* A callback that is not http(s), or too long, is refused up front. */
    char *long_url = malloc(3000);
    assert_non_null(long_url);
    memset(long_url, 'a', 2999);
    memcpy(long_url, "http://x/", 9);
    long_url[2999] = 0;
    const char *bad[] = {"ftp://example.com/hook", "file:///etc/passwd", "not a url", long_url};
    for (int i = 0; i < 4; i++) {
        upload_with_callback(bad[i], &r);
        assert_int_equal(r.code, 400);
        j = parse(&r);
        assert_non_null(strstr(jstr(j, "detail"), "callback_url"));
        json_decref(j);
        resp_free(&r);
    }
    free(long_url);

    assert_int_equal(count_files(), files);
    assert_int_equal(count_jobs(), jobs);
}

static void test_too_large(void **state) {
    (void)state;
    long files = count_files();
    int64_t jobs = count_jobs();
    /* 1 MiB: refused while streaming; 3 MiB: refused from its length. */
    for (size_t mb = 1; mb <= 3; mb += 2) {
        size_t n = mb << 20;
        unsigned char *buf = calloc(1, n);
        wav_header(buf, (uint32_t)(n - 44));
        Resp r;
        upload_to(g_small, "big.wav", buf, n, &r);
        free(buf);
        assert_int_equal(r.code, 413);
        json_t *j = parse(&r);
        assert_non_null(strstr(jstr(j, "detail"), "too large"));
        json_decref(j);
        resp_free(&r);
    }
    assert_int_equal(count_files(), files);
    assert_int_equal(count_jobs(), jobs);
}

static void test_delete(void **state) {
    (void)state;
    char id[64], path[256], msg[256], key[256];
    snprintf(id, sizeof id, "%s", upload_jfk("jfk.wav"));
    snprintf(key, sizeof key, "uploads/%s/jfk.wav", id);
    assert_int_equal(meta_put_note(g_meta, id, "note", "{}", 0, msg, sizeof msg), 0);
    Resp r;
    snprintf(path, sizeof path, "/jobs/%s", id);
    perform(g_api, "DELETE", path, NULL, NULL, &r);
    assert_int_equal(r.code, 200);
    char expect[256];
    snprintf(expect, sizeof expect, "{\"job_id\": \"%s\", \"deleted\": true}", id);
    assert_string_equal(r.body, expect);
    resp_free(&r);
    Job job;
    assert_int_equal(meta_get(g_meta, id, &job, msg, sizeof msg), DI_ENOTFOUND);
    uint64_t size;
    assert_int_equal(store_stat(g_store, key, &size, msg, sizeof msg), DI_ENOTFOUND);
    snprintf(path, sizeof path, "/status/%s", id);
    get(path, &r);
    assert_int_equal(r.code, 404);
    resp_free(&r);
    snprintf(path, sizeof path, "/jobs/%s", id);
    perform(g_api, "DELETE", path, NULL, NULL, &r);
    assert_int_equal(r.code, 404);
    resp_free(&r);
}

static void test_health_and_metrics(void **state) {
    (void)state;
    upload_jfk("m.wav");
    Resp r;
    get("/healthz", &r);
    assert_int_equal(r.code, 200);
    assert_string_equal(r.body, "{\"status\": \"ok\"}");
    resp_free(&r);
    get("/readyz", &r);
    assert_int_equal(r.code, 200);
    resp_free(&r);
    int64_t counts[JOB_STATE_COUNT];
    char msg[256], line[128];
    assert_int_equal(meta_count_by_state(g_meta, counts, msg, sizeof msg), 0);
    assert_true(counts[JOB_QUEUED] >= 1);
    get("/metrics", &r);
    assert_int_equal(r.code, 200);
    assert_non_null(strcasestr(r.headers, "Content-Type: text/plain"));
    snprintf(line, sizeof line, "\ndiarist_jobs{state=\"queued\"} %lld\n",
             (long long)counts[JOB_QUEUED]);
    assert_non_null(strstr(r.body, line));
    assert_non_null(strstr(r.body, "diarist_queue_messages{state=\"visible\"} 0\n"));
    assert_non_null(strstr(r.body, "diarist_http_requests_total{code=\"200\"} "));
    assert_non_null(strstr(r.body, "diarist_http_requests_total{code=\"404\"} "));
    /* The process's registry follows (the workers' figures in `diarist run`). */
    assert_non_null(strstr(r.body, "\ndiarist_stage_seconds_count{stage=\"transcribing\"} "));
    assert_non_null(strstr(r.body, "\ndiarist_realtime_factor "));
    assert_non_null(strstr(r.body, "\ndiarist_callbacks_total{result=\"delivered\"} "));
    resp_free(&r);
}

/* A WAV of 50 MB produced on the fly, never held whole by the client. */
typedef struct {
    size_t total, sent;
} Gen;

static size_t gen_read(char *buf, size_t size, size_t n, void *ud) {
    Gen *g = ud;
    size_t k = size * n;
    if (k > g->total - g->sent) k = g->total - g->sent;
    for (size_t i = 0; i < k; i++) {
        size_t at = g->sent + i;
        buf[i] = (char)(at * 2654435761u >> 13);
    }
    if (g->sent == 0 && k >= 44) wav_header((unsigned char *)buf, (uint32_t)(g->total - 44));
    g->sent += k;
    return k;
}

static void test_big_upload_streams(void **state) {
    (void)state;
    size_t before = di_peak_rss();
    Gen g = {50u << 20, 0};
    CURL *dummy = curl_easy_init();
    curl_mime *mime = curl_mime_init(dummy);
    curl_mimepart *part = curl_mime_addpart(mime);
    curl_mime_name(part, "file");
    curl_mime_filename(part, "long.wav");
    curl_mime_data_cb(part, (curl_off_t)g.total, gen_read, NULL, NULL, &g);
    Resp r;
    perform(g_api, "POST", "/upload-audio/", mime, NULL, &r);
    curl_mime_free(mime);
    curl_easy_cleanup(dummy);
    assert_int_equal(r.code, 200);
    json_t *j = parse(&r);
    char key[256], msg[256];
    snprintf(key, sizeof key, "uploads/%s/long.wav", jstr(j, "job_id"));
    uint64_t size;
    assert_int_equal(store_stat(g_store, key, &size, msg, sizeof msg), 0);
    assert_int_equal(size, g.total);
    size_t after = di_peak_rss();
    fprintf(stderr, "peak RSS %zu -> %zu KiB over a 50 MiB upload\n", before >> 10, after >> 10);
    assert_true(after - before < (20u << 20));
    json_decref(j);
    resp_free(&r);
    QueueMessage m;
    assert_int_equal(queue_receive(g_queue, 0, 30, NULL, NULL, &m, msg, sizeof msg), 1);
    queue_delete(g_queue, m.receipt, msg, sizeof msg);
    queue_message_free(&m);
    store_delete(g_store, key, msg, sizeof msg);
}

/* A client that sends half a body and goes quiet: the connection times
 * out and nothing it sent stays. */
static void test_stalled_client(void **state) {
    (void)state;
    long files = count_files();
    int64_t jobs = count_jobs();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)api_port(g_small))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    const char *pre =
        "--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.wav\"\r\n"
        "Content-Type: audio/wav\r\n\r\n";
    char head[512];
    int hn =
        snprintf(head, sizeof head,
                 "POST /upload-audio/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                 "boundary=XYZ\r\nContent-Length: 40000\r\n\r\n%s",
                 pre);
    assert_int_equal(write(fd, head, (size_t)hn), hn);
    unsigned char body[12000] = {0};
    wav_header(body, 30000);
    assert_int_equal(write(fd, body, sizeof body), (ssize_t)sizeof body);
    usleep(300 * 1000);
    /* Mid-upload the blob is being written (a temp file, not visible). */
    assert_int_equal(count_jobs(), jobs);
    sleep(3); /* past the 1 s connection timeout */
    char c;
    assert_int_equal(read(fd, &c, 1), 0); /* the server hung up */
    close(fd);
    assert_int_equal(count_files(), files);
    assert_int_equal(count_jobs(), jobs);
}

/* ---- Setup ------------------------------------------------------------ */

static int setup(void **state) {
    (void)state;
    setenv("DIARIST_LOG_LEVEL", "warn", 0);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char url[8300], msg[512];
    snprintf(g_blobs, sizeof g_blobs, "%s/blobs", tu_tmpdir());
    snprintf(url, sizeof url, "file://%s", g_blobs);
    tu_sh("mkdir -p '%s'", g_blobs);
    if (store_open(url, &g_store, msg, sizeof msg)) goto fail;
    snprintf(url, sizeof url, "sqlite://%s/api.db", tu_tmpdir());
    if (meta_open(url, &g_meta, msg, sizeof msg)) goto fail;
    snprintf(url, sizeof url, "sqlite://%s/api.db?queue=audio-processing-queue", tu_tmpdir());
    if (queue_open(url, &g_queue, msg, sizeof msg)) goto fail;
    ApiConfig cfg;
    api_config_defaults(&cfg);
    snprintf(cfg.host, sizeof cfg.host, "127.0.0.1");
    cfg.port = 0;
    cfg.store = g_store;
    cfg.meta = g_meta;
    cfg.queue = g_queue;
    cfg.max_upload_bytes = 200u << 20;
    if (api_start(&cfg, &g_api, msg, sizeof msg)) goto fail;
    cfg.max_upload_bytes = 64u << 10;
    cfg.timeout_s = 1;
    if (api_start(&cfg, &g_small, msg, sizeof msg)) goto fail;
    return 0;
fail:
    fprintf(stderr, "setup: %s\n", msg);
    return -1;
}

static int teardown(void **state) {
    (void)state;
    api_stop(g_api);
    api_stop(g_small);
    queue_close(g_queue);
    meta_close(g_meta);
    store_close(g_store);
    curl_global_cleanup();
    tu_sh("rm -rf '%s'", tu_tmpdir());
    return 0;
}

static void test_config(void **state) {
    (void)state;
    ApiConfig cfg;
    char msg[256];
    api_config_defaults(&cfg);
    assert_string_equal(cfg.host, "0.0.0.0");
    assert_int_equal(cfg.port, 8000);
    assert_int_equal(cfg.max_upload_bytes, 2048ull << 20);
    setenv("API_PORT", "9123", 1);
    setenv("DIARIST_MAX_UPLOAD_MB", "5", 1);
    assert_int_equal(api_config_from_env(&cfg, msg, sizeof msg), 0);
    assert_int_equal(cfg.port, 9123);
    assert_int_equal(cfg.max_upload_bytes, 5ull << 20);
    setenv("API_PORT", "99999", 1);
    assert_int_equal(api_config_from_env(&cfg, msg, sizeof msg), DI_EINVAL);
    assert_non_null(strstr(msg, "API_PORT"));
    unsetenv("API_PORT");
    unsetenv("DIARIST_MAX_UPLOAD_MB");
    Api *none = NULL;
    assert_int_equal(api_start(NULL, &none, msg, sizeof msg), DI_EINVAL);
    assert_null(none);
    assert_false(api_valid_job_id("../../etc/passwd"));
    assert_true(api_valid_job_id("0b7c9a52-1f4e-4c2a-9d3b-5e6f7a8b9c0d"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_root_and_cors),      cmocka_unit_test(test_upload_jfk),
        cmocka_unit_test(test_traversal_name),     cmocka_unit_test(test_status_and_result),
        cmocka_unit_test(test_not_found),          cmocka_unit_test(test_bad_uploads),
        cmocka_unit_test(test_too_large),          cmocka_unit_test(test_delete),
        cmocka_unit_test(test_health_and_metrics), cmocka_unit_test(test_big_upload_streams),
        cmocka_unit_test(test_stalled_client),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    const struct CMUnitTest plain[] = {cmocka_unit_test(test_config)};
    return failed + cmocka_run_group_tests(plain, NULL, NULL);
}
