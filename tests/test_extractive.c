/* The offline note generator on hand-written diary transcripts, always
 * through notes_generate so the checks every generator shares run too. */
#include "core/core.h"
#include "notes/notes.h"
#include "testutil.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2024-03-10T18:00:00Z, a Sunday: "tomorrow" is 03-11, Wednesday 03-13. */
#define SUNDAY_EVENING 1710093600

static const char *WORK_DAY =
    "This morning I took the early train to the office. I met Maria Lopez from the design "
    "team and we finally finished the quarterly budget review. The budget numbers looked much "
    "better than last quarter, which made me proud. After lunch we talked about the conference "
    "in Lisbon next month. Maria has been to Lisbon twice and she recommended a small hotel "
    "near the Alfama district. I'm excited about the trip. I realised I work better when I "
    "plan the week on Monday. I have to book the flights to Lisbon by Friday. In the evening "
    "I cooked pasta and watched a documentary about whales.";

static const char *BAD_DAY =
    "I am so tired today. Work was stressful and the deadline for the report moved up again. "
    "My manager was annoyed with me because the numbers were wrong. Then in the evening I had "
    "a fight with my brother Tom on the phone. He said I never call our parents, and I got "
    "angry and shouted at him. I feel terrible about it now. I was not happy with how I "
    "handled it. I couldn't sleep and kept worrying about work. I should apologise to Tom "
    "tomorrow. Maybe I need a break.";

static const char *LAKE_WEEKEND =
    "What a wonderful weekend. On Saturday we drove to the lake near Zurich with Anna Schmidt "
    "and her kids. The water was cold but the sun was out all day and everyone was laughing.\n"
    "We had a picnic under the big trees and Anna told funny stories about her new job. I felt "
    "calm and grateful for my friends. On Sunday morning we went swimming again before driving "
    "home. I'm grateful that I took the time off. I need to call the dentist tomorrow. Don't "
    "forget to send Anna the photos on Wednesday.";

static NoteGenerator *generator(void) {
    NoteConfig cfg = notes_config_from_env();
    cfg.generator = "extractive";
    NoteGenerator *g = NULL;
    char msg[256];
    assert_int_equal(notes_generator_create(&cfg, &g, msg, sizeof msg), 0);
    assert_string_equal(g->name, "extractive");
    return g;
}

static json_t *note(const char *transcript, const char *language) {
    NoteGenerator *g = generator();
    NoteRequest req = {.transcript = transcript,
                       .language = language,
                       .recorded_at = SUNDAY_EVENING,
                       .uploaded_at = 0};
    json_t *e = NULL;
    char msg[512] = "";
    int rc = notes_generate(g, &req, &e, msg, sizeof msg);
    if (rc) fail_msg("notes_generate: %s", msg);
    notes_generator_free(g);
    assert_int_equal(notes_validate(e, msg, sizeof msg), 0);
    assert_string_equal(json_string_value(json_object_get(e, "generator")), "extractive");
    assert_string_equal(json_string_value(json_object_get(e, "date")), "2024-03-10");
    return e;
}

static int has(const json_t *list, const char *want) {
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) if (!strcmp(json_string_value(v), want)) return 1;
    return 0;
}

static double valence(const json_t *e) {
    return json_number_value(json_object_get(json_object_get(e, "mood"), "valence"));
}

/* Every sentence of `text` ("A. B. C.") occurs in the transcript as is. */
static void assert_verbatim(const char *text, const char *transcript) {
    char *copy = strdup(text), *save = NULL;
    /* The transcripts here have no line breaks inside sentences, so each
     * sentence is a plain substring; split at ". " to check each one. */
    for (char *s = strtok_r(copy, ".!?", &save); s; s = strtok_r(NULL, ".!?", &save)) {
        while (*s == ' ')
            s++;
        if (*s && !strstr(transcript, s)) fail_msg("'%s' is not in the transcript", s);
    }
    free(copy);
}

static void test_work_day(void **state) {
    (void)state;
    json_t *e = note(WORK_DAY, NULL);
    json_t *people = json_object_get(e, "people"), *places = json_object_get(e, "places");
    assert_true(has(people, "Maria Lopez"));
    assert_false(has(people, "Maria")); /* the same person, listed once */
    assert_true(has(places, "Lisbon"));
    assert_true(has(places, "Alfama"));
    assert_false(has(people, "Lisbon"));
    assert_false(has(people, "Monday") || has(places, "Friday"));
    assert_string_equal(json_string_value(json_object_get(e, "language")), "en");
    assert_true(valence(e) > 0);
    /* "by Friday" said on a Sunday is the Friday after. */
    json_t *item = json_array_get(json_object_get(e, "action_items"), 0);
    assert_string_equal(json_string_value(json_object_get(item, "task")),
                        "Book the flights to Lisbon by Friday");
    assert_string_equal(json_string_value(json_object_get(item, "due")), "2024-03-15");
    assert_true(strstr(json_string_value(json_object_get(e, "reflections")), "I realised"));
    json_t *events = json_object_get(e, "key_events");
    assert_true(json_array_size(events) >= 2 && json_array_size(events) <= 5);
    assert_true(has(events, "This morning I took the early train to the office."));
    assert_verbatim(json_string_value(json_object_get(e, "summary")), WORK_DAY);
    json_t *tags = json_object_get(e, "tags");
    assert_true(has(tags, "budget")); /* the one topic said twice */
    json_decref(e);
}

static void test_bad_day(void **state) {
    (void)state;
    json_t *e = note(BAD_DAY, "en");
    assert_true(has(json_object_get(e, "people"), "Tom"));
    assert_int_equal(json_array_size(json_object_get(e, "places")), 0);
    assert_true(valence(e) < 0);
    json_t *mood = json_object_get(e, "mood");
    assert_true(json_integer_value(json_object_get(mood, "intensity")) >= 4);
    const char *label = json_string_value(json_object_get(mood, "label"));
    assert_true(!strcmp(label, "low") || !strcmp(label, "uneasy"));
    json_t *item = json_array_get(json_object_get(e, "action_items"), 0);
    assert_string_equal(json_string_value(json_object_get(item, "task")),
                        "Apologise to Tom tomorrow");
    assert_string_equal(json_string_value(json_object_get(item, "due")), "2024-03-11");
    assert_true(strstr(json_string_value(json_object_get(e, "reflections")),
                       "I feel terrible about it now."));
    assert_verbatim(json_string_value(json_object_get(e, "summary")), BAD_DAY);
    json_decref(e);
}

static void test_lake_weekend(void **state) {
    (void)state;
    json_t *e = note(LAKE_WEEKEND, "en");
    json_t *people = json_object_get(e, "people"), *places = json_object_get(e, "places");
    assert_true(has(people, "Anna Schmidt"));
    assert_true(has(places, "Zurich"));
    assert_false(has(people, "Zurich"));
    assert_false(has(people, "Saturday") || has(people, "Sunday") || has(people, "Don"));
    assert_true(valence(e) > 0.3);
    json_t *actions = json_object_get(e, "action_items");
    assert_int_equal(json_array_size(actions), 2);
    json_t *dentist = json_array_get(actions, 0), *photos = json_array_get(actions, 1);
    assert_string_equal(json_string_value(json_object_get(dentist, "task")),
                        "Call the dentist tomorrow");
    assert_string_equal(json_string_value(json_object_get(dentist, "due")), "2024-03-11");
    assert_string_equal(json_string_value(json_object_get(photos, "task")),
                        "Send Anna the photos on Wednesday");
    assert_string_equal(json_string_value(json_object_get(photos, "due")), "2024-03-13");
    assert_verbatim(json_string_value(json_object_get(e, "summary")), LAKE_WEEKEND);
    json_decref(e);
}

static void test_tags_and_title(void **state) {
    (void)state;
    const char *texts[] = {WORK_DAY, BAD_DAY, LAKE_WEEKEND};
    for (size_t t = 0; t < 3; t++) {
        json_t *e = note(texts[t], NULL);
        json_t *tags = json_object_get(e, "tags");
        assert_true(json_array_size(tags) >= 3 && json_array_size(tags) <= 6);
        size_t i;
        json_t *tag;
        json_array_foreach(tags, i, tag) {
            const char *s = json_string_value(tag);
            assert_true(strlen(s) > 3);
            for (const char *p = s; *p; p++)
                assert_false(isupper((unsigned char)*p));
            assert_non_null(strstr(texts[t], s)); /* a word of the transcript */
        }
        const char *title = json_string_value(json_object_get(e, "title"));
        size_t n = strlen(title);
        assert_true(n > 0 && n <= 60);
        assert_null(strchr(".,;:!?", title[n - 1]));
        json_decref(e);
    }
}

static void test_byte_identical(void **state) {
    (void)state;
    const char *texts[] = {WORK_DAY, BAD_DAY, LAKE_WEEKEND, ""};
    for (size_t t = 0; t < 4; t++) {
        json_t *a = note(texts[t], NULL), *b = note(texts[t], NULL);
        char *sa = json_dumps(a, JSON_SORT_KEYS), *sb = json_dumps(b, JSON_SORT_KEYS);
        assert_string_equal(sa, sb);
        free(sa);
        free(sb);
        json_decref(a);
        json_decref(b);
    }
}

static void test_empty_transcripts(void **state) {
    (void)state;
    const char *texts[] = {"", "   ", "\n\t \n", "... ?!"};
    for (size_t t = 0; t < 4; t++) {
        json_t *e = note(texts[t], "de");
        assert_string_equal(json_string_value(json_object_get(e, "title")), "Diary entry");
        assert_string_equal(json_string_value(json_object_get(e, "summary")), "");
        assert_string_equal(json_string_value(json_object_get(e, "reflections")), "");
        assert_string_equal(json_string_value(json_object_get(e, "language")), "de");
        const char *lists[] = {"key_events", "people", "places", "action_items", "tags"};
        for (size_t i = 0; i < 5; i++)
            assert_int_equal(json_array_size(json_object_get(e, lists[i])), 0);
        json_t *mood = json_object_get(e, "mood");
        assert_string_equal(json_string_value(json_object_get(mood, "label")), "neutral");
        assert_int_equal(json_integer_value(json_object_get(mood, "intensity")), 1);
        assert_true(valence(e) == 0);
        json_decref(e);
    }
}

/* Intentions that are not: negated, past, epistemic, or plain movement. */
static void test_action_cues(void **state) {
    (void)state;
    json_t *e = note("I don't need to go. I should have called. It must have been late. "
                     "I'm going to the park. Remember to water the plants on March 15th. "
                     "I have to pay rent on 31 February. We must fix the roof next week.",
                     NULL);
    json_t *actions = json_object_get(e, "action_items");
    assert_int_equal(json_array_size(actions), 3);
    const char *want[][2] = {{"Water the plants on March 15th", "2024-03-15"},
                             {"Pay rent on 31 February", NULL},
                             {"Fix the roof next week", "2024-03-17"}};
    for (size_t i = 0; i < 3; i++) {
        json_t *item = json_array_get(actions, i);
        assert_string_equal(json_string_value(json_object_get(item, "task")), want[i][0]);
        json_t *due = json_object_get(item, "due");
        if (want[i][1])
            assert_string_equal(json_string_value(due), want[i][1]);
        else
            assert_true(json_is_null(due));
    }
    json_decref(e);
}

/* Titles glue to names, bullets split lines, negation turns the mood. */
static void test_names_and_negation(void **state) {
    (void)state;
    json_t *e =
        note("Dr. Smith saw me in St. Louis. I was not happy. I was not happy at all.", NULL);
    assert_true(has(json_object_get(e, "people"), "Dr. Smith"));
    assert_true(has(json_object_get(e, "places"), "St. Louis"));
    assert_true(valence(e) < 0);
    json_decref(e);
    e = note("- buy milk\n- call Mom\n- I need to fix the bike on Monday", NULL);
    json_t *item = json_array_get(json_object_get(e, "action_items"), 0);
    assert_string_equal(json_string_value(json_object_get(item, "task")), "Fix the bike on Monday");
    assert_string_equal(json_string_value(json_object_get(item, "due")), "2024-03-11");
    assert_true(has(json_object_get(e, "people"), "Mom"));
    json_decref(e);
}

/* Bytes that are not a diary at all still give a valid entry, never a crash. */
static void test_garbage(void **state) {
    (void)state;
    char buf[4096];
    uint64_t x = 42;
    for (int round = 0; round < 200; round++) {
        size_t n = (size_t)(round * 19 % (sizeof buf - 1));
        for (size_t i = 0; i < n; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            unsigned char c = (unsigned char)(x >> 56);
            /* Mostly text-like bytes, with UTF-8 leads and stray high bytes. */
            buf[i] = (char)(c < 0x10 ? 0x20 + c : c < 0x30 ? ". A"[c % 3] : c ? c : 1);
        }
        buf[n] = 0;
        json_t *e = note(buf, NULL);
        json_decref(e);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_work_day),       cmocka_unit_test(test_bad_day),
        cmocka_unit_test(test_lake_weekend),   cmocka_unit_test(test_tags_and_title),
        cmocka_unit_test(test_byte_identical), cmocka_unit_test(test_empty_transcripts),
        cmocka_unit_test(test_action_cues),    cmocka_unit_test(test_names_and_negation),
        cmocka_unit_test(test_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
