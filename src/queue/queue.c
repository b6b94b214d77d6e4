/* queue: the registry that picks a backend from a URL, the argument checks
 * every call passes through, and the long poll for backends that cannot
 * wait on their own. */
#include "queue/queue.h"

#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

extern const QueueBackend queue_sqlite_backend;
extern const QueueBackend queue_sqs_backend;

/* Tried in order; the first that accepts the URL wins. */
static const QueueBackend *const backends[] = {&queue_sqlite_backend, &queue_sqs_backend};

struct Queue {
    const QueueBackend *be;
    void *state;
};

/* How often a waiting receive looks again. Short enough that a long poll
 * feels immediate, long enough that idle workers cost nothing. */
#define POLL_INTERVAL_S 0.05

void queue_message_free(QueueMessage *m) {
    if (!m) return;
    free(m->id);
    free(m->receipt);
    free(m->body);
    free(m->last_error);
    memset(m, 0, sizeof *m);
}

int queue_random_hex(char *buf, size_t cap) {
    if (!buf || cap < 33) return DI_EINVAL;
    unsigned char r[16];
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t n = getrandom(r + got, sizeof r - got, 0);
        if (n <= 0) return DI_EIO;
        got += (size_t)n;
    }
    for (int i = 0; i < 16; i++)
        snprintf(buf + 2 * i, 3, "%02x", r[i]);
    return 0;
}

int queue_open(const char *url, Queue **out, char *msg, size_t cap) {
    if (!out) return di_fail(msg, cap, DI_EINVAL, "queue_open: no output");
    *out = NULL;
    if (!url || !url[0]) return di_fail(msg, cap, DI_EINVAL, "queue: empty URL");
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        const QueueBackend *be = backends[i];
        if (!be->accepts(url)) continue;
        Queue *q = calloc(1, sizeof *q);
        if (!q) return di_fail(msg, cap, DI_ENOMEM, "queue: out of memory");
        int rc = be->open(url, &q->state, msg, cap);
        if (rc < 0) {
            free(q);
            return rc;
        }
        q->be = be;
        *out = q;
        return 0;
    }
    return di_fail(msg, cap, DI_EINVAL, "queue: no backend for URL '%.200s'", url);
}

void queue_close(Queue *q) {
    if (!q) return;
    q->be->close(q->state);
    free(q);
}

int queue_send(Queue *q, const void *body, size_t len, char *id_out, size_t id_cap, char *msg,
               size_t cap) {
    if (!q || !body || (id_out && id_cap < 64))
        return di_fail(msg, cap, DI_EINVAL, "queue_send: bad arguments");
    if (len == 0 || len > QUEUE_MAX_BODY)
        return di_fail(msg, cap, DI_ERANGE, "queue_send: body of %zu bytes (1..%d)", len,
                       QUEUE_MAX_BODY);
    return q->be->send(q->state, body, len, id_out, id_cap, msg, cap);
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

int queue_receive(Queue *q, double wait_s, double visibility_s, QueueDeadFn on_dead, void *ctx,
                  QueueMessage *out, char *msg, size_t cap) {
    if (!q || !out) return di_fail(msg, cap, DI_EINVAL, "queue_receive: bad arguments");
    memset(out, 0, sizeof *out);
    if (!(wait_s >= 0 && wait_s <= QUEUE_MAX_WAIT_S) ||
        !(visibility_s >= 0 && visibility_s <= QUEUE_MAX_VISIBILITY_S))
        return di_fail(msg, cap, DI_ERANGE, "queue_receive: wait 0..%d s, visibility 0..%d s",
                       QUEUE_MAX_WAIT_S, QUEUE_MAX_VISIBILITY_S);
    if (q->be->native_wait)
        return q->be->receive(q->state, wait_s, visibility_s, on_dead, ctx, out, msg, cap);
    double deadline = di_now() + wait_s;
    for (;;) {
        int rc = q->be->receive(q->state, 0, visibility_s, on_dead, ctx, out, msg, cap);
        if (rc != 0) return rc;
        double left = deadline - di_now();
        if (left <= 0) return 0;
        sleep_s(left < POLL_INTERVAL_S ? left : POLL_INTERVAL_S);
    }
}

static int check_receipt(const char *receipt, char *msg, size_t cap) {
    if (!receipt || !receipt[0] || strlen(receipt) > 1024)
        return di_fail(msg, cap, DI_EINVAL, "queue: bad receipt");
    return 0;
}

int queue_delete(Queue *q, const char *receipt, char *msg, size_t cap) {
    if (!q) return di_fail(msg, cap, DI_EINVAL, "queue_delete: no queue");
    int rc = check_receipt(receipt, msg, cap);
    return rc < 0 ? rc : q->be->remove(q->state, receipt, msg, cap);
}

int queue_change_visibility(Queue *q, const char *receipt, double seconds, const char *reason,
                            char *msg, size_t cap) {
    if (!q) return di_fail(msg, cap, DI_EINVAL, "queue_change_visibility: no queue");
    int rc = check_receipt(receipt, msg, cap);
    if (rc < 0) return rc;
    if (!(seconds >= 0 && seconds <= QUEUE_MAX_VISIBILITY_S))
        return di_fail(msg, cap, DI_ERANGE, "queue_change_visibility: 0..%d s",
                       QUEUE_MAX_VISIBILITY_S);
    return q->be->change_visibility(q->state, receipt, seconds, reason, msg, cap);
}

int queue_dead_letter(Queue *q, const char *receipt, const char *reason, char *msg, size_t cap) {
    if (!q) return di_fail(msg, cap, DI_EINVAL, "queue_dead_letter: no queue");
    int rc = check_receipt(receipt, msg, cap);
    return rc < 0 ? rc : q->be->dead_letter(q->state, receipt, reason, msg, cap);
}

int queue_depth(Queue *q, QueueDepth *out, char *msg, size_t cap) {
    if (!q || !out) return di_fail(msg, cap, DI_EINVAL, "queue_depth: bad arguments");
    memset(out, 0, sizeof *out);
    return q->be->depth(q->state, out, msg, cap);
}
