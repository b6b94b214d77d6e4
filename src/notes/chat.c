/* The HTTP and retry layer of the "openai" note generator; see chat.h. */
#include "notes/chat.h"

#include "core/core.h"

#include <ctype.h>
#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* An answer bigger than this is not a diary entry; stop reading. */
#define MAX_REPLY_BYTES (4u << 20)
/* Server messages we quote are cut to this many bytes. */
#define MAX_QUOTE 300
/* Connecting should never take long, even when a whole answer may. */
#define CONNECT_TIMEOUT_S 10.0

struct ChatClient {
    char *url;         /* {base_url}/chat/completions */
    char *api_key;     /* NULL when the server needs none */
    char *auth_header; /* "Authorization: Bearer KEY", NULL without a key */
    char *model;
    double temperature;
    int max_tokens;
    double request_timeout_s;
    int max_attempts;
    double backoff_base_s, backoff_max_s;
    pthread_mutex_t lock; /* guards rng and plain_json: a generator may be shared */
    DiRng rng;
    int plain_json;
};

/* One HTTP exchange as curl saw it. */
typedef struct {
    CURLcode curl_code;
    long status;
    char *body;
    size_t len;
    int too_big;
    char status_line[128];
    char retry_after[64];
    char errbuf[CURL_ERROR_SIZE];
} Reply;

/* What to do after one attempt. */
typedef enum { OUTCOME_OK, OUTCOME_RETRY, OUTCOME_FATAL } Outcome;

/* What became of one answer. */
typedef enum { ANSWER_OK, ANSWER_INVALID, ANSWER_REFUSED, ANSWER_NOMEM } AnswerKind;

/* ---- Messages that never show the key ----------------------------------- */

/* A copy of s with every occurrence of key replaced by "sk-***". */
static char *redacted(const char *key, const char *s) {
    size_t klen = key ? strlen(key) : 0, n = strlen(s);
    size_t size = n + 1 + (klen ? (n / klen + 1) * 6 : 0);
    char *out = malloc(size);
    if (!out) return NULL;
    size_t o = 0;
    for (const char *p = s; *p;) {
        if (klen && strncmp(p, key, klen) == 0) {
            memcpy(out + o, "sk-***", 6);
            o += 6;
            p += klen;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = 0;
    return out;
}

/* Formats, redacts, then truncates into dst: redacting before truncating
 * means a key cut in half at the end of a buffer cannot slip through. */
static void format_redacted(const ChatClient *c, char *dst, size_t cap, const char *fmt,
                            va_list ap) {
    if (!dst || !cap) return;
    char *raw = NULL;
    if (vasprintf(&raw, fmt, ap) < 0) {
        snprintf(dst, cap, "out of memory while formatting a message");
        return;
    }
    char *safe = redacted(c->api_key, raw);
    free(raw);
    snprintf(dst, cap, "%s", safe ? safe : "(message withheld: out of memory)");
    free(safe);
}

static int chat_fail(const ChatClient *c, char *msg, size_t cap, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int chat_fail(const ChatClient *c, char *msg, size_t cap, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    format_redacted(c, msg, cap, fmt, ap);
    va_end(ap);
    return code;
}

static void chat_log(const ChatClient *c, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void chat_log(const ChatClient *c, const char *level, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    format_redacted(c, line, sizeof line, fmt, ap);
    va_end(ap);
    di_log(level, "openai: %s", line);
}

/* ---- Client ------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_code;

static void curl_init_once(void) {
    curl_init_code = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static double positive_or(double v, double fallback) {
    return v > 0 ? v : fallback;
}

int chat_client_create(const NoteConfig *cfg, uint64_t seed, ChatClient **out, char *msg,
                       size_t cap) {
    if (!cfg || !out) return di_fail(msg, cap, DI_EINVAL, "chat: no config");
    *out = NULL;
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_code != CURLE_OK)
        return di_fail(msg, cap, DI_EINTERNAL, "libcurl: %s", curl_easy_strerror(curl_init_code));
    const char *base =
        cfg->base_url && cfg->base_url[0] ? cfg->base_url : "https://api.openai.com/v1";
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--; /* "…/v1/" and "…/v1" are the same API */
    if (strncmp(base, "http://", 7) && strncmp(base, "https://", 8))
        return di_fail(msg, cap, DI_EINVAL, "base URL must start with http:// or https://");
    const char *model = cfg->model && cfg->model[0] ? cfg->model : "gpt-4o-mini";

    ChatClient *c = calloc(1, sizeof *c);
    if (!c) return di_fail(msg, cap, DI_ENOMEM, "out of memory");
    pthread_mutex_init(&c->lock, NULL);
    int ok = asprintf(&c->url, "%.*s/chat/completions", (int)blen, base) >= 0;
    if (!ok) c->url = NULL;
    c->model = strdup(model);
    ok = ok && c->model;
    if (ok && cfg->api_key && cfg->api_key[0]) {
        c->api_key = strdup(cfg->api_key);
        if (asprintf(&c->auth_header, "Authorization: Bearer %s", cfg->api_key) < 0)
            c->auth_header = NULL;
        ok = c->api_key && c->auth_header;
    }
    if (!ok) {
        chat_client_free(c);
        return di_fail(msg, cap, DI_ENOMEM, "out of memory");
    }
    c->temperature = cfg->temperature < 0 ? 0 : cfg->temperature > 2 ? 2 : cfg->temperature;
    c->max_tokens = cfg->max_tokens > 0 ? cfg->max_tokens : 1500;
    c->request_timeout_s = positive_or(cfg->request_timeout_s, 120);
    c->max_attempts = cfg->max_attempts > 0 ? cfg->max_attempts : 6;
    c->backoff_base_s = positive_or(cfg->backoff_base_s, 1.0);
    c->backoff_max_s = positive_or(cfg->backoff_max_s, 30);
    di_rng_seed(&c->rng, seed);
    *out = c;
    return 0;
}

void chat_client_free(ChatClient *c) {
    if (!c) return;
    free(c->url);
    free(c->model);
    free(c->api_key);
    free(c->auth_header);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

int chat_plain_json(ChatClient *c) {
    pthread_mutex_lock(&c->lock);
    int plain = c->plain_json;
    pthread_mutex_unlock(&c->lock);
    return plain;
}

static void set_plain_json(ChatClient *c) {
    pthread_mutex_lock(&c->lock);
    c->plain_json = 1;
    pthread_mutex_unlock(&c->lock);
}

/* ---- Request body ------------------------------------------------------- */

/* Only model, messages, temperature, max_tokens and (unless the server
 * rejected it) response_format: the fields every OpenAI-compatible server
 * (OpenAI, Ollama, llama.cpp's server, vLLM) accepts as they are. */
static char *build_body(const ChatClient *c, const char *system, const char *user,
                        const char *schema_name, const json_t *schema, int plain) {
    char *sys_text = NULL, *schema_text = NULL;
    if (plain) {
        /* Without response_format the schema has to travel in the prompt. */
        schema_text = json_dumps(schema, JSON_COMPACT | JSON_SORT_KEYS);
        if (!schema_text ||
            asprintf(&sys_text,
                     "%s\n\nAnswer with one JSON object only: no text before or after it and no "
                     "code fence. It must match this JSON Schema exactly (every key present, no "
                     "other keys):\n%s",
                     system, schema_text) < 0)
            sys_text = NULL;
        free(schema_text);
        if (!sys_text) return NULL;
    }
    json_t *body =
        json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:f, s:i}", "model", c->model, "messages",
                  "role", "system", "content", plain ? sys_text : system, "role", "user", "content",
                  user, "temperature", c->temperature, "max_tokens", c->max_tokens);
    free(sys_text);
    if (body && !plain) {
        json_t *format = json_pack("{s:s, s:{s:s, s:b, s:O}}", "type", "json_schema", "json_schema",
                                   "name", schema_name, "strict", 1, "schema", schema);
        if (!format || json_object_set_new(body, "response_format", format) < 0) {
            json_decref(body);
            body = NULL;
        }
    }
    /* Six significant digits print 0.2 as 0.2, not as a float's 0.2000000029…. */
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(body);
    return text;
}

/* ---- One HTTP exchange -------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t n, void *user) {
    Reply *r = user;
    size_t add = size * n;
    if (r->len + add > MAX_REPLY_BYTES) {
        r->too_big = 1;
        return 0; /* makes curl stop with CURLE_WRITE_ERROR */
    }
    char *grown = realloc(r->body, r->len + add + 1);
    if (!grown) return 0;
    memcpy(grown + r->len, data, add);
    r->body = grown;
    r->len += add;
    r->body[r->len] = 0;
    return add;
}

/* Copies a header's value without its trailing CR LF. */
static void copy_trimmed(char *dst, size_t cap, const char *src, size_t n) {
    while (n > 0 && isspace((unsigned char)*src))
        src++, n--;
    while (n > 0 && isspace((unsigned char)src[n - 1]))
        n--;
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

static size_t on_header(char *data, size_t size, size_t n, void *user) {
    Reply *r = user;
    size_t len = size * n;
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        /* A new response starts (after a 100 Continue, say): forget the last one's headers. */
        copy_trimmed(r->status_line, sizeof r->status_line, data, len);
        r->retry_after[0] = 0;
    } else if (len > 12 && strncasecmp(data, "Retry-After:", 12) == 0) {
        copy_trimmed(r->retry_after, sizeof r->retry_after, data + 12, len - 12);
    }
    return len;
}

static void reply_free(Reply *r) {
    free(r->body);
    memset(r, 0, sizeof *r);
}

static void send_once(const ChatClient *c, const char *body, double timeout_s, Reply *r) {
    memset(r, 0, sizeof *r);
    CURL *h = curl_easy_init();
    struct curl_slist *headers = NULL, *next;
    const char *lines[] = {"Content-Type: application/json", "Accept: application/json",
                           "Expect:" /* no 100-continue round trip for big bodies */,
                           c->auth_header};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        if (!lines[i]) continue;
        next = curl_slist_append(headers, lines[i]);
        if (!next) break;
        headers = next;
    }
    if (!h || !headers) {
        r->curl_code = CURLE_OUT_OF_MEMORY;
        curl_easy_cleanup(h);
        curl_slist_free_all(headers);
        return;
    }
    long timeout_ms = (long)ceil(timeout_s * 1000);
    if (timeout_ms < 1) timeout_ms = 1;
    long connect_ms = (long)ceil(fmin(timeout_s, CONNECT_TIMEOUT_S) * 1000);
    curl_easy_setopt(h, CURLOPT_URL, c->url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "diarist");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* timeouts without SIGALRM: we may run in threads */
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    /* A redirect could carry the Authorization header to another host; an
     * API endpoint has no reason to redirect a POST, so none is followed. */
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    r->curl_code = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
}

/* ---- Classifying an exchange -------------------------------------------- */

/* The server's own words about an error: error.message (OpenAI, vLLM),
 * error as a string (Ollama), message, else the status line. */
static void server_message(const Reply *r, char *out, size_t cap) {
    json_t *root = r->body ? json_loads(r->body, 0, NULL) : NULL;
    json_t *err = json_object_get(root, "error");
    const char *text = json_string_value(json_object_get(err, "message"));
    if (!text) text = json_string_value(err);
    if (!text) text = json_string_value(json_object_get(root, "message"));
    if (!text) text = r->status_line[0] ? r->status_line : "no message";
    snprintf(out, cap, "%s", text);
    json_decref(root);
}

static int curl_code_is_transient(CURLcode code) {
    switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
        return 1;
    default:
        return 0;
    }
}

static int status_is_transient(long status) {
    return status == 408 || status == 409 || status == 429 || status >= 500;
}

/* Decides what one exchange means and describes it in `why`. The server's
 * message is redacted here, before it is cut to MAX_QUOTE bytes, so that a
 * key echoed near the cut cannot leak a prefix. */
static Outcome classify(const ChatClient *c, const Reply *r, char *why, size_t cap) {
    if (r->curl_code != CURLE_OK) {
        if (r->too_big) {
            snprintf(why, cap, "the answer is larger than %u bytes", MAX_REPLY_BYTES);
            return OUTCOME_FATAL;
        }
        const char *detail = r->errbuf[0] ? r->errbuf : curl_easy_strerror(r->curl_code);
        snprintf(why, cap, "%s", detail);
        return curl_code_is_transient(r->curl_code) ? OUTCOME_RETRY : OUTCOME_FATAL;
    }
    if (r->status >= 200 && r->status < 300) return OUTCOME_OK;
    char raw[4096];
    server_message(r, raw, sizeof raw);
    char *safe = redacted(c->api_key, raw);
    snprintf(why, cap, "HTTP %ld: %.*s", r->status, MAX_QUOTE, safe ? safe : "(withheld)");
    free(safe);
    return status_is_transient(r->status) ? OUTCOME_RETRY : OUTCOME_FATAL;
}

/* A 400 of this kind means "I do not do structured outputs". */
static int rejects_response_format(long status, const char *why) {
    if (status != 400) return 0;
    const char *hints[] = {"response_format", "response format", "json_schema",
                           "structured output"};
    for (size_t i = 0; i < sizeof hints / sizeof hints[0]; i++)
        if (strcasestr(why, hints[i])) return 1;
    return 0;
}

/* ---- Backoff ------------------------------------------------------------ */

/* Seconds the server asked us to wait, or -1. Retry-After is either
 * delta-seconds or an HTTP-date. */
static double retry_after_s(const char *value) {
    if (!value[0]) return -1;
    char *end;
    double s = strtod(value, &end);
    if (end != value && *end == 0 && isfinite(s)) return s < 0 ? 0 : s;
    time_t when = curl_getdate(value, NULL);
    if (when == (time_t)-1) return -1;
    double d = difftime(when, time(NULL));
    return d < 0 ? 0 : d;
}

/* Full jitter: uniform in [0, min(max, base * 2^(attempt-1))], so clients
 * that failed together do not come back together. */
static double backoff_s(ChatClient *c, int attempt) {
    double ceiling = fmin(c->backoff_max_s, c->backoff_base_s * ldexp(1.0, attempt - 1));
    pthread_mutex_lock(&c->lock);
    double u = di_rng_uniform(&c->rng);
    pthread_mutex_unlock(&c->lock);
    return u * ceiling;
}

static void sleep_s(double s) {
    if (s <= 0) return;
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* ---- Attempts ----------------------------------------------------------- */

/* Returned by post_with_retries when the server refused response_format. */
#define FORMAT_REJECTED 1

/* Posts body until a 2xx arrives (0, *r filled), the error is not worth
 * retrying, attempts run out or the deadline would pass. */
static int post_with_retries(ChatClient *c, const char *body, int plain, double deadline, Reply *r,
                             char *msg, size_t cap) {
    char why[512] = "no attempt made";
    for (int attempt = 1; attempt <= c->max_attempts; attempt++) {
        double remaining = deadline - di_now();
        if (remaining <= 0)
            return chat_fail(c, msg, cap, DI_EIO, "deadline exceeded after %d attempts: %s",
                             attempt - 1, why);
        send_once(c, body, fmin(c->request_timeout_s, remaining), r);
        Outcome outcome = classify(c, r, why, sizeof why);
        if (outcome == OUTCOME_OK) {
            /* A success after failures is news; a first-time success is not. */
            chat_log(c, attempt > 1 ? "info" : "debug", "attempt %d: HTTP %ld", attempt, r->status);
            return 0;
        }
        long status = r->status;
        if (outcome == OUTCOME_FATAL) {
            reply_free(r);
            if (!plain && rejects_response_format(status, why)) {
                chat_log(c, "info", "attempt %d: %s; asking again without response_format", attempt,
                         why);
                return FORMAT_REJECTED;
            }
            chat_log(c, "warn", "attempt %d: %s; not retried", attempt, why);
            return chat_fail(c, msg, cap, DI_EIO, "%s", why);
        }
        if (attempt == c->max_attempts) {
            reply_free(r);
            chat_log(c, "warn", "attempt %d: %s; giving up", attempt, why);
            break;
        }
        double delay = retry_after_s(r->retry_after);
        if (delay < 0) delay = backoff_s(c, attempt);
        reply_free(r);
        if (di_now() + delay >= deadline) {
            chat_log(c, "warn", "attempt %d: %s; a %.2fs wait would pass the deadline", attempt,
                     why, delay);
            return chat_fail(c, msg, cap, DI_EIO, "deadline exceeded after %d attempts: %s",
                             attempt, why);
        }
        chat_log(c, "warn", "attempt %d: %s; retrying in %.2fs", attempt, why, delay);
        sleep_s(delay);
    }
    return chat_fail(c, msg, cap, DI_EIO, "gave up after %d attempts: %s", c->max_attempts, why);
}

/* ---- Reading the answer ------------------------------------------------- */

/* Points into s past a ```json (or ```) fence line and cuts the closing
 * fence, for servers that wrap JSON in markdown. */
static char *strip_fence(char *s) {
    while (isspace((unsigned char)*s))
        s++;
    if (strncmp(s, "```", 3) != 0) return s;
    char *nl = strchr(s, '\n');
    if (!nl) return s;
    s = nl + 1;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    if (end - s >= 3 && strncmp(end - 3, "```", 3) == 0) end -= 3;
    *end = 0;
    return s;
}

/* Reads choices[0].message of a chat.completion into *out (a JSON object
 * valid under schema); otherwise says in `why` what was wrong. */
static AnswerKind read_answer(const ChatClient *c, const char *body, const json_t *schema,
                              json_t **out, char *why, size_t cap) {
    json_error_t jerr;
    json_t *root = json_loads(body ? body : "", 0, &jerr);
    if (!root) {
        snprintf(why, cap, "the server's answer is not JSON: %s", jerr.text);
        return ANSWER_INVALID;
    }
    json_t *choice = json_array_get(json_object_get(root, "choices"), 0);
    json_t *message = json_object_get(choice, "message");
    const char *refusal = json_string_value(json_object_get(message, "refusal"));
    const char *content = json_string_value(json_object_get(message, "content"));
    const char *finish = json_string_value(json_object_get(choice, "finish_reason"));
    int cut_off = finish && strcmp(finish, "length") == 0;
    AnswerKind kind = ANSWER_INVALID;
    if (!json_is_object(message)) {
        snprintf(why, cap, "the answer has no choices[0].message");
    } else if (refusal && refusal[0]) {
        char *safe = redacted(c->api_key, refusal); /* before the cut, as in classify */
        snprintf(why, cap, "%.*s", MAX_QUOTE, safe ? safe : "(withheld)");
        free(safe);
        kind = ANSWER_REFUSED;
    } else if (!content) {
        snprintf(why, cap, "the answer has no content%s",
                 cut_off ? " (cut off at max_tokens)" : "");
    } else {
        char *text = strdup(content);
        json_t *value = text ? json_loads(strip_fence(text), 0, &jerr) : NULL;
        char vmsg[256];
        if (!text) {
            kind = ANSWER_NOMEM;
        } else if (!value) {
            snprintf(why, cap, "the content is not JSON (%s)%s", jerr.text,
                     cut_off ? "; it was cut off at max_tokens" : "");
        } else if (!json_is_object(value)) {
            snprintf(why, cap, "the content is not a JSON object");
        } else if (notes_validate_schema(value, schema, vmsg, sizeof vmsg) != 0) {
            snprintf(why, cap, "the content does not match the schema: %s", vmsg);
        } else {
            *out = json_incref(value);
            kind = ANSWER_OK;
        }
        json_decref(value);
        free(text);
    }
    json_decref(root);
    return kind;
}

int chat_json(ChatClient *c, const char *system, const char *user, const char *schema_name,
              const json_t *schema, double deadline, json_t **out, char *msg, size_t cap) {
    if (!c || !system || !user || !schema_name || !schema || !out)
        return di_fail(msg, cap, DI_EINVAL, "chat_json: missing argument");
    *out = NULL;
    char why[512] = "";
    for (int tries = 0; tries < CHAT_ANSWER_TRIES;) {
        int plain = chat_plain_json(c);
        char *body = build_body(c, system, user, schema_name, schema, plain);
        if (!body) return di_fail(msg, cap, DI_ENOMEM, "out of memory building the request");
        Reply r;
        int rc = post_with_retries(c, body, plain, deadline, &r, msg, cap);
        free(body);
        if (rc == FORMAT_REJECTED) {
            /* Not counted as a try: the model has not answered yet. From
             * now on the schema travels in the system message instead. */
            set_plain_json(c);
            continue;
        }
        if (rc < 0) return rc;
        AnswerKind kind = read_answer(c, r.body, schema, out, why, sizeof why);
        reply_free(&r);
        if (kind == ANSWER_OK) return 0;
        if (kind == ANSWER_NOMEM) return di_fail(msg, cap, DI_ENOMEM, "out of memory");
        if (kind == ANSWER_REFUSED)
            return chat_fail(c, msg, cap, DI_EFORMAT, "the model refused: %s", why);
        tries++;
        chat_log(c, "warn", "answer %d of %d rejected: %s", tries, CHAT_ANSWER_TRIES, why);
        if (tries < CHAT_ANSWER_TRIES && di_now() >= deadline)
            return chat_fail(c, msg, cap, DI_EFORMAT, "deadline exceeded after %d answers: %s",
                             tries, why);
    }
    return chat_fail(c, msg, cap, DI_EFORMAT, "no valid answer in %d tries: %s", CHAT_ANSWER_TRIES,
                     why);
}
