/* The process-wide metrics registry and its scrape endpoint; see metrics.h. */
#include "metrics/metrics.h"

#include "core/core.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds in seconds: from a fast download to an hour-long recording
 * on a slow machine. */
static const double BUCKETS[] = {0.05, 0.1, 0.25, 0.5, 1,   2.5,  5,   10,
                                 30,   60,  120,  300, 600, 1800, 3600};
#define N_BUCKETS (sizeof BUCKETS / sizeof BUCKETS[0])

static const char *const STAGE_NAMES[METRIC_STAGE_COUNT] = {"downloading", "transcribing",
                                                            "generating_note", "total"};

typedef struct {
    uint64_t bucket[N_BUCKETS]; /* not cumulative: rendering sums them */
    uint64_t count;
    double sum;
} Histogram;

static struct {
    pthread_mutex_t lock;
    Histogram stage[METRIC_STAGE_COUNT];
    double audio_s, compute_s;
    uint64_t finished[2];  /* [0] error, [1] completed */
    uint64_t callbacks[2]; /* [0] failed, [1] delivered */
} reg = {.lock = PTHREAD_MUTEX_INITIALIZER};

void metrics_observe_stage(MetricStage stage, double seconds) {
    if ((unsigned)stage >= METRIC_STAGE_COUNT) return;
    if (!(seconds > 0)) seconds = 0;
    pthread_mutex_lock(&reg.lock);
    Histogram *h = &reg.stage[stage];
    size_t i = 0;
    while (i < N_BUCKETS && seconds > BUCKETS[i])
        i++;
    if (i < N_BUCKETS) h->bucket[i]++;
    h->count++;
    h->sum += seconds;
    pthread_mutex_unlock(&reg.lock);
}

void metrics_observe_stage_named(const char *stage, double seconds) {
    for (int s = 0; stage && s < METRIC_STAGE_COUNT; s++)
        if (!strcmp(stage, STAGE_NAMES[s])) metrics_observe_stage((MetricStage)s, seconds);
}

void metrics_add_transcription(double audio_s, double compute_s) {
    pthread_mutex_lock(&reg.lock);
    if (audio_s > 0) reg.audio_s += audio_s;
    if (compute_s > 0) reg.compute_s += compute_s;
    pthread_mutex_unlock(&reg.lock);
}

void metrics_job_finished(int completed) {
    pthread_mutex_lock(&reg.lock);
    reg.finished[completed ? 1 : 0]++;
    pthread_mutex_unlock(&reg.lock);
}

void metrics_callback(int delivered) {
    pthread_mutex_lock(&reg.lock);
    reg.callbacks[delivered ? 1 : 0]++;
    pthread_mutex_unlock(&reg.lock);
}

void metrics_reset(void) {
    pthread_mutex_lock(&reg.lock);
    memset(reg.stage, 0, sizeof reg.stage);
    reg.audio_s = reg.compute_s = 0;
    memset(reg.finished, 0, sizeof reg.finished);
    memset(reg.callbacks, 0, sizeof reg.callbacks);
    pthread_mutex_unlock(&reg.lock);
}

/* ---- Rendering ---------------------------------------------------------- */

/* A growable text buffer; a failed growth sticks so the end reports it. */
typedef struct {
    char **buf;
    size_t *len, *cap;
    int failed;
} Out;

static void emit(Out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(Out *o, const char *fmt, ...) {
    if (o->failed) return;
    for (;;) {
        size_t room = *o->cap - *o->len;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*o->buf ? *o->buf + *o->len : NULL, *o->buf ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = 1;
            return;
        }
        if (*o->buf && (size_t)n < room) {
            *o->len += (size_t)n;
            return;
        }
        size_t want = *o->cap ? *o->cap * 2 : 4096;
        while (want < *o->len + (size_t)n + 1)
            want *= 2;
        char *grown = realloc(*o->buf, want);
        if (!grown) {
            o->failed = 1;
            return;
        }
        *o->buf = grown;
        *o->cap = want;
    }
}

/* Copies the figures under the lock so rendering never holds it. */
static void snapshot(Histogram st[METRIC_STAGE_COUNT], double *audio, double *compute,
                     uint64_t fin[2], uint64_t cb[2]) {
    pthread_mutex_lock(&reg.lock);
    memcpy(st, reg.stage, sizeof reg.stage);
    *audio = reg.audio_s;
    *compute = reg.compute_s;
    memcpy(fin, reg.finished, sizeof reg.finished);
    memcpy(cb, reg.callbacks, sizeof reg.callbacks);
    pthread_mutex_unlock(&reg.lock);
}

static void render_histograms(Out *o, const Histogram st[METRIC_STAGE_COUNT]) {
    emit(o, "# HELP diarist_stage_seconds Time a job spent in each stage, and in one whole "
            "trip through the worker.\n# TYPE diarist_stage_seconds histogram\n");
    for (int s = 0; s < METRIC_STAGE_COUNT; s++) {
        uint64_t cum = 0;
        for (size_t i = 0; i < N_BUCKETS; i++) {
            cum += st[s].bucket[i];
            emit(o, "diarist_stage_seconds_bucket{stage=\"%s\",le=\"%g\"} %llu\n", STAGE_NAMES[s],
                 BUCKETS[i], (unsigned long long)cum);
        }
        emit(o, "diarist_stage_seconds_bucket{stage=\"%s\",le=\"+Inf\"} %llu\n", STAGE_NAMES[s],
             (unsigned long long)st[s].count);
        emit(o, "diarist_stage_seconds_sum{stage=\"%s\"} %.6f\n", STAGE_NAMES[s], st[s].sum);
        emit(o, "diarist_stage_seconds_count{stage=\"%s\"} %llu\n", STAGE_NAMES[s],
             (unsigned long long)st[s].count);
    }
}

int metrics_render(char **buf, size_t *len, size_t *cap) {
    if (!buf || !len || !cap) return DI_EINVAL;
    Histogram st[METRIC_STAGE_COUNT];
    double audio, compute;
    uint64_t fin[2], cb[2];
    snapshot(st, &audio, &compute, fin, cb);
    Out o = {buf, len, cap, 0};
    render_histograms(&o, st);
    emit(&o,
         "# HELP diarist_audio_seconds_total Seconds of audio transcribed.\n"
         "# TYPE diarist_audio_seconds_total counter\ndiarist_audio_seconds_total %g\n",
         audio);
    emit(&o,
         "# HELP diarist_transcribe_seconds_total Wall seconds spent transcribing.\n"
         "# TYPE diarist_transcribe_seconds_total counter\n"
         "diarist_transcribe_seconds_total %.6f\n",
         compute);
    /* 0 before any audio: "no data" reads better than NaN on a dashboard. */
    emit(&o,
         "# HELP diarist_realtime_factor Transcription seconds per second of audio "
         "since start (lower is faster).\n# TYPE diarist_realtime_factor gauge\n"
         "diarist_realtime_factor %.6f\n",
         audio > 0 ? compute / audio : 0.0);
    emit(&o,
         "# HELP diarist_jobs_finished_total Jobs that reached an end state.\n"
         "# TYPE diarist_jobs_finished_total counter\n"
         "diarist_jobs_finished_total{state=\"completed\"} %llu\n"
         "diarist_jobs_finished_total{state=\"error\"} %llu\n",
         (unsigned long long)fin[1], (unsigned long long)fin[0]);
    emit(&o,
         "# HELP diarist_callbacks_total Callback deliveries by outcome.\n"
         "# TYPE diarist_callbacks_total counter\n"
         "diarist_callbacks_total{result=\"delivered\"} %llu\n"
         "diarist_callbacks_total{result=\"failed\"} %llu\n",
         (unsigned long long)cb[1], (unsigned long long)cb[0]);
    return o.failed ? DI_ENOMEM : 0;
}

/* ---- Scrape endpoint ---------------------------------------------------- */

struct MetricsServer {
    struct MHD_Daemon *daemon;
    int port;
};

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *ctype,
                                 char *body, size_t len) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_scrape(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *data,
                                 size_t *data_size, void **con_cls) {
    (void)cls, (void)version, (void)data;
    if (!*con_cls) { /* the headers: wait for the (empty) body */
        *con_cls = c;
        return MHD_YES;
    }
    if (*data_size) {
        *data_size = 0;
        return MHD_YES;
    }
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (strcmp(url, "/metrics") || !get) {
        char *body = strdup(strcmp(url, "/metrics") ? "Not Found\n" : "Method Not Allowed\n");
        if (!body) return MHD_NO;
        return send_text(c, strcmp(url, "/metrics") ? 404 : 405, "text/plain", body, strlen(body));
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (metrics_render(&buf, &len, &cap)) {
        free(buf);
        return MHD_NO;
    }
    return send_text(c, 200, "text/plain; version=0.0.4; charset=utf-8", buf, len);
}

int metrics_serve(const char *host, int port, MetricsServer **out, char *msg, size_t cap) {
    if (!out) return di_fail(msg, cap, DI_EINVAL, "metrics_serve: no output");
    *out = NULL;
    if (!host || port < 0 || port > 65535)
        return di_fail(msg, cap, DI_EINVAL, "metrics_serve: bad host or port");
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        flags |= MHD_USE_IPv6;
    } else {
        return di_fail(msg, cap, DI_EINVAL, "metrics: %s is not an IP address", host);
    }
    MetricsServer *s = calloc(1, sizeof *s);
    if (!s) return di_fail(msg, cap, DI_ENOMEM, "out of memory");
    s->daemon =
        MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_scrape, NULL, MHD_OPTION_SOCK_ADDR,
                         &ss, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    const union MHD_DaemonInfo *info =
        s->daemon ? MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    if (!info || !info->port) {
        metrics_server_stop(s);
        return di_fail(msg, cap, DI_EIO, "metrics: cannot listen on %s:%d", host, port);
    }
    s->port = info->port;
    *out = s;
    return 0;
}

int metrics_server_port(const MetricsServer *s) {
    return s ? s->port : 0;
}

void metrics_server_stop(MetricsServer *s) {
    if (!s) return;
    if (s->daemon) MHD_stop_daemon(s->daemon);
    free(s);
}
