/* Tests for the work queue (src/queue) through the sqlite backend: SQS's
 * leases, receipts, heartbeats, retry delays, dead letters and long polls,
 * and several consumer processes sharing one queue. Visibilities are
 * fractions of a second to keep the suite fast. */
#include "testutil.h"

#include "core/core.h"
#include "queue/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char msg[512];

static const char *queue_url(const char *db, const char *params) {
    static char url[4096];
    snprintf(url, sizeof url, "sqlite://%s?%s", tu_tmp(db), params);
    return url;
}

static Queue *open_queue(const char *db, const char *params) {
    Queue *q = NULL;
    int rc = queue_open(queue_url(db, params), &q, msg, sizeof msg);
    if (rc != 0) fprintf(stderr, "queue_open: %s\n", msg);
    assert_int_equal(rc, 0);
    return q;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static void check_depth(Queue *q, int64_t visible, int64_t in_flight, int64_t dead) {
    QueueDepth d;
    assert_int_equal(queue_depth(q, &d, msg, sizeof msg), 0);
    assert_int_equal(d.visible, visible);
    assert_int_equal(d.in_flight, in_flight);
    assert_int_equal(d.dead, dead);
}

static const char seed_body[] = "{\"job_id\": \"3f1c\", \"file_path\": \"uploads/3f1c/my "
                                "memo.m4a\", \"file_name\": \"my memo.m4a\"}";

static void test_send_receive_delete(void **state) {
    (void)state;
    Queue *q = open_queue("basic.db", "queue=audio-processing-queue");
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
    assert_int_equal(queue_delete(q, m.receipt, msg, sizeof msg), QUEUE_STALE);
    check_depth(q, 0, 0, 0);
    queue_message_free(&m);
    queue_message_free(&m);

    /* Another queue in the same file is separate. */
    Queue *q2 = open_queue("basic.db", "queue=other");
    assert_int_equal(queue_send(q2, "x", 1, NULL, 0, msg, sizeof msg), 0);
    assert_int_equal(queue_receive(q, 0, 30, NULL, NULL, &m, msg, sizeof msg), 0);
    check_depth(q2, 1, 0, 0);
    queue_close(q2);

    /* Bad arguments. */
    assert_int_equal(queue_send(q, "", 0, NULL, 0, msg, sizeof msg), DI_ERANGE);
    assert_int_equal(queue_receive(q, 21, 30, NULL, NULL, &m, msg, sizeof msg), DI_ERANGE);
    assert_int_equal(queue_receive(q, 0, -1, NULL, NULL, &m, msg, sizeof msg), DI_ERANGE);
    assert_int_equal(queue_delete(q, "", msg, sizeof msg), DI_EINVAL);
    assert_int_equal(queue_delete(q, "no-such-receipt", msg, sizeof msg), QUEUE_STALE);
    Queue *bad = NULL;
    assert_int_equal(queue_open(queue_url("basic.db", "name=x"), &bad, msg, sizeof msg), DI_EINVAL);
    assert_int_equal(queue_open(queue_url("basic.db", "queue=a/b"), &bad, msg, sizeof msg),
                     DI_EINVAL);
    assert_int_equal(
        queue_open(queue_url("basic.db", "queue=a&max_receives=0"), &bad, msg, sizeof msg),
        DI_EINVAL);
    assert_int_equal(queue_open("amqp://x", &bad, msg, sizeof msg), DI_EINVAL);
    assert_null(bad);
    queue_close(q);
    queue_close(NULL);
}

static void test_visibility_and_receipts(void **state) {
    (void)state;
    Queue *q = open_queue("vis.db", "queue=q");
    assert_int_equal(queue_send(q, "job", 3, NULL, 0, msg, sizeof msg), 0);
    QueueMessage first, again, second;
    assert_int_equal(queue_receive(q, 0, 0.3, NULL, NULL, &first, msg, sizeof msg), 1);
    assert_int_equal(queue_receive(q, 0, 0.3, NULL, NULL, &again, msg, sizeof msg), 0);
    sleep_s(0.4);
    /* The lease ran out: redelivered, with a new receipt and count. */
    assert_int_equal(queue_receive(q, 0, 30, NULL, NULL, &second, msg, sizeof msg), 1);
    assert_string_equal(second.id, first.id);
    assert_int_equal(second.receive_count, 2);
    assert_string_not_equal(second.receipt, first.receipt);
    /* The first worker's receipt no longer works. */
    assert_int_equal(queue_delete(q, first.receipt, msg, sizeof msg), QUEUE_STALE);
    assert_int_equal(queue_change_visibility(q, first.receipt, 10, NULL, msg, sizeof msg),
                     QUEUE_STALE);
    assert_int_equal(queue_dead_letter(q, first.receipt, "x", msg, sizeof msg), QUEUE_STALE);
    check_depth(q, 0, 1, 0);
    assert_int_equal(queue_delete(q, second.receipt, msg, sizeof msg), 0);
    check_depth(q, 0, 0, 0);
    queue_message_free(&first);
    queue_message_free(&second);
    queue_close(q);
}

static void test_heartbeat_and_retry_delay(void **state) {
    (void)state;
    Queue *q = open_queue("hb.db", "queue=q");
    assert_int_equal(queue_send(q, "job", 3, NULL, 0, msg, sizeof msg), 0);
    QueueMessage m, none;
    assert_int_equal(queue_receive(q, 0, 0.4, NULL, NULL, &m, msg, sizeof msg), 1);
    sleep_s(0.2);
    /* Heartbeat: the lease now ends a second from now, not at 0.4 s. */
    assert_int_equal(queue_change_visibility(q, m.receipt, 1.0, NULL, msg, sizeof msg), 0);
    sleep_s(0.4);
    assert_int_equal(queue_receive(q, 0, 30, NULL, NULL, &none, msg, sizeof msg), 0);
    check_depth(q, 0, 1, 0);

    /* A failed attempt schedules its retry by visibility, with a reason. */
    assert_int_equal(queue_change_visibility(q, m.receipt, 0.3, "decoder crashed", msg, sizeof msg),
                     0);
    assert_int_equal(queue_receive(q, 0, 30, NULL, NULL, &none, msg, sizeof msg), 0);
    sleep_s(0.35);
    QueueMessage retry;
    assert_int_equal(queue_receive(q, 0, 30, NULL, NULL, &retry, msg, sizeof msg), 1);
    assert_string_equal(retry.id, m.id);
    assert_int_equal(retry.receive_count, 2);
    assert_string_equal(retry.last_error, "decoder crashed");
    assert_int_equal(queue_change_visibility(q, retry.receipt, 43201, NULL, msg, sizeof msg),
                     DI_ERANGE);
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

static void test_dead_letter(void **state) {
    (void)state;
    Queue *q = open_queue("dead.db", "queue=q&max_receives=3");
    assert_int_equal(queue_send(q, "poison", 6, NULL, 0, msg, sizeof msg), 0);
    DeadSeen seen = {0};
    QueueMessage m;
    char reason[32];
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(queue_receive(q, 0, 30, on_dead, &seen, &m, msg, sizeof msg), 1);
        assert_int_equal(m.receive_count, i);
        snprintf(reason, sizeof reason, "failure %d", i);
        assert_int_equal(queue_change_visibility(q, m.receipt, 0, reason, msg, sizeof msg), 0);
        queue_message_free(&m);
    }
    /* The fourth receive finds it over the limit: dead, and reported. */
    assert_int_equal(queue_receive(q, 0, 30, on_dead, &seen, &m, msg, sizeof msg), 0);
    assert_int_equal(seen.calls, 1);
    assert_string_equal(seen.body, "poison");
    assert_string_equal(seen.last_error, "failure 3");
    assert_int_equal(seen.receive_count, 3);
    check_depth(q, 0, 0, 1);
    /* Reported once only. */
    assert_int_equal(queue_receive(q, 0, 30, on_dead, &seen, &m, msg, sizeof msg), 0);
    assert_int_equal(seen.calls, 1);

    /* A dead message on the way does not hide a good one behind it: one
     * receive buries the first and returns the second. */
    assert_int_equal(queue_send(q, "poison2", 7, NULL, 0, msg, sizeof msg), 0);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(queue_receive(q, 0, 0, on_dead, &seen, &m, msg, sizeof msg), 1);
        assert_string_equal(m.body, "poison2");
        queue_message_free(&m);
    }
    assert_int_equal(queue_send(q, "good", 4, NULL, 0, msg, sizeof msg), 0);
    assert_int_equal(queue_send(q, "not json", 8, NULL, 0, msg, sizeof msg), 0);
    assert_int_equal(queue_receive(q, 0, 30, on_dead, &seen, &m, msg, sizeof msg), 1);
    assert_string_equal(m.body, "good");
    assert_int_equal(seen.calls, 2);
    assert_string_equal(seen.body, "poison2");
    assert_string_equal(seen.last_error, "");
    assert_int_equal(queue_delete(q, m.receipt, msg, sizeof msg), 0);
    queue_message_free(&m);

    /* A body that can never succeed goes straight to the dead letters. */
    assert_int_equal(queue_receive(q, 0, 30, on_dead, &seen, &m, msg, sizeof msg), 1);
    assert_string_equal(m.body, "not json");
    assert_int_equal(queue_dead_letter(q, m.receipt, "body is not JSON", msg, sizeof msg), 0);
    assert_int_equal(queue_delete(q, m.receipt, msg, sizeof msg), QUEUE_STALE);
    check_depth(q, 0, 0, 3);
    queue_message_free(&m);
    queue_close(q);
}

static void test_long_poll(void **state) {
    (void)state;
    Queue *q = open_queue("poll.db", "queue=q");
    QueueMessage m;
    /* Empty: waits the whole time, then says "no message". */
    double t0 = di_now();
    assert_int_equal(queue_receive(q, 0.5, 30, NULL, NULL, &m, msg, sizeof msg), 0);
    double waited = di_now() - t0;
    assert_true(waited >= 0.49 && waited < 2.0);

    /* Another process sends 0.3 s into a 10 s wait: the wait ends early. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sleep_s(0.3);
        Queue *mine;
        if (queue_open(queue_url("poll.db", "queue=q"), &mine, NULL, 0) < 0) _exit(1);
        int rc = queue_send(mine, "late", 4, NULL, 0, NULL, 0);
        queue_close(mine);
        _exit(rc == 0 ? 0 : 2);
    }
    t0 = di_now();
    int rc = queue_receive(q, 10, 30, NULL, NULL, &m, msg, sizeof msg);
    waited = di_now() - t0;
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(rc, 1);
    assert_string_equal(m.body, "late");
    assert_true(waited >= 0.25 && waited < 3.0);
    queue_message_free(&m);
    queue_close(q);
}

enum { N_MESSAGES = 200 };

/* Receives until the queue stays empty, appending each body to its own
 * file before deleting the message. Leases are long, so a duplicate can
 * only mean two processes leased one message. */
static int consume(int k) {
    Queue *q;
    if (queue_open(queue_url("fleet.db", "queue=q"), &q, NULL, 0) < 0) return 10;
    char name[32];
    snprintf(name, sizeof name, "consumer%d.txt", k);
    FILE *f = fopen(tu_tmp(name), "w");
    if (!f) return 11;
    int rc = 0;
    for (;;) {
        QueueMessage m;
        int got = queue_receive(q, 0.3, 60, NULL, NULL, &m, NULL, 0);
        if (got < 0) rc = 12;
        if (got <= 0) break;
        fprintf(f, "%s\n", m.body);
        fflush(f);
        if (queue_delete(q, m.receipt, NULL, 0) != 0) rc = 13;
        queue_message_free(&m);
    }
    fclose(f);
    queue_close(q);
    return rc;
}

static void test_two_consumers(void **state) {
    (void)state;
    Queue *q = open_queue("fleet.db", "queue=q");
    char body[32];
    for (int i = 0; i < N_MESSAGES; i++) {
        int n = snprintf(body, sizeof body, "m%d", i);
        assert_int_equal(queue_send(q, body, (size_t)n, NULL, 0, msg, sizeof msg), 0);
    }
    pid_t pids[2];
    for (int k = 0; k < 2; k++) {
        pids[k] = fork();
        assert_true(pids[k] >= 0);
        if (pids[k] == 0) _exit(consume(k));
    }
    for (int k = 0; k < 2; k++) {
        int status;
        waitpid(pids[k], &status, 0);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    int seen[N_MESSAGES] = {0}, per[2] = {0};
    for (int k = 0; k < 2; k++) {
        char name[32];
        snprintf(name, sizeof name, "consumer%d.txt", k);
        FILE *f = fopen(tu_tmp(name), "r");
        assert_non_null(f);
        int i;
        while (fscanf(f, "m%d\n", &i) == 1) {
            assert_true(i >= 0 && i < N_MESSAGES);
            seen[i]++;
            per[k]++;
        }
        fclose(f);
    }
    for (int i = 0; i < N_MESSAGES; i++)
        assert_int_equal(seen[i], 1);
    assert_int_equal(per[0] + per[1], N_MESSAGES);
    check_depth(q, 0, 0, 0);
    queue_close(q);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_receive_delete),
        cmocka_unit_test(test_visibility_and_receipts),
        cmocka_unit_test(test_heartbeat_and_retry_delay),
        cmocka_unit_test(test_dead_letter),
        cmocka_unit_test(test_long_poll),
        cmocka_unit_test(test_two_consumers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
