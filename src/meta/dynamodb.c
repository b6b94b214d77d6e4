/* meta/dynamodb.c: job records in two DynamoDB tables, for a fleet.
 *
 * URL: "dynamodb://JOBS_TABLE?notes=NOTES_TABLE&spill=STORE_URL". An empty
 * JOBS_TABLE means $TRANSCRIPTION_TABLE, else AudioTranscriptions; notes
 * defaults to $NOTES_TABLE, else DiaryNotes; spill defaults to
 * "s3://$AUDIO_BUCKET_NAME" (audio-files). Values may be percent-encoded.
 * The endpoint, region and credentials come from the aws module
 * (DYNAMODB_ENDPOINT and the standard chain).
 *
 * The items keep the seed's layout exactly (contract.md), so the seed's API
 * and worker and diarist can share the tables:
 *   jobs:  job_id S, file_name S, file_path S, job_status S (the contract's
 *          state names), transcription S, error S;
 *   notes: job_id S, diary_note S (markdown), created_at N (Unix seconds).
 * diarist's own attributes sit alongside: language S, duration N,
 * segments_json S, note_error S, created_at N, updated_at N, attempts N,
 * callback_url S in jobs; note_json S in notes (it is as large as the note,
 * and the jobs item must stay small). A seed-written item, which has only
 * the first four, reads as a job with the rest empty.
 *
 * Every name goes through ExpressionAttributeNames: `error` is a reserved
 * word (the seed's own update of it fails), and so is `language`.
 *
 * State changes are UpdateItems conditioned on the current job_status, so
 * a stale worker cannot overwrite what a newer one wrote; all other writes
 * are conditioned on the item existing, so nothing recreates a deleted job.
 *
 * DynamoDB refuses items over 400 KB. A transcript plus its segments that
 * would pass ITEM_TEXT_BUDGET bytes go whole to the spill store under
 * "transcripts/{job_id}/" (written before the item points at them), and the
 * item keeps a valid-UTF-8 preview in `transcription` (what a seed reader
 * sees) plus pointers transcript_key / segments_key. meta_get reads the
 * blobs back, so callers always see the whole text. A huge note is treated
 * the same way (note_key, note_json_key in the notes item).
 *
 * Text that is not valid UTF-8 cannot be a DynamoDB string; invalid bytes
 * are stored as U+FFFD rather than failing the job.
 *
 * The handle holds no lock around requests (the aws module is thread-safe);
 * a mutex only guards opening the spill store on first use. */
#include "meta/meta.h"

#include "aws/aws.h"
#include "core/core.h"
#include "store/store.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of transcript + segments kept inline. The rest of a jobs item is
 * bounded (ids, names, a 2000-byte callback URL, errors cut to ERROR_MAX),
 * so this leaves a wide margin under the 400 KB limit, which also counts
 * attribute names. */
#define ITEM_TEXT_BUDGET (350 * 1000)
/* How much of a spilled text stays in the item for readers that know
 * nothing of the spill (the seed's API). */
#define PREVIEW_MAX (200 * 1024)
/* Error texts are short in practice; the cap only keeps the item bounded. */
#define ERROR_MAX (8 * 1024)
/* ddb_call's answer to a ConditionalCheckFailedException. */
#define COND_FAILED 2

#define TARGET_PREFIX "X-Amz-Target: DynamoDB_20120810."

typedef struct {
    Aws *aws;
    char url[1024]; /* endpoint + "/" */
    char jobs[256];
    char notes[256];
    char spill_url[1024];
    pthread_mutex_t lock; /* guards spill */
    Store *spill;         /* opened on first use */
} MetaDdb;

/* ---- UTF-8 ------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p, or 0 when it is not one
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static size_t utf8_seq(const unsigned char *p, size_t n) {
    unsigned c = p[0], cp, min;
    size_t len;
    if (c < 0x80) return 1;
    if ((c & 0xe0) == 0xc0)
        len = 2, cp = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0)
        len = 3, cp = c & 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0)
        len = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

/* A text ready to be a DynamoDB string: `p` is the input itself when it is
 * valid UTF-8, else `owned`, a copy with each bad byte turned into U+FFFD. */
typedef struct {
    const char *p; /* NULL for an absent text */
    size_t n;
    char *owned;
} Text;

static int text_prep(const char *in, Text *t) {
    memset(t, 0, sizeof *t);
    if (!in) return 0;
    const unsigned char *s = (const unsigned char *)in;
    size_t n = strlen(in), bad = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(s + i, n - i);
        bad += k == 0;
        i += k ? k : 1;
    }
    t->p = in;
    t->n = n;
    if (bad == 0) return 0;
    char *out = malloc(n + 2 * bad + 1);
    if (!out) return DI_ENOMEM;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(s + i, n - i);
        if (k) {
            memcpy(out + o, s + i, k);
            o += k, i += k;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3, i++;
        }
    }
    out[o] = 0;
    t->p = t->owned = out;
    t->n = o;
    return 0;
}

/* The longest prefix of a valid UTF-8 text that is at most max bytes and
 * does not split a character. */
static size_t utf8_cut(const char *p, size_t n, size_t max) {
    if (n <= max) return n;
    while (max > 0 && ((unsigned char)p[max] & 0xc0) == 0x80)
        max--;
    return max;
}

/* ---- Attribute values and items ------------------------------------------ */

static json_t *av_sn(const char *p, size_t n) {
    json_t *s = json_stringn(p, n);
    return s ? json_pack("{s:o}", "S", s) : NULL;
}

/* {"S": v}, invalid UTF-8 repaired, cut to max bytes (0: no cut). */
static json_t *av_s(const char *v, size_t max) {
    Text t;
    if (text_prep(v, &t) < 0) return NULL;
    json_t *av = av_sn(t.p, max ? utf8_cut(t.p, t.n, max) : t.n);
    free(t.owned);
    return av;
}

static json_t *av_n(double v) {
    char num[40];
    snprintf(num, sizeof num, "%.17g", v);
    return json_pack("{s:s}", "N", num);
}

static json_t *key_of(const char *job_id) {
    return json_pack("{s:o}", "job_id", av_s(job_id, 0));
}

static const char *item_s(json_t *item, const char *name) {
    return json_string_value(json_object_get(json_object_get(item, name), "S"));
}

static double item_n(json_t *item, const char *name) {
    const char *v = json_string_value(json_object_get(json_object_get(item, name), "N"));
    return v ? strtod(v, NULL) : 0;
}

/* A copy of a string attribute, NULL when absent; *oom set on failure. */
static char *item_dup(json_t *item, const char *name, int *oom) {
    const char *v = item_s(item, name);
    if (!v) return NULL;
    char *d = strdup(v);
    if (!d) *oom = 1;
    return d;
}

/* ---- Requests ------------------------------------------------------------ */

/* Turns an answer into 0 (with *out the parsed body), COND_FAILED, or an
 * error code with a message a person can act on. */
static int answer(const char *op, const char *table, AwsResponse *resp, json_t **out, char *msg,
                  size_t cap) {
    const char *code = resp->error_code;
    if (resp->status == 200) {
        json_error_t err;
        json_t *body =
            json_loadb(resp->body ? resp->body : "{}", resp->body ? resp->body_len : 2, 0, &err);
        if (!json_is_object(body)) {
            json_decref(body);
            return di_fail(msg, cap, DI_EFORMAT, "dynamodb %s: unreadable answer: %s", op,
                           err.text);
        }
        if (out)
            *out = body;
        else
            json_decref(body);
        return 0;
    }
    if (!strcmp(code, "ConditionalCheckFailedException")) return COND_FAILED;
    if (!strcmp(code, "ResourceNotFoundException"))
        return di_fail(msg, cap, DI_EIO,
                       "dynamodb %s: table '%.200s' does not exist (create the tables with "
                       "`diarist init-aws`)",
                       op, table);
    if (!strcmp(code, "ValidationException"))
        return di_fail(msg, cap, DI_EINVAL, "dynamodb %s on '%.200s': %.300s", op, table,
                       resp->error_message);
    return di_fail(msg, cap, DI_EIO, "dynamodb %s on '%.200s': HTTP %ld %.100s: %.300s", op, table,
                   resp->status, code[0] ? code : "error", resp->error_message);
}

/* Sends one request of the JSON protocol. Takes req (NULL: it could not be
 * built). *out (may be NULL) gets the answer's JSON, caller frees. */
static int ddb_call(MetaDdb *s, const char *op, json_t *req, json_t **out, char *msg, size_t cap) {
    if (out) *out = NULL;
    if (!req) return di_fail(msg, cap, DI_ENOMEM, "dynamodb %s: out of memory", op);
    char table[256];
    snprintf(table, sizeof table, "%s", json_string_value(json_object_get(req, "TableName")));
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!body) return di_fail(msg, cap, DI_ENOMEM, "dynamodb %s: out of memory", op);
    char target[96];
    snprintf(target, sizeof target, TARGET_PREFIX "%s", op);
    const char *headers[] = {target, "Content-Type: application/x-amz-json-1.0", NULL};
    AwsRequest r = {.method = "POST",
                    .service = "dynamodb",
                    .url = s->url,
                    .headers = headers,
                    .body = body,
                    .body_len = strlen(body)};
    AwsResponse resp;
    memset(&resp, 0, sizeof resp);
    int rc = aws_request(s->aws, &r, &resp, msg, cap);
    free(body);
    if (rc == 0) rc = answer(op, table, &resp, out, msg, cap);
    aws_response_free(&resp);
    return rc;
}

/* GetItem, strongly consistent: a worker reads what the previous step of
 * the same job wrote. *item is NULL when there is none; *out owns it. */
static int get_item(MetaDdb *s, const char *table, const char *job_id, const char *projection,
                    json_t **out, json_t **item, char *msg, size_t cap) {
    json_t *req = json_pack("{s:s, s:o, s:b}", "TableName", table, "Key", key_of(job_id),
                            "ConsistentRead", 1);
    if (req && projection)
        json_object_set_new(req, "ProjectionExpression", json_string(projection));
    int rc = ddb_call(s, "GetItem", req, out, msg, cap);
    *item = rc == 0 ? json_object_get(*out, "Item") : NULL;
    return rc;
}

/* After a conditional write failed: was the job there at all? */
static int missing_or(MetaDdb *s, const char *job_id, int if_present, char *msg, size_t cap) {
    json_t *out, *item;
    int rc = get_item(s, s->jobs, job_id, "job_id", &out, &item, msg, cap);
    if (rc == 0)
        rc = item ? if_present : di_fail(msg, cap, DI_ENOTFOUND, "meta: no job %.128s", job_id);
    json_decref(out);
    return rc;
}

/* ---- UpdateItem expressions ----------------------------------------------- */

/* An UpdateItem being put together. Every attribute name and value goes
 * through a placeholder (#aN, :vN), so no reserved word can break it and no
 * placeholder is ever left unused (which DynamoDB rejects). */
typedef struct {
    char set[1024], remove[256], cond[512];
    json_t *names, *values;
    int nv;
    int bad; /* out of memory or an expression overflowed */
} Update;

static void up_init(Update *u) {
    memset(u, 0, sizeof *u);
    u->names = json_object();
    u->values = json_object();
    u->bad = !u->names || !u->values;
}

static void up_free(Update *u) {
    json_decref(u->names);
    json_decref(u->values);
}

static void up_append(Update *u, char *buf, size_t cap, const char *sep, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void up_append(Update *u, char *buf, size_t cap, const char *sep, const char *fmt, ...) {
    size_t len = strlen(buf);
    if (len) len += (size_t)snprintf(buf + len, cap - len, "%s", sep);
    va_list ap;
    va_start(ap, fmt);
    if (len < cap) len += (size_t)vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
    if (len >= cap) u->bad = 1;
}

/* The placeholder of an attribute name, the same one for repeated uses. */
static void up_name(Update *u, const char *attr, char ph[16]) {
    const char *k;
    json_t *v;
    json_object_foreach(u->names, k, v) {
        if (!strcmp(json_string_value(v), attr)) {
            snprintf(ph, 16, "%s", k);
            return;
        }
    }
    snprintf(ph, 16, "#a%zu", json_object_size(u->names));
    if (json_object_set_new(u->names, ph, json_string(attr))) u->bad = 1;
}

/* Takes av. */
static void up_value(Update *u, json_t *av, char ph[16]) {
    snprintf(ph, 16, ":v%d", u->nv++);
    if (!av || json_object_set_new(u->values, ph, av)) u->bad = 1;
}

/* SET attr = av (takes av). */
static void up_set(Update *u, const char *attr, json_t *av) {
    char n[16], v[16];
    up_name(u, attr, n);
    up_value(u, av, v);
    up_append(u, u->set, sizeof u->set, ", ", "%s = %s", n, v);
}

/* SET attr = v when v is given, else REMOVE attr: an absent attribute is
 * how DynamoDB says NULL. */
static void up_set_or_remove(Update *u, const char *attr, const char *v, size_t max) {
    if (v) {
        up_set(u, attr, av_s(v, max));
    } else {
        char n[16];
        up_name(u, attr, n);
        up_append(u, u->remove, sizeof u->remove, ", ", "%s", n);
    }
}

static void up_cond_exists(Update *u) {
    char n[16];
    up_name(u, "job_id", n);
    up_append(u, u->cond, sizeof u->cond, " AND ", "attribute_exists(%s)", n);
}

/* Sends the update to the jobs table. COND_FAILED when the condition did
 * not hold. Consumes nothing: the caller still frees u. */
static int up_send(MetaDdb *s, const char *job_id, Update *u, json_t **out, char *msg, size_t cap) {
    if (u->bad) return di_fail(msg, cap, DI_ENOMEM, "dynamodb: could not build an update");
    char expr[1400];
    snprintf(expr, sizeof expr, "%s%s%s%s%s", u->set[0] ? "SET " : "", u->set,
             u->set[0] && u->remove[0] ? " " : "", u->remove[0] ? "REMOVE " : "", u->remove);
    json_t *req = json_pack("{s:s, s:o, s:s, s:O}", "TableName", s->jobs, "Key", key_of(job_id),
                            "UpdateExpression", expr, "ExpressionAttributeNames", u->names);
    if (req && u->cond[0]) json_object_set_new(req, "ConditionExpression", json_string(u->cond));
    if (req && json_object_size(u->values))
        json_object_set(req, "ExpressionAttributeValues", u->values);
    if (req && out) json_object_set_new(req, "ReturnValues", json_string("UPDATED_OLD"));
    return ddb_call(s, "UpdateItem", req, out, msg, cap);
}

/* ---- The spill store --------------------------------------------------------- */

static int spill_store(MetaDdb *s, Store **out, char *msg, size_t cap) {
    pthread_mutex_lock(&s->lock);
    int rc = 0;
    if (!s->spill) rc = store_open(s->spill_url, &s->spill, msg, cap);
    *out = s->spill;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static void spill_key(char *out, size_t cap, const char *job_id, const char *name) {
    snprintf(out, cap, "transcripts/%s/%s", job_id, name);
}

static int spill_put(MetaDdb *s, const char *key, const char *data, size_t n, char *msg,
                     size_t cap) {
    Store *st;
    int rc = spill_store(s, &st, msg, cap);
    if (rc == 0) rc = store_put(st, key, data, n, msg, cap);
    return rc;
}

/* The whole blob as a 0-terminated string (caller frees). */
static int spill_get(MetaDdb *s, const char *key, char **out, char *msg, size_t cap) {
    Store *st;
    StoreReader *r = NULL;
    int rc = spill_store(s, &st, msg, cap);
    if (rc == 0) rc = store_open_read(st, key, &r, msg, cap);
    if (rc < 0) return rc;
    uint64_t size = store_reader_size(r);
    char *buf = size < SIZE_MAX ? malloc((size_t)size + 1) : NULL;
    if (!buf) rc = di_fail(msg, cap, DI_ENOMEM, "meta: out of memory");
    size_t have = 0, got = 1;
    while (rc == 0 && have < size && got > 0) {
        got = 0;
        rc = store_read(r, buf + have, (size_t)size - have, &got, msg, cap);
        have += got;
    }
    store_reader_close(r);
    if (rc == 0 && have != size)
        rc = di_fail(msg, cap, DI_EIO, "meta: blob %.200s ended early", key);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    buf[size] = 0;
    *out = buf;
    return 0;
}

/* Best effort: a blob left behind costs storage, not correctness. */
static void spill_drop(MetaDdb *s, const char *key) {
    if (!key) return;
    char msg[256];
    Store *st;
    if (spill_store(s, &st, msg, sizeof msg) < 0 || store_delete(st, key, msg, sizeof msg) < 0)
        di_log("warn", "meta: could not delete spilled blob %s: %s", key, msg);
}

/* Drops the blobs an old item pointed at that the new one no longer does. */
static void spill_drop_stale(MetaDdb *s, json_t *old_item, const char *attr, int still_used) {
    if (!still_used) spill_drop(s, item_s(old_item, attr));
}

/* Replaces *field (a preview) with the blob an item points at. */
static int spill_load(MetaDdb *s, json_t *item, const char *attr, char **field, char *msg,
                      size_t cap) {
    const char *key = item_s(item, attr);
    if (!key) return 0;
    char *full;
    int rc = spill_get(s, key, &full, msg, cap);
    if (rc < 0) return rc;
    free(*field);
    *field = full;
    return 0;
}

/* ---- Open and close ---------------------------------------------------------- */

static int ddb_accepts(const char *url) {
    return strncmp(url, "dynamodb://", 11) == 0;
}

static int hexval(char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent-decodes n bytes of in into out. DI_EINVAL when it does not fit
 * or a %XX is malformed. */
static int decode(const char *in, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '%') {
            if (i + 2 >= n || hexval(in[i + 1]) < 0 || hexval(in[i + 2]) < 0) return DI_EINVAL;
            c = (char)(hexval(in[i + 1]) << 4 | hexval(in[i + 2]));
            i += 2;
        }
        if (o + 1 >= cap || c == 0) return DI_EINVAL;
        out[o++] = c;
    }
    out[o] = 0;
    return 0;
}

/* DynamoDB's own rule, checked here so a typo fails at open, not at the
 * first request. */
static int table_ok(const char *t) {
    size_t n = strlen(t);
    if (n < 3 || n > 255) return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", t[i]))
            return 0;
    return 1;
}

static const char *env_or(const char *name, const char *fallback) {
    const char *v = getenv(name);
    return v && v[0] ? v : fallback;
}

static int parse_url(MetaDdb *s, const char *url, char *msg, size_t cap) {
    const char *p = url + 11, *q = strchr(p, '?');
    size_t tlen = q ? (size_t)(q - p) : strlen(p);
    snprintf(s->jobs, sizeof s->jobs, "%s", env_or("TRANSCRIPTION_TABLE", "AudioTranscriptions"));
    snprintf(s->notes, sizeof s->notes, "%s", env_or("NOTES_TABLE", "DiaryNotes"));
    snprintf(s->spill_url, sizeof s->spill_url, "s3://%s",
             env_or("AUDIO_BUCKET_NAME", "audio-files"));
    if (tlen && decode(p, tlen, s->jobs, sizeof s->jobs) < 0)
        return di_fail(msg, cap, DI_EINVAL, "meta: bad table name in '%.200s'", url);
    while (q && *q) {
        const char *param = q + 1, *end = strchr(param, '&');
        size_t plen = end ? (size_t)(end - param) : strlen(param);
        const char *eq = memchr(param, '=', plen);
        size_t klen = eq ? (size_t)(eq - param) : plen;
        const char *val = eq ? eq + 1 : param + plen;
        size_t vlen = (size_t)(param + plen - val);
        char *dst = NULL;
        size_t dcap = 0;
        if (klen == 5 && !strncmp(param, "notes", 5))
            dst = s->notes, dcap = sizeof s->notes;
        else if (klen == 5 && !strncmp(param, "spill", 5))
            dst = s->spill_url, dcap = sizeof s->spill_url;
        if (!dst || decode(val, vlen, dst, dcap) < 0)
            return di_fail(msg, cap, DI_EINVAL, "meta: bad parameter '%.*s' in '%.200s'",
                           (int)(plen < 100 ? plen : 100), param, url);
        q = end;
    }
    if (!table_ok(s->jobs) || !table_ok(s->notes))
        return di_fail(msg, cap, DI_EINVAL, "meta: bad table name ('%s', '%s')", s->jobs, s->notes);
    if (!s->spill_url[0]) return di_fail(msg, cap, DI_EINVAL, "meta: empty spill store URL");
    return 0;
}

static void ddb_close(void *state) {
    MetaDdb *s = state;
    if (!s) return;
    store_close(s->spill);
    aws_close(s->aws);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static int ddb_open(const char *url, void **state, char *msg, size_t cap) {
    MetaDdb *s = calloc(1, sizeof *s);
    if (!s) return di_fail(msg, cap, DI_ENOMEM, "meta: out of memory");
    pthread_mutex_init(&s->lock, NULL);
    int rc = parse_url(s, url, msg, cap);
    if (rc == 0) rc = aws_open(&s->aws, msg, cap);
    char endpoint[sizeof s->url - 1];
    int custom = 0;
    if (rc == 0) rc = aws_endpoint(s->aws, "dynamodb", endpoint, sizeof endpoint, &custom);
    if (rc < 0) rc = di_fail(msg, cap, rc, "meta: dynamodb endpoint too long");
    if (rc < 0) {
        ddb_close(s);
        return rc;
    }
    snprintf(s->url, sizeof s->url, "%s/", endpoint);
    di_log("debug", "meta: dynamodb tables %s and %s at %s", s->jobs, s->notes, endpoint);
    *state = s;
    return 0;
}

/* ---- The operations ---------------------------------------------------------- */

static int ddb_create(void *state, const Job *job, char *msg, size_t cap) {
    MetaDdb *s = state;
    json_t *item =
        json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "job_id", av_s(job->job_id, 0),
                  "file_name", av_s(job->file_name, 0), "file_path", av_s(job->file_path, 0),
                  "job_status", av_s(job_state_name(job->state), 0), "created_at",
                  av_n(job->created_at), "updated_at", av_n(job->created_at), "attempts", av_n(0));
    if (item && job->callback_url)
        json_object_set_new(item, "callback_url", av_s(job->callback_url, 0));
    json_t *req = json_pack("{s:s, s:o, s:s, s:{s:s}}", "TableName", s->jobs, "Item", item,
                            "ConditionExpression", "attribute_not_exists(#k)",
                            "ExpressionAttributeNames", "#k", "job_id");
    int rc = ddb_call(s, "PutItem", req, NULL, msg, cap);
    if (rc == COND_FAILED)
        rc = di_fail(msg, cap, DI_EINVAL, "meta: job %.128s already exists", job->job_id);
    return rc;
}

static void fill_job(json_t *item, Job *job, int *oom) {
    job->job_id = item_dup(item, "job_id", oom);
    job->file_name = item_dup(item, "file_name", oom);
    job->file_path = item_dup(item, "file_path", oom);
    /* An unknown state is an item some other writer got wrong; showing it
     * as an error is better than failing every read of it. */
    if (job_state_parse(item_s(item, "job_status"), &job->state) < 0) job->state = JOB_ERROR;
    job->transcription = item_dup(item, "transcription", oom);
    job->error = item_dup(item, "error", oom);
    job->language = item_dup(item, "language", oom);
    job->duration = item_n(item, "duration");
    job->segments_json = item_dup(item, "segments_json", oom);
    job->note_error = item_dup(item, "note_error", oom);
    job->created_at = item_n(item, "created_at");
    job->updated_at = item_n(item, "updated_at");
    job->attempts = (int)item_n(item, "attempts");
    job->callback_url = item_dup(item, "callback_url", oom);
}

static void fill_note(json_t *item, Job *job, int *oom) {
    job->note_markdown = item_dup(item, "diary_note", oom);
    job->note_json = item_dup(item, "note_json", oom);
    job->note_created_at = item_n(item, "created_at");
}

/* Spilled texts are read back whole, so a big job costs a blob read on
 * each get; only transcripts past ITEM_TEXT_BUDGET pay it. */
static int ddb_get(void *state, const char *job_id, Job *job, char *msg, size_t cap) {
    MetaDdb *s = state;
    json_t *out, *item;
    int oom = 0;
    int rc = get_item(s, s->jobs, job_id, NULL, &out, &item, msg, cap);
    if (rc == 0 && !item) rc = di_fail(msg, cap, DI_ENOTFOUND, "meta: no job %.128s", job_id);
    if (rc == 0) fill_job(item, job, &oom);
    if (rc == 0 && !oom) rc = spill_load(s, item, "transcript_key", &job->transcription, msg, cap);
    if (rc == 0 && !oom) rc = spill_load(s, item, "segments_key", &job->segments_json, msg, cap);
    json_decref(out);
    if (rc < 0 || oom) goto done;
    rc = get_item(s, s->notes, job_id, NULL, &out, &item, msg, cap);
    if (rc == 0 && item) {
        fill_note(item, job, &oom);
        if (!oom) rc = spill_load(s, item, "note_key", &job->note_markdown, msg, cap);
        if (rc == 0 && !oom) rc = spill_load(s, item, "note_json_key", &job->note_json, msg, cap);
    }
    json_decref(out);
done:
    if (rc == 0 && oom) rc = di_fail(msg, cap, DI_ENOMEM, "meta: out of memory");
    if (rc < 0) meta_job_free(job);
    return rc;
}

static int ddb_transition(void *state, const char *job_id, unsigned from_mask, JobState to,
                          const char *error, double now, char *msg, size_t cap) {
    MetaDdb *s = state;
    Update u;
    up_init(&u);
    up_set(&u, "job_status", av_s(job_state_name(to), 0));
    up_set(&u, "updated_at", av_n(now));
    up_set_or_remove(&u, "error", error, ERROR_MAX);
    if (to == JOB_DOWNLOADING) {
        char n[16], zero[16], one[16];
        up_name(&u, "attempts", n);
        up_value(&u, av_n(0), zero);
        up_value(&u, av_n(1), one);
        up_append(&u, u.set, sizeof u.set, ", ", "%s = if_not_exists(%s, %s) + %s", n, n, zero,
                  one);
    }
    up_cond_exists(&u);
    char st[16], in[256] = "";
    up_name(&u, "job_status", st);
    for (int i = 0; i < JOB_STATE_COUNT; i++)
        if (from_mask & JOB_MASK(i)) {
            char v[16];
            up_value(&u, av_s(job_state_name((JobState)i), 0), v);
            up_append(&u, in, sizeof in, ", ", "%s", v);
        }
    up_append(&u, u.cond, sizeof u.cond, " AND ", "%s IN (%s)", st, in);
    int rc = up_send(s, job_id, &u, NULL, msg, cap);
    up_free(&u);
    if (rc == COND_FAILED) rc = missing_or(s, job_id, META_STALE, msg, cap);
    if (rc == META_STALE)
        di_fail(msg, cap, DI_OK, "meta: job %.128s is not in an expected state", job_id);
    return rc;
}

/* Puts a text too big for an item into the store, whole. */
static int spill_text(MetaDdb *s, const char *job_id, const char *name, const Text *t,
                      char key[STORE_KEY_MAX + 1], char *msg, size_t cap) {
    key[0] = 0;
    if (!t->p) return 0;
    spill_key(key, STORE_KEY_MAX + 1, job_id, name);
    return spill_put(s, key, t->p, t->n, msg, cap);
}

/* The blobs are written before the item points at them, so a reader never
 * follows a pointer to nothing; the same keys are reused by a retry. */
static int ddb_set_transcript(void *state, const char *job_id, const char *text,
                              const char *language, double duration, const char *segments_json,
                              double now, char *msg, size_t cap) {
    MetaDdb *s = state;
    Text t = {0}, g = {0};
    int rc = text_prep(text, &t);
    if (rc == 0) rc = text_prep(segments_json, &g);
    if (rc < 0) {
        free(t.owned);
        return di_fail(msg, cap, DI_ENOMEM, "meta: out of memory");
    }
    int spill = t.n + g.n > ITEM_TEXT_BUDGET;
    char tkey[STORE_KEY_MAX + 1] = "", gkey[STORE_KEY_MAX + 1] = "";
    if (spill) rc = spill_text(s, job_id, "transcript.txt", &t, tkey, msg, cap);
    if (spill && rc == 0) rc = spill_text(s, job_id, "segments.json", &g, gkey, msg, cap);
    json_t *old = NULL;
    if (rc == 0) {
        Update u;
        up_init(&u);
        up_set_or_remove(&u, "transcription", t.p, spill ? PREVIEW_MAX : 0);
        up_set_or_remove(&u, "segments_json", spill ? NULL : g.p, 0);
        up_set_or_remove(&u, "transcript_key", tkey[0] ? tkey : NULL, 0);
        up_set_or_remove(&u, "segments_key", gkey[0] ? gkey : NULL, 0);
        if (spill && t.p)
            up_set(&u, "transcript_bytes", av_n((double)t.n));
        else
            up_set_or_remove(&u, "transcript_bytes", NULL, 0);
        up_set_or_remove(&u, "language", language, 0);
        up_set(&u, "duration", av_n(duration));
        up_set(&u, "updated_at", av_n(now));
        up_cond_exists(&u);
        rc = up_send(s, job_id, &u, &old, msg, cap);
        up_free(&u);
    }
    if (rc == COND_FAILED) rc = di_fail(msg, cap, DI_ENOTFOUND, "meta: no job %.128s", job_id);
    if (rc == 0) {
        json_t *attrs = json_object_get(old, "Attributes");
        spill_drop_stale(s, attrs, "transcript_key", tkey[0]);
        spill_drop_stale(s, attrs, "segments_key", gkey[0]);
    }
    json_decref(old);
    free(t.owned);
    free(g.owned);
    return rc;
}

/* A note with the same spill rule as a transcript. */
static json_t *note_item(MetaDdb *s, const char *job_id, const char *markdown, const char *json,
                         double created_at, char nkey[STORE_KEY_MAX + 1],
                         char jkey[STORE_KEY_MAX + 1], char *msg, size_t cap, int *rc) {
    Text md = {0}, js = {0};
    *rc = text_prep(markdown, &md);
    if (*rc == 0) *rc = text_prep(json, &js);
    if (*rc < 0) {
        free(md.owned);
        *rc = di_fail(msg, cap, DI_ENOMEM, "meta: out of memory");
        return NULL;
    }
    int spill = md.n + js.n > ITEM_TEXT_BUDGET;
    if (spill) *rc = spill_text(s, job_id, "note.md", &md, nkey, msg, cap);
    if (spill && *rc == 0) *rc = spill_text(s, job_id, "note.json", &js, jkey, msg, cap);
    json_t *item = NULL;
    if (*rc == 0) {
        item = json_pack("{s:o, s:o, s:o}", "job_id", av_s(job_id, 0), "diary_note",
                         av_sn(md.p, utf8_cut(md.p, md.n, spill ? PREVIEW_MAX : md.n)),
                         "created_at", av_n(created_at));
        if (item && js.p && !spill) json_object_set_new(item, "note_json", av_sn(js.p, js.n));
        if (item && nkey[0]) json_object_set_new(item, "note_key", av_s(nkey, 0));
        if (item && jkey[0]) json_object_set_new(item, "note_json_key", av_s(jkey, 0));
        if (!item) *rc = di_fail(msg, cap, DI_ENOMEM, "meta: out of memory");
    }
    free(md.owned);
    free(js.owned);
    return item;
}

/* Two writes, not a transaction: the jobs update first proves the job
 * exists (and clears note_error), then the note replaces any earlier one.
 * A failure in between leaves no note and no note_error, which a retry of
 * the same call repairs. */
static int ddb_put_note(void *state, const char *job_id, const char *markdown, const char *json,
                        double created_at, double now, char *msg, size_t cap) {
    MetaDdb *s = state;
    Update u;
    up_init(&u);
    up_set(&u, "updated_at", av_n(now));
    up_set_or_remove(&u, "note_error", NULL, 0);
    up_cond_exists(&u);
    int rc = up_send(s, job_id, &u, NULL, msg, cap);
    up_free(&u);
    if (rc == COND_FAILED) return di_fail(msg, cap, DI_ENOTFOUND, "meta: no job %.128s", job_id);
    if (rc < 0) return rc;
    char nkey[STORE_KEY_MAX + 1] = "", jkey[STORE_KEY_MAX + 1] = "";
    json_t *item = note_item(s, job_id, markdown, json, created_at, nkey, jkey, msg, cap, &rc);
    if (rc < 0) return rc;
    json_t *out = NULL;
    rc = ddb_call(s, "PutItem",
                  json_pack("{s:s, s:o, s:s}", "TableName", s->notes, "Item", item, "ReturnValues",
                            "ALL_OLD"),
                  &out, msg, cap);
    if (rc == 0) {
        json_t *old = json_object_get(out, "Attributes");
        spill_drop_stale(s, old, "note_key", nkey[0]);
        spill_drop_stale(s, old, "note_json_key", jkey[0]);
    }
    json_decref(out);
    return rc;
}

static int ddb_set_note_error(void *state, const char *job_id, const char *error, double now,
                              char *msg, size_t cap) {
    MetaDdb *s = state;
    Update u;
    up_init(&u);
    up_set(&u, "note_error", av_s(error, ERROR_MAX));
    up_set(&u, "updated_at", av_n(now));
    up_cond_exists(&u);
    int rc = up_send(s, job_id, &u, NULL, msg, cap);
    up_free(&u);
    if (rc == COND_FAILED) rc = di_fail(msg, cap, DI_ENOTFOUND, "meta: no job %.128s", job_id);
    return rc;
}

/* Deletes one item; *out gets what it held (for its blob pointers). */
static int delete_item(MetaDdb *s, const char *table, const char *job_id, json_t **out, char *msg,
                       size_t cap) {
    json_t *req = json_pack("{s:s, s:o, s:s}", "TableName", table, "Key", key_of(job_id),
                            "ReturnValues", "ALL_OLD");
    return ddb_call(s, "DeleteItem", req, out, msg, cap);
}

/* The note goes first: if the job's delete then fails, the job is still
 * there for the caller to delete again. */
static int ddb_remove(void *state, const char *job_id, char *msg, size_t cap) {
    MetaDdb *s = state;
    json_t *note = NULL, *job = NULL;
    int rc = delete_item(s, s->notes, job_id, &note, msg, cap);
    if (rc == 0) rc = delete_item(s, s->jobs, job_id, &job, msg, cap);
    static const char *const note_keys[] = {"note_key", "note_json_key"};
    static const char *const job_keys[] = {"transcript_key", "segments_key"};
    for (int i = 0; rc == 0 && i < 2; i++) {
        spill_drop(s, item_s(json_object_get(note, "Attributes"), note_keys[i]));
        spill_drop(s, item_s(json_object_get(job, "Attributes"), job_keys[i]));
    }
    json_decref(note);
    json_decref(job);
    return rc;
}

/* A Scan reads the whole table (one read unit per 4 KB of projected item
 * data), so this suits a metrics endpoint scraped every few seconds, not a
 * hot path; a fleet that outgrows it would keep counters instead. */
static int ddb_count_by_state(void *state, int64_t counts[JOB_STATE_COUNT], char *msg, size_t cap) {
    MetaDdb *s = state;
    json_t *start = NULL;
    int rc = 0;
    do {
        json_t *req = json_pack("{s:s, s:s, s:{s:s}}", "TableName", s->jobs, "ProjectionExpression",
                                "#s", "ExpressionAttributeNames", "#s", "job_status");
        if (req && start) json_object_set(req, "ExclusiveStartKey", start);
        json_decref(start);
        start = NULL;
        json_t *out;
        rc = ddb_call(s, "Scan", req, &out, msg, cap);
        if (rc < 0) break;
        size_t i;
        json_t *item;
        json_array_foreach(json_object_get(out, "Items"), i, item) {
            JobState js;
            if (job_state_parse(item_s(item, "job_status"), &js) == 0) counts[js]++;
        }
        start = json_incref(json_object_get(out, "LastEvaluatedKey"));
        json_decref(out);
    } while (start);
    return rc;
}

const MetaBackend meta_dynamodb_backend = {
    .name = "dynamodb",
    .accepts = ddb_accepts,
    .open = ddb_open,
    .close = ddb_close,
    .create = ddb_create,
    .get = ddb_get,
    .transition = ddb_transition,
    .set_transcript = ddb_set_transcript,
    .put_note = ddb_put_note,
    .set_note_error = ddb_set_note_error,
    .remove = ddb_remove,
    .count_by_state = ddb_count_by_state,
};
