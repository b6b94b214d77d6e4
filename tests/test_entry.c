/* The diary entry: its strict schema, the validator's verdicts and paths,
 * the markdown form, and the entry's date. */
#include "core/core.h"
#include "notes/notes.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A complete, valid entry as a generator would return it. */
static json_t *full_entry(void) {
    json_t *e = json_pack("{s:s, s:s, s:{s:s, s:i, s:f}, s:s, s:[s,s], s:s, s:[s], s:[s,s], "
                          "s:[{s:s, s:s}, {s:s, s:n}], s:[s,s], s:s, s:s}",
                          "date", "2024-03-05", "title", "Budget review and Lisbon", "mood",
                          "label", "content", "intensity", 6, "valence", 0.6, "summary",
                          "I finished the budget review with Maria.", "key_events",
                          "Finished the budget review", "Walked to the river", "reflections",
                          "I should spend more time outside.", "people", "Maria Lopez", "places",
                          "Lisbon", "the office", "action_items", "task", "Call the dentist", "due",
                          "2024-03-06", "task", "Buy flowers", "due", "tags", "budget", "river",
                          "language", "en", "generator", "extractive");
    assert_non_null(e);
    return e;
}

/* Every object schema closes its properties and requires all of them. */
static void assert_strict(const json_t *schema, const char *where) {
    const char *type = json_string_value(json_object_get(schema, "type"));
    if (type && !strcmp(type, "object")) {
        json_t *props = json_object_get(schema, "properties");
        json_t *required = json_object_get(schema, "required");
        assert_true(json_is_object(props));
        if (!json_is_false(json_object_get(schema, "additionalProperties")))
            fail_msg("%s: additionalProperties is not false", where);
        assert_int_equal(json_array_size(required), json_object_size(props));
        size_t i;
        json_t *name;
        json_array_foreach(required, i, name)
            assert_non_null(json_object_get(props, json_string_value(name)));
        const char *key;
        json_t *sub;
        json_object_foreach(props, key, sub) assert_strict(sub, key);
    }
    json_t *items = json_object_get(schema, "items");
    if (items) assert_strict(items, where);
}

static void test_schema_is_strict(void **state) {
    (void)state;
    json_t *schema = notes_schema();
    assert_strict(schema, "(root)");
    json_t *props = json_object_get(schema, "properties");
    const char *keys[] = {"date",         "title",       "mood",    "summary",
                          "key_events",   "reflections", "people",  "places",
                          "action_items", "tags",        "language"};
    assert_int_equal(json_object_size(props), sizeof keys / sizeof keys[0]);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        assert_non_null(json_object_get(props, keys[i]));
    assert_null(json_object_get(props, "generator"));
    json_t *intensity =
        json_object_get(json_object_get(json_object_get(props, "mood"), "properties"), "intensity");
    assert_string_equal(json_string_value(json_object_get(intensity, "type")), "integer");
    assert_int_equal(json_integer_value(json_object_get(intensity, "minimum")), 1);
    assert_int_equal(json_integer_value(json_object_get(intensity, "maximum")), 10);
    json_decref(schema);
}

static void test_valid_entry_passes(void **state) {
    (void)state;
    json_t *e = full_entry();
    char msg[256] = "";
    assert_int_equal(notes_validate(e, msg, sizeof msg), 0);
    /* What a model returns (no "generator") passes the schema itself. */
    json_t *schema = notes_schema();
    json_object_del(e, "generator");
    assert_int_equal(notes_validate_schema(e, schema, msg, sizeof msg), 0);
    /* An integral real counts as an integer. */
    json_object_set_new(json_object_get(e, "mood"), "intensity", json_real(7.0));
    assert_int_equal(notes_validate_schema(e, schema, msg, sizeof msg), 0);
    json_decref(schema);
    json_decref(e);
}

/* Applies one change to a valid entry and expects `want` in the message. */
typedef void (*Mutation)(json_t *e);
static void drop_summary(json_t *e) {
    json_object_del(e, "summary");
}
static void add_weather(json_t *e) {
    json_object_set_new(e, "weather", json_string("rain"));
}
static void title_number(json_t *e) {
    json_object_set_new(e, "title", json_integer(5));
}
static void intensity_11(json_t *e) {
    json_object_set_new(json_object_get(e, "mood"), "intensity", json_integer(11));
}
static void intensity_frac(json_t *e) {
    json_object_set_new(json_object_get(e, "mood"), "intensity", json_real(7.5));
}
static void valence_minus_2(json_t *e) {
    json_object_set_new(json_object_get(e, "mood"), "valence", json_integer(-2));
}
static void drop_label(json_t *e) {
    json_object_del(json_object_get(e, "mood"), "label");
}
static void due_number(json_t *e) {
    json_object_set_new(json_array_get(json_object_get(e, "action_items"), 1), "due",
                        json_integer(5));
}
static void due_words(json_t *e) {
    json_object_set_new(json_array_get(json_object_get(e, "action_items"), 0), "due",
                        json_string("tomorrow"));
}
static void extra_in_item(json_t *e) {
    json_object_set_new(json_array_get(json_object_get(e, "action_items"), 0), "owner",
                        json_string("me"));
}
static void tag_number(json_t *e) {
    json_array_set_new(json_object_get(e, "tags"), 1, json_integer(3));
}
static void people_string(json_t *e) {
    json_object_set_new(e, "people", json_string("Maria"));
}
static void bad_date(json_t *e) {
    json_object_set_new(e, "date", json_string("2024-02-30"));
}
static void short_date(json_t *e) {
    json_object_set_new(e, "date", json_string("2024-3-5"));
}
static void no_generator(json_t *e) {
    json_object_del(e, "generator");
}
static void empty_generator(json_t *e) {
    json_object_set_new(e, "generator", json_string(""));
}

static void test_violations_name_their_path(void **state) {
    (void)state;
    static const struct {
        Mutation change;
        const char *want;
    } cases[] = {
        {drop_summary, "(root): missing key \"summary\""},
        {add_weather, "(root): unexpected key \"weather\""},
        {title_number, "title: expected string, got integer"},
        {intensity_11, "mood.intensity: 11 is above 10"},
        {intensity_frac, "mood.intensity: expected integer, got number"},
        {valence_minus_2, "mood.valence: -2 is below -1"},
        {drop_label, "mood: missing key \"label\""},
        {due_number, "action_items[1].due: expected string or null, got integer"},
        {due_words, "action_items[0].due: \"tomorrow\" is not a YYYY-MM-DD calendar date"},
        {extra_in_item, "action_items[0]: unexpected key \"owner\""},
        {tag_number, "tags[1]: expected string, got integer"},
        {people_string, "people: expected array, got string"},
        {bad_date, "date: \"2024-02-30\" is not a YYYY-MM-DD calendar date"},
        {short_date, "date: \"2024-3-5\" is not a YYYY-MM-DD calendar date"},
        {no_generator, "generator: missing or empty"},
        {empty_generator, "generator: missing or empty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *e = full_entry();
        cases[i].change(e);
        char msg[256] = "";
        assert_int_equal(notes_validate(e, msg, sizeof msg), DI_EFORMAT);
        if (strcmp(msg, cases[i].want))
            fail_msg("case %zu: got '%s', want '%s'", i, msg, cases[i].want);
        json_decref(e);
    }
    char msg[128];
    json_t *not_object = json_array();
    assert_int_equal(notes_validate(not_object, msg, sizeof msg), DI_EFORMAT);
    assert_int_equal(notes_validate(NULL, msg, sizeof msg), DI_EFORMAT);
    json_decref(not_object);
}

static void test_leap_day_is_a_date(void **state) {
    (void)state;
    json_t *e = full_entry();
    char msg[256];
    json_object_set_new(e, "date", json_string("2024-02-29"));
    assert_int_equal(notes_validate(e, msg, sizeof msg), 0);
    json_object_set_new(e, "date", json_string("2023-02-29"));
    assert_int_equal(notes_validate(e, msg, sizeof msg), DI_EFORMAT);
    json_object_set_new(e, "date", json_string("1900-02-29"));
    assert_int_equal(notes_validate(e, msg, sizeof msg), DI_EFORMAT);
    json_object_set_new(e, "date", json_string("2000-02-29"));
    assert_int_equal(notes_validate(e, msg, sizeof msg), 0);
    json_decref(e);
}

/* The generic validator on a schema of its own: enum, type lists, bounds. */
static void test_generic_validator(void **state) {
    (void)state;
    json_t *schema =
        json_loads("{\"type\":\"object\",\"properties\":{"
                   "\"kind\":{\"type\":\"string\",\"enum\":[\"a\",\"b\"]},"
                   "\"n\":{\"type\":[\"integer\",\"null\"],\"minimum\":0,\"maximum\":3},"
                   "\"xs\":{\"type\":\"array\",\"items\":{\"type\":\"boolean\"}}},"
                   "\"required\":[\"kind\"],\"additionalProperties\":false}",
                   0, NULL);
    assert_non_null(schema);
    static const struct {
        const char *value, *want; /* want NULL: valid */
    } cases[] = {
        {"{\"kind\":\"a\"}", NULL},
        {"{\"kind\":\"b\",\"n\":null,\"xs\":[true,false]}", NULL},
        {"{\"kind\":\"b\",\"n\":3}", NULL},
        {"{\"kind\":\"c\"}", "kind: value is not one of the allowed values"},
        {"{\"kind\":\"a\",\"n\":4}", "n: 4 is above 3"},
        {"{\"kind\":\"a\",\"n\":-1}", "n: -1 is below 0"},
        {"{\"kind\":\"a\",\"n\":\"1\"}", "n: expected integer or null, got string"},
        {"{\"kind\":\"a\",\"xs\":[true,1]}", "xs[1]: expected boolean, got integer"},
        {"{\"n\":1}", "(root): missing key \"kind\""},
        {"[1]", "(root): expected object, got array"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *v = json_loads(cases[i].value, JSON_DECODE_ANY, NULL);
        assert_non_null(v);
        char msg[256] = "";
        int rc = notes_validate_schema(v, schema, msg, sizeof msg);
        if (!cases[i].want) {
            if (rc) fail_msg("case %zu should pass: %s", i, msg);
        } else {
            assert_int_equal(rc, DI_EFORMAT);
            if (strcmp(msg, cases[i].want)) fail_msg("case %zu: got '%s'", i, msg);
        }
        json_decref(v);
    }
    char msg[64];
    assert_int_equal(notes_validate_schema(NULL, schema, msg, sizeof msg), DI_EINVAL);
    json_decref(schema);
}

static void test_markdown_full(void **state) {
    (void)state;
    json_t *e = full_entry();
    /* A line break in a title must not start a heading of its own. */
    json_object_set_new(e, "title", json_string("Budget review\n# and Lisbon"));
    char *md = notes_render_markdown(e);
    assert_non_null(md);
    const char *want = "# Budget review # and Lisbon\n"
                       "\n"
                       "**Date:** 2024-03-05\n"
                       "\n"
                       "## Mood\n"
                       "\n"
                       "content (intensity 6/10, valence +0.60)\n"
                       "\n"
                       "## Key Events\n"
                       "\n"
                       "- Finished the budget review\n"
                       "- Walked to the river\n"
                       "\n"
                       "## Reflections\n"
                       "\n"
                       "I should spend more time outside.\n"
                       "\n"
                       "## Summary\n"
                       "\n"
                       "I finished the budget review with Maria.\n"
                       "\n"
                       "## People\n"
                       "\n"
                       "- Maria Lopez\n"
                       "\n"
                       "## Places\n"
                       "\n"
                       "- Lisbon\n"
                       "- the office\n"
                       "\n"
                       "## Action Items\n"
                       "\n"
                       "- [ ] Call the dentist (due 2024-03-06)\n"
                       "- [ ] Buy flowers\n"
                       "\n"
                       "## Tags\n"
                       "\n"
                       "#budget #river\n"
                       "\n"
                       "_Generated by extractive_\n";
    assert_string_equal(md, want);
    free(md);
    json_decref(e);
}

static void test_markdown_empty(void **state) {
    (void)state;
    json_t *e = notes_empty_entry("2024-01-01", "de", "extractive");
    char msg[256] = "";
    assert_int_equal(notes_validate(e, msg, sizeof msg), 0);
    assert_string_equal(json_string_value(json_object_get(e, "language")), "de");
    char *md = notes_render_markdown(e);
    assert_non_null(md);
    const char *want = "# Diary entry\n\n**Date:** 2024-01-01\n\n"
                       "## Mood\n\nneutral (intensity 1/10, valence +0.00)\n\n"
                       "## Key Events\n\n_None_\n\n"
                       "## Reflections\n\n_None_\n\n"
                       "## Summary\n\n_None_\n\n"
                       "## People\n\n_None_\n\n"
                       "## Places\n\n_None_\n\n"
                       "## Action Items\n\n_None_\n\n"
                       "## Tags\n\n_None_\n\n"
                       "_Generated by extractive_\n";
    assert_string_equal(md, want);
    free(md);
    json_decref(e);
    /* Without a generator it is what a model is asked for: the bare schema. */
    e = notes_empty_entry("2024-01-01", "en", NULL);
    json_t *schema = notes_schema();
    assert_null(json_object_get(e, "generator"));
    assert_int_equal(notes_validate_schema(e, schema, msg, sizeof msg), 0);
    assert_int_equal(notes_validate(e, msg, sizeof msg), DI_EFORMAT);
    json_decref(schema);
    json_decref(e);
    assert_null(notes_render_markdown(NULL));
}

static const char *date_of(int64_t recorded, int64_t uploaded, const char *tz) {
    static char buf[16];
    NoteRequest req = {
        .transcript = "", .recorded_at = recorded, .uploaded_at = uploaded, .timezone = tz};
    notes_request_date(&req, buf, sizeof buf);
    return buf;
}

static void test_request_date(void **state) {
    (void)state;
    const int64_t late = 1709681400;    /* 2024-03-05T23:30:00Z */
    const int64_t evening = 1709676900; /* 2024-03-05T22:15:00Z */
    const int64_t early = 1709685000;   /* 2024-03-06T00:30:00Z */
    const int64_t july = 1689327000;    /* 2023-07-14T09:30:00Z */
    /* recorded_at wins; uploaded_at only when it is unknown. */
    assert_string_equal(date_of(july, late, NULL), "2023-07-14");
    assert_string_equal(date_of(-1, late, NULL), "2024-03-05");
    assert_string_equal(date_of(-1, early, "UTC"), "2024-03-06");
    assert_string_equal(date_of(1709208000, 0, NULL), "2024-02-29");
    assert_string_equal(date_of(-1, -1, NULL), "1969-12-31");
    assert_string_equal(date_of(0, 5, NULL), "1970-01-01");
    /* Around midnight a fixed offset moves the day either way. */
    assert_string_equal(date_of(late, 0, "+02:00"), "2024-03-06");
    assert_string_equal(date_of(evening, 0, "+01:45"), "2024-03-06");
    assert_string_equal(date_of(evening, 0, "+0130"), "2024-03-05");
    assert_string_equal(date_of(early, 0, "-01:00"), "2024-03-05");
    assert_string_equal(date_of(early, 0, "UTC-5"), "2024-03-05");
    assert_string_equal(date_of(early, 0, "+00:00"), "2024-03-06");
    /* Named zones follow their rules, daylight saving included. */
    assert_string_equal(date_of(evening, 0, "Europe/Zurich"), "2024-03-05");    /* 23:15 CET */
    assert_string_equal(date_of(1689373800, 0, "Europe/Zurich"), "2023-07-15"); /* 00:30 CEST */
    assert_string_equal(date_of(1689373800, 0, "Europe/London"), "2023-07-14"); /* 23:30 BST */
    assert_string_equal(date_of(early, 0, "America/New_York"), "2024-03-05");
    /* A zone it cannot read falls back to UTC rather than guessing. */
    assert_string_equal(date_of(early, 0, "Mars/Olympus_Mons"), "2024-03-06");
    assert_string_equal(date_of(early, 0, "../../etc/passwd"), "2024-03-06");
    /* Small buffers are never overrun. */
    char small[5] = "xxxx";
    NoteRequest req = {.transcript = "", .recorded_at = late, .uploaded_at = 0};
    notes_request_date(&req, small, sizeof small);
    assert_string_equal(small, "2024");
}

/* The zoneinfo reader against the C library's own (setting TZ is fine in a
 * single-threaded test): every few days over a century and more, so both
 * the files' transitions and their footer rules are crossed. */
static void test_named_zones_match_libc(void **state) {
    (void)state;
    const char *zones[] = {"Europe/Zurich", "America/New_York", "Australia/Sydney",
                           "Asia/Kolkata",  "America/St_Johns", "Pacific/Chatham",
                           "Europe/London", "America/Santiago", "Africa/Casablanca"};
    char *old = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
    int compared = 0;
    for (size_t z = 0; z < sizeof zones / sizeof zones[0]; z++) {
        setenv("TZ", zones[z], 1);
        tzset();
        for (int64_t t = -631152000; t < 2871763200; t += 3 * 86400 + 3607) {
            time_t tt = (time_t)t;
            struct tm tm;
            assert_non_null(localtime_r(&tt, &tm));
            char want[40];
            snprintf(want, sizeof want, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday);
            const char *got = date_of(-1, t, zones[z]);
            if (strcmp(got, want))
                fail_msg("%s at %lld: got %s, libc says %s", zones[z], (long long)t, got, want);
            compared++;
        }
    }
    if (old)
        setenv("TZ", old, 1);
    else
        unsetenv("TZ");
    tzset();
    free(old);
    assert_true(compared > 10000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_is_strict),
        cmocka_unit_test(test_valid_entry_passes),
        cmocka_unit_test(test_violations_name_their_path),
        cmocka_unit_test(test_leap_day_is_a_date),
        cmocka_unit_test(test_generic_validator),
        cmocka_unit_test(test_markdown_full),
        cmocka_unit_test(test_markdown_empty),
        cmocka_unit_test(test_request_date),
        cmocka_unit_test(test_named_zones_match_libc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
