/* The model registry and verified downloads, against a small HTTP server on
 * loopback that serves a synthetic micro model (the real host cannot be
 * reached where the tests run). */
#include "models/models.h"
#include "testutil.h"
#include "whisper/whisper.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- The server --------------------------------------------------------- */

/* Routes:
 *   /ok/ggml-x.bin     200, the model, with Content-Length
 *   /redirect          302 to /ok/ggml-x.bin
 *   /missing           404
 *   /corrupt           the model with one byte flipped
 *   /slow              half the model, then nothing until the client leaves
 *   /table/<file>      the model under any table file name */
typedef struct {
    struct MHD_Daemon *daemon;
    char url[64];
    unsigned char *model; /* the good bytes */
    unsigned char *corrupt;
    size_t size;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* broadcast at stop so a stalled answer returns */
    int stopping;
    int requests;
    int ok_requests; /* requests for /ok/ggml-x.bin */
} Server;

static Server server;
static char model_path[4096];
static char model_sha1[MODELS_SHA1_HEX];

/* /slow: hands out the first half, then waits (up to 10 s, or until the
 * server stops) and ends the response with an error. */
static ssize_t slow_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    Server *s = cls;
    size_t half = s->size / 2;
    if (pos < half) {
        size_t n = half - pos < max ? half - pos : max;
        memcpy(buf, s->model + pos, n);
        return (ssize_t)n;
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&s->lock);
    while (!s->stopping)
        if (pthread_cond_timedwait(&s->wake, &s->lock, &until)) break;
    pthread_mutex_unlock(&s->lock);
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status,
                              struct MHD_Response *r) {
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **state) {
    (void)method, (void)version, (void)upload, (void)upload_size, (void)state;
    Server *s = cls;
    pthread_mutex_lock(&s->lock);
    s->requests++;
    if (!strcmp(url, "/ok/ggml-x.bin")) s->ok_requests++;
    pthread_mutex_unlock(&s->lock);
    if (!strcmp(url, "/ok/ggml-x.bin") || !strncmp(url, "/table/", 7))
        return answer(conn, 200,
                      MHD_create_response_from_buffer(s->size, s->model, MHD_RESPMEM_PERSISTENT));
    if (!strcmp(url, "/corrupt"))
        return answer(conn, 200,
                      MHD_create_response_from_buffer(s->size, s->corrupt, MHD_RESPMEM_PERSISTENT));
    if (!strcmp(url, "/redirect")) {
        struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
        char to[128];
        snprintf(to, sizeof to, "%s/ok/ggml-x.bin", s->url);
        MHD_add_response_header(r, "Location", to);
        return answer(conn, 302, r);
    }
    if (!strcmp(url, "/slow"))
        return answer(conn, 200,
                      MHD_create_response_from_callback(s->size, 65536, slow_reader, s, NULL));
    static const char missing[] = "not here\n";
    return answer(conn, 404,
                  MHD_create_response_from_buffer(sizeof missing - 1, (void *)missing,
                                                  MHD_RESPMEM_PERSISTENT));
}

static int server_start(Server *s) {
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(0)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
                                 NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &addr,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    const union MHD_DaemonInfo *info =
        s->daemon ? MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    if (!info || !info->port) return -1;
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%u", (unsigned)info->port);
    return 0;
}

static void server_stop(Server *s) {
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
    if (s->daemon) MHD_stop_daemon(s->daemon);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
}

static int ok_requests(void) {
    pthread_mutex_lock(&server.lock);
    int n = server.ok_requests;
    pthread_mutex_unlock(&server.lock);
    return n;
}

static int setup(void **state) {
    (void)state;
    snprintf(model_path, sizeof model_path, "%s", tu_tmp("micro.bin"));
    WhisperSynthSpec spec = {.seed = 7, .vocab_from = tu_shared("golden/ggml-micro-synthetic.en.bin")};
    char msg[512];
    if (whisper_synth_preset("micro", &spec.hp) || whisper_synth_write(model_path, &spec, msg, sizeof msg)) {
        fprintf(stderr, "cannot write the synthetic model: %s\n", msg);
        return -1;
    }
    server.model = tu_read(model_path, &server.size);
    if (!server.model || server.size < 1000) return -1;
    server.corrupt = malloc(server.size);
    if (!server.corrupt) return -1;
    memcpy(server.corrupt, server.model, server.size);
    server.corrupt[server.size / 3] ^= 0x40;
    /* The expected checksum is computed here, independently of the
     * download path, from the bytes the server hands out. */
    if (models_sha1_hex(server.model, server.size, model_sha1)) return -1;
    return server_start(&server);
}

static int teardown(void **state) {
    (void)state;
    server_stop(&server);
    free(server.model);
    free(server.corrupt);
    return 0;
}

static const char *url_of(const char *route) {
    static char buf[256];
    snprintf(buf, sizeof buf, "%s%s", server.url, route);
    return buf;
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* A fresh empty directory under the scratch space. */
static const char *fresh_dir(const char *name) {
    const char *d = tu_tmp(name);
    tu_sh("rm -rf '%s'", d);
    mkdir(d, 0755);
    return d;
}

/* ---- Hashing and the table ---------------------------------------------- */

static void test_sha1_known_vectors(void **state) {
    (void)state;
    char hex[MODELS_SHA1_HEX];
    assert_int_equal(models_sha1_hex("abc", 3, hex), 0);
    assert_string_equal(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
    assert_int_equal(models_sha1_hex("", 0, hex), 0);
    assert_string_equal(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    /* The file path hashes the same bytes as the memory path. */
    const char *p = tu_tmp("abc.txt");
    assert_int_equal(tu_write(p, "abc", 3), 0);
    char msg[256];
    assert_int_equal(models_sha1_file(p, hex, msg, sizeof msg), 0);
    assert_string_equal(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
    assert_int_equal(models_sha1_file(tu_tmp("nosuch"), hex, msg, sizeof msg), DI_EIO);
}

static void test_table_and_urls(void **state) {
    (void)state;
    assert_int_equal(models_count(), 13);
    const ModelInfo *m = models_find("base.en");
    assert_non_null(m);
    assert_string_equal(m->file, "ggml-base.en.bin");
    assert_string_equal(m->sha1, "137c40403d78fd54d454da0f9bd998f78703390c");
    assert_null(models_find("base.fr"));
    assert_null(models_find(NULL));
    assert_null(models_at(models_count()));
    for (int i = 0; i < models_count(); i++) {
        const ModelInfo *e = models_at(i);
        char file[128];
        snprintf(file, sizeof file, "ggml-%s.bin", e->name);
        assert_string_equal(e->file, file);
        assert_int_equal(strlen(e->sha1), 40);
        assert_true(e->size > 50u << 20);
    }
    char url[512], msg[512];
    unsetenv("DIARIST_MODEL_BASE_URL");
    assert_int_equal(models_url(NULL, "tiny.en", url, sizeof url, msg, sizeof msg), 0);
    assert_string_equal(url, MODELS_DEFAULT_BASE_URL "/ggml-tiny.en.bin");
    setenv("DIARIST_MODEL_BASE_URL", "http://127.0.0.1:1/m/", 1);
    assert_int_equal(models_url(NULL, "tiny", url, sizeof url, msg, sizeof msg), 0);
    assert_string_equal(url, "http://127.0.0.1:1/m/ggml-tiny.bin");
    unsetenv("DIARIST_MODEL_BASE_URL");
    assert_int_equal(models_url(NULL, "nope", url, sizeof url, msg, sizeof msg), DI_EINVAL);
    assert_non_null(strstr(msg, "base.en"));
    assert_int_equal(models_url("http://x", "tiny", url, 10, msg, sizeof msg), DI_ERANGE);
}

static void test_model_dir(void **state) {
    (void)state;
    char dir[4096], msg[256];
    const char *root = fresh_dir("dirs");
    char want[4096];
    setenv("XDG_CACHE_HOME", root, 1);
    unsetenv("DIARIST_MODEL_DIR");
    assert_int_equal(models_dir(dir, sizeof dir, 1, msg, sizeof msg), 0);
    snprintf(want, sizeof want, "%s/diarist/models", root);
    assert_string_equal(dir, want);
    assert_true(exists(want)); /* created, parents included */
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", root, 1);
    assert_int_equal(models_dir(dir, sizeof dir, 0, msg, sizeof msg), 0);
    snprintf(want, sizeof want, "%s/.cache/diarist/models", root);
    assert_string_equal(dir, want);
    assert_false(exists(want)); /* create = 0 leaves the disk alone */
    snprintf(want, sizeof want, "%s/a/b/c", root);
    setenv("DIARIST_MODEL_DIR", want, 1);
    assert_int_equal(models_dir(dir, sizeof dir, 1, msg, sizeof msg), 0);
    assert_string_equal(dir, want);
    assert_true(exists(want));
    unsetenv("DIARIST_MODEL_DIR");
}

static void test_resolve(void **state) {
    (void)state;
    char path[4096], msg[1024], want[4096];
    const char *dir = fresh_dir("resolve");
    /* A path to a file is taken as is. */
    assert_int_equal(models_resolve(model_path, dir, path, sizeof path, msg, sizeof msg), 0);
    assert_string_equal(path, model_path);
    /* A known name not yet downloaded: tell the user how to get it. */
    assert_int_equal(models_resolve("tiny.en", dir, path, sizeof path, msg, sizeof msg),
                     DI_ENOTFOUND);
    assert_non_null(strstr(msg, "diarist model pull tiny.en"));
    /* Once the file is there, the name finds it. */
    snprintf(want, sizeof want, "%s/ggml-tiny.en.bin", dir);
    assert_int_equal(tu_write(want, "x", 1), 0);
    assert_int_equal(models_resolve("tiny.en", dir, path, sizeof path, msg, sizeof msg), 0);
    assert_string_equal(path, want);
    /* The default directory comes from the environment. */
    setenv("DIARIST_MODEL_DIR", dir, 1);
    assert_int_equal(models_resolve("tiny.en", NULL, path, sizeof path, msg, sizeof msg), 0);
    assert_string_equal(path, want);
    unsetenv("DIARIST_MODEL_DIR");
    /* Unknown names list the known ones; missing paths say so. */
    assert_int_equal(models_resolve("huge", dir, path, sizeof path, msg, sizeof msg), DI_EINVAL);
    assert_non_null(strstr(msg, "huge"));
    assert_non_null(strstr(msg, "large-v3-turbo"));
    assert_int_equal(models_resolve("/no/such/model.bin", dir, path, sizeof path, msg, sizeof msg),
                     DI_ENOTFOUND);
    assert_int_equal(models_resolve("", dir, path, sizeof path, msg, sizeof msg), DI_EINVAL);
}

/* ---- Downloads ---------------------------------------------------------- */

typedef struct {
    int calls;
    uint64_t last_done, last_total;
    int monotonic;
} Seen;

static void record_progress(void *ud, uint64_t done, uint64_t total) {
    Seen *s = ud;
    if (done < s->last_done) s->monotonic = 0;
    s->calls++;
    s->last_done = done;
    s->last_total = total;
}

static void test_pull_good(void **state) {
    (void)state;
    const char *dir = fresh_dir("good");
    char dest[4096], part[4096], msg[1024];
    snprintf(dest, sizeof dest, "%s/ggml-x.bin", dir);
    snprintf(part, sizeof part, "%s/.ggml-x.bin.part", dir);
    Seen seen = {.monotonic = 1};
    ModelsPullOptions opt = {.progress = record_progress, .progress_ud = &seen};
    int before = ok_requests();
    int rc = models_pull_url(url_of("/ok/ggml-x.bin"), dest, model_sha1, &opt, msg, sizeof msg);
    assert_int_equal(rc, 0);
    assert_int_equal(ok_requests(), before + 1);
    assert_true(exists(dest));
    assert_false(exists(part));
    /* The bytes are exactly the server's, and they load as a model. */
    size_t size = 0;
    unsigned char *got = tu_read(dest, &size);
    assert_non_null(got);
    assert_int_equal(size, server.size);
    assert_memory_equal(got, server.model, size);
    free(got);
    WhisperModel *m = NULL;
    assert_int_equal(whisper_model_load(dest, &m, msg, sizeof msg), 0);
    assert_int_equal(whisper_model_hparams(m)->n_audio_state, 128);
    whisper_model_free(m);
    /* Progress reached the end, with the Content-Length as total. */
    assert_true(seen.calls >= 1);
    assert_true(seen.monotonic);
    assert_int_equal(seen.last_done, server.size);
    assert_int_equal(seen.last_total, server.size);

    /* Pulling again finds the good file and asks the server for nothing. */
    assert_int_equal(models_pull_url(url_of("/ok/ggml-x.bin"), dest, model_sha1, &opt, msg, sizeof msg), 0);
    assert_int_equal(ok_requests(), before + 1);
    /* A damaged file in place is fetched again and repaired. */
    unsigned char *bad = malloc(server.size);
    memcpy(bad, server.model, server.size);
    bad[10] ^= 1;
    assert_int_equal(tu_write(dest, bad, server.size), 0);
    free(bad);
    assert_int_equal(models_pull_url(url_of("/ok/ggml-x.bin"), dest, model_sha1, &opt, msg, sizeof msg), 0);
    assert_int_equal(ok_requests(), before + 2);
    char hex[MODELS_SHA1_HEX];
    assert_int_equal(models_sha1_file(dest, hex, msg, sizeof msg), 0);
    assert_string_equal(hex, model_sha1);
}

static void test_pull_redirect(void **state) {
    (void)state;
    const char *dir = fresh_dir("redirect");
    char dest[4096], msg[1024];
    snprintf(dest, sizeof dest, "%s/ggml-x.bin", dir);
    int before = ok_requests();
    /* Upper-case hex is the same checksum. */
    char upper[MODELS_SHA1_HEX];
    for (int i = 0; i < MODELS_SHA1_HEX; i++)
        upper[i] = (char)(model_sha1[i] >= 'a' && model_sha1[i] <= 'f' ? model_sha1[i] - 32 : model_sha1[i]);
    assert_int_equal(models_pull_url(url_of("/redirect"), dest, upper, NULL, msg, sizeof msg), 0);
    assert_int_equal(ok_requests(), before + 1); /* the redirect was followed */
    char hex[MODELS_SHA1_HEX];
    assert_int_equal(models_sha1_file(dest, hex, msg, sizeof msg), 0);
    assert_string_equal(hex, model_sha1);
}

static void test_pull_checksum_mismatch(void **state) {
    (void)state;
    const char *dir = fresh_dir("corrupt");
    char dest[4096], part[4096], msg[1024], want[256];
    snprintf(dest, sizeof dest, "%s/ggml-x.bin", dir);
    snprintf(part, sizeof part, "%s/.ggml-x.bin.part", dir);
    char bad_sha1[MODELS_SHA1_HEX];
    assert_int_equal(models_sha1_hex(server.corrupt, server.size, bad_sha1), 0);
    int rc = models_pull_url(url_of("/corrupt"), dest, model_sha1, NULL, msg, sizeof msg);
    assert_int_equal(rc, DI_EFORMAT);
    snprintf(want, sizeof want, "checksum mismatch: expected %s, got %s", model_sha1, bad_sha1);
    assert_non_null(strstr(msg, want));
    assert_false(exists(dest));
    assert_false(exists(part));
    /* Without an expected checksum the bytes are taken as they are. */
    assert_int_equal(models_pull_url(url_of("/corrupt"), dest, NULL, NULL, msg, sizeof msg), 0);
    assert_true(exists(dest));
    /* A malformed expected checksum is refused before any request. */
    assert_int_equal(models_pull_url(url_of("/corrupt"), dest, "xyz", NULL, msg, sizeof msg),
                     DI_EINVAL);
}

static void test_pull_http_errors(void **state) {
    (void)state;
    const char *dir = fresh_dir("errors");
    char dest[4096], part[4096], msg[1024];
    snprintf(dest, sizeof dest, "%s/ggml-x.bin", dir);
    snprintf(part, sizeof part, "%s/.ggml-x.bin.part", dir);
    int rc = models_pull_url(url_of("/missing"), dest, model_sha1, NULL, msg, sizeof msg);
    assert_int_equal(rc, DI_EIO);
    assert_non_null(strstr(msg, "404"));
    assert_non_null(strstr(msg, url_of("/missing")));
    assert_false(exists(dest));
    assert_false(exists(part));
    /* Nothing listens on port 9 of loopback: an unreachable host. */
    rc = models_pull_url("http://127.0.0.1:9/ggml-x.bin", dest, model_sha1, NULL, msg, sizeof msg);
    assert_int_equal(rc, DI_EIO);
    assert_non_null(strstr(msg, "could not reach 127.0.0.1"));
    assert_non_null(strstr(msg, "DIARIST_MODEL"));
    assert_false(exists(part));
}

static void test_pull_stalled(void **state) {
    (void)state;
    const char *dir = fresh_dir("slow");
    char dest[4096], part[4096], msg[1024];
    snprintf(dest, sizeof dest, "%s/ggml-x.bin", dir);
    snprintf(part, sizeof part, "%s/.ggml-x.bin.part", dir);
    ModelsPullOptions opt = {.low_speed_bytes = 1000, .low_speed_seconds = 1};
    double t0 = di_now();
    int rc = models_pull_url(url_of("/slow"), dest, model_sha1, &opt, msg, sizeof msg);
    double took = di_now() - t0;
    assert_int_equal(rc, DI_EIO);
    assert_non_null(strstr(msg, "stalled"));
    assert_true(took < 5.0); /* the server would hold on for 10 s */
    assert_false(exists(dest));
    assert_false(exists(part));
}

/* models_pull by table name: the URL is built from the base, the table's
 * checksum is what counts, and the synthetic bytes do not match it. */
static void test_pull_by_name(void **state) {
    (void)state;
    const char *dir = fresh_dir("byname");
    char base[128], path[4096], msg[1024], part[4096];
    snprintf(base, sizeof base, "%s/table", server.url);
    snprintf(part, sizeof part, "%s/.ggml-tiny.en.bin.part", dir);
    Seen seen = {.monotonic = 1};
    ModelsPullOptions opt = {.progress = record_progress, .progress_ud = &seen};
    int rc = models_pull("tiny.en", base, dir, &opt, path, sizeof path, msg, sizeof msg);
    assert_int_equal(rc, DI_EFORMAT);
    assert_non_null(strstr(msg, "expected c78c86eb1a8faa21b369bcd33207cc90d64ae9df"));
    assert_non_null(strstr(msg, model_sha1)); /* what actually arrived */
    assert_int_equal(seen.last_done, server.size);
    assert_false(exists(part));
    assert_int_equal(models_resolve("tiny.en", dir, path, sizeof path, msg, sizeof msg),
                     DI_ENOTFOUND);
    assert_int_equal(models_pull("tiny.xx", base, dir, NULL, NULL, 0, msg, sizeof msg), DI_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha1_known_vectors), cmocka_unit_test(test_table_and_urls),
        cmocka_unit_test(test_model_dir),          cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_pull_good),          cmocka_unit_test(test_pull_redirect),
        cmocka_unit_test(test_pull_checksum_mismatch), cmocka_unit_test(test_pull_http_errors),
        cmocka_unit_test(test_pull_stalled),       cmocka_unit_test(test_pull_by_name),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
