/* Callback delivery: a queue of pending POSTs ordered by when each is due,
 * served by a few threads; see worker.h. A retry waits in the queue, not on
 * a thread, so one dead receiver delays the others by at most one attempt
 * timeout. */
#include "worker/worker.h"

#include "core/core.h"
#include "metrics/metrics.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 16

typedef struct Delivery {
    struct Delivery *next;
    char *url, *job_id, *body;
    double ends_at; /* di_now() after which it is not tried again */
    double due;     /* di_now() of the next attempt */
    int attempts;
} Delivery;

struct Callbacks {
    CallbackConfig cfg;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    Delivery *pending; /* not in flight; unordered, scanned for the earliest */
    int n_pending;
    int stopping;
    double drain_until;
    DiRng rng; /* jitter; under lock */
    pthread_t threads[MAX_THREADS];
    int n_threads;
};

/* What one attempt came to. */
typedef enum { SENT_OK, SENT_RETRY, SENT_FATAL } Sent;

CallbackConfig callback_default_config(void) {
    return (CallbackConfig){.deadline_s = 300,
                            .attempt_timeout_s = 10,
                            .backoff_base_s = 1,
                            .backoff_max_s = 60,
                            .drain_s = 5,
                            .n_threads = 2,
                            .max_pending = 10000};
}

int callback_config_from_env(CallbackConfig *cfg, char *msg, size_t cap) {
    const char *v = getenv("DIARIST_CALLBACK_DEADLINE_S");
    if (!v || !*v) return 0;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || !(x >= 1 && x <= 86400))
        return di_fail(msg, cap, DI_EINVAL,
                       "DIARIST_CALLBACK_DEADLINE_S=%s: expected seconds from 1 to 86400", v);
    cfg->deadline_s = x;
    return 0;
}

static void delivery_free(Delivery *d) {
    if (!d) return;
    free(d->url);
    free(d->job_id);
    free(d->body);
    free(d);
}

/* The URL without its query or fragment, for logs: tokens often ride there. */
static void log_url(const char *url, char *out, size_t cap) {
    size_t n = strcspn(url, "?#");
    snprintf(out, cap, "%.*s%s", (int)(n < 200 ? n : 200), url, url[n] ? "?..." : "");
}

/* ---- One attempt -------------------------------------------------------- */

static size_t discard(char *data, size_t size, size_t n, void *user) {
    (void)data, (void)user;
    return size * n;
}

static int curl_transient(CURLcode code) {
    return code != CURLE_UNSUPPORTED_PROTOCOL && code != CURLE_URL_MALFORMAT &&
           code != CURLE_OUT_OF_MEMORY && code != CURLE_BAD_FUNCTION_ARGUMENT;
}

/* Cuts an attempt short once a shutdown's grace has run out, so stopping
 * never waits a whole attempt timeout beyond drain_s. */
static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    (void)dt, (void)dn, (void)ut, (void)un;
    Callbacks *cb = ud;
    pthread_mutex_lock(&cb->lock);
    int late = cb->stopping && di_now() >= cb->drain_until;
    pthread_mutex_unlock(&cb->lock);
    return late;
}

/* POSTs the body once; why says what went wrong. */
static Sent send_once(Callbacks *cb, const Delivery *d, double timeout_s, long *status, char *why,
                      size_t cap) {
    char errbuf[CURL_ERROR_SIZE] = "", id_line[200], attempt_line[64];
    snprintf(id_line, sizeof id_line, "X-Diarist-Job-Id: %s", d->job_id);
    snprintf(attempt_line, sizeof attempt_line, "X-Diarist-Attempt: %d", d->attempts);
    const char *lines[] = {"Content-Type: application/json", "Expect:", id_line, attempt_line};
    struct curl_slist *headers = NULL, *next;
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        next = curl_slist_append(headers, lines[i]);
        if (!next) break;
        headers = next;
    }
    CURL *h = curl_easy_init();
    *status = 0;
    if (!h || !headers) {
        curl_easy_cleanup(h);
        curl_slist_free_all(headers);
        snprintf(why, cap, "out of memory");
        return SENT_RETRY;
    }
    long ms = (long)(timeout_s * 1000);
    curl_easy_setopt(h, CURLOPT_URL, d->url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, d->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(d->body));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "diarist");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ms > 1 ? ms : 1L);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, cb);
    /* A receiver's redirect is its answer, not an invitation elsewhere. */
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    CURLcode code = curl_easy_perform(h);
    if (code == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    if (code != CURLE_OK) {
        snprintf(why, cap, "%s", errbuf[0] ? errbuf : curl_easy_strerror(code));
        return curl_transient(code) ? SENT_RETRY : SENT_FATAL;
    }
    snprintf(why, cap, "HTTP %ld", *status);
    if (*status >= 200 && *status < 300) return SENT_OK;
    if (*status == 408 || *status == 429 || *status >= 500) return SENT_RETRY;
    return SENT_FATAL;
}

/* ---- The queue ---------------------------------------------------------- */

/* Full jitter: uniform in [0, min(max, base * 2^(attempts-1))], so
 * receivers that failed together are not hit together again. */
static double backoff_s(Callbacks *cb, int attempts) {
    double ceiling = fmin(cb->cfg.backoff_max_s, cb->cfg.backoff_base_s * ldexp(1.0, attempts - 1));
    return di_rng_uniform(&cb->rng) * ceiling;
}

static void finish(Delivery *d, int delivered, const char *why) {
    char url[256];
    log_url(d->url, url, sizeof url);
    metrics_callback(delivered);
    if (delivered)
        di_log("info", "callback job=%s delivered to %s: %s, attempts=%d", d->job_id, url, why,
               d->attempts);
    else
        di_log("warn", "callback job=%s to %s failed: %s, attempts=%d", d->job_id, url, why,
               d->attempts);
    delivery_free(d);
}

/* Unlinks and returns the earliest-due delivery, or NULL. */
static Delivery *take_earliest(Callbacks *cb) {
    Delivery **best = NULL;
    for (Delivery **p = &cb->pending; *p; p = &(*p)->next)
        if (!best || (*p)->due < (*best)->due) best = p;
    if (!best) return NULL;
    Delivery *d = *best;
    *best = d->next;
    d->next = NULL;
    cb->n_pending--;
    return d;
}

static void put_back(Callbacks *cb, Delivery *d) {
    d->next = cb->pending;
    cb->pending = d;
    cb->n_pending++;
}

static void wait_until(Callbacks *cb, double until) {
    if (until == INFINITY) {
        pthread_cond_wait(&cb->wake, &cb->lock);
        return;
    }
    /* di_now is monotonic; the condition waits on the real-time clock. */
    double left = until - di_now();
    if (left <= 0) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double t = (double)ts.tv_sec + ts.tv_nsec / 1e9 + left;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    pthread_cond_timedwait(&cb->wake, &cb->lock, &ts);
}

/* Makes one attempt at d (unlocked) and decides what follows. */
static void attempt(Callbacks *cb, Delivery *d, double limit) {
    double now = di_now();
    double timeout = fmin(cb->cfg.attempt_timeout_s, limit - now);
    d->attempts++;
    pthread_mutex_unlock(&cb->lock);
    long status;
    char why[CURL_ERROR_SIZE + 64];
    Sent sent = send_once(cb, d, timeout > 0.001 ? timeout : 0.001, &status, why, sizeof why);
    pthread_mutex_lock(&cb->lock);
    if (sent != SENT_RETRY) {
        finish(d, sent == SENT_OK, why);
        return;
    }
    double next = di_now() + backoff_s(cb, d->attempts);
    if (next >= d->ends_at) {
        char all[sizeof why + 64];
        snprintf(all, sizeof all, "%s; deadline reached", why);
        finish(d, 0, all);
        return;
    }
    d->due = next;
    put_back(cb, d);
    pthread_cond_broadcast(&cb->wake); /* an idle thread may take it sooner */
}

static void *delivery_main(void *arg) {
    Callbacks *cb = arg;
    pthread_mutex_lock(&cb->lock);
    for (;;) {
        double limit = cb->stopping ? cb->drain_until : INFINITY;
        if (cb->stopping && (!cb->pending || di_now() >= limit)) break;
        Delivery *d = take_earliest(cb);
        if (!d) {
            wait_until(cb, limit);
            continue;
        }
        if (cb->stopping && d->due >= limit) {
            put_back(cb, d); /* not due before the grace ends: leave it */
            break;
        }
        if (d->due > di_now()) {
            put_back(cb, d);
            wait_until(cb, fmin(d->due, limit));
            continue;
        }
        attempt(cb, d, fmin(limit, d->ends_at));
    }
    pthread_mutex_unlock(&cb->lock);
    return NULL;
}

/* ---- Life cycle --------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_code;

static void curl_init_once(void) {
    curl_init_code = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int callbacks_start(const CallbackConfig *cfg, Callbacks **out, char *msg, size_t cap) {
    if (!out) return di_fail(msg, cap, DI_EINVAL, "callbacks_start: no output");
    *out = NULL;
    if (!cfg || !(cfg->deadline_s > 0) || !(cfg->attempt_timeout_s > 0) ||
        !(cfg->backoff_base_s >= 0) || !(cfg->backoff_max_s >= 0) || !(cfg->drain_s >= 0) ||
        cfg->n_threads < 1 || cfg->n_threads > MAX_THREADS || cfg->max_pending < 1)
        return di_fail(msg, cap, DI_EINVAL, "callbacks: settings out of range");
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_code != CURLE_OK)
        return di_fail(msg, cap, DI_EINTERNAL, "libcurl: %s", curl_easy_strerror(curl_init_code));
    Callbacks *cb = calloc(1, sizeof *cb);
    if (!cb) return di_fail(msg, cap, DI_ENOMEM, "out of memory");
    cb->cfg = *cfg;
    pthread_mutex_init(&cb->lock, NULL);
    pthread_cond_init(&cb->wake, NULL);
    di_rng_seed(&cb->rng, (uint64_t)(di_now() * 1e9) ^ ((uint64_t)getpid() << 32));
    for (int i = 0; i < cfg->n_threads; i++)
        if (pthread_create(&cb->threads[cb->n_threads], NULL, delivery_main, cb) == 0)
            cb->n_threads++;
    if (!cb->n_threads) {
        callbacks_stop(cb);
        return di_fail(msg, cap, DI_EINTERNAL, "callbacks: no delivery thread could start");
    }
    *out = cb;
    return 0;
}

int callbacks_post(Callbacks *cb, const char *url, const char *job_id, const char *json, char *msg,
                   size_t cap) {
    if (!cb || !job_id || !json) return di_fail(msg, cap, DI_EINVAL, "callbacks_post: no job");
    if (!meta_callback_url_ok(url))
        return di_fail(msg, cap, DI_EINVAL, "callback_url is not an http(s) URL");
    Delivery *d = calloc(1, sizeof *d);
    if (d) {
        d->url = strdup(url);
        d->job_id = strdup(job_id);
        d->body = strdup(json);
    }
    if (!d || !d->url || !d->job_id || !d->body) {
        delivery_free(d);
        return di_fail(msg, cap, DI_ENOMEM, "out of memory");
    }
    d->due = di_now();
    d->ends_at = d->due + cb->cfg.deadline_s;
    pthread_mutex_lock(&cb->lock);
    int full = cb->n_pending >= cb->cfg.max_pending;
    if (!full) {
        put_back(cb, d);
        pthread_cond_broadcast(&cb->wake);
    }
    pthread_mutex_unlock(&cb->lock);
    if (full) {
        delivery_free(d);
        metrics_callback(0);
        return di_fail(msg, cap, DI_ERANGE, "%d callbacks already pending", cb->cfg.max_pending);
    }
    return 0;
}

void callbacks_stop(Callbacks *cb) {
    if (!cb) return;
    pthread_mutex_lock(&cb->lock);
    cb->stopping = 1;
    cb->drain_until = di_now() + cb->cfg.drain_s;
    pthread_cond_broadcast(&cb->wake);
    pthread_mutex_unlock(&cb->lock);
    for (int i = 0; i < cb->n_threads; i++)
        pthread_join(cb->threads[i], NULL);
    while (cb->pending) {
        Delivery *d = cb->pending;
        cb->pending = d->next;
        finish(d, 0, "abandoned at shutdown");
    }
    pthread_cond_destroy(&cb->wake);
    pthread_mutex_destroy(&cb->lock);
    free(cb);
}
