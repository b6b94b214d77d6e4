/* A local webhook receiver for tests; see fake_hook.h. */
#include "fake_hook.h"

#include "core/core.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HOOK_MAX_REQUESTS 256
#define HOOK_MAX_SCRIPT 64
#define HOOK_MAX_BODY (4u << 20)

struct FakeHook {
    struct MHD_Daemon *daemon;
    char url[64];
    pthread_mutex_t lock;
    int script[HOOK_MAX_SCRIPT];
    int head, tail;
    HookRequest *requests[HOOK_MAX_REQUESTS];
    int count;
};

typedef struct {
    char *data;
    size_t len;
} Body;

void fake_hook_push(FakeHook *h, int status) {
    pthread_mutex_lock(&h->lock);
    if (h->tail < HOOK_MAX_SCRIPT) h->script[h->tail++] = status;
    pthread_mutex_unlock(&h->lock);
}

static void header(struct MHD_Connection *c, const char *name, char *out, size_t cap) {
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    snprintf(out, cap, "%s", v ? v : "");
}

/* Records the request and picks its answer. */
static int record(FakeHook *h, struct MHD_Connection *c, const char *method, const char *url,
                  const Body *b) {
    HookRequest *r = calloc(1, sizeof *r);
    char attempt[32];
    if (r) {
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->path, sizeof r->path, "%s", url);
        header(c, "X-Diarist-Job-Id", r->job_id, sizeof r->job_id);
        header(c, "Content-Type", r->content_type, sizeof r->content_type);
        header(c, "X-Diarist-Attempt", attempt, sizeof attempt);
        r->attempt = atoi(attempt);
        r->raw = strndup(b->data ? b->data : "", b->len);
        r->body = r->raw ? json_loads(r->raw, 0, NULL) : NULL;
        r->received_at = di_now();
    }
    pthread_mutex_lock(&h->lock);
    int status = h->head < h->tail ? h->script[h->head++] : 200;
    if (r && h->count < HOOK_MAX_REQUESTS) {
        h->requests[h->count++] = r;
        r = NULL;
    }
    pthread_mutex_unlock(&h->lock);
    if (r) {
        free(r->raw);
        json_decref(r->body);
        free(r);
    }
    return status;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **con_cls) {
    (void)version;
    FakeHook *h = cls;
    Body *b = *con_cls;
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b) return MHD_NO;
        *con_cls = b;
        return MHD_YES;
    }
    if (*size) {
        size_t n = *size;
        *size = 0;
        if (b->len + n > HOOK_MAX_BODY) return MHD_NO;
        char *grown = realloc(b->data, b->len + n + 1);
        if (!grown) return MHD_NO;
        memcpy(grown + b->len, data, n);
        b->data = grown;
        b->len += n;
        return MHD_YES;
    }
    int status = record(h, c, method, url, b);
    static const char text[] = "{\"ok\": true}";
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(sizeof text - 1, (void *)text, MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode code) {
    (void)cls, (void)c, (void)code;
    Body *b = *con_cls;
    if (b) free(b->data);
    free(b);
    *con_cls = NULL;
}

int fake_hook_start(FakeHook **out) {
    *out = NULL;
    FakeHook *h = calloc(1, sizeof *h);
    if (!h) return -1;
    pthread_mutex_init(&h->lock, NULL);
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    h->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
                                 NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, &addr,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    const union MHD_DaemonInfo *info =
        h->daemon ? MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    if (!info || !info->port) {
        fake_hook_stop(h);
        return -1;
    }
    snprintf(h->url, sizeof h->url, "http://127.0.0.1:%u/hook", (unsigned)info->port);
    *out = h;
    return 0;
}

const char *fake_hook_url(const FakeHook *h) {
    return h->url;
}

int fake_hook_count(FakeHook *h) {
    pthread_mutex_lock(&h->lock);
    int n = h->count;
    pthread_mutex_unlock(&h->lock);
    return n;
}

int fake_hook_wait(FakeHook *h, int n, double seconds) {
    double end = di_now() + seconds;
    int got;
    while ((got = fake_hook_count(h)) < n && di_now() < end) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return got;
}

const HookRequest *fake_hook_request(FakeHook *h, int i) {
    pthread_mutex_lock(&h->lock);
    const HookRequest *r = i >= 0 && i < h->count ? h->requests[i] : NULL;
    pthread_mutex_unlock(&h->lock);
    return r;
}

void fake_hook_stop(FakeHook *h) {
    if (!h) return;
    if (h->daemon) MHD_stop_daemon(h->daemon);
    for (int i = 0; i < h->count; i++) {
        free(h->requests[i]->raw);
        json_decref(h->requests[i]->body);
        free(h->requests[i]);
    }
    pthread_mutex_destroy(&h->lock);
    free(h);
}
