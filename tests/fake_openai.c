/* A local OpenAI-compatible chat-completions server for tests; see
 * fake_openai.h. Thread per connection, so a hanging answer never holds up
 * the others; one mutex guards the script and the record. */
#include "fake_openai.h"

#include "core/core.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FAKE_MAX_REQUESTS 4096
#define FAKE_MAX_QUEUE 256
#define FAKE_MAX_BODY (16u << 20)

struct FakeOpenAI {
    struct MHD_Daemon *daemon;
    char url[64];
    pthread_mutex_t lock;
    pthread_cond_t wake; /* broadcast at stop so hanging answers return */
    int stopping;
    FakeBehaviour queue[FAKE_MAX_QUEUE];
    int head, tail; /* queue[head, tail) */
    FakeBehaviour fallback;
    /* Records are allocated one by one and never move, so a pointer handed
     * to the test stays valid while more requests arrive. */
    FakeRequest *requests[FAKE_MAX_REQUESTS];
    int count;
};

/* The body of a request as MHD hands it over in pieces. */
typedef struct {
    char *data;
    size_t len;
    int too_big;
} Upload;

/* ---- Behaviours --------------------------------------------------------- */

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

static FakeBehaviour behaviour_copy(FakeBehaviour b) {
    b.content = dup_or_null(b.content);
    b.message = dup_or_null(b.message);
    b.retry_after = dup_or_null(b.retry_after);
    return b;
}

static void behaviour_free(FakeBehaviour *b) {
    free((char *)b->content);
    free((char *)b->message);
    free((char *)b->retry_after);
}

void fake_openai_push(FakeOpenAI *f, FakeBehaviour b) {
    pthread_mutex_lock(&f->lock);
    if (f->tail < FAKE_MAX_QUEUE) f->queue[f->tail++] = behaviour_copy(b);
    pthread_mutex_unlock(&f->lock);
}

void fake_openai_set_default(FakeOpenAI *f, FakeBehaviour b) {
    pthread_mutex_lock(&f->lock);
    behaviour_free(&f->fallback);
    f->fallback = behaviour_copy(b);
    pthread_mutex_unlock(&f->lock);
}

/* The next behaviour, a copy the caller frees. */
static FakeBehaviour next_behaviour(FakeOpenAI *f) {
    pthread_mutex_lock(&f->lock);
    FakeBehaviour b;
    if (f->head < f->tail)
        b = f->queue[f->head++];
    else
        b = behaviour_copy(f->fallback);
    pthread_mutex_unlock(&f->lock);
    return b;
}

/* ---- Records ------------------------------------------------------------ */

/* Stores the request and returns its 1-based number. */
static int record(FakeOpenAI *f, struct MHD_Connection *conn, const char *method, const char *url,
                  const Upload *up) {
    FakeRequest *r = calloc(1, sizeof *r);
    if (!r) return 0;
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(r->path, sizeof r->path, "%s", url);
    r->authorization =
        dup_or_null(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"));
    r->raw = strndup(up->data ? up->data : "", up->len);
    r->body = r->raw ? json_loads(r->raw, 0, NULL) : NULL;
    r->received_at = di_now();
    pthread_mutex_lock(&f->lock);
    int number = 0;
    if (f->count < FAKE_MAX_REQUESTS) {
        f->requests[f->count++] = r;
        number = f->count;
    }
    pthread_mutex_unlock(&f->lock);
    if (!number) {
        free(r->authorization);
        free(r->raw);
        json_decref(r->body);
        free(r);
    }
    return number;
}

int fake_openai_count(FakeOpenAI *f) {
    pthread_mutex_lock(&f->lock);
    int n = f->count;
    pthread_mutex_unlock(&f->lock);
    return n;
}

const FakeRequest *fake_openai_request(FakeOpenAI *f, int i) {
    pthread_mutex_lock(&f->lock);
    const FakeRequest *r = i >= 0 && i < f->count ? f->requests[i] : NULL;
    pthread_mutex_unlock(&f->lock);
    return r;
}

const char *fake_request_message(const FakeRequest *r, const char *role) {
    json_t *messages = r ? json_object_get(r->body, "messages") : NULL;
    const char *found = NULL;
    for (size_t i = 0; i < json_array_size(messages); i++) {
        json_t *m = json_array_get(messages, i);
        const char *mrole = json_string_value(json_object_get(m, "role"));
        if (mrole && !strcmp(mrole, role)) found = json_string_value(json_object_get(m, "content"));
    }
    return found;
}

/* ---- Answers ------------------------------------------------------------ */

json_t *fake_openai_entry(const char *date) {
    return json_pack(
        "{s:s, s:s, s:{s:s, s:i, s:f}, s:s, s:[s,s], s:s, s:[s], s:[s],"
        " s:[{s:s, s:n}, {s:s, s:s}], s:[s,s], s:s}",
        "date", date, "title", "A quiet Tuesday", "mood", "label", "content", "intensity", 6,
        "valence", 0.4, "summary", "I walked to the market and called my sister.", "key_events",
        "walked to the market", "called Anna", "reflections", "I felt calmer after talking to her.",
        "people", "Anna", "places", "market", "action_items", "task", "buy stamps", "due", "task",
        "call the dentist", "due", "2024-03-06", "tags", "family", "errands", "language", "en");
}

/* A chat.completion around one message (content or refusal, one NULL). */
static char *completion(const char *model, int number, const char *content, const char *refusal) {
    char id[32];
    snprintf(id, sizeof id, "chatcmpl-fake-%d", number);
    json_t *root =
        json_pack("{s:s, s:s, s:i, s:s, s:[{s:i, s:{s:s, s:o, s:o}, s:s, s:n}],"
                  " s:{s:i, s:i, s:i}}",
                  "id", id, "object", "chat.completion", "created", 1700000000, "model",
                  model ? model : "fake", "choices", "index", 0, "message", "role", "assistant",
                  "content", content ? json_string(content) : json_null(), "refusal",
                  refusal ? json_string(refusal) : json_null(), "finish_reason", "stop", "logprobs",
                  "usage", "prompt_tokens", 100, "completion_tokens", 50, "total_tokens", 150);
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return text;
}

/* Does the request's schema describe a whole entry? */
static int wants_entry(const json_t *body) {
    json_t *format = json_object_get(body, "response_format");
    if (format) {
        json_t *props = json_object_get(
            json_object_get(json_object_get(format, "json_schema"), "schema"), "properties");
        return json_object_get(props, "reflections") != NULL;
    }
    const char *system = NULL;
    json_t *messages = json_object_get(body, "messages");
    for (size_t i = 0; i < json_array_size(messages); i++) {
        json_t *m = json_array_get(messages, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        if (role && !strcmp(role, "system"))
            system = json_string_value(json_object_get(m, "content"));
    }
    return system && strstr(system, "\"reflections\"");
}

static char *echo_content(const FakeRequest *r, int number) {
    json_t *answer;
    if (wants_entry(r->body)) {
        answer = fake_openai_entry("1999-12-31");
    } else {
        const char *user = fake_request_message(r, "user");
        char *summary = NULL;
        if (asprintf(&summary, "partial summary #%d: %s", number, user ? user : "") < 0)
            return NULL;
        answer = json_pack("{s:s, s:[s], s:[], s:[], s:[], s:s}", "summary", summary, "key_events",
                           "something happened", "people", "places", "action_items", "mood_notes",
                           "steady");
        free(summary);
    }
    char *text = answer ? json_dumps(answer, JSON_COMPACT) : NULL;
    json_decref(answer);
    return text;
}

static char *sample_content(void) {
    json_t *entry = fake_openai_entry("1999-12-31");
    char *text = entry ? json_dumps(entry, JSON_COMPACT) : NULL;
    json_decref(entry);
    return text;
}

static enum MHD_Result send_text(struct MHD_Connection *conn, unsigned status, const char *text,
                                 const char *retry_after) {
    const char *body = text ? text : "{\"error\":{\"message\":\"fake: out of memory\"}}";
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    if (retry_after) MHD_add_response_header(resp, "Retry-After", retry_after);
    enum MHD_Result ret = MHD_queue_response(conn, text ? status : 500, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *message,
                                  const char *retry_after) {
    json_t *root =
        json_pack("{s:{s:s, s:s, s:s}}", "error", "message", message ? message : "fake error",
                  "type", "invalid_request_error", "code", "fake_error");
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    enum MHD_Result ret = send_text(conn, status, text, retry_after);
    free(text);
    return ret;
}

static enum MHD_Result send_content(struct MHD_Connection *conn, const FakeRequest *r, int number,
                                    const char *content, const char *refusal) {
    const char *model = json_string_value(json_object_get(r ? r->body : NULL, "model"));
    char *text = completion(model, number, content, refusal);
    enum MHD_Result ret = send_text(conn, 200, text, NULL);
    free(text);
    return ret;
}

/* Sleeps up to seconds, returning early once the server is stopping. */
static void hang(FakeOpenAI *f, double seconds) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    double end = (double)until.tv_sec + until.tv_nsec * 1e-9 + seconds;
    until.tv_sec = (time_t)end;
    until.tv_nsec = (long)((end - (double)until.tv_sec) * 1e9);
    pthread_mutex_lock(&f->lock);
    while (!f->stopping && pthread_cond_timedwait(&f->wake, &f->lock, &until) != ETIMEDOUT) {
    }
    pthread_mutex_unlock(&f->lock);
}

static enum MHD_Result answer(FakeOpenAI *f, struct MHD_Connection *conn, const FakeRequest *r,
                              int number, FakeBehaviour *b) {
    switch (b->kind) {
    case FAKE_HANG:
        hang(f, b->hang_s); /* then answer like FAKE_OK */
        /* fall through */
    case FAKE_OK: {
        char *sample = b->content ? NULL : sample_content();
        enum MHD_Result ret = send_content(conn, r, number, b->content ? b->content : sample, NULL);
        free(sample);
        return ret;
    }
    case FAKE_REFUSAL:
        return send_content(conn, r, number, NULL,
                            b->content ? b->content : "I can't help with that.");
    case FAKE_STATUS:
        return send_error(conn, (unsigned)b->status, b->message, b->retry_after);
    case FAKE_MALFORMED:
        return send_text(conn, 200, "{\"id\": \"chatcmpl-broken\", \"choices\": [", NULL);
    case FAKE_REJECT_FORMAT: /* without response_format it echoes */
        if (json_object_get(r->body, "response_format"))
            return send_error(conn, 400, "response_format is not supported", NULL);
        /* fall through */
    case FAKE_ECHO:
    default: {
        char *content = echo_content(r, number);
        enum MHD_Result ret = send_content(conn, r, number, content, NULL);
        free(content);
        return ret;
    }
    }
}

/* ---- MHD callbacks ------------------------------------------------------ */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    (void)version;
    FakeOpenAI *f = cls;
    Upload *up = *con_cls;
    if (!up) { /* first call: only the headers have arrived */
        up = calloc(1, sizeof *up);
        if (!up) return MHD_NO;
        *con_cls = up;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (up->too_big || up->len + n > FAKE_MAX_BODY) {
            up->too_big = 1;
            return MHD_YES;
        }
        char *grown = realloc(up->data, up->len + n + 1);
        if (!grown) return MHD_NO;
        memcpy(grown + up->len, upload_data, n);
        up->data = grown;
        up->len += n;
        up->data[up->len] = 0;
        return MHD_YES;
    }
    int number = record(f, conn, method, url, up);
    const FakeRequest *r = number ? fake_openai_request(f, number - 1) : NULL;
    if (strcmp(method, "POST") != 0 || strcmp(url, "/v1/chat/completions") != 0)
        return send_error(conn, 404, "fake: no such endpoint", NULL);
    if (!r || up->too_big) return send_error(conn, 413, "fake: request too large", NULL);
    FakeBehaviour b = next_behaviour(f);
    enum MHD_Result ret = answer(f, conn, r, number, &b);
    behaviour_free(&b);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code) {
    (void)cls, (void)conn, (void)code;
    Upload *up = *con_cls;
    if (up) {
        free(up->data);
        free(up);
    }
    *con_cls = NULL;
}

/* ---- Life cycle --------------------------------------------------------- */

int fake_openai_start(FakeOpenAI **out) {
    *out = NULL;
    FakeOpenAI *f = calloc(1, sizeof *f);
    if (!f) return -1;
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->wake, NULL);
    f->fallback = fake_echo();
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(0)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
                                 NULL, NULL, on_request, f, MHD_OPTION_SOCK_ADDR, &addr,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, f,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    const union MHD_DaemonInfo *info =
        f->daemon ? MHD_get_daemon_info(f->daemon, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    if (!info || !info->port) {
        fake_openai_stop(f);
        return -1;
    }
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%u/v1", (unsigned)info->port);
    *out = f;
    return 0;
}

const char *fake_openai_url(const FakeOpenAI *f) {
    return f->url;
}

void fake_openai_stop(FakeOpenAI *f) {
    if (!f) return;
    pthread_mutex_lock(&f->lock);
    f->stopping = 1;
    pthread_cond_broadcast(&f->wake);
    pthread_mutex_unlock(&f->lock);
    if (f->daemon) MHD_stop_daemon(f->daemon);
    for (int i = f->head; i < f->tail; i++)
        behaviour_free(&f->queue[i]);
    behaviour_free(&f->fallback);
    for (int i = 0; i < f->count; i++) {
        free(f->requests[i]->authorization);
        free(f->requests[i]->raw);
        json_decref(f->requests[i]->body);
        free(f->requests[i]);
    }
    pthread_cond_destroy(&f->wake);
    pthread_mutex_destroy(&f->lock);
    free(f);
}
