/* POST /upload-audio/: the multipart body is parsed by libmicrohttpd's post
 * processor and the `file` part streamed into a StoreWriter as it arrives.
 * Only the first 4 KiB are held, long enough to tell plainly non-audio
 * bytes from audio (audio_sniff) before anything is written. */
#include "api/api.h"

#include "audio/audio.h"
#include "core/core.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SNIFF_BYTES 4096
#define NAME_MAX_BYTES 1024
#define CALLBACK_MAX_BYTES 2048
/* Room for multipart boundaries and part headers around the file itself. */
#define MULTIPART_SLACK (1u << 20)

struct ApiUpload {
    const ApiConfig *cfg;
    struct MHD_PostProcessor *pp;
    char job_id[40];
    char name[NAME_MAX_BYTES + 1]; /* the client's file name, as sent */
    char key[STORE_KEY_MAX + 1];
    char callback[CALLBACK_MAX_BYTES + 1];
    size_t callback_len;
    int file_parts; /* `file` parts seen; only the first one is kept */
    int file_has_name;
    unsigned char head[SNIFF_BYTES];
    size_t head_len;
    uint64_t bytes;   /* file bytes received */
    StoreWriter *w;   /* open once the head passed the sniff */
    unsigned refused; /* status of a refusal decided mid-stream */
    char detail[512]; /* its reason */
};

char *api_detail_json(const char *text) {
    json_t *o = json_pack("{s:s}", "detail", text ? text : "");
    char *s = o ? json_dumps(o, 0) : NULL;
    json_decref(o);
    return s;
}

static void refuse(ApiUpload *u, unsigned status, const char *detail) {
    if (u->refused) return;
    u->refused = status;
    snprintf(u->detail, sizeof u->detail, "%s", detail);
    store_abort(u->w);
    u->w = NULL;
}

/* A uuid4 from the OS's random bytes. */
static int new_job_id(char out[40]) {
    char hex[33];
    if (queue_random_hex(hex, sizeof hex)) return -1;
    hex[12] = '4';
    hex[16] = "89ab"[hex[16] % 4];
    snprintf(out, 40, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
    return 0;
}

/* Decides on the head and, if it is audio, opens the writer and writes it. */
static void start_blob(ApiUpload *u) {
    if (u->refused || u->w) return;
    int sniff = audio_sniff(u->head, u->head_len);
    if (sniff == 0) {
        refuse(u, 415, "The uploaded file is not a recognised audio format");
        return;
    }
    /* A sniff that fails for its own reasons lets the worker decide later. */
    char safe[STORE_NAME_MAX + 1], msg[256];
    store_sanitize_name(u->name, safe, sizeof safe);
    snprintf(u->key, sizeof u->key, "uploads/%s/%s", u->job_id, safe);
    if (store_open_write(u->cfg->store, u->key, &u->w, msg, sizeof msg) ||
        store_write(u->w, u->head, u->head_len, msg, sizeof msg)) {
        di_log("error", "upload %s: %s", u->job_id, msg);
        refuse(u, 500, "Could not store the uploaded file");
    }
}

static void file_bytes(ApiUpload *u, const char *data, size_t n) {
    if (u->refused || !n) return;
    u->bytes += n;
    if (u->bytes > u->cfg->max_upload_bytes) {
        char d[128];
        snprintf(d, sizeof d, "File too large: the limit is %llu bytes",
                 (unsigned long long)u->cfg->max_upload_bytes);
        refuse(u, 413, d);
        return;
    }
    if (!u->w) {
        size_t take = SNIFF_BYTES - u->head_len;
        if (take > n) take = n;
        memcpy(u->head + u->head_len, data, take);
        u->head_len += take;
        data += take;
        n -= take;
        if (u->head_len < SNIFF_BYTES) return;
        start_blob(u);
        if (!u->w) return;
    }
    char msg[256];
    if (n && store_write(u->w, data, n, msg, sizeof msg)) {
        di_log("error", "upload %s: %s", u->job_id, msg);
        refuse(u, 500, "Could not store the uploaded file");
    }
}

static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *filename, const char *content_type,
                               const char *transfer_encoding, const char *data, uint64_t off,
                               size_t size) {
    (void)kind, (void)content_type, (void)transfer_encoding;
    ApiUpload *u = cls;
    if (!key) return MHD_YES;
    if (!strcmp(key, "file")) {
        if (off == 0) {
            u->file_parts++;
            if (u->file_parts == 1) {
                u->file_has_name = filename != NULL;
                snprintf(u->name, sizeof u->name, "%s", filename ? filename : "");
            }
        }
        if (u->file_parts == 1 && u->file_has_name) file_bytes(u, data, size);
    } else if (!strcmp(key, "callback_url")) {
        size_t room = CALLBACK_MAX_BYTES - u->callback_len;
        if (size > room) size = room;
        memcpy(u->callback + u->callback_len, data, size);
        u->callback_len += size;
        u->callback[u->callback_len] = 0;
    }
    return MHD_YES;
}

ApiUpload *api_upload_new(const ApiConfig *cfg, struct MHD_Connection *conn) {
    ApiUpload *u = calloc(1, sizeof *u);
    if (!u) return NULL;
    u->cfg = cfg;
    if (new_job_id(u->job_id)) {
        refuse(u, 500, "Could not create a job id");
        return u;
    }
    /* A declared length far over the limit is refused before any byte. */
    const char *len = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (len && strtoull(len, NULL, 10) > cfg->max_upload_bytes + MULTIPART_SLACK) {
        char d[128];
        snprintf(d, sizeof d, "File too large: the limit is %llu bytes",
                 (unsigned long long)cfg->max_upload_bytes);
        refuse(u, 413, d);
        return u;
    }
    /* NULL for a body that is not a form: then there is no `file` (422). */
    u->pp = MHD_create_post_processor(conn, 64 * 1024, on_part, u);
    return u;
}

void api_upload_feed(ApiUpload *u, const char *data, size_t n) {
    if (!u || !u->pp || u->refused || !n) return;
    if (MHD_post_process(u->pp, data, n) != MHD_YES)
        refuse(u, 400, "The multipart form data could not be parsed");
}

unsigned api_upload_refused(const ApiUpload *u) {
    return u ? u->refused : 500;
}

/* The seed's queue body, with its separators; the name JSON-escaped as
 * Python's json.dumps does (ASCII only). */
static char *queue_body(const ApiUpload *u) {
    json_t *name = json_string(u->name);
    if (!name) {
        /* Not UTF-8: keep the ASCII and mark every other byte. */
        char fixed[NAME_MAX_BYTES + 1];
        size_t i = 0;
        for (; u->name[i]; i++)
            fixed[i] = (unsigned char)u->name[i] < 0x80 ? u->name[i] : '?';
        fixed[i] = 0;
        name = json_string(fixed);
    }
    json_t *path = json_string(u->key);
    char *n = name ? json_dumps(name, JSON_ENCODE_ANY | JSON_ENSURE_ASCII) : NULL;
    char *p = path ? json_dumps(path, JSON_ENCODE_ANY | JSON_ENSURE_ASCII) : NULL;
    char *body = NULL;
    if (n && p &&
        asprintf(&body, "{\"job_id\": \"%s\", \"file_path\": %s, \"file_name\": %s}", u->job_id, p,
                 n) < 0)
        body = NULL;
    free(n);
    free(p);
    json_decref(name);
    json_decref(path);
    return body;
}

static unsigned fail(char **body, unsigned status, const char *detail) {
    *body = api_detail_json(detail);
    return status;
}

/* FastAPI's answer for a missing form field. */
static unsigned missing_file(char **body, const char *type, const char *text) {
    json_t *o = json_pack("{s:[{s:s, s:[s,s], s:s, s:n}]}", "detail", "type", type, "loc", "body",
                          "file", "msg", text, "input");
    *body = o ? json_dumps(o, 0) : NULL;
    json_decref(o);
    return 422;
}

/* Commit, record, enqueue; each failure undoes the steps before it. */
static unsigned commit_job(ApiUpload *u, char **body) {
    char msg[512];
    StoreWriter *w = u->w;
    u->w = NULL;
    if (store_commit(w, msg, sizeof msg)) {
        di_log("error", "upload %s: commit: %s", u->job_id, msg);
        return fail(body, 500, "Could not store the uploaded file");
    }
    char prefix[64];
    snprintf(prefix, sizeof prefix, "uploads/%s/", u->job_id);
    Job job = {0};
    job.job_id = u->job_id;
    job.file_name = u->name;
    job.file_path = u->key;
    job.state = JOB_QUEUED;
    job.callback_url = u->callback_len ? u->callback : NULL;
    if (meta_create(u->cfg->meta, &job, msg, sizeof msg)) {
        di_log("error", "upload %s: record: %s", u->job_id, msg);
        store_delete_prefix(u->cfg->store, prefix, msg, sizeof msg);
        return fail(body, 500, "Could not record the job");
    }
    char *qbody = queue_body(u);
    int rc = qbody ? queue_send(u->cfg->queue, qbody, strlen(qbody), NULL, 0, msg, sizeof msg)
                   : DI_ENOMEM;
    free(qbody);
    if (rc) {
        di_log("error", "upload %s: enqueue: %s", u->job_id,
               rc == DI_ENOMEM ? "out of memory" : msg);
        meta_delete(u->cfg->meta, u->job_id, msg, sizeof msg);
        store_delete_prefix(u->cfg->store, prefix, msg, sizeof msg);
        return fail(body, 500, "Could not queue the job for processing");
    }
    json_t *o = json_pack("{s:s, s:s}", "job_id", u->job_id, "status", "queued");
    *body = o ? json_dumps(o, 0) : NULL;
    json_decref(o);
    di_log("info", "upload %s: %s (%llu bytes) queued", u->job_id, u->key,
           (unsigned long long)u->bytes);
    return 200;
}

unsigned api_upload_finish(ApiUpload *u, char **body) {
    *body = NULL;
    if (!u) return fail(body, 500, "Out of memory");
    if (u->pp) {
        MHD_destroy_post_processor(u->pp);
        u->pp = NULL;
    }
    if (u->refused) return fail(body, u->refused, u->detail);
    if (!u->file_parts) return missing_file(body, "missing", "Field required");
    if (!u->file_has_name)
        return missing_file(body, "value_error",
                            "Value error, Expected UploadFile, received: <class 'str'>");
    if (u->bytes == 0) return fail(body, 400, "The uploaded file is empty");
    if (!u->w) start_blob(u); /* a file shorter than the sniff window */
    if (u->refused) return fail(body, u->refused, u->detail);
    return commit_job(u, body);
}

void api_upload_free(ApiUpload *u) {
    if (!u) return;
    if (u->pp) MHD_destroy_post_processor(u->pp);
    store_abort(u->w);
    free(u);
}
