/* queue/sqs.c: the queue as an Amazon SQS standard queue (or anything that
 * speaks SQS's JSON protocol: LocalStack, ElasticMQ, local-aws-sqs).
 *
 * URL: the queue URL itself, as PROCESSING_QUEUE_URL holds it,
 *   http(s)://HOST/ACCOUNT/NAME[?max_receives=N][&dlq=DLQ_URL]
 * Requests go to the SQS endpoint (SQS_ENDPOINT and the other overrides
 * aws.h reads), else to the queue URL's own scheme://host; the URL itself
 * only names the queue.
 *
 * How queue.h's promises map onto SQS:
 * - Leases are SQS's visibility timeouts, receipts its receipt handles,
 *   heartbeats and retry delays ChangeMessageVisibility. SQS wants whole
 *   seconds: waits are split into whole-second long polls plus a short
 *   tail, leases and delays are rounded up.
 * - Dead letters are another SQS queue: ?dlq=URL, else the target of the
 *   queue's RedrivePolicy, else NAME-dlq (what `diarist init-aws` makes);
 *   with none (the seed's own queue) dead letters are logged and dropped.
 *   Dead-lettering is done here, on the client: a message received more
 *   than max_receives times is copied to the DLQ, deleted and reported to
 *   on_dead, because a server-side redrive moves messages silently and the
 *   job would never learn it failed. max_receives is ?max_receives=N, else
 *   one below the RedrivePolicy's maxReceiveCount (so the client sees the
 *   over-the-limit delivery before the server would move it; the server's
 *   redrive stays as a backstop), else QUEUE_DEFAULT_MAX_RECEIVES.
 * - receive_count is SQS's ApproximateReceiveCount. local-aws-sqs also
 *   counts each ChangeMessageVisibility as a receive (real SQS does not),
 *   so there heartbeats and retry delays use up receives faster, and its
 *   own redrive (at lease expiry, count >= maxReceiveCount) can move a
 *   message before this client sees it. Nothing here compensates: on real
 *   SQS the count is right, and on the emulator a job only fails sooner.
 * - SQS keeps no reason per message and cannot return a body by receipt.
 *   This handle remembers, for the messages it received, the body (for
 *   dead_letter) and the reason given to change_visibility (returned as
 *   last_error if the message comes back to this handle, and passed to
 *   on_dead). Another process's reasons are not known; the job record
 *   keeps the real history. The DLQ copy carries the reason as the message
 *   attribute "diarist-reason".
 * - Stale receipts: SQS answers ReceiptHandleIsInvalid or
 *   MessageNotInflight only for a receipt whose message is gone or no
 *   longer in flight. An older receipt of a message that was received
 *   again may still work on SQS (DeleteMessage especially), and deleting
 *   twice succeeds, so QUEUE_STALE is reported only where SQS says so.
 * - queue_depth reads ApproximateNumberOfMessages (visible) and
 *   ...NotVisible + ...Delayed (in flight) of the queue, and the DLQ's
 *   ApproximateNumberOfMessages (dead). local-aws-sqs counts in-flight
 *   messages as visible too.
 *
 * Thread safety: the Aws handle is shared by threads; the notes are
 * guarded by a mutex that is never held across a request. */
#include "queue/queue.h"

#include "aws/aws.h"
#include "core/core.h"

#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Messages whose body and reason a handle remembers. A worker process has
 * a few in flight at a time; the oldest note goes when the table is full. */
#define NOTES 1024
/* The lease a dead_letter takes while it copies and deletes the message. */
#define DEAD_LEASE_S 60
/* Longest reason kept in the DLQ copy's attribute. */
#define REASON_MAX 1024

typedef struct {
    char *id, *receipt, *body, *reason;
    size_t body_len;
    uint64_t used; /* 0: free; else when last touched, for eviction */
} Note;

typedef struct {
    Aws *aws;
    char endpoint[1024]; /* where requests are posted, ending in '/' */
    char url[1024];      /* the queue URL, without our parameters */
    char dlq[1024];      /* the dead-letter queue's URL */
    int max_receives;
    pthread_mutex_t lock;
    Note *notes; /* NOTES of them */
    uint64_t clock;
} QueueSqs;

/* ---- URLs ---------------------------------------------------------------- */

typedef struct {
    char base[1024];   /* scheme://host[:port] */
    char url[1024];    /* base + /ACCOUNT/NAME */
    char name[81];     /* NAME */
    const char *query; /* after '?', or NULL; points into the parsed string */
} QueueAddr;

static int is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* Splits "http(s)://HOST/ACCOUNT/NAME[?QUERY]". NAME is SQS's: 1..80 of
 * [A-Za-z0-9_-], ".fifo" allowed here so open can say why it is refused.
 * 0, or -1 when the URL is not an SQS queue URL. */
static int parse_addr(const char *url, QueueAddr *a) {
    memset(a, 0, sizeof *a);
    const char *p;
    if (strncmp(url, "http://", 7) == 0)
        p = url + 7;
    else if (strncmp(url, "https://", 8) == 0)
        p = url + 8;
    else
        return -1;
    size_t host = strcspn(p, "/?#@");
    if (host == 0 || p[host] != '/') return -1;
    const char *acct = p + host + 1;
    size_t na = strspn(acct, "0123456789");
    if (na == 0 || na > 32 || acct[na] != '/') return -1;
    const char *name = acct + na + 1;
    size_t nn = 0;
    while (is_name_char(name[nn]))
        nn++;
    size_t full = nn;
    if (strncmp(name + nn, ".fifo", 5) == 0) full += 5;
    if (nn == 0 || full > 80 || (name[full] != 0 && name[full] != '?')) return -1;
    size_t base_len = (size_t)(p + host - url), url_len = (size_t)(name + full - url);
    if (url_len >= sizeof a->url) return -1;
    memcpy(a->base, url, base_len);
    memcpy(a->url, url, url_len);
    memcpy(a->name, name, full);
    a->query = name[full] == '?' ? name + full + 1 : NULL;
    return 0;
}

static int sqs_accepts(const char *url) {
    QueueAddr a;
    return parse_addr(url, &a) == 0;
}

/* Reads max_receives=N and dlq=URL (given raw, not percent-encoded). */
static int parse_query(const char *query, int *max_receives, char *dlq, size_t dlq_cap, char *msg,
                       size_t cap) {
    while (query && *query) {
        size_t n = strcspn(query, "&");
        if (n > 13 && strncmp(query, "max_receives=", 13) == 0) {
            char *end;
            long v = strtol(query + 13, &end, 10);
            if (end != query + n || v < 1 || v > 1000)
                return di_fail(msg, cap, DI_EINVAL, "queue: max_receives must be 1..1000");
            *max_receives = (int)v;
        } else if (n > 4 && strncmp(query, "dlq=", 4) == 0) {
            QueueAddr a;
            char tmp[1024];
            if (n - 4 >= sizeof tmp || n - 4 >= dlq_cap)
                return di_fail(msg, cap, DI_EINVAL, "queue: dlq URL too long");
            memcpy(tmp, query + 4, n - 4);
            tmp[n - 4] = 0;
            if (parse_addr(tmp, &a) < 0 || a.query)
                return di_fail(msg, cap, DI_EINVAL, "queue: dlq= is not an SQS queue URL");
            snprintf(dlq, dlq_cap, "%s", a.url);
        } else {
            return di_fail(msg, cap, DI_EINVAL, "queue: unknown URL parameter '%.*s'", (int)n,
                           query);
        }
        query += n;
        if (*query == '&') query++;
    }
    return 0;
}

/* ---- Requests ------------------------------------------------------------ */

/* The AWS error code of a failed answer: what aws.c found, else the JSON
 * body's __type after its '#'. */
static void error_code(const AwsResponse *resp, json_t *doc, char *code, size_t cap,
                       const char **text) {
    snprintf(code, cap, "%s", resp->error_code);
    *text = resp->error_message;
    if (!doc) return;
    const char *type = json_string_value(json_object_get(doc, "__type"));
    if (!code[0] && type)
        snprintf(code, cap, "%s", strchr(type, '#') ? strchr(type, '#') + 1 : type);
    const char *m = json_string_value(json_object_get(doc, "message"));
    if (!m) m = json_string_value(json_object_get(doc, "Message"));
    if (!(*text)[0] && m) *text = m;
}

/* Turns a non-2xx answer into QUEUE_STALE, or DI_EIO with a message. A
 * missing queue names the queue and the command that creates it. */
static int answer_error(const char *action, const char *queue_url, const AwsResponse *resp,
                        char *msg, size_t cap) {
    json_t *doc = resp->body ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
    char code[128];
    const char *text;
    error_code(resp, doc, code, sizeof code, &text);
    int rc;
    if (strstr(code, "NonExistentQueue") || strstr(code, "QueueDoesNotExist")) {
        rc = di_fail(msg, cap, DI_EIO,
                     "sqs: queue %s does not exist (%s); create it with `diarist init-aws`",
                     queue_url ? queue_url : "?", action);
    } else if (strstr(code, "ReceiptHandleIsInvalid") || strstr(code, "MessageNotInflight") ||
               (strstr(code, "InvalidParameterValue") && strcasestr(text, "receipt"))) {
        di_fail(msg, cap, DI_OK, "sqs %s: the receipt is stale (%s)", action, code);
        rc = QUEUE_STALE;
    } else {
        rc = di_fail(msg, cap, DI_EIO, "sqs %s: %s: %.300s (HTTP %ld)", action,
                     code[0] ? code : "error", text, resp->status);
    }
    json_decref(doc);
    return rc;
}

/* One SQS action in the JSON protocol. Takes req (which may be NULL after a
 * failed json_pack). On success *answer, when asked for, gets the parsed
 * answer ({} for an empty one). wait_s > 0 marks a long poll, whose
 * request must outlive the poll. */
static int call(QueueSqs *s, const char *action, json_t *req, int wait_s, json_t **answer,
                char *msg, size_t cap) {
    if (answer) *answer = NULL;
    char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    char queue_url[1024];
    snprintf(queue_url, sizeof queue_url, "%s",
             req && json_object_get(req, "QueueUrl")
                 ? json_string_value(json_object_get(req, "QueueUrl"))
                 : "");
    json_decref(req);
    if (!text) return di_fail(msg, cap, DI_ENOMEM, "sqs %s: out of memory", action);
    char target[96];
    snprintf(target, sizeof target, "X-Amz-Target: AmazonSQS.%s", action);
    const char *headers[] = {"Content-Type: application/x-amz-json-1.0", target, NULL};
    AwsRequest r = {
        .method = "POST",
        .service = "sqs",
        .url = s->endpoint,
        .headers = headers,
        .body = text,
        .body_len = strlen(text),
        .timeout_ms = wait_s > 0 ? (wait_s + 20) * 1000L : 0,
    };
    AwsResponse resp = {0};
    char why[512] = "";
    int rc = aws_request(s->aws, &r, &resp, why, sizeof why);
    free(text);
    if (rc < 0) {
        di_fail(msg, cap, rc, "sqs %s: %s", action, why);
    } else if (resp.status / 100 != 2) {
        rc = answer_error(action, queue_url[0] ? queue_url : NULL, &resp, msg, cap);
    } else if (answer) {
        *answer = resp.body && resp.body_len ? json_loadb(resp.body, resp.body_len, 0, NULL)
                                             : json_object();
        if (!json_is_object(*answer)) {
            json_decref(*answer);
            *answer = NULL;
            rc = di_fail(msg, cap, DI_EFORMAT, "sqs %s: the answer is not a JSON object", action);
        }
    }
    aws_response_free(&resp);
    return rc;
}

/* SQS wants whole seconds; a lease or delay is never shorter than asked. */
static int whole_seconds(double s) {
    double c = ceil(s - 1e-6);
    return c < 0 ? 0 : c > QUEUE_MAX_VISIBILITY_S ? QUEUE_MAX_VISIBILITY_S : (int)c;
}

static void md5_hex(const void *data, size_t n, char hex[33]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    hex[0] = 0;
    if (EVP_Digest(data, n, md, &len, EVP_md5(), NULL) != 1 || len != 16) return;
    for (unsigned i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* SQS checks the body's MD5 end to end as its SDKs do; an empty local hash
 * (no MD5 in this libcrypto) or an absent remote one skips the check. */
static int md5_matches(const void *body, size_t len, const char *theirs) {
    char mine[33];
    md5_hex(body, len, mine);
    return !mine[0] || !theirs || strcasecmp(mine, theirs) == 0;
}

/* SQS takes Unicode text only: no control characters but tab, LF and CR
 * (UTF-8 validity is checked by jansson). */
static int body_is_text(const unsigned char *p, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r') return 0;
    return 1;
}

/* SendMessage of body to queue_url, with the reason as an attribute when
 * given (dead letters only). */
static int send_to(QueueSqs *s, const char *queue_url, const void *body, size_t len,
                   const char *reason, char *id_out, size_t id_cap, char *msg, size_t cap) {
    json_t *text = json_stringn(body, len);
    if (!text || !body_is_text(body, len)) {
        json_decref(text);
        return di_fail(msg, cap, DI_EINVAL, "sqs: a message body must be UTF-8 text");
    }
    json_t *req = json_pack("{s:s, s:o}", "QueueUrl", queue_url, "MessageBody", text);
    if (req && reason && reason[0]) {
        /* Cut at a character boundary, so the attribute stays UTF-8. */
        char cut[REASON_MAX + 1];
        size_t n = strlen(reason) < REASON_MAX ? strlen(reason) : REASON_MAX;
        while (n > 0 && n < strlen(reason) && ((unsigned char)reason[n] & 0xC0) == 0x80)
            n--;
        memcpy(cut, reason, n);
        cut[n] = 0;
        json_t *attr =
            json_pack("{s:{s:s, s:s}}", "diarist-reason", "DataType", "String", "StringValue", cut);
        if (!attr || json_object_set_new(req, "MessageAttributes", attr) < 0) {
            json_decref(req);
            req = NULL;
        }
    }
    json_t *answer;
    int rc = call(s, "SendMessage", req, 0, &answer, msg, cap);
    if (rc != 0) return rc < 0 ? rc : di_fail(msg, cap, DI_EIO, "sqs SendMessage: unexpected");
    const char *id = json_string_value(json_object_get(answer, "MessageId"));
    const char *md5 = json_string_value(json_object_get(answer, "MD5OfMessageBody"));
    if (!id)
        rc = di_fail(msg, cap, DI_EFORMAT, "sqs SendMessage: no MessageId in the answer");
    else if (!md5_matches(body, len, md5))
        rc = di_fail(msg, cap, DI_EIO, "sqs SendMessage: the body's MD5 does not match");
    else if (id_out)
        snprintf(id_out, id_cap, "%s", id);
    json_decref(answer);
    return rc;
}

static int delete_message(QueueSqs *s, const char *receipt, char *msg, size_t cap) {
    json_t *req = json_pack("{s:s, s:s}", "QueueUrl", s->url, "ReceiptHandle", receipt);
    return call(s, "DeleteMessage", req, 0, NULL, msg, cap);
}

static int set_visibility(QueueSqs *s, const char *receipt, double seconds, char *msg, size_t cap) {
    json_t *req = json_pack("{s:s, s:s, s:i}", "QueueUrl", s->url, "ReceiptHandle", receipt,
                            "VisibilityTimeout", whole_seconds(seconds));
    return call(s, "ChangeMessageVisibility", req, 0, NULL, msg, cap);
}

/* ---- Notes: what SQS cannot keep for us ---------------------------------- */

static void note_clear(Note *n) {
    free(n->id);
    free(n->receipt);
    free(n->body);
    free(n->reason);
    memset(n, 0, sizeof *n);
}

/* The note holding this receipt, or NULL. The caller holds the lock. */
static Note *note_by_receipt(QueueSqs *s, const char *receipt) {
    for (int i = 0; i < NOTES; i++)
        if (s->notes[i].used && strcmp(s->notes[i].receipt, receipt) == 0) return &s->notes[i];
    return NULL;
}

/* Records a delivery: the message's note (kept if it came back to this
 * handle, else a free or the oldest slot) gets the new receipt and body.
 * Fills m->last_error from the reason remembered. 0 or DI_ENOMEM. */
static int note_delivery(QueueSqs *s, QueueMessage *m) {
    pthread_mutex_lock(&s->lock);
    Note *n = NULL, *oldest = &s->notes[0];
    for (int i = 0; i < NOTES && !n; i++) {
        Note *x = &s->notes[i];
        if (x->used && strcmp(x->id, m->id) == 0) n = x;
        if (x->used < oldest->used) oldest = x;
    }
    if (!n) {
        n = oldest;
        note_clear(n);
        n->id = strdup(m->id);
    }
    free(n->receipt);
    free(n->body);
    n->receipt = strdup(m->receipt);
    n->body = malloc(m->body_len + 1);
    if (n->body) memcpy(n->body, m->body, m->body_len + 1);
    n->body_len = m->body_len;
    n->used = ++s->clock;
    if (n->reason) m->last_error = strdup(n->reason);
    int ok = n->id && n->receipt && n->body && (!n->reason || m->last_error);
    if (!n->id || !n->receipt || !n->body) note_clear(n);
    pthread_mutex_unlock(&s->lock);
    return ok ? 0 : DI_ENOMEM;
}

static void note_reason(QueueSqs *s, const char *receipt, const char *reason) {
    pthread_mutex_lock(&s->lock);
    Note *n = note_by_receipt(s, receipt);
    char *copy = n ? strdup(reason) : NULL;
    if (copy) {
        free(n->reason);
        n->reason = copy;
        n->used = ++s->clock;
    }
    pthread_mutex_unlock(&s->lock);
    if (!n) di_log("debug", "sqs: a reason for a message this handle did not receive is dropped");
}

static void note_drop(QueueSqs *s, const char *receipt) {
    pthread_mutex_lock(&s->lock);
    Note *n = note_by_receipt(s, receipt);
    if (n) note_clear(n);
    pthread_mutex_unlock(&s->lock);
}

/* Copies the body and reason of the note with this receipt. 1 found, 0
 * not, DI_ENOMEM. */
static int note_copy(QueueSqs *s, const char *receipt, char **body, size_t *len, char **reason) {
    *body = *reason = NULL;
    pthread_mutex_lock(&s->lock);
    Note *n = note_by_receipt(s, receipt);
    int rc = 0;
    if (n) {
        *body = malloc(n->body_len + 1);
        if (*body) memcpy(*body, n->body, n->body_len + 1);
        *len = n->body_len;
        *reason = n->reason ? strdup(n->reason) : NULL;
        rc = *body && (!n->reason || *reason) ? 1 : DI_ENOMEM;
    }
    pthread_mutex_unlock(&s->lock);
    if (rc < 0) {
        free(*body);
        free(*reason);
        *body = *reason = NULL;
    }
    return rc;
}

/* ---- Opening --------------------------------------------------------------- */

static void sqs_close(void *state) {
    QueueSqs *s = state;
    if (!s) return;
    for (int i = 0; s->notes && i < NOTES; i++)
        note_clear(&s->notes[i]);
    free(s->notes);
    aws_close(s->aws);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* The queue URL of an ARN "arn:PARTITION:sqs:REGION:ACCOUNT:NAME". */
static int url_of_arn(QueueSqs *s, const char *arn, char *out, size_t out_cap, char *msg,
                      size_t cap) {
    const char *p = arn;
    for (int i = 0; i < 4 && p; i++) {
        p = strchr(p, ':');
        if (p) p++;
    }
    const char *name = p ? strchr(p, ':') : NULL;
    if (strncmp(arn, "arn:", 4) != 0 || !name || name == p || !name[1])
        return di_fail(msg, cap, DI_EFORMAT, "sqs: bad dead-letter ARN '%.200s'", arn);
    char account[64];
    snprintf(account, sizeof account, "%.*s", (int)(name - p), p);
    json_t *answer;
    int rc = call(s, "GetQueueUrl",
                  json_pack("{s:s, s:s}", "QueueName", name + 1, "QueueOwnerAWSAccountId", account),
                  0, &answer, msg, cap);
    if (rc < 0 && msg && strstr(msg, "does not exist"))
        di_fail(msg, cap, rc, "sqs: dead-letter queue %s does not exist; run `diarist init-aws`",
                name + 1);
    if (rc != 0) return rc < 0 ? rc : DI_EIO;
    const char *url = json_string_value(json_object_get(answer, "QueueUrl"));
    if (url) snprintf(out, out_cap, "%s", url);
    json_decref(answer);
    return url ? 0 : di_fail(msg, cap, DI_EFORMAT, "sqs GetQueueUrl: no QueueUrl in the answer");
}

/* maxReceiveCount of a RedrivePolicy (a JSON text), a number or a string
 * in it; 0 when absent. Its deadLetterTargetArn goes to arn. */
static int read_redrive(const char *policy, char *arn, size_t arn_cap) {
    json_t *doc = policy ? json_loads(policy, 0, NULL) : NULL;
    json_t *max = json_object_get(doc, "maxReceiveCount");
    const char *target = json_string_value(json_object_get(doc, "deadLetterTargetArn"));
    int n = json_is_integer(max)  ? (int)json_integer_value(max)
            : json_is_string(max) ? atoi(json_string_value(max))
                                  : 0;
    snprintf(arn, arn_cap, "%s", target ? target : "");
    json_decref(doc);
    return n;
}

/* Checks the queue exists and finds its dead-letter queue and limit. */
static int discover(QueueSqs *s, const QueueAddr *a, int max_from_url, char *msg, size_t cap) {
    json_t *answer;
    json_t *req = json_pack("{s:s, s:[s, s]}", "QueueUrl", s->url, "AttributeNames", "QueueArn",
                            "RedrivePolicy");
    int rc = call(s, "GetQueueAttributes", req, 0, &answer, msg, cap);
    if (rc != 0) return rc < 0 ? rc : DI_EIO;
    const char *policy =
        json_string_value(json_object_get(json_object_get(answer, "Attributes"), "RedrivePolicy"));
    char arn[512];
    int server_max = read_redrive(policy, arn, sizeof arn);
    json_decref(answer);

    if (!s->dlq[0] && arn[0]) rc = url_of_arn(s, arn, s->dlq, sizeof s->dlq, msg, cap);
    if (!s->dlq[0] && rc == 0) {
        /* No policy: the DLQ by the name `diarist init-aws` gives it. */
        char name[96];
        snprintf(name, sizeof name, "%s-dlq", a->name);
        rc = call(s, "GetQueueUrl", json_pack("{s:s}", "QueueName", name), 0, &answer, msg, cap);
        const char *url = rc == 0 ? json_string_value(json_object_get(answer, "QueueUrl")) : NULL;
        if (url) snprintf(s->dlq, sizeof s->dlq, "%s", url);
        if (rc == 0) json_decref(answer);
        if (!url) {
            /* The seed's own init script makes the queue without one. Work
             * on: a dead letter's reason is in its job's error, and its body
             * in this process's log. */
            di_log("warn",
                   "sqs: queue %s has no dead-letter queue (no RedrivePolicy, no ?dlq=, no %s): "
                   "dead letters will be logged and dropped; `diarist init-aws` creates one",
                   s->url, name);
            rc = 0;
        }
    } else if (rc == 0) {
        /* Given or found: it must answer, or dead letters would be lost. */
        req = json_pack("{s:s, s:[s]}", "QueueUrl", s->dlq, "AttributeNames", "QueueArn");
        rc = call(s, "GetQueueAttributes", req, 0, NULL, msg, cap);
        if (rc > 0) rc = DI_EIO;
    }
    if (rc < 0) return rc;

    s->max_receives = max_from_url     ? max_from_url
                      : server_max > 1 ? server_max - 1
                                       : QUEUE_DEFAULT_MAX_RECEIVES;
    if (server_max > 0 && s->max_receives >= server_max)
        di_log("warn",
               "sqs: %s redrives after %d receives on its own, before the client limit of %d: "
               "such jobs will not be told they failed",
               s->url, server_max, s->max_receives);
    return 0;
}

static int sqs_open(const char *url, void **state, char *msg, size_t cap) {
    QueueAddr a;
    if (parse_addr(url, &a) < 0)
        return di_fail(msg, cap, DI_EINVAL, "queue: not an SQS queue URL: '%.200s'", url);
    if (strstr(a.name, ".fifo"))
        return di_fail(msg, cap, DI_EUNSUPPORTED,
                       "queue: FIFO queues are not supported (%s); use a standard queue", a.name);
    QueueSqs *s = calloc(1, sizeof *s);
    if (!s) return di_fail(msg, cap, DI_ENOMEM, "queue: out of memory");
    pthread_mutex_init(&s->lock, NULL);
    int max_from_url = 0;
    snprintf(s->url, sizeof s->url, "%s", a.url);
    int rc = parse_query(a.query, &max_from_url, s->dlq, sizeof s->dlq, msg, cap);
    s->notes = rc == 0 ? calloc(NOTES, sizeof *s->notes) : NULL;
    if (rc == 0 && !s->notes) rc = di_fail(msg, cap, DI_ENOMEM, "queue: out of memory");
    if (rc == 0) rc = aws_open(&s->aws, msg, cap);
    int custom = 0;
    char base[1024];
    if (rc == 0 && aws_endpoint(s->aws, "sqs", base, sizeof base, &custom) < 0)
        rc = di_fail(msg, cap, DI_EINVAL, "sqs: the SQS endpoint is too long");
    if (rc == 0) {
        /* Without an override the queue URL's host is the endpoint (it
         * names the region, too). */
        int n = snprintf(s->endpoint, sizeof s->endpoint, "%s/", custom ? base : a.base);
        if (n < 0 || (size_t)n >= sizeof s->endpoint)
            rc = di_fail(msg, cap, DI_EINVAL, "sqs: the SQS endpoint is too long");
    }
    if (rc == 0) rc = discover(s, &a, max_from_url, msg, cap);
    if (rc < 0) {
        sqs_close(s);
        return rc;
    }
    di_log("info", "queue: sqs %s via %s, dead letters to %s after %d receives", s->url,
           s->endpoint, s->dlq, s->max_receives);
    *state = s;
    return 0;
}

/* ---- Sending and receiving --------------------------------------------- */

static int sqs_send(void *state, const void *body, size_t len, char *id_out, size_t id_cap,
                    char *msg, size_t cap) {
    QueueSqs *s = state;
    return send_to(s, s->url, body, len, NULL, id_out, id_cap, msg, cap);
}

/* Fills m from one entry of ReceiveMessage's Messages. */
static int read_message(json_t *j, QueueMessage *m, char *msg, size_t cap) {
    const char *id = json_string_value(json_object_get(j, "MessageId"));
    const char *receipt = json_string_value(json_object_get(j, "ReceiptHandle"));
    json_t *body = json_object_get(j, "Body");
    const char *count = json_string_value(
        json_object_get(json_object_get(j, "Attributes"), "ApproximateReceiveCount"));
    if (!id || !receipt || !json_is_string(body))
        return di_fail(msg, cap, DI_EFORMAT,
                       "sqs ReceiveMessage: a message lacks its id, "
                       "receipt or body");
    size_t len = json_string_length(body);
    if (!md5_matches(json_string_value(body), len,
                     json_string_value(json_object_get(j, "MD5OfBody"))))
        return di_fail(msg, cap, DI_EIO, "sqs ReceiveMessage: message %s: MD5 mismatch", id);
    m->id = strdup(id);
    m->receipt = strdup(receipt);
    m->body = malloc(len + 1);
    if (!m->id || !m->receipt || !m->body)
        return di_fail(msg, cap, DI_ENOMEM, "queue: out of memory");
    memcpy(m->body, json_string_value(body), len + 1);
    m->body_len = len;
    m->receive_count = count ? atoi(count) : 1;
    if (m->receive_count < 1) m->receive_count = 1;
    return 0;
}

/* One ReceiveMessage: 1 with a message in *m, 0 for none, or an error. */
static int fetch(QueueSqs *s, int wait_s, double visibility_s, QueueMessage *m, char *msg,
                 size_t cap) {
    /* Both spellings of the attribute list: older servers know only the
     * first, newer SDKs send only the second. */
    json_t *req =
        json_pack("{s:s, s:i, s:i, s:i, s:[s], s:[s]}", "QueueUrl", s->url, "MaxNumberOfMessages",
                  1, "WaitTimeSeconds", wait_s, "VisibilityTimeout", whole_seconds(visibility_s),
                  "AttributeNames", "ApproximateReceiveCount", "MessageSystemAttributeNames",
                  "ApproximateReceiveCount");
    json_t *answer;
    int rc = call(s, "ReceiveMessage", req, wait_s, &answer, msg, cap);
    if (rc != 0) return rc < 0 ? rc : di_fail(msg, cap, DI_EIO, "sqs ReceiveMessage: unexpected");
    json_t *first = json_array_get(json_object_get(answer, "Messages"), 0);
    if (first) {
        rc = read_message(first, m, msg, cap);
        if (rc == 0) rc = note_delivery(s, m);
        if (rc < 0)
            queue_message_free(m);
        else
            rc = 1;
    }
    json_decref(answer);
    return rc;
}

/* Sends a dead letter to the DLQ, or, when the queue has none, logs it
 * (reason and the start of its body) so it is not lost without a trace. */
static int keep_dead(QueueSqs *s, const void *body, size_t len, const char *reason, char *msg,
                     size_t cap) {
    if (s->dlq[0]) return send_to(s, s->dlq, body, len, reason, NULL, 0, msg, cap);
    di_log("warn", "sqs: dead letter dropped (no dead-letter queue): %s; body: %.*s",
           reason ? reason : "no reason", (int)(len > 512 ? 512 : len), (const char *)body);
    return 0;
}

/* Moves a message found over the limit to the DLQ and tells on_dead. Its
 * receive_count is what was handed out before: this delivery was not. */
static int bury(QueueSqs *s, QueueMessage *m, QueueDeadFn on_dead, void *ctx, char *msg,
                size_t cap) {
    char reason[REASON_MAX];
    snprintf(reason, sizeof reason, "received %d times (limit %d)%s%.900s", m->receive_count,
             s->max_receives, m->last_error ? ": " : "", m->last_error ? m->last_error : "");
    int rc = keep_dead(s, m->body, m->body_len, reason, msg, cap);
    if (rc < 0) return rc;
    rc = delete_message(s, m->receipt, msg, cap);
    note_drop(s, m->receipt);
    if (rc < 0) return rc;
    di_log("warn", "sqs: message %s dead-lettered after %d receives", m->id, m->receive_count - 1);
    free(m->receipt);
    m->receipt = NULL;
    m->receive_count--;
    /* QUEUE_STALE: another receiver got it meanwhile and will bury it. */
    if (rc == 0 && on_dead) on_dead(ctx, m);
    return 0;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Long-polls in whole seconds, as SQS can; the fraction of a second left
 * at the end is slept and followed by one last look, so a caller polling
 * in short slices neither spins nor waits longer than asked. Messages over
 * the limit are buried on the way and the wait goes on. */
static int sqs_receive(void *state, double wait_s, double visibility_s, QueueDeadFn on_dead,
                       void *ctx, QueueMessage *out, char *msg, size_t cap) {
    QueueSqs *s = state;
    double deadline = di_now() + wait_s;
    int last = 0;
    for (;;) {
        double left = deadline - di_now();
        int poll = left >= 0.99 ? (int)(left + 0.01) : 0; /* a hair short still counts */
        if (poll > QUEUE_MAX_WAIT_S) poll = QUEUE_MAX_WAIT_S;
        QueueMessage m = {0};
        int rc = fetch(s, poll, visibility_s, &m, msg, cap);
        if (rc < 0) return rc;
        if (rc == 1 && m.receive_count <= s->max_receives) {
            *out = m;
            return 1;
        }
        if (rc == 1) {
            rc = bury(s, &m, on_dead, ctx, msg, cap);
            queue_message_free(&m);
            if (rc < 0) return rc;
            continue;
        }
        left = deadline - di_now();
        if (last || left <= 0.05) return 0;
        if (left < 1) {
            sleep_s(left);
            last = 1;
        }
    }
}

/* ---- Receipts ------------------------------------------------------------ */

static int sqs_remove(void *state, const char *receipt, char *msg, size_t cap) {
    QueueSqs *s = state;
    int rc = delete_message(s, receipt, msg, cap);
    if (rc >= 0) note_drop(s, receipt);
    return rc;
}

static int sqs_change_visibility(void *state, const char *receipt, double seconds,
                                 const char *reason, char *msg, size_t cap) {
    QueueSqs *s = state;
    int rc = set_visibility(s, receipt, seconds, msg, cap);
    if (rc == 0 && reason) note_reason(s, receipt, reason);
    if (rc == QUEUE_STALE) note_drop(s, receipt);
    return rc;
}

/* Takes a lease long enough to copy and delete (which also proves the
 * receipt is current), copies the body to the DLQ with the reason, and
 * deletes the original. */
static int sqs_dead_letter(void *state, const char *receipt, const char *reason, char *msg,
                           size_t cap) {
    QueueSqs *s = state;
    char *body, *noted;
    size_t len = 0;
    int known = note_copy(s, receipt, &body, &len, &noted);
    if (known < 0) return di_fail(msg, cap, known, "queue: out of memory");
    int rc = set_visibility(s, receipt, DEAD_LEASE_S, msg, cap);
    if (rc == QUEUE_STALE) note_drop(s, receipt);
    if (rc == 0 && !known)
        rc = di_fail(msg, cap, DI_EINVAL,
                     "sqs: dead letter: the message was not received through this handle, so "
                     "its body is unknown");
    if (rc == 0) rc = keep_dead(s, body, len, reason ? reason : noted, msg, cap);
    if (rc == 0) {
        rc = delete_message(s, receipt, msg, cap);
        if (rc == QUEUE_STALE) {
            di_log("warn",
                   "sqs: dead letter: copied to the DLQ but the original was taken "
                   "meanwhile: %s",
                   msg);
            rc = 0;
        }
        note_drop(s, receipt);
    }
    free(body);
    free(noted);
    return rc;
}

static int sqs_depth(void *state, QueueDepth *out, char *msg, size_t cap) {
    QueueSqs *s = state;
    const char *urls[2] = {s->url, s->dlq};
    int64_t v[2][3] = {{0}};
    for (int q = 0; q < (s->dlq[0] ? 2 : 1); q++) {
        json_t *answer;
        json_t *req =
            json_pack("{s:s, s:[s, s, s]}", "QueueUrl", urls[q], "AttributeNames",
                      "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                      "ApproximateNumberOfMessagesDelayed");
        int rc = call(s, "GetQueueAttributes", req, 0, &answer, msg, cap);
        if (rc != 0) return rc < 0 ? rc : DI_EIO;
        json_t *attrs = json_object_get(answer, "Attributes");
        const char *names[3] = {"ApproximateNumberOfMessages",
                                "ApproximateNumberOfMessagesNotVisible",
                                "ApproximateNumberOfMessagesDelayed"};
        for (int i = 0; i < 3; i++) {
            const char *t = json_string_value(json_object_get(attrs, names[i]));
            v[q][i] = t ? strtoll(t, NULL, 10) : 0;
        }
        json_decref(answer);
    }
    out->visible = v[0][0];
    out->in_flight = v[0][1] + v[0][2];
    out->dead = v[1][0];
    return 0;
}

const QueueBackend queue_sqs_backend = {
    .name = "sqs",
    .accepts = sqs_accepts,
    .open = sqs_open,
    .close = sqs_close,
    .send = sqs_send,
    .receive = sqs_receive,
    .native_wait = 1,
    .remove = sqs_remove,
    .change_visibility = sqs_change_visibility,
    .dead_letter = sqs_dead_letter,
    .depth = sqs_depth,
};
