/* POST /upload-audio/ and POST /v1/audio/transcriptions: the multipart
 * body is parsed by libmicrohttpd's post processor and the `file` part
 * streamed into a StoreWriter as it arrives. Only the first 4 KiB are held,
 * long enough to tell plainly non-audio bytes from audio (audio_sniff)
 * before anything is written. The transcription endpoint's text fields
 * (model, language, prompt, response_format, temperature) are collected
 * with size caps, checked before the job is committed, and passed to the
 * worker as the message's "options". */
#include "api/api.h"

#include "audio/audio.h"
#include "core/core.h"
#include "output/output.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SNIFF_BYTES 4096
#define NAME_MAX_BYTES 1024
#define CALLBACK_MAX_BYTES 2048
/* OpenAI caps the prompt at 224 tokens; 4 KiB of text is well above that. */
#define PROMPT_MAX_BYTES 4096
#define SMALL_FIELD_BYTES 64
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
    int sync; /* POST /v1/audio/transcriptions: collect and check its fields */
    char model[SMALL_FIELD_BYTES + 1];
    size_t model_len;
    char language[SMALL_FIELD_BYTES + 1];
    size_t language_len;
    char format[SMALL_FIELD_BYTES + 1];
    size_t format_len;
    char temperature[SMALL_FIELD_BYTES + 1];
    size_t temperature_len;
    char prompt[PROMPT_MAX_BYTES + 1];
    size_t prompt_len;
    double temp_value; /* temperature, once checked */

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

/* Appends a piece of a text field; a field over its cap is refused rather
 * than cut, since a cut prompt or language would silently change the job. */
static void append_field(ApiUpload *u, const char *key, char *buf, size_t cap, size_t *len,
                         const char *data, size_t size) {
    if (*len + size > cap) {
        char d[128];
        snprintf(d, sizeof d, "The form field `%s` is too long: the limit is %zu bytes", key, cap);
        refuse(u, 400, d);
        return;
    }
    memcpy(buf + *len, data, size);
    *len += size;
    buf[*len] = 0;
}

/* The transcription endpoint's fields; others (OpenAI's
 * timestamp_granularities[], ...) are accepted and ignored. */
static void sync_field(ApiUpload *u, const char *key, const char *data, size_t size) {
    if (!strcmp(key, "model"))
        append_field(u, key, u->model, SMALL_FIELD_BYTES, &u->model_len, data, size);
    else if (!strcmp(key, "language"))
        append_field(u, key, u->language, SMALL_FIELD_BYTES, &u->language_len, data, size);
    else if (!strcmp(key, "response_format"))
        append_field(u, key, u->format, SMALL_FIELD_BYTES, &u->format_len, data, size);
    else if (!strcmp(key, "temperature"))
        append_field(u, key, u->temperature, SMALL_FIELD_BYTES, &u->temperature_len, data, size);
    else if (!strcmp(key, "prompt"))
        append_field(u, key, u->prompt, PROMPT_MAX_BYTES, &u->prompt_len, data, size);
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
    } else if (u->sync) {
        sync_field(u, key, data, size);
    }
    return MHD_YES;
}

ApiUpload *api_upload_new(const ApiConfig *cfg, struct MHD_Connection *conn, int sync) {
    ApiUpload *u = calloc(1, sizeof *u);
    if (!u) return NULL;
    u->cfg = cfg;
    u->sync = sync;
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

/* The worker's options for a synchronous job: {"language", "prompt",
 * "temperature", "note": false}, each only when asked for. Its client
 * wants the transcript alone, so no diary note is made. */
static char *sync_options(const ApiUpload *u) {
    json_t *o = json_pack("{s:b}", "note", 0);
    if (!o) return NULL;
    if (u->language_len) json_object_set_new(o, "language", json_string(u->language));
    if (u->prompt_len) json_object_set_new(o, "prompt", json_string(u->prompt));
    if (u->temperature_len) json_object_set_new(o, "temperature", json_real(u->temp_value));
    char *s = json_dumps(o, JSON_ENSURE_ASCII | JSON_SORT_KEYS);
    json_decref(o);
    return s;
}

/* One UTF-8 sequence at s: its code point and length, or -1 when s does not
 * start a valid, shortest-form sequence. */
static long utf8_next(const unsigned char *s, int *len) {
    static const long min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    int n = s[0] < 0x80         ? 1
            : (s[0] >> 5) == 6  ? 2
            : (s[0] >> 4) == 14 ? 3
            : (s[0] >> 3) == 30 ? 4
                                : 0;
    if (!n) return -1;
    long cp = n == 1 ? s[0] : s[0] & (0x7F >> n);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return -1;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
    *len = n;
    return cp;
}

/* s as a JSON string exactly as Python's json.dumps writes it (the seed's
 * API made the queue body that way): ASCII only, lower-case \uXXXX escapes,
 * surrogate pairs above U+FFFF, DEL escaped. A byte that is not UTF-8
 * becomes '?'. Caller frees; NULL when out of memory. */
static char *python_json_string(const char *s) {
    size_t cap = strlen(s) * 12 + 3, n = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
    out[n++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        int len = 1;
        long cp = utf8_next(p, &len);
        if (cp < 0) cp = '?';
        p += len;
        const char *esc = cp == '"'    ? "\\\""
                          : cp == '\\' ? "\\\\"
                          : cp == '\n' ? "\\n"
                          : cp == '\r' ? "\\r"
                          : cp == '\t' ? "\\t"
                          : cp == '\b' ? "\\b"
                          : cp == '\f' ? "\\f"
                                       : NULL;
        if (esc)
            n += (size_t)sprintf(out + n, "%s", esc);
        else if (cp >= 0x20 && cp < 0x7F)
            out[n++] = (char)cp;
        else if (cp < 0x10000)
            n += (size_t)sprintf(out + n, "\\u%04lx", cp);
        else
            n += (size_t)sprintf(out + n, "\\u%04lx\\u%04lx", 0xD800 + ((cp - 0x10000) >> 10),
                                 0xDC00 + ((cp - 0x10000) & 0x3FF));
    }
    out[n++] = '"';
    out[n] = 0;
    return out;
}

/* The seed's queue body, byte for byte: its key order, its separators and
 * Python's string escapes, so a seed worker and diarist read each other's
 * messages. The transcription endpoint adds its options after the seed's
 * keys (a seed worker ignores them). */
static char *queue_body(const ApiUpload *u) {
    char *n = python_json_string(u->name);
    char *p = python_json_string(u->key);
    char *opt = u->sync ? sync_options(u) : NULL;
    char *body = NULL;
    if (n && p && (!u->sync || opt) &&
        asprintf(&body, "{\"job_id\": \"%s\", \"file_path\": %s, \"file_name\": %s%s%s}", u->job_id,
                 p, n, opt ? ", \"options\": " : "", opt ? opt : "") < 0)
        body = NULL;
    free(n);
    free(p);
    free(opt);
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

/* Checks the transcription endpoint's fields; 0, or a refusal (400). The
 * model name is not checked: the server's own model always runs. */
static int check_sync_fields(ApiUpload *u) {
    if (u->format_len && strcmp(u->format, "json") && strcmp(u->format, "text") &&
        strcmp(u->format, "srt") && strcmp(u->format, "verbose_json") && strcmp(u->format, "vtt")) {
        refuse(u, 400, "Unknown response_format: use json, text, srt, verbose_json or vtt");
        return -1;
    }
    if (u->temperature_len) {
        char *end;
        double t = strtod(u->temperature, &end);
        while (isspace((unsigned char)*end))
            end++;
        if (end == u->temperature || *end || !isfinite(t) || t < 0 || t > 1) {
            refuse(u, 400, "temperature must be a number from 0 to 1");
            return -1;
        }
        u->temp_value = t;
    }
    /* Codes are lower case, as OpenAI's clients send them; "auto" or none
     * detects the language. */
    for (size_t i = 0; i < u->language_len; i++)
        u->language[i] = (char)tolower((unsigned char)u->language[i]);
    if (!strcmp(u->language, "auto")) u->language_len = 0, u->language[0] = 0;
    if (u->language_len && !output_language_name(u->language)) {
        refuse(u, 400, "Unknown language: use an ISO-639-1 code such as en, de or fr");
        return -1;
    }
    json_t *prompt = u->prompt_len ? json_string(u->prompt) : NULL;
    if (u->prompt_len && !prompt) {
        refuse(u, 400, "The prompt is not valid UTF-8 text");
        return -1;
    }
    json_decref(prompt);
    return 0;
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
    /* A synchronous job is answered in place and deleted: no callback. */
    job.callback_url = u->callback_len && !u->sync ? u->callback : NULL;
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

/* Any refusal here drops the stored bytes before the answer goes out, so a
 * client that sees an error never finds a trace of its upload. */
static unsigned refuse_now(ApiUpload *u, char **body, unsigned status, const char *detail) {
    refuse(u, status, detail);
    return fail(body, status, detail);
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
    if (u->bytes == 0) return refuse_now(u, body, 400, "The uploaded file is empty");
    /* A URL cut at the buffer's end is longer than any accepted one. */
    if (u->callback_len && !meta_callback_url_ok(u->callback))
        return refuse_now(u, body, 400,
                          "callback_url must be an http:// or https:// URL of at most 2000 "
                          "bytes, without spaces");
    if (u->sync && check_sync_fields(u)) return fail(body, u->refused, u->detail);
    if (!u->w) start_blob(u); /* a file shorter than the sniff window */
    if (u->refused) return fail(body, u->refused, u->detail);
    return commit_job(u, body);
}

const char *api_upload_job_id(const ApiUpload *u) {
    return u ? u->job_id : "";
}

const char *api_upload_format(const ApiUpload *u) {
    return u && u->format_len ? u->format : "json";
}

void api_upload_free(ApiUpload *u) {
    if (!u) return;
    if (u->pp) MHD_destroy_post_processor(u->pp);
    store_abort(u->w);
    free(u);
}
