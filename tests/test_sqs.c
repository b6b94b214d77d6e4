/* Tests for the SQS queue backend (src/queue/sqs.c) against local-aws-sqs
 * on loopback (tests/aws): the scenarios of test_queue.c where SQS can
 * play them (send/receive/delete once with the seed's exact body, long
 * polls, leases, heartbeats, retry reasons, dead letters by count and by
 * hand, stale receipts, depth, threads sharing a handle) and what is SQS's
 * own: the dead-letter queue found from the RedrivePolicy, the reason on
 * the DLQ copy, a missing queue's hint. Leases are 1-2 s (SQS counts whole
 * seconds). Each test makes its own queues, so none sees another's. */
#include "testutil.h"

#include "aws/aws.h"
#include "core/core.h"
#include "queue/queue.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char msg[512];
static TuEmulators emu;
static int have_emu;
static Aws *aws;

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* ---- Talking to the server directly, as `diarist init-aws` would ------- */

/* One SQS action; the answer parsed, or NULL when it failed. */
static json_t *raw(const char *action, json_t *req) {
    char ep[512], target[96];
    int custom;
    assert_int_equal(aws_endpoint(aws, "sqs", ep, sizeof ep, &custom), 0);
    strcat(ep, "/");
    snprintf(target, sizeof target, "X-Amz-Target: AmazonSQS.%s", action);
    const char *headers[] = {"Content-Type: application/x-amz-json-1.0", target, NULL};
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    AwsRequest rq = {.method = "POST",
                     .service = "sqs",
                     .url = ep,
                     .headers = headers,
                     .body = body,
                     .body_len = strlen(body)};
    AwsResponse resp;
    memset(&resp, 0, sizeof resp);
    assert_int_equal(aws_request(aws, &rq, &resp, msg, sizeof msg), 0);
    free(body);
    json_t *answer = resp.status == 200 && resp.body ? json_loads(resp.body, 0, NULL) : NULL;
    if (resp.status != 200) fprintf(stderr, "%s: %ld %s\n", action, resp.status, resp.body);
    aws_response_free(&resp);
    return answer;
}

/* Creates NAME-dlq and NAME (with a RedrivePolicy to it when
 * max_receive_count > 0); the work queue's URL, static. */
static const char *create_queues(const char *name, int max_receive_count) {
    static char url[512];
    char dlq[128];
    snprintf(dlq, sizeof dlq, "%s-dlq", name);
    json_t *a = raw("CreateQueue", json_pack("{s:s}", "QueueName", dlq));
    assert_non_null(a);
    json_decref(a);
    json_t *req = json_pack("{s:s}", "QueueName", name);
    if (max_receive_count > 0) {
        char policy[256];
        snprintf(policy, sizeof policy,
                 "{\"deadLetterTargetArn\":\"arn:aws:sqs:us-east-1:000000000000:%s\","
                 "\"maxReceiveCount\":\"%d\"}",
                 dlq, max_receive_count);
        json_object_set_new(req, "Attributes", json_pack("{s:s}", "RedrivePolicy", policy));
    }
    a = raw("CreateQueue", req);
    assert_non_null(a);
    snprintf(url, sizeof url, "%s", json_string_value(json_object_get(a, "QueueUrl")));
    json_decref(a);
    return url;
}

static Queue *open_url(const char *url) {
    if (!have_emu) skip();
    Queue *q = NULL;
    int rc = queue_open(url, &q, msg, sizeof msg);
    if (rc != 0) fail_msg("queue_open(%s): %s", url, msg);
    return q;
}

/* Creates the queues and opens the work queue, with `params` added to its
 * URL. */
static Queue *open_new(const char *name, int max_receive_count, const char *params) {
    if (!have_emu) skip();
    char url[1024];
    snprintf(url, sizeof url, "%s%s", create_queues(name, max_receive_count), params ? params : "");
    return open_url(url);
}

/* Takes one message off NAME-dlq directly: its body and diarist-reason. */
static int dlq_take(const char *name, char *body, size_t body_cap, char *reason, size_t cap) {
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/000000000000/%s-dlq", emu.sqs, name);
    json_t *a =
        raw("ReceiveMessage", json_pack("{s:s, s:i, s:[s]}", "QueueUrl", url, "MaxNumberOfMessages",
                                        1, "MessageAttributeNames", "All"));
    assert_non_null(a);
    json_t *m = json_array_get(json_object_get(a, "Messages"), 0);
    if (m) {
        snprintf(body, body_cap, "%s", json_string_value(json_object_get(m, "Body")));
        const char *r = json_string_value(json_object_get(
            json_object_get(json_object_get(m, "MessageAttributes"), "diarist-reason"),
            "StringValue"));
        snprintf(reason, cap, "%s", r ? r : "");
    }
    json_decref(a);
    return m != NULL;
}

/* SQS's counts are approximate and settle after a change (real SQS: within
 * about a minute; local-aws-sqs: a just-sent message counts only once its
 * zero delay timer has fired), so the counts are read until they match or
 * two seconds pass. local-aws-sqs counts in-flight messages as visible too. */
static void check_depth(Queue *q, int64_t visible, int64_t in_flight, int64_t dead) {
    QueueDepth d;
    for (int tries = 0;; tries++) {
        assert_int_equal(queue_depth(q, &d, msg, sizeof msg), 0);
        int ok = (d.visible == visible || d.visible == visible + in_flight) &&
                 d.in_flight == in_flight && d.dead == dead;
        if (ok || tries == 40) break;
        sleep_s(0.05);
    }
    if (d.visible != visible) assert_int_equal(d.visible, visible + in_flight);
    assert_int_equal(d.in_flight, in_flight);
    assert_int_equal(d.dead, dead);
}

/* ---- The scenarios -------------------------------------------------------- */

static const char seed_body[] = "{\"job_id\": \"3f1c\", \"file_path\": \"uploads/3f1c/my "
                                "memo \xc3\xa9.m4a\", \"file_name\": \"my memo \xc3\xa9.m4a\"}";

static void test_send_receive_delete(void **state) {
    (void)state;
    Queue *q = open_new("audio-processing-queue", 6, NULL);
    char id[64];
    assert_int_equal(queue_send(q, seed_body, strlen(seed_body), id, sizeof id, msg, sizeof msg),
                     0);
    assert_int_equal(strlen(id), 36);
    check_depth(q, 1, 0, 0);

    QueueMessage m;
    assert_int_equal(queue_receive(q, 0, 30, NULL, NULL, &m, msg, sizeof msg), 1);
    assert_string_equal(m.id, id);
    assert_int_equal(m.body_len, strlen(seed_body));
    assert_memory_equal(m.body, seed_body, m.body_len); /* verbatim bytes */
    assert_int_equal(m.receive_count, 1);
    assert_null(m.last_error);
    assert_true(strlen(m.receipt) >= 16);
    check_depth(q, 0, 1, 0);

    /* Leased: nobody else gets it. */
    QueueMessage other;
    assert_int_equal(queue_receive(q, 0, 30, NULL, NULL, &other, msg, sizeof msg), 0);
    assert_null(other.id);

    assert_int_equal(queue_delete(q, m.receipt, msg, sizeof msg), 0);
    /* SQS lets a receipt delete twice; either answer is a success. */
    assert_true(queue_delete(q, m.receipt, msg, sizeof msg) >= 0);
    check_depth(q, 0, 0, 0);
    queue_message_free(&m);
    assert_int_equal(queue_receive(q, 0, 30, NULL, NULL, &m, msg, sizeof msg), 0);

    /* Bodies SQS cannot carry are refused before they are sent. */
    assert_int_equal(queue_send(q, "a\0b", 3, NULL, 0, msg, sizeof msg), DI_EINVAL);
    assert_int_equal(queue_send(q, "\xff\xfe", 2, NULL, 0, msg, sizeof msg), DI_EINVAL);
    assert_int_equal(queue_send(q, "", 0, NULL, 0, msg, sizeof msg), DI_ERANGE);
    queue_close(q);
}

static void test_url_options(void **state) {
    (void)state;
    if (!have_emu) skip();
    const char *url = create_queues("opts", 0);
    char u[1024];
    Queue *q = NULL;
    const char *bad[] = {"?max_receives=0", "?max_receives=x", "?bogus=1", "?dlq=ftp://x/1/y"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(u, sizeof u, "%s%s", url, bad[i]);
        assert_int_equal(queue_open(u, &q, msg, sizeof msg), DI_EINVAL);
        assert_null(q);
    }
    /* Not queue URLs at all: no backend takes them. */
    const char *other[] = {"http://127.0.0.1/only-a-name", "http://h/12/bad name", "ftp://h/1/q"};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        assert_int_equal(queue_open(other[i], &q, msg, sizeof msg), DI_EINVAL);
    snprintf(u, sizeof u, "http://127.0.0.1:%d/000000000000/jobs.fifo", emu.sqs);
    assert_int_equal(queue_open(u, &q, msg, sizeof msg), DI_EUNSUPPORTED);
    /* With neither a policy nor ?dlq=, NAME-dlq is the dead-letter queue;
     * an explicit one is used as given. */
    q = open_url(url);
    queue_close(q);
    snprintf(u, sizeof u, "%s?max_receives=2&dlq=http://127.0.0.1:%d/000000000000/opts-dlq", url,
             emu.sqs);
    q = open_url(u);
    queue_close(q);
}

static void test_missing_queue(void **state) {
    (void)state;
    if (!have_emu) skip();
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/000000000000/no-such-queue", emu.sqs);
    Queue *q = NULL;
    assert_int_equal(queue_open(url, &q, msg, sizeof msg), DI_EIO);
    assert_non_null(strstr(msg, "init-aws"));
    assert_null(q);

    /* A queue with no dead-letter queue anywhere (the seed's own init
     * script makes one so) still works: dead letters are dropped. */
    json_t *a = raw("CreateQueue", json_pack("{s:s}", "QueueName", "lonely"));
    json_decref(a);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/000000000000/lonely", emu.sqs);
    assert_int_equal(queue_open(url, &q, msg, sizeof msg), 0);
    assert_int_equal(queue_send(q, "not json", 8, NULL, 0, msg, sizeof msg), 0);
    QueueMessage lm;
    assert_int_equal(queue_receive(q, 2, 30, NULL, NULL, &lm, msg, sizeof msg), 1);
    assert_int_equal(queue_dead_letter(q, lm.receipt, "not the seed's JSON", msg, sizeof msg), 0);
    queue_message_free(&lm);
    QueueDepth ld;
    assert_int_equal(queue_depth(q, &ld, msg, sizeof msg), 0);
    assert_int_equal(ld.visible + ld.in_flight + ld.dead, 0);
    queue_close(q);
    q = NULL;

    /* A queue deleted under a running handle: the same hint. */
    q = open_new("doomed", 0, NULL);
    const char *doomed = create_queues("doomed", 0);
    json_decref(raw("DeleteQueue", json_pack("{s:s}", "QueueUrl", doomed)));
    assert_int_equal(queue_send(q, "x", 1, NULL, 0, msg, sizeof msg), DI_EIO);
    assert_non_null(strstr(msg, "init-aws"));
    QueueMessage m;
    assert_int_equal(queue_receive(q, 0, 30, NULL, NULL, &m, msg, sizeof msg), DI_EIO);
    queue_close(q);
}

static void test_visibility(void **state) {
    (void)state;
    Queue *q = open_new("vis", 0, NULL);
    assert_int_equal(queue_send(q, "job", 3, NULL, 0, msg, sizeof msg), 0);
    QueueMessage first, again, second;
    assert_int_equal(queue_receive(q, 0, 1, NULL, NULL, &first, msg, sizeof msg), 1);
    assert_int_equal(queue_receive(q, 0, 1, NULL, NULL, &again, msg, sizeof msg), 0);
    sleep_s(1.3);
    /* The lease ran out: redelivered, with a new receipt and count. */
    assert_int_equal(queue_receive(q, 0, 30, NULL, NULL, &second, msg, sizeof msg), 1);
    assert_string_equal(second.id, first.id);
    assert_int_equal(second.receive_count, 2);
    assert_string_not_equal(second.receipt, first.receipt);
    check_depth(q, 0, 1, 0);
    assert_int_equal(queue_delete(q, second.receipt, msg, sizeof msg), 0);
    check_depth(q, 0, 0, 0);
    queue_message_free(&first);
    queue_message_free(&second);
    queue_close(q);
}

static void test_heartbeat_and_retry_reason(void **state) {
    (void)state;
    Queue *q = open_new("hb", 0, NULL);
    assert_int_equal(queue_send(q, "job", 3, NULL, 0, msg, sizeof msg), 0);
    QueueMessage m, none;
    assert_int_equal(queue_receive(q, 0, 2, NULL, NULL, &m, msg, sizeof msg), 1);
    sleep_s(1.0);
    /* Heartbeat: the lease now ends 3 s from now, not at 2 s. */
    assert_int_equal(queue_change_visibility(q, m.receipt, 3, NULL, msg, sizeof msg), 0);
    sleep_s(1.5);
    assert_int_equal(queue_receive(q, 0, 30, NULL, NULL, &none, msg, sizeof msg), 0);
    check_depth(q, 0, 1, 0);

    /* A failed attempt schedules its retry by visibility, with a reason
     * the next delivery to this handle carries. */
    assert_int_equal(queue_change_visibility(q, m.receipt, 1, "decoder crashed", msg, sizeof msg),
                     0);
    assert_int_equal(queue_receive(q, 0, 30, NULL, NULL, &none, msg, sizeof msg), 0);
    QueueMessage retry;
    assert_int_equal(queue_receive(q, 5, 30, NULL, NULL, &retry, msg, sizeof msg), 1);
    assert_string_equal(retry.id, m.id);
    /* 2 on SQS; local-aws-sqs counts each visibility change as well. */
    assert_true(retry.receive_count >= 2);
    assert_string_equal(retry.last_error, "decoder crashed");
    assert_int_equal(queue_delete(q, retry.receipt, msg, sizeof msg), 0);
    queue_message_free(&m);
    queue_message_free(&retry);
    queue_close(q);
}

typedef struct {
    int calls;
    char body[64];
    char last_error[64];
    int receive_count;
} DeadSeen;

static void on_dead(void *ctx, const QueueMessage *dead) {
    DeadSeen *seen = ctx;
    seen->calls++;
    snprintf(seen->body, sizeof seen->body, "%s", dead->body);
    snprintf(seen->last_error, sizeof seen->last_error, "%s",
             dead->last_error ? dead->last_error : "");
    seen->receive_count = dead->receive_count;
    assert_null(dead->receipt);
}

static void test_dead_letter_after_max_receives(void **state) {
    (void)state;
    /* maxReceiveCount 4 on the server: the client buries on the 4th
     * delivery, after 3 handed out, before the server would move it. */
    Queue *q = open_new("dead", 4, NULL);
    assert_int_equal(queue_send(q, "poison", 6, NULL, 0, msg, sizeof msg), 0);
    DeadSeen seen = {0};
    QueueMessage m;
    for (int i = 1; i <= 3; i++) {
        /* A zero lease: back at once, as if the worker had died. */
        assert_int_equal(queue_receive(q, 0, 0, on_dead, &seen, &m, msg, sizeof msg), 1);
        assert_int_equal(m.receive_count, i);
        queue_message_free(&m);
    }
    assert_int_equal(queue_receive(q, 0, 30, on_dead, &seen, &m, msg, sizeof msg), 0);
    assert_int_equal(seen.calls, 1);
    assert_string_equal(seen.body, "poison");
    assert_string_equal(seen.last_error, "");
    assert_int_equal(seen.receive_count, 3);
    check_depth(q, 0, 0, 1);
    /* Reported once only. */
    assert_int_equal(queue_receive(q, 1, 30, on_dead, &seen, &m, msg, sizeof msg), 0);
    assert_int_equal(seen.calls, 1);
    char body[64], reason[256];
    assert_true(dlq_take("dead", body, sizeof body, reason, sizeof reason));
    assert_string_equal(body, "poison");
    assert_non_null(strstr(reason, "received 4 times (limit 3)"));
    queue_close(q);

    /* ?max_receives=1 overrides the policy; the reason of the failed
     * attempt reaches on_dead and the DLQ copy. */
    q = open_new("dead2", 10, "?max_receives=1");
    assert_int_equal(queue_send(q, "poison2", 7, NULL, 0, msg, sizeof msg), 0);
    assert_int_equal(queue_receive(q, 0, 30, on_dead, &seen, &m, msg, sizeof msg), 1);
    assert_int_equal(queue_change_visibility(q, m.receipt, 0, "failure 1", msg, sizeof msg), 0);
    queue_message_free(&m);
    assert_int_equal(queue_send(q, "good", 4, NULL, 0, msg, sizeof msg), 0);
    /* The dead one on the way does not end the wait: "good" comes. */
    for (int i = 0; i < 2 && seen.calls < 2; i++) {
        assert_int_equal(queue_receive(q, 2, 30, on_dead, &seen, &m, msg, sizeof msg), 1);
        assert_string_equal(m.body, "good");
        assert_int_equal(queue_delete(q, m.receipt, msg, sizeof msg), 0);
        queue_message_free(&m);
        if (seen.calls < 2) assert_int_equal(queue_send(q, "good", 4, NULL, 0, msg, sizeof msg), 0);
    }
    assert_int_equal(seen.calls, 2);
    assert_string_equal(seen.body, "poison2");
    assert_string_equal(seen.last_error, "failure 1");
    assert_true(dlq_take("dead2", body, sizeof body, reason, sizeof reason));
    assert_string_equal(body, "poison2");
    assert_non_null(strstr(reason, "failure 1"));
    queue_close(q);
}

static void test_explicit_dead_letter(void **state) {
    (void)state;
    Queue *q = open_new("explicit", 6, NULL);
    assert_int_equal(queue_send(q, "not json", 8, NULL, 0, msg, sizeof msg), 0);
    QueueMessage m;
    assert_int_equal(queue_receive(q, 0, 30, NULL, NULL, &m, msg, sizeof msg), 1);
    assert_int_equal(queue_dead_letter(q, m.receipt, "body is not JSON", msg, sizeof msg), 0);
    check_depth(q, 0, 0, 1);
    /* Gone from the work queue: never handed out again. */
    QueueMessage again;
    assert_int_equal(queue_receive(q, 1, 30, NULL, NULL, &again, msg, sizeof msg), 0);
    assert_int_equal(queue_dead_letter(q, m.receipt, "again", msg, sizeof msg), QUEUE_STALE);
    char body[64], reason[256];
    assert_true(dlq_take("explicit", body, sizeof body, reason, sizeof reason));
    assert_string_equal(body, "not json");
    assert_string_equal(reason, "body is not JSON");
    queue_message_free(&m);
    queue_close(q);
}

static void test_stale_receipt(void **state) {
    (void)state;
    Queue *q = open_new("stale", 6, NULL);
    assert_int_equal(queue_send(q, "job", 3, NULL, 0, msg, sizeof msg), 0);
    QueueMessage m;
    assert_int_equal(queue_receive(q, 0, 30, NULL, NULL, &m, msg, sizeof msg), 1);
    assert_int_equal(queue_delete(q, m.receipt, msg, sizeof msg), 0);
    /* The message is gone: its receipt can neither extend nor bury it. */
    assert_int_equal(queue_change_visibility(q, m.receipt, 10, NULL, msg, sizeof msg), QUEUE_STALE);
    assert_int_equal(queue_dead_letter(q, m.receipt, "x", msg, sizeof msg), QUEUE_STALE);
    assert_int_equal(queue_change_visibility(q, "no-such-receipt", 10, NULL, msg, sizeof msg),
                     QUEUE_STALE);
    assert_int_equal(queue_change_visibility(q, m.receipt, 43201, NULL, msg, sizeof msg),
                     DI_ERANGE);
    check_depth(q, 0, 0, 0);
    queue_message_free(&m);
    queue_close(q);
}

static void test_depth(void **state) {
    (void)state;
    Queue *q = open_new("depth", 6, NULL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(queue_send(q, "job", 3, NULL, 0, msg, sizeof msg), 0);
    check_depth(q, 3, 0, 0);
    QueueMessage a, b;
    assert_int_equal(queue_receive(q, 0, 30, NULL, NULL, &a, msg, sizeof msg), 1);
    assert_int_equal(queue_receive(q, 0, 30, NULL, NULL, &b, msg, sizeof msg), 1);
    check_depth(q, 1, 2, 0);
    assert_int_equal(queue_dead_letter(q, a.receipt, "bad", msg, sizeof msg), 0);
    assert_int_equal(queue_delete(q, b.receipt, msg, sizeof msg), 0);
    check_depth(q, 1, 0, 1);
    queue_message_free(&a);
    queue_message_free(&b);
    queue_close(q);
}

typedef struct {
    Queue *q;
    double delay;
} LateSend;

static void *send_late(void *arg) {
    LateSend *l = arg;
    sleep_s(l->delay);
    queue_send(l->q, "late", 4, NULL, 0, NULL, 0);
    return NULL;
}

static void test_long_poll(void **state) {
    (void)state;
    Queue *q = open_new("poll", 6, NULL);
    QueueMessage m;
    /* Empty: waits the whole time (a fraction of a second included). */
    double t0 = di_now();
    assert_int_equal(queue_receive(q, 1.5, 30, NULL, NULL, &m, msg, sizeof msg), 0);
    double waited = di_now() - t0;
    assert_true(waited >= 1.4 && waited < 4.0);

    /* Another thread sends 0.5 s into a 10 s wait: the wait ends early. */
    LateSend late = {q, 0.5};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, send_late, &late), 0);
    t0 = di_now();
    int rc = queue_receive(q, 10, 30, NULL, NULL, &m, msg, sizeof msg);
    waited = di_now() - t0;
    pthread_join(t, NULL);
    assert_int_equal(rc, 1);
    assert_string_equal(m.body, "late");
    assert_true(waited >= 0.4 && waited < 3.0);
    assert_int_equal(queue_delete(q, m.receipt, msg, sizeof msg), 0);
    queue_message_free(&m);
    queue_close(q);
}

enum { N_MESSAGES = 40 };

typedef struct {
    Queue *q;
    int seen[N_MESSAGES];
    int failed;
} Consumer;

/* Receives until the queue stays empty. Leases are long, so a duplicate
 * can only mean two threads leased one message. */
static void *consume(void *arg) {
    Consumer *c = arg;
    for (;;) {
        QueueMessage m;
        int got = queue_receive(c->q, 1, 60, NULL, NULL, &m, NULL, 0);
        if (got < 0) c->failed = 1;
        if (got <= 0) break;
        int i;
        if (sscanf(m.body, "m%d", &i) == 1 && i >= 0 && i < N_MESSAGES) c->seen[i]++;
        if (queue_delete(c->q, m.receipt, NULL, 0) != 0) c->failed = 1;
        queue_message_free(&m);
    }
    return NULL;
}

static void test_threads_share_a_handle(void **state) {
    (void)state;
    Queue *q = open_new("fleet", 6, NULL);
    char body[32];
    for (int i = 0; i < N_MESSAGES; i++) {
        int n = snprintf(body, sizeof body, "m%d", i);
        assert_int_equal(queue_send(q, body, (size_t)n, NULL, 0, msg, sizeof msg), 0);
    }
    Consumer c[2] = {{.q = q}, {.q = q}};
    pthread_t t[2];
    for (int k = 0; k < 2; k++)
        assert_int_equal(pthread_create(&t[k], NULL, consume, &c[k]), 0);
    for (int k = 0; k < 2; k++)
        pthread_join(t[k], NULL);
    for (int i = 0; i < N_MESSAGES; i++)
        assert_int_equal(c[0].seen[i] + c[1].seen[i], 1);
    assert_false(c[0].failed || c[1].failed);
    check_depth(q, 0, 0, 0);
    queue_close(q);
}

static int setup(void **state) {
    (void)state;
    if (tu_emulators_start("sqs", &emu) != 0) return 0; /* tests skip */
    if (aws_open(&aws, msg, sizeof msg) != 0) {
        fprintf(stderr, "aws_open: %s\n", msg);
        tu_emulators_stop(&emu);
        return 0;
    }
    have_emu = 1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    aws_close(aws);
    tu_emulators_stop(&emu);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_receive_delete),
        cmocka_unit_test(test_url_options),
        cmocka_unit_test(test_missing_queue),
        cmocka_unit_test(test_visibility),
        cmocka_unit_test(test_heartbeat_and_retry_reason),
        cmocka_unit_test(test_dead_letter_after_max_receives),
        cmocka_unit_test(test_explicit_dead_letter),
        cmocka_unit_test(test_stale_receipt),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_long_poll),
        cmocka_unit_test(test_threads_share_a_handle),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
