/* The metrics registry: stage histograms with cumulative buckets, counters
 * and the real-time factor in the Prometheus text format, appended to what
 * a caller already has; and the scrape endpoint a lone worker serves. */
#include "metrics/metrics.h"
#include "testutil.h"

#include "core/core.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static char *render(void) {
    char *buf = NULL;
    size_t len = 0, cap = 0;
    assert_int_equal(metrics_render(&buf, &len, &cap), 0);
    assert_non_null(buf);
    assert_int_equal(strlen(buf), len);
    assert_true(len < cap);
    return buf;
}

static void has(const char *text, const char *line) {
    if (!strstr(text, line)) fail_msg("missing line: %s", line);
}

static void histogram_and_counters(void **state) {
    (void)state;
    metrics_reset();
    metrics_observe_stage(METRIC_STAGE_TRANSCRIBING, 0.3);
    metrics_observe_stage(METRIC_STAGE_TRANSCRIBING, 7);
    metrics_observe_stage(METRIC_STAGE_TRANSCRIBING, 1e6); /* only in +Inf */
    metrics_observe_stage_named("downloading", -1);        /* counts as 0 */
    metrics_observe_stage_named("no such stage", 1);
    metrics_add_transcription(20, 5);
    metrics_add_transcription(10, 1);
    metrics_job_finished(1);
    metrics_job_finished(1);
    metrics_job_finished(0);
    metrics_callback(1);
    metrics_callback(0);
    metrics_callback(0);
    char *t = render();
    has(t, "# TYPE diarist_stage_seconds histogram\n");
    has(t, "diarist_stage_seconds_bucket{stage=\"transcribing\",le=\"0.25\"} 0\n");
    has(t, "diarist_stage_seconds_bucket{stage=\"transcribing\",le=\"0.5\"} 1\n");
    has(t, "diarist_stage_seconds_bucket{stage=\"transcribing\",le=\"5\"} 1\n");
    has(t, "diarist_stage_seconds_bucket{stage=\"transcribing\",le=\"10\"} 2\n");
    has(t, "diarist_stage_seconds_bucket{stage=\"transcribing\",le=\"3600\"} 2\n");
    has(t, "diarist_stage_seconds_bucket{stage=\"transcribing\",le=\"+Inf\"} 3\n");
    has(t, "diarist_stage_seconds_count{stage=\"transcribing\"} 3\n");
    has(t, "diarist_stage_seconds_sum{stage=\"transcribing\"} 1000007.300000\n");
    has(t, "diarist_stage_seconds_bucket{stage=\"downloading\",le=\"0.05\"} 1\n");
    has(t, "diarist_stage_seconds_count{stage=\"generating_note\"} 0\n");
    has(t, "diarist_stage_seconds_count{stage=\"total\"} 0\n");
    has(t, "\ndiarist_audio_seconds_total 30\n");
    has(t, "\ndiarist_transcribe_seconds_total 6.000000\n");
    has(t, "\ndiarist_realtime_factor 0.200000\n");
    has(t, "diarist_jobs_finished_total{state=\"completed\"} 2\n");
    has(t, "diarist_jobs_finished_total{state=\"error\"} 1\n");
    has(t, "diarist_callbacks_total{result=\"delivered\"} 1\n");
    has(t, "diarist_callbacks_total{result=\"failed\"} 2\n");
    free(t);

    metrics_reset();
    t = render();
    has(t, "\ndiarist_audio_seconds_total 0\n");
    has(t, "\ndiarist_realtime_factor 0.000000\n"); /* no audio yet: 0, not NaN */
    has(t, "diarist_stage_seconds_count{stage=\"transcribing\"} 0\n");
    free(t);
}

/* The API renders its own gauges first and appends the registry. */
static void render_appends(void **state) {
    (void)state;
    metrics_reset();
    size_t cap = 16, len = 5;
    char *buf = malloc(cap);
    assert_non_null(buf);
    memcpy(buf, "head\n", 6);
    assert_int_equal(metrics_render(&buf, &len, &cap), 0);
    assert_int_equal(strncmp(buf, "head\n# HELP diarist_stage_seconds", 33), 0);
    assert_int_equal(strlen(buf), len);
    free(buf);
}

static void *observer(void *arg) {
    (void)arg;
    for (int i = 0; i < 10000; i++) {
        metrics_observe_stage(METRIC_STAGE_TOTAL, 1);
        metrics_add_transcription(1, 0.5);
    }
    return NULL;
}

static void concurrent_updates_are_counted(void **state) {
    (void)state;
    metrics_reset();
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, observer, NULL), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    char *t = render();
    has(t, "diarist_stage_seconds_count{stage=\"total\"} 40000\n");
    has(t, "\ndiarist_audio_seconds_total 40000\n");
    free(t);
}

/* ---- The scrape endpoint ----------------------------------------------- */

typedef struct {
    char *data;
    size_t len;
} Body;

static size_t collect(char *p, size_t size, size_t n, void *ud) {
    Body *b = ud;
    char *grown = realloc(b->data, b->len + size * n + 1);
    if (!grown) return 0;
    memcpy(grown + b->len, p, size * n);
    b->len += size * n;
    grown[b->len] = 0;
    b->data = grown;
    return size * n;
}

static long fetch(int port, const char *path, Body *b) {
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    memset(b, 0, sizeof *b);
    CURL *h = curl_easy_init();
    assert_non_null(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    return code;
}

static void server_serves_metrics(void **state) {
    (void)state;
    metrics_reset();
    metrics_add_transcription(11, 2.2);
    MetricsServer *s;
    char msg[256];
    assert_int_equal(metrics_serve("127.0.0.1", 0, &s, msg, sizeof msg), 0);
    int port = metrics_server_port(s);
    assert_true(port > 0);
    Body b;
    assert_int_equal(fetch(port, "/metrics", &b), 200);
    has(b.data, "\ndiarist_audio_seconds_total 11\n");
    has(b.data, "\ndiarist_realtime_factor 0.200000\n");
    free(b.data);
    assert_int_equal(fetch(port, "/other", &b), 404);
    free(b.data);
    /* The port is taken now: a second server cannot bind it. */
    MetricsServer *s2 = NULL;
    assert_int_equal(metrics_serve("127.0.0.1", port, &s2, msg, sizeof msg), DI_EIO);
    assert_null(s2);
    assert_int_equal(metrics_serve("not-an-ip", 0, &s2, msg, sizeof msg), DI_EINVAL);
    metrics_server_stop(s);
    metrics_server_stop(NULL);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(histogram_and_counters),
        cmocka_unit_test(render_appends),
        cmocka_unit_test(concurrent_updates_are_counted),
        cmocka_unit_test(server_serves_metrics),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
