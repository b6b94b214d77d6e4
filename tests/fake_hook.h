/*
 * fake_hook: a local webhook receiver for tests of job callbacks.
 *
 * A real HTTP server (libmicrohttpd) on 127.0.0.1 at an ephemeral port that
 * records every request (method, path, X-Diarist-Job-Id, X-Diarist-Attempt,
 * Content-Type, body) and answers with the next status pushed by the test,
 * then with 200 once the pushes run out. All functions are thread-safe.
 *
 *   FakeHook *h;
 *   assert_int_equal(fake_hook_start(&h), 0);
 *   fake_hook_push(h, 500);                   // first answer 500, then 200
 *   url = fake_hook_url(h);                   // "http://127.0.0.1:PORT/hook"
 *   ... a job ends ...
 *   fake_hook_wait(h, 2, 10.0);               // until 2 requests came (or 10 s)
 *   fake_hook_stop(h);
 */
#ifndef DIARIST_FAKE_HOOK_H
#define DIARIST_FAKE_HOOK_H

#include <jansson.h>

typedef struct {
    char method[16];
    char path[256];
    char job_id[128];       /* X-Diarist-Job-Id, "" if absent */
    int attempt;            /* X-Diarist-Attempt, 0 if absent */
    char content_type[128]; /* "" if absent */
    char *raw;              /* the body as sent */
    json_t *body;           /* parsed, NULL if it was not JSON */
    double received_at;     /* di_now() */
} HookRequest;

typedef struct FakeHook FakeHook;

/* 0 or -1 (the server could not start). */
int fake_hook_start(FakeHook **out);
/* "http://127.0.0.1:PORT/hook"; valid until fake_hook_stop. */
const char *fake_hook_url(const FakeHook *h);
/* The status of the next answer not yet scripted (up to 64 in a life). */
void fake_hook_push(FakeHook *h, int status);
int fake_hook_count(FakeHook *h);
/* Waits until at least n requests arrived or seconds passed; the count. */
int fake_hook_wait(FakeHook *h, int n, double seconds);
/* Request i (0-based) or NULL; valid until fake_hook_stop. */
const HookRequest *fake_hook_request(FakeHook *h, int i);
/* Stops the server and frees everything. NULL is fine. */
void fake_hook_stop(FakeHook *h);

#endif
