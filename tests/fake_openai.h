/*
 * fake_openai: a local OpenAI-compatible chat-completions server for tests.
 *
 * A real HTTP server (libmicrohttpd) on 127.0.0.1 at an ephemeral port. It
 * implements POST /v1/chat/completions (anything else gets a 404), records
 * every request for the test to inspect, and answers from a script: a queue
 * of behaviours consumed one per request, then a default (FAKE_ECHO unless
 * fake_openai_set_default says otherwise). All functions are thread-safe.
 *
 *   FakeOpenAI *f;
 *   assert_int_equal(fake_openai_start(&f), 0);
 *   fake_openai_push(f, fake_status(429, "slow down", "1"));
 *   fake_openai_push(f, fake_ok(NULL));        // a valid diary entry
 *   cfg.base_url = fake_openai_url(f);         // "http://127.0.0.1:PORT/v1"
 *   ... notes_generate(...) ...
 *   assert_int_equal(fake_openai_count(f), 2);
 *   fake_openai_stop(f);
 */
#ifndef DIARIST_FAKE_OPENAI_H
#define DIARIST_FAKE_OPENAI_H

#include <jansson.h>

typedef enum {
    FAKE_OK,            /* 200, message.content = content (NULL: a valid entry) */
    FAKE_REFUSAL,       /* 200, message.content null, message.refusal = content */
    FAKE_STATUS,        /* status with {"error":{message,type,code}}, maybe Retry-After */
    FAKE_HANG,          /* waits hang_s (or until stop), then answers like FAKE_OK */
    FAKE_MALFORMED,     /* 200 whose body is not JSON */
    FAKE_REJECT_FORMAT, /* 400 if the request has response_format, else like FAKE_ECHO */
    FAKE_ECHO,          /* a valid answer built from the request (see below) */
} FakeKind;

/* Echo answers a request whose schema (response_format, or the system
 * message when there is none) has "reflections" with a valid entry, and any
 * other with a part summary: {summary, key_events, people, places,
 * action_items, mood_notes} whose summary is "partial summary #K: " and
 * then the last user message (K = the request's 1-based number), so a
 * later request can be checked for having seen it. */

typedef struct {
    FakeKind kind;
    const char *content;     /* FAKE_OK, FAKE_HANG: content; FAKE_REFUSAL: the refusal */
    int status;              /* FAKE_STATUS */
    const char *message;     /* FAKE_STATUS: error.message */
    const char *retry_after; /* FAKE_STATUS: Retry-After header, NULL for none */
    double hang_s;           /* FAKE_HANG */
} FakeBehaviour;

static inline FakeBehaviour fake_ok(const char *content) {
    return (FakeBehaviour){.kind = FAKE_OK, .content = content};
}
static inline FakeBehaviour fake_refusal(const char *text) {
    return (FakeBehaviour){.kind = FAKE_REFUSAL, .content = text};
}
static inline FakeBehaviour fake_status(int status, const char *message, const char *retry_after) {
    return (FakeBehaviour){
        .kind = FAKE_STATUS, .status = status, .message = message, .retry_after = retry_after};
}
static inline FakeBehaviour fake_hang(double seconds) {
    return (FakeBehaviour){.kind = FAKE_HANG, .hang_s = seconds};
}
static inline FakeBehaviour fake_malformed(void) {
    return (FakeBehaviour){.kind = FAKE_MALFORMED};
}
static inline FakeBehaviour fake_reject_format(void) {
    return (FakeBehaviour){.kind = FAKE_REJECT_FORMAT};
}
static inline FakeBehaviour fake_echo(void) {
    return (FakeBehaviour){.kind = FAKE_ECHO};
}

/* One request as the server received it. */
typedef struct {
    char method[16];
    char path[256];
    char *authorization; /* the Authorization header, NULL if absent */
    char *raw;           /* the body as sent */
    json_t *body;        /* the body parsed, NULL if it was not JSON */
    double received_at;  /* di_now() when the body was complete */
} FakeRequest;

typedef struct FakeOpenAI FakeOpenAI;

/* 0 or -1 (the server could not start). */
int fake_openai_start(FakeOpenAI **out);
/* "http://127.0.0.1:PORT/v1"; valid until fake_openai_stop. */
const char *fake_openai_url(const FakeOpenAI *f);
/* Strings are copied. A server takes up to 256 pushes in its life. */
void fake_openai_push(FakeOpenAI *f, FakeBehaviour b);
void fake_openai_set_default(FakeOpenAI *f, FakeBehaviour b);
int fake_openai_count(FakeOpenAI *f);
/* Request i (0-based), NULL when out of range; valid until fake_openai_stop. */
const FakeRequest *fake_openai_request(FakeOpenAI *f, int i);
/* Wakes hanging answers, stops the server and frees everything. NULL is fine. */
void fake_openai_stop(FakeOpenAI *f);

/* The content of the last message with this role in a recorded request,
 * or NULL. */
const char *fake_request_message(const FakeRequest *r, const char *role);
/* A valid diary entry (every key but "generator") dated `date`. New reference. */
json_t *fake_openai_entry(const char *date);

#endif
