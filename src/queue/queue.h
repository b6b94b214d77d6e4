/*
 * queue: the work queue between the API and the workers, with the
 * semantics of Amazon SQS so a fleet behaves the same on one machine and
 * on AWS. The API sends one message per job (the seed's exact JSON body);
 * workers receive, work, and delete.
 *
 * - queue_receive hands out one message at a time under a lease: the
 *   message is invisible to other receivers for `visibility_s` seconds.
 *   Every receive gets a fresh receipt; only the latest receipt can delete
 *   or extend the message, so a worker whose lease ran out (and whose
 *   message went to another worker) cannot ack someone else's work.
 * - A worker extends its lease while it works (queue_change_visibility as a
 *   heartbeat), and schedules a retry by setting the visibility to the
 *   backoff delay and not deleting.
 * - A message received more than max_receives times goes to the dead
 *   letters instead of being handed out again; queue_receive tells its
 *   caller through a callback so the job can be marked failed with the
 *   last reason recorded for it. queue_dead_letter sends a message there at
 *   once (a body that is not JSON will never succeed).
 *
 * One interface, backends behind it (a struct of function pointers plus the
 * backend's own state), chosen by queue_open from a URL:
 *   "sqlite:///abs/path.db?queue=NAME[&max_receives=N]"   sqlite.c
 *   an SQS queue URL, http(s)://HOST/ACCOUNT/NAME            sqs.c
 * Nothing outside a backend knows which one runs. Several processes may
 * share one queue; one Queue handle may be used by several threads.
 *
 * Ownership: queue_open gives a Queue freed by queue_close (NULL is fine).
 * queue_receive fills a caller-owned QueueMessage whose strings it
 * allocates; queue_message_free releases them. The message passed to a
 * dead-letter callback belongs to the queue and lives only for the call.
 */
#ifndef DIARIST_QUEUE_H
#define DIARIST_QUEUE_H

#include <stddef.h>
#include <stdint.h>

/* SQS's limits, kept on every backend so code tested locally fits AWS. */
#define QUEUE_MAX_WAIT_S 20
#define QUEUE_MAX_VISIBILITY_S 43200
#define QUEUE_MAX_BODY 262144
#define QUEUE_DEFAULT_MAX_RECEIVES 5

/* The answer of queue_delete, queue_change_visibility and queue_dead_letter
 * when the receipt is no longer the message's latest (the message was
 * received again, deleted or dead-lettered): nothing was done. Not an
 * error code (those are negative). */
#define QUEUE_STALE 1

typedef struct {
    char *id;      /* stable for the message's life */
    char *receipt; /* this delivery's handle */
    char *body;    /* the bytes sent, plus a 0 not counted in body_len */
    size_t body_len;
    int receive_count; /* 1 on the first delivery */
    char *last_error;  /* the last failure noted for it, or NULL */
} QueueMessage;

void queue_message_free(QueueMessage *m);

/* Called by queue_receive for each message it moves to the dead letters
 * (receipt is NULL there). */
typedef void (*QueueDeadFn)(void *ctx, const QueueMessage *dead);

typedef struct {
    int64_t visible;   /* ready to be received */
    int64_t in_flight; /* leased, or waiting out a retry delay */
    int64_t dead;      /* in the dead letters */
} QueueDepth;

typedef struct Queue Queue;

int queue_open(const char *url, Queue **out, char *msg, size_t cap);
void queue_close(Queue *q);

/* Enqueues body[0..len) verbatim (1..QUEUE_MAX_BODY bytes). The message id
 * is written to id_out (may be NULL; id_cap >= 64 otherwise). */
int queue_send(Queue *q, const void *body, size_t len, char *id_out, size_t id_cap, char *msg,
               size_t cap);

/* Waits up to wait_s seconds (0..20) for a visible message, leases it for
 * visibility_s seconds (0..43200) and fills *out. Returns 1 with a message,
 * 0 when the wait ended with none, or a negative error. Messages found
 * over max_receives on the way are dead-lettered and passed to on_dead
 * (may be NULL). */
int queue_receive(Queue *q, double wait_s, double visibility_s, QueueDeadFn on_dead, void *ctx,
                  QueueMessage *out, char *msg, size_t cap);

/* Acknowledges (removes) the message. QUEUE_STALE if the receipt is stale. */
int queue_delete(Queue *q, const char *receipt, char *msg, size_t cap);

/* Makes the message visible again `seconds` from now (0..43200): a
 * heartbeat, or a retry delay. reason, when not NULL, is kept as the
 * message's last_error. QUEUE_STALE if the receipt is stale. */
int queue_change_visibility(Queue *q, const char *receipt, double seconds, const char *reason,
                            char *msg, size_t cap);

/* Moves the message to the dead letters at once, with reason as its
 * last_error. QUEUE_STALE if the receipt is stale. */
int queue_dead_letter(Queue *q, const char *receipt, const char *reason, char *msg, size_t cap);

int queue_depth(Queue *q, QueueDepth *out, char *msg, size_t cap);

/* ---- For backends only ------------------------------------------------ */

/* One backend. Arguments reaching it have been checked by queue.c. `state`
 * is what open returned; it must tolerate calls from several threads. */
typedef struct {
    const char *name; /* for logs: "sqlite", "sqs" */
    int (*accepts)(const char *url);
    int (*open)(const char *url, void **state, char *msg, size_t cap);
    void (*close)(void *state);
    int (*send)(void *state, const void *body, size_t len, char *id_out, size_t id_cap, char *msg,
                size_t cap);
    /* One attempt, no waiting: 1 with a message, 0 when none is visible.
     * queue.c does the long poll around it (a backend with a native long
     * poll, like SQS, may wait inside and say so with native_wait). */
    int (*receive)(void *state, double wait_s, double visibility_s, QueueDeadFn on_dead, void *ctx,
                   QueueMessage *out, char *msg, size_t cap);
    int native_wait;
    int (*remove)(void *state, const char *receipt, char *msg, size_t cap);
    int (*change_visibility)(void *state, const char *receipt, double seconds, const char *reason,
                             char *msg, size_t cap);
    int (*dead_letter)(void *state, const char *receipt, const char *reason, char *msg, size_t cap);
    int (*depth)(void *state, QueueDepth *out, char *msg, size_t cap);
} QueueBackend;

/* Fills buf (cap >= 33) with 32 random hex digits from the OS; message ids
 * and receipts are made from these. */
int queue_random_hex(char *buf, size_t cap);

#endif
