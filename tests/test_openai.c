/* The "openai" note generator against a local fake OpenAI-compatible
 * server (fake_openai.c): what it sends, how it retries, what it refuses to
 * pass off as a note. Small backoffs and timeouts keep the suite fast. */
#include "testutil.h"

#include "core/core.h"
#include "fake_openai.h"
#include "notes/notes.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TEST_KEY "test-key"
#define TEST_DATE "2024-03-05" /* a Tuesday */
#define TEST_TIME 1709640000   /* 2024-03-05 12:00:00 UTC */

static const char TRANSCRIPT[] = "Today I walked to the market with Anna. I felt calm afterwards. "
                                 "Tomorrow I need to buy stamps.";

typedef struct {
    FakeOpenAI *fake;
    NoteConfig cfg;
    NoteGenerator *gen;
    char msg[1024];
} Fixture;

static int setup(void **state) {
    setenv("DIARIST_NOTE_SEED", "7", 1);
    Fixture *fx = calloc(1, sizeof *fx);
    if (!fx || fake_openai_start(&fx->fake) != 0) return -1;
    /* Every field set here, so nothing in the runner's environment leaks in. */
    fx->cfg = (NoteConfig){
        .generator = "openai",
        .api_key = TEST_KEY,
        .base_url = fake_openai_url(fx->fake),
        .model = "test-model",
        .temperature = 0.2f,
        .max_tokens = 700,
        .chunk_tokens = 3000,
        .request_timeout_s = 0.5,
        .deadline_s = 10,
        .max_attempts = 4,
        .backoff_base_s = 0.01,
        .backoff_max_s = 0.05,
    };
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    Fixture *fx = *state;
    notes_generator_free(fx->gen);
    fake_openai_stop(fx->fake);
    free(fx);
    return 0;
}

static NoteRequest request(const char *transcript) {
    return (NoteRequest){.transcript = transcript,
                         .language = "en",
                         .recorded_at = TEST_TIME,
                         .uploaded_at = TEST_TIME + 86400 * 3,
                         .timezone = NULL};
}

/* Creates the generator from fx->cfg (once) and runs one note. */
static int generate(Fixture *fx, const char *transcript, json_t **entry) {
    if (!fx->gen) {
        int rc = notes_openai_create(&fx->cfg, &fx->gen, fx->msg, sizeof fx->msg);
        assert_int_equal(rc, 0);
    }
    NoteRequest req = request(transcript);
    return notes_generate(fx->gen, &req, entry, fx->msg, sizeof fx->msg);
}

static char *entry_text(json_t *entry) {
    char *text = json_dumps(entry, JSON_COMPACT);
    assert_non_null(text);
    return text;
}

static void push_entry_json(FakeOpenAI *f, json_t *entry) {
    char *text = entry_text(entry);
    fake_openai_push(f, fake_ok(text));
    free(text);
    json_decref(entry);
}

static const char *schema_name(const FakeRequest *r) {
    json_t *format = json_object_get(r->body, "response_format");
    return json_string_value(json_object_get(json_object_get(format, "json_schema"), "name"));
}

/* ---- What is sent ------------------------------------------------------- */

static void test_happy_path(void **state) {
    Fixture *fx = *state;
    fake_openai_push(fx->fake, fake_ok(NULL)); /* a valid entry dated 1999-12-31 */
    json_t *entry = NULL;
    assert_int_equal(generate(fx, TRANSCRIPT, &entry), 0);
    assert_string_equal(fx->gen->name, "test-model");

    assert_int_equal(fake_openai_count(fx->fake), 1);
    const FakeRequest *r = fake_openai_request(fx->fake, 0);
    assert_string_equal(r->method, "POST");
    assert_string_equal(r->path, "/v1/chat/completions");
    assert_non_null(r->authorization);
    assert_string_equal(r->authorization, "Bearer " TEST_KEY);
    assert_non_null(r->body);
    assert_string_equal(json_string_value(json_object_get(r->body, "model")), "test-model");
    assert_true(fabs(json_number_value(json_object_get(r->body, "temperature")) - 0.2) < 1e-9);
    assert_int_equal(json_integer_value(json_object_get(r->body, "max_tokens")), 700);

    json_t *messages = json_object_get(r->body, "messages");
    assert_int_equal(json_array_size(messages), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(messages, 0), "role")),
                        "system");
    assert_string_equal(json_string_value(json_object_get(json_array_get(messages, 1), "role")),
                        "user");
    const char *system = fake_request_message(r, "system");
    assert_non_null(strstr(system, "diary"));
    const char *user = fake_request_message(r, "user");
    assert_non_null(strstr(user, "The recording was made on " TEST_DATE " (Tuesday)."));
    assert_non_null(strstr(user, "\"en\""));
    assert_non_null(strstr(user, TRANSCRIPT));

    json_t *format = json_object_get(r->body, "response_format");
    assert_string_equal(json_string_value(json_object_get(format, "type")), "json_schema");
    json_t *js = json_object_get(format, "json_schema");
    assert_string_equal(json_string_value(json_object_get(js, "name")), "diary_entry");
    assert_true(json_is_true(json_object_get(js, "strict")));
    json_t *schema = notes_schema();
    assert_true(json_equal(json_object_get(js, "schema"), schema));
    json_decref(schema);

    /* Nothing exotic: only the fields every compatible server accepts. */
    const char *key;
    json_t *value;
    json_object_foreach(r->body, key, value) {
        (void)value;
        assert_true(!strcmp(key, "model") || !strcmp(key, "messages") ||
                    !strcmp(key, "temperature") || !strcmp(key, "max_tokens") ||
                    !strcmp(key, "response_format"));
    }

    char why[256];
    assert_int_equal(notes_validate(entry, why, sizeof why), 0);
    assert_string_equal(json_string_value(json_object_get(entry, "generator")), "test-model");
    assert_string_equal(json_string_value(json_object_get(entry, "date")), TEST_DATE);
    assert_string_equal(json_string_value(json_object_get(entry, "title")), "A quiet Tuesday");
    json_decref(entry);
}

static void test_no_key_sends_no_authorization(void **state) {
    Fixture *fx = *state;
    fx->cfg.api_key = NULL;
    json_t *entry = NULL;
    assert_int_equal(generate(fx, TRANSCRIPT, &entry), 0);
    json_decref(entry);
    notes_generator_free(fx->gen);
    fx->gen = NULL;
    fx->cfg.api_key = ""; /* an empty key is no key */
    assert_int_equal(generate(fx, TRANSCRIPT, &entry), 0);
    json_decref(entry);
    assert_int_equal(fake_openai_count(fx->fake), 2);
    assert_null(fake_openai_request(fx->fake, 0)->authorization);
    assert_null(fake_openai_request(fx->fake, 1)->authorization);
}

static void test_trailing_slash_in_base_url(void **state) {
    Fixture *fx = *state;
    char url[128];
    snprintf(url, sizeof url, "%s/", fake_openai_url(fx->fake));
    fx->cfg.base_url = url;
    json_t *entry = NULL;
    assert_int_equal(generate(fx, TRANSCRIPT, &entry), 0);
    json_decref(entry);
    assert_string_equal(fake_openai_request(fx->fake, 0)->path, "/v1/chat/completions");
}

static void test_empty_transcript_needs_no_call(void **state) {
    Fixture *fx = *state;
    json_t *entry = NULL;
    assert_int_equal(generate(fx, "  \n ", &entry), 0);
    assert_int_equal(fake_openai_count(fx->fake), 0);
    assert_string_equal(json_string_value(json_object_get(entry, "date")), TEST_DATE);
    assert_string_equal(json_string_value(json_object_get(entry, "summary")), "");
    json_decref(entry);
}

/* ---- Retries ------------------------------------------------------------ */

static void test_429_honours_retry_after_seconds(void **state) {
    Fixture *fx = *state;
    fake_openai_push(fx->fake, fake_status(429, "Rate limit reached", "1"));
    json_t *entry = NULL;
    double t0 = di_now();
    assert_int_equal(generate(fx, TRANSCRIPT, &entry), 0);
    double waited = di_now() - t0;
    json_decref(entry);
    assert_int_equal(fake_openai_count(fx->fake), 2);
    /* The backoff alone would be at most 0.05 s. */
    assert_true(waited >= 0.95);
    double gap = fake_openai_request(fx->fake, 1)->received_at -
                 fake_openai_request(fx->fake, 0)->received_at;
    assert_true(gap >= 0.95);
}

static void test_429_honours_retry_after_date(void **state) {
    Fixture *fx = *state;
    char when[64];
    time_t later = time(NULL) + 2;
    struct tm tm;
    gmtime_r(&later, &tm);
    strftime(when, sizeof when, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    fake_openai_push(fx->fake, fake_status(429, "Rate limit reached", when));
    json_t *entry = NULL;
    double t0 = di_now();
    assert_int_equal(generate(fx, TRANSCRIPT, &entry), 0);
    double waited = di_now() - t0;
    json_decref(entry);
    assert_int_equal(fake_openai_count(fx->fake), 2);
    /* Two seconds ahead at one-second resolution: at least one second. */
    assert_true(waited >= 0.9);
    assert_true(waited < 3.0);
}

static void test_retry_after_past_deadline_fails_at_once(void **state) {
    Fixture *fx = *state;
    fx->cfg.deadline_s = 2;
    fake_openai_push(fx->fake, fake_status(429, "Rate limit reached", "30"));
    json_t *entry = NULL;
    double t0 = di_now();
    assert_int_equal(generate(fx, TRANSCRIPT, &entry), DI_EIO);
    assert_true(di_now() - t0 < 0.5);
    assert_null(entry);
    assert_int_equal(fake_openai_count(fx->fake), 1);
    assert_non_null(strstr(fx->msg, "deadline exceeded after 1 attempts"));
    assert_non_null(strstr(fx->msg, "429"));
}

static void test_5xx_then_ok(void **state) {
    Fixture *fx = *state;
    fake_openai_push(fx->fake, fake_status(500, "The server had an error", NULL));
    fake_openai_push(fx->fake, fake_status(502, "Bad gateway", NULL));
    /* A Retry-After that is neither seconds nor a date is ignored. */
    fake_openai_push(fx->fake, fake_status(503, "Overloaded", "nan"));
    fake_openai_push(fx->fake, fake_ok(NULL));
    json_t *entry = NULL;
    double t0 = di_now();
    assert_int_equal(generate(fx, TRANSCRIPT, &entry), 0);
    assert_true(di_now() - t0 < 1.0); /* three backoffs of at most 0.05 s */
    assert_non_null(entry);
    json_decref(entry);
    assert_int_equal(fake_openai_count(fx->fake), 4);
}

static void test_persistent_500_gives_up(void **state) {
    Fixture *fx = *state;
    fx->cfg.max_attempts = 3;
    fake_openai_set_default(fx->fake, fake_status(500, "internal trouble", NULL));
    json_t *entry = NULL;
    assert_int_equal(generate(fx, TRANSCRIPT, &entry), DI_EIO);
    assert_null(entry);
    assert_int_equal(fake_openai_count(fx->fake), 3);
    assert_non_null(strstr(fx->msg, "500"));
    assert_non_null(strstr(fx->msg, "internal trouble"));
    assert_non_null(strstr(fx->msg, "3 attempts"));
}

static void test_hang_is_retried(void **state) {
    Fixture *fx = *state;
    fake_openai_push(fx->fake, fake_hang(3));
    fake_openai_push(fx->fake, fake_ok(NULL));
    json_t *entry = NULL;
    double t0 = di_now();
    assert_int_equal(generate(fx, TRANSCRIPT, &entry), 0);
    double took = di_now() - t0;
    json_decref(entry);
    assert_int_equal(fake_openai_count(fx->fake), 2);
    assert_true(took >= 0.45); /* the first request really waited for its timeout */
    assert_true(took < 1.5);   /* and no longer than that */
}

static void test_hang_stops_at_deadline(void **state) {
    Fixture *fx = *state;
    /* 0.5 s timeouts: the second attempt starts near 0.5 s and must be cut
     * to what is left of the deadline, not run its full 0.5 s. */
    fx->cfg.deadline_s = 0.8;
    fx->cfg.max_attempts = 10;
    fake_openai_set_default(fx->fake, fake_hang(5));
    json_t *entry = NULL;
    double t0 = di_now();
    assert_int_equal(generate(fx, TRANSCRIPT, &entry), DI_EIO);
    double took = di_now() - t0;
    assert_null(entry);
    assert_true(took >= 0.75);
    assert_true(took < 0.95);
    assert_true(fake_openai_count(fx->fake) >= 2);
    assert_non_null(strstr(fx->msg, "deadline exceeded"));
}

static void test_connection_refused(void **state) {
    Fixture *fx = *state;
    /* A port that was just listening and is now closed. */
    FakeOpenAI *gone;
    assert_int_equal(fake_openai_start(&gone), 0);
    char url[128];
    snprintf(url, sizeof url, "%s", fake_openai_url(gone));
    fake_openai_stop(gone);
    fx->cfg.base_url = url;
    fx->cfg.max_attempts = 3;
    fx->cfg.deadline_s = 3;
    json_t *entry = NULL;
    double t0 = di_now();
    assert_int_equal(generate(fx, TRANSCRIPT, &entry), DI_EIO);
    assert_null(entry);
    assert_true(di_now() - t0 < 3.0);
    assert_non_null(strstr(fx->msg, "3 attempts"));
    assert_non_null(strstr(fx->msg, "onnect"));
}

/* ---- Errors that are not retried ---------------------------------------- */

static void check_fatal_status(int status, const char *message) {
    void *state = NULL;
    assert_int_equal(setup(&state), 0);
    Fixture *fx = state;
    fake_openai_set_default(fx->fake, fake_status(status, message, NULL));
    json_t *entry = NULL;
    assert_int_equal(generate(fx, TRANSCRIPT, &entry), DI_EIO);
    assert_null(entry);
    assert_int_equal(fake_openai_count(fx->fake), 1);
    assert_non_null(strstr(fx->msg, message));
    char code[8];
    snprintf(code, sizeof code, "%d", status);
    assert_non_null(strstr(fx->msg, code));
    teardown(&state);
}

static void test_client_errors_are_not_retried(void **state) {
    (void)state;
    check_fatal_status(400, "Invalid value for 'temperature'");
    check_fatal_status(401, "Incorrect API key provided");
    check_fatal_status(403, "Project does not have access");
    check_fatal_status(404, "The model 'test-model' does not exist");
}

/* Runs fn with stderr going to a file and returns what was written there. */
static char *capture_stderr(void (*fn)(Fixture *), Fixture *fx) {
    const char *path = tu_tmp("stderr.log");
    fflush(stderr);
    int saved = dup(2);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    fn(fx);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    size_t size = 0;
    char *raw = tu_read(path, &size); /* not NUL-terminated */
    assert_non_null(raw);
    char *text = strndup(raw, size);
    free(raw);
    assert_non_null(text);
    return text;
}

#define SECRET_KEY "sk-proj-SECRET0123456789"

static void generate_with_echoed_key(Fixture *fx) {
    fake_openai_push(fx->fake, fake_status(500, "key " SECRET_KEY " is throttled", NULL));
    fake_openai_push(fx->fake,
                     fake_status(401, "Incorrect API key provided: " SECRET_KEY ".", NULL));
    json_t *entry = NULL;
    assert_int_equal(generate(fx, TRANSCRIPT, &entry), DI_EIO);
    assert_null(entry);
}

static void test_key_never_in_messages_or_logs(void **state) {
    Fixture *fx = *state;
    fx->cfg.api_key = SECRET_KEY;
    setenv("DIARIST_LOG_LEVEL", "debug", 1);
    char *log = capture_stderr(generate_with_echoed_key, fx);
    unsetenv("DIARIST_LOG_LEVEL");
    assert_int_equal(fake_openai_count(fx->fake), 2);
    assert_string_equal(fake_openai_request(fx->fake, 0)->authorization, "Bearer " SECRET_KEY);
    assert_non_null(strstr(fx->msg, "Incorrect API key provided"));
    assert_non_null(strstr(fx->msg, "sk-***"));
    assert_null(strstr(fx->msg, "SECRET"));
    assert_non_null(strstr(log, "throttled")); /* the attempts were logged... */
    assert_null(strstr(log, "SECRET"));        /* ...without the key */
    free(log);
}

/* ---- Answers that are not entries -------------------------------------- */

static void test_malformed_content_then_valid(void **state) {
    Fixture *fx = *state;
    fake_openai_push(fx->fake, fake_ok("Sure! Here is your diary entry: {\"title\":"));
    fake_openai_push(fx->fake, fake_malformed()); /* the HTTP body itself is broken */
    fake_openai_push(fx->fake, fake_ok(NULL));
    json_t *entry = NULL;
    assert_int_equal(generate(fx, TRANSCRIPT, &entry), 0);
    assert_non_null(entry);
    json_decref(entry);
    assert_int_equal(fake_openai_count(fx->fake), 3);
}

static void test_always_malformed_is_an_error(void **state) {
    Fixture *fx = *state;
    fake_openai_set_default(fx->fake, fake_ok("I am not JSON at all"));
    json_t *entry = NULL;
    assert_int_equal(generate(fx, TRANSCRIPT, &entry), DI_EFORMAT);
    assert_null(entry);
    assert_int_equal(fake_openai_count(fx->fake), 3);
    assert_non_null(strstr(fx->msg, "not JSON"));
}

static void test_fenced_json_is_accepted(void **state) {
    Fixture *fx = *state;
    json_t *sample = fake_openai_entry("2024-03-05");
    char *text = entry_text(sample);
    char *fenced = NULL;
    assert_true(asprintf(&fenced, "```json\n%s\n```\n", text) > 0);
    fake_openai_push(fx->fake, fake_ok(fenced));
    free(fenced);
    free(text);
    json_decref(sample);
    json_t *entry = NULL;
    assert_int_equal(generate(fx, TRANSCRIPT, &entry), 0);
    assert_int_equal(fake_openai_count(fx->fake), 1);
    assert_string_equal(json_string_value(json_object_get(entry, "title")), "A quiet Tuesday");
    json_decref(entry);
}

static void test_schema_violation_is_retried_then_named(void **state) {
    Fixture *fx = *state;
    json_t *bad = fake_openai_entry("2024-03-05");
    json_object_set_new(json_object_get(bad, "mood"), "intensity", json_integer(42));
    char *text = entry_text(bad);
    json_decref(bad);
    fake_openai_set_default(fx->fake, fake_ok(text));
    free(text);
    json_t *entry = NULL;
    assert_int_equal(generate(fx, TRANSCRIPT, &entry), DI_EFORMAT);
    assert_null(entry);
    assert_int_equal(fake_openai_count(fx->fake), 3);
    assert_non_null(strstr(fx->msg, "mood.intensity"));
}

static void test_missing_key_then_valid(void **state) {
    Fixture *fx = *state;
    json_t *bad = fake_openai_entry("2024-03-05");
    json_object_del(bad, "tags");
    push_entry_json(fx->fake, bad);
    fake_openai_push(fx->fake, fake_ok(NULL));
    json_t *entry = NULL;
    assert_int_equal(generate(fx, TRANSCRIPT, &entry), 0);
    assert_int_equal(fake_openai_count(fx->fake), 2);
    assert_true(json_is_array(json_object_get(entry, "tags")));
    json_decref(entry);
}

static void test_worded_due_date_is_dropped(void **state) {
    Fixture *fx = *state;
    json_t *e = fake_openai_entry("2024-03-05");
    json_t *item = json_array_get(json_object_get(e, "action_items"), 1);
    json_object_set_new(item, "due", json_string("next week"));
    push_entry_json(fx->fake, e);
    json_t *entry = NULL;
    assert_int_equal(generate(fx, TRANSCRIPT, &entry), 0);
    json_t *got = json_array_get(json_object_get(entry, "action_items"), 1);
    assert_string_equal(json_string_value(json_object_get(got, "task")), "call the dentist");
    assert_true(json_is_null(json_object_get(got, "due")));
    json_decref(entry);
}

static void test_refusal_is_an_error(void **state) {
    Fixture *fx = *state;
    fake_openai_push(fx->fake, fake_refusal("I can't help with that request."));
    fake_openai_push(fx->fake, fake_ok(NULL)); /* must never be asked for */
    json_t *entry = NULL;
    assert_int_equal(generate(fx, TRANSCRIPT, &entry), DI_EFORMAT);
    assert_null(entry);
    assert_int_equal(fake_openai_count(fx->fake), 1);
    assert_non_null(strstr(fx->msg, "refused"));
    assert_non_null(strstr(fx->msg, "I can't help with that request."));
}

/* ---- Servers without structured outputs --------------------------------- */

static void test_response_format_fallback(void **state) {
    Fixture *fx = *state;
    fake_openai_set_default(fx->fake, fake_reject_format());
    json_t *entry = NULL;
    assert_int_equal(generate(fx, TRANSCRIPT, &entry), 0);
    json_decref(entry);
    assert_int_equal(fake_openai_count(fx->fake), 2);
    const FakeRequest *first = fake_openai_request(fx->fake, 0);
    const FakeRequest *second = fake_openai_request(fx->fake, 1);
    assert_non_null(json_object_get(first->body, "response_format"));
    assert_null(json_object_get(second->body, "response_format"));
    const char *system = fake_request_message(second, "system");
    assert_non_null(strstr(system, "one JSON object only"));
    assert_non_null(strstr(system, "\"reflections\"")); /* the schema travels in the prompt */
    assert_null(strstr(fake_request_message(first, "system"), "one JSON object only"));

    /* The generator remembers: no response_format from now on. */
    entry = NULL;
    assert_int_equal(generate(fx, TRANSCRIPT, &entry), 0);
    json_decref(entry);
    assert_int_equal(fake_openai_count(fx->fake), 3);
    assert_null(json_object_get(fake_openai_request(fx->fake, 2)->body, "response_format"));
}

/* ---- Long transcripts ---------------------------------------------------- */

#define N_SENTENCES 40

static char *marker_transcript(void) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    for (int i = 1; i <= N_SENTENCES; i++)
        fprintf(f, "Sentence %d is about marker zq%02dx and the weather. ", i, i);
    fclose(f);
    return text;
}

static const char *part_text(const char *user, int i, int n) {
    char head[64];
    snprintf(head, sizeof head, "Transcript, part %d of %d:\n", i, n);
    const char *p = strstr(user, head);
    return p ? p + strlen(head) : NULL;
}

static void test_map_reduce(void **state) {
    Fixture *fx = *state;
    fx->cfg.chunk_tokens = 60; /* about 240 bytes a part */
    char *transcript = marker_transcript();
    json_t *entry = NULL;
    assert_int_equal(generate(fx, transcript, &entry), 0);
    char why[256];
    assert_int_equal(notes_validate(entry, why, sizeof why), 0);
    assert_string_equal(json_string_value(json_object_get(entry, "date")), TEST_DATE);
    json_decref(entry);

    int total = fake_openai_count(fx->fake), n = 0;
    for (int i = 0; i < total; i++) {
        const char *name = schema_name(fake_openai_request(fx->fake, i));
        if (name && !strcmp(name, "diary_chunk")) n++;
    }
    assert_true(n >= 4); /* ~2,400 bytes in parts of at most 240 */
    assert_int_equal(total, n + 1);

    /* Every sentence lands in exactly one part, whole, in order. */
    int seen[N_SENTENCES + 1] = {0}, last = 0;
    for (int i = 0; i < n; i++) {
        const FakeRequest *r = fake_openai_request(fx->fake, i);
        assert_string_equal(schema_name(r), "diary_chunk");
        const char *text = part_text(fake_request_message(r, "user"), i + 1, n);
        assert_non_null(text);
        assert_true(strlen(text) <= 240);
        assert_true(text[strlen(text) - 1] == '.'); /* cut at a sentence end */
        for (int k = 1; k <= N_SENTENCES; k++) {
            char marker[16];
            snprintf(marker, sizeof marker, "zq%02dx", k);
            if (strstr(text, marker)) {
                seen[k]++;
                assert_true(k > last);
                last = k;
            }
        }
    }
    for (int k = 1; k <= N_SENTENCES; k++)
        assert_int_equal(seen[k], 1);

    /* The merge call sees every part's summary, and asks for a whole entry. */
    const FakeRequest *merge = fake_openai_request(fx->fake, n);
    assert_string_equal(schema_name(merge), "diary_entry");
    const char *user = fake_request_message(merge, "user");
    assert_non_null(strstr(user, TEST_DATE " (Tuesday)"));
    for (int i = 1; i <= n; i++) {
        char tag[64];
        snprintf(tag, sizeof tag, "partial summary #%d:", i);
        assert_non_null(strstr(user, tag));
    }
    for (int k = 1; k <= N_SENTENCES; k++) {
        char marker[16];
        snprintf(marker, sizeof marker, "zq%02dx", k);
        assert_non_null(strstr(user, marker));
    }
    free(transcript);
}

static void test_map_reduce_without_punctuation(void **state) {
    Fixture *fx = *state;
    fx->cfg.chunk_tokens = 20; /* 80 bytes a part */
    char transcript[2000] = "";
    for (int i = 0; i < 100; i++) {
        char word[16];
        snprintf(word, sizeof word, "w%03d ", i);
        strcat(transcript, word);
    }
    json_t *entry = NULL;
    assert_int_equal(generate(fx, transcript, &entry), 0);
    json_decref(entry);
    int n = fake_openai_count(fx->fake) - 1;
    assert_true(n >= 6);
    int next = 0;
    for (int i = 0; i < n; i++) {
        const char *text =
            part_text(fake_request_message(fake_openai_request(fx->fake, i), "user"), i + 1, n);
        assert_non_null(text);
        assert_true(strlen(text) <= 80);
        /* Cut between words: the words come back whole and in order. */
        for (const char *p = text; *p;) {
            int w, used;
            assert_int_equal(sscanf(p, "w%3d%n", &w, &used), 1);
            assert_int_equal(used, 4);
            assert_int_equal(w, next++);
            p += used;
            while (*p == ' ')
                p++;
        }
    }
    assert_int_equal(next, 100);
}

static void test_map_reduce_failure_names_the_part(void **state) {
    Fixture *fx = *state;
    fx->cfg.chunk_tokens = 60;
    fake_openai_push(fx->fake, fake_echo());
    fake_openai_push(fx->fake, fake_status(400, "context too long", NULL));
    char *transcript = marker_transcript();
    json_t *entry = NULL;
    assert_int_equal(generate(fx, transcript, &entry), DI_EIO);
    assert_null(entry);
    assert_int_equal(fake_openai_count(fx->fake), 2);
    assert_non_null(strstr(fx->msg, "part 2 of "));
    assert_non_null(strstr(fx->msg, "context too long"));
    free(transcript);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_happy_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_key_sends_no_authorization, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trailing_slash_in_base_url, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_transcript_needs_no_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_429_honours_retry_after_seconds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_429_honours_retry_after_date, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_past_deadline_fails_at_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_5xx_then_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistent_500_gives_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hang_is_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hang_stops_at_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test(test_client_errors_are_not_retried),
        cmocka_unit_test_setup_teardown(test_key_never_in_messages_or_logs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_content_then_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_always_malformed_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fenced_json_is_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_violation_is_retried_then_named, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_missing_key_then_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_worded_due_date_is_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusal_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_format_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_reduce, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_reduce_without_punctuation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_reduce_failure_names_the_part, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
