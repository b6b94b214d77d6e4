/* Tests for cli/output: every format's exact text for hand-made results,
 * timestamp rounding, format names and language names. */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output/output.h"

static int TOK0[] = {50364, 843, 523, 616, 5891, 3399, 11, 50574};
static int TOK2[] = {50574, 1265, 407, 50914};

/* Three segments: plain text, an empty one, and one with quotes, a newline,
 * non-ASCII text and characters WebVTT must escape. */
static WhisperResult sample(WhisperSegment segs[3]) {
    memset(segs, 0, 3 * sizeof *segs);
    segs[0] = (WhisperSegment){.id = 0,
                               .seek = 0,
                               .start = 0.0,
                               .end = 4.2,
                               .text = " And so my fellow Americans,",
                               .tokens = TOK0,
                               .n_tokens = 8,
                               .temperature = 0.0f,
                               .avg_logprob = -0.3f,
                               .compression_ratio = 1.2f,
                               .no_speech_prob = 0.01f};
    segs[1] = (WhisperSegment){.id = 1,
                               .seek = 0,
                               .start = 4.2,
                               .end = 4.2,
                               .text = "  ",
                               .temperature = 0.0f,
                               .avg_logprob = -1.0f,
                               .compression_ratio = 1.0f,
                               .no_speech_prob = 0.9f};
    segs[2] = (WhisperSegment){.id = 2,
                               .seek = 420,
                               .start = 4.2,
                               .end = 10.9996,
                               .text = " \"ask\" not\n\nwhat — café 日本語 <b>&",
                               .tokens = TOK2,
                               .n_tokens = 4,
                               .temperature = 0.2f,
                               .avg_logprob = -0.55f,
                               .compression_ratio = 1.55f,
                               .no_speech_prob = 0.5f};
    WhisperResult r = {
        .duration = 11.0,
        .segments = segs,
        .n_segments = 3,
        .text = " And so my fellow Americans, \"ask\" not\n\nwhat — café 日本語 <b>& \n"};
    strcpy(r.language, "en");
    return r;
}

static char *render(const WhisperResult *r, OutFormat fmt, const char *task) {
    char msg[256] = "";
    char *out = NULL;
    int rc = output_render(r, fmt, task, &out, msg, sizeof msg);
    if (rc != 0) fprintf(stderr, "render failed: %s\n", msg);
    assert_int_equal(rc, 0);
    assert_non_null(out);
    return out;
}

static void test_text(void **state) {
    (void)state;
    WhisperSegment segs[3];
    WhisperResult r = sample(segs);
    char *s = render(&r, OUT_TEXT, NULL);
    assert_string_equal(s, "And so my fellow Americans, \"ask\" not\n\nwhat — café 日本語 <b>&\n");
    free(s);
}

static void test_json(void **state) {
    (void)state;
    WhisperSegment segs[3];
    WhisperResult r = sample(segs);
    char *s = render(&r, OUT_JSON, "transcribe");
    /* jansson escapes quotes and newlines and leaves UTF-8 as is. */
    assert_string_equal(s, "{\"text\": \"And so my fellow Americans, \\\"ask\\\" not\\n\\nwhat — "
                           "café 日本語 <b>&\"}\n");
    json_error_t err;
    json_t *root = json_loads(s, 0, &err);
    assert_non_null(root);
    assert_int_equal(json_object_size(root), 1);
    assert_string_equal(json_string_value(json_object_get(root, "text")),
                        "And so my fellow Americans, \"ask\" not\n\nwhat — café 日本語 <b>&");
    json_decref(root);
    free(s);
}

static void check_real(json_t *obj, const char *key, double want) {
    json_t *v = json_object_get(obj, key);
    assert_non_null(v);
    assert_true(json_is_real(v));
    assert_true(fabs(json_real_value(v) - want) < 1e-9);
}

static void test_verbose_json(void **state) {
    (void)state;
    WhisperSegment segs[3];
    WhisperResult r = sample(segs);
    char *s = render(&r, OUT_VERBOSE_JSON, "transcribe");

    /* Floats print the way OpenAI's API prints them. */
    assert_non_null(strstr(s, "\"duration\": 11.0,"));
    assert_non_null(strstr(s, "\"end\": 4.2,"));
    assert_non_null(strstr(s, "\"end\": 11.0,")); /* 10.9996 rounds to the ms */
    assert_non_null(strstr(s, "\"avg_logprob\": -0.3,"));
    assert_non_null(strstr(s, "\"no_speech_prob\": 0.01}"));
    assert_non_null(strstr(s, "\"temperature\": 0.0,"));
    assert_int_equal(s[strlen(s) - 1], '\n');

    json_error_t err;
    json_t *root = json_loads(s, 0, &err);
    assert_non_null(root);
    static const char *const KEYS[] = {"task", "language", "duration", "text", "segments"};
    void *it = json_object_iter(root);
    for (int i = 0; i < 5; i++, it = json_object_iter_next(root, it)) {
        assert_non_null(it);
        assert_string_equal(json_object_iter_key(it), KEYS[i]);
    }
    assert_null(it);
    assert_string_equal(json_string_value(json_object_get(root, "task")), "transcribe");
    assert_string_equal(json_string_value(json_object_get(root, "language")), "english");
    check_real(root, "duration", 11.0);
    assert_string_equal(json_string_value(json_object_get(root, "text")),
                        "And so my fellow Americans, \"ask\" not\n\nwhat — café 日本語 <b>&");

    json_t *arr = json_object_get(root, "segments");
    assert_true(json_is_array(arr));
    assert_int_equal(json_array_size(arr), 3); /* the empty segment is kept */
    static const char *const SEG_KEYS[] = {"id",
                                           "seek",
                                           "start",
                                           "end",
                                           "text",
                                           "tokens",
                                           "temperature",
                                           "avg_logprob",
                                           "compression_ratio",
                                           "no_speech_prob"};
    for (size_t i = 0; i < 3; i++) {
        json_t *seg = json_array_get(arr, i);
        it = json_object_iter(seg);
        for (int k = 0; k < 10; k++, it = json_object_iter_next(seg, it)) {
            assert_non_null(it);
            assert_string_equal(json_object_iter_key(it), SEG_KEYS[k]);
        }
        assert_null(it);
        assert_true(json_is_integer(json_object_get(seg, "id")));
        assert_int_equal(json_integer_value(json_object_get(seg, "id")), segs[i].id);
        assert_int_equal(json_integer_value(json_object_get(seg, "seek")), segs[i].seek);
        /* Segment text keeps its leading space. */
        assert_string_equal(json_string_value(json_object_get(seg, "text")), segs[i].text);
        json_t *tok = json_object_get(seg, "tokens");
        assert_int_equal(json_array_size(tok), segs[i].n_tokens);
        for (int k = 0; k < segs[i].n_tokens; k++) {
            assert_true(json_is_integer(json_array_get(tok, k)));
            assert_int_equal(json_integer_value(json_array_get(tok, k)), segs[i].tokens[k]);
        }
        check_real(seg, "start", segs[i].start);
        check_real(seg, "temperature", round(segs[i].temperature * 1e6) / 1e6);
        check_real(seg, "avg_logprob", round(segs[i].avg_logprob * 1e6) / 1e6);
        check_real(seg, "compression_ratio", round(segs[i].compression_ratio * 1e6) / 1e6);
        check_real(seg, "no_speech_prob", round(segs[i].no_speech_prob * 1e6) / 1e6);
    }
    check_real(json_array_get(arr, 2), "end", 11.0);
    json_decref(root);
    free(s);

    /* translate task, another language, an unknown code, a non-finite metric. */
    strcpy(r.language, "de");
    segs[0].avg_logprob = -INFINITY;
    s = render(&r, OUT_VERBOSE_JSON, "translate");
    root = json_loads(s, 0, &err);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "task")), "translate");
    assert_string_equal(json_string_value(json_object_get(root, "language")), "german");
    assert_true(json_is_null(
        json_object_get(json_array_get(json_object_get(root, "segments"), 0), "avg_logprob")));
    json_decref(root);
    free(s);
    strcpy(r.language, "xx");
    s = render(&r, OUT_VERBOSE_JSON, NULL);
    root = json_loads(s, 0, &err);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "language")), "xx");
    assert_string_equal(json_string_value(json_object_get(root, "task")), "transcribe");
    json_decref(root);
    free(s);
}

static void test_srt(void **state) {
    (void)state;
    WhisperSegment segs[3];
    WhisperResult r = sample(segs);
    char *s = render(&r, OUT_SRT, NULL);
    assert_string_equal(s, "1\n"
                           "00:00:00,000 --> 00:00:04,200\n"
                           "And so my fellow Americans,\n"
                           "\n"
                           "2\n"
                           "00:00:04,200 --> 00:00:11,000\n"
                           "\"ask\" not\n"
                           "what — café 日本語 <b>&\n"
                           "\n");
    free(s);
}

static void test_vtt(void **state) {
    (void)state;
    WhisperSegment segs[3];
    WhisperResult r = sample(segs);
    segs[0].start = -0.5; /* clamped to 0 */
    segs[2].start = 3725.0456;
    segs[2].end = 3600.0; /* before its start: clamped to the start */
    char *s = render(&r, OUT_VTT, NULL);
    assert_string_equal(s, "WEBVTT\n"
                           "\n"
                           "00:00:00.000 --> 00:00:04.200\n"
                           "And so my fellow Americans,\n"
                           "\n"
                           "01:02:05.046 --> 01:02:05.046\n"
                           "\"ask\" not\n"
                           "what — café 日本語 &lt;b&gt;&amp;\n"
                           "\n");
    free(s);
}

static void test_empty_result(void **state) {
    (void)state;
    WhisperResult r;
    memset(&r, 0, sizeof r);
    strcpy(r.language, "en");
    char *s = render(&r, OUT_TEXT, NULL);
    assert_string_equal(s, "\n");
    free(s);
    s = render(&r, OUT_JSON, NULL);
    assert_string_equal(s, "{\"text\": \"\"}\n");
    free(s);
    s = render(&r, OUT_SRT, NULL);
    assert_string_equal(s, "");
    free(s);
    s = render(&r, OUT_VTT, NULL);
    assert_string_equal(s, "WEBVTT\n\n");
    free(s);
    s = render(&r, OUT_VERBOSE_JSON, NULL);
    assert_string_equal(s, "{\"task\": \"transcribe\", \"language\": \"english\", \"duration\": "
                           "0.0, \"text\": \"\", \"segments\": []}\n");
    free(s);
}

static void ts(double t, char sep, const char *want) {
    char buf[32];
    output_timestamp(t, sep, buf, sizeof buf);
    assert_string_equal(buf, want);
}

static void test_timestamps(void **state) {
    (void)state;
    ts(0.0, ',', "00:00:00,000");
    ts(3599.9996, ',', "01:00:00,000");
    ts(3599.9994, ',', "00:59:59,999");
    ts(59.9996, '.', "00:01:00.000");
    ts(0.0004, ',', "00:00:00,000");
    ts(0.0006, ',', "00:00:00,001");
    ts(4.2, '.', "00:00:04.200");
    ts(86399.999, ',', "23:59:59,999");
    ts(360000.0, ',', "100:00:00,000");
    ts(-2.5, ',', "00:00:00,000");
    ts(NAN, ',', "00:00:00,000");
    ts(-INFINITY, '.', "00:00:00.000");
    char buf[32];
    output_timestamp(INFINITY, ',', buf, sizeof buf); /* capped, must not crash */
    assert_true(strlen(buf) >= 12);
}

static void test_format_names(void **state) {
    (void)state;
    static const struct {
        const char *name;
        OutFormat fmt;
        const char *ext;
    } OK[] = {{"text", OUT_TEXT, "txt"},  {"txt", OUT_TEXT, "txt"},
              {"json", OUT_JSON, "json"}, {"verbose_json", OUT_VERBOSE_JSON, "json"},
              {"srt", OUT_SRT, "srt"},    {"vtt", OUT_VTT, "vtt"}};
    for (size_t i = 0; i < sizeof OK / sizeof OK[0]; i++) {
        OutFormat f = (OutFormat)-1;
        assert_int_equal(output_format_parse(OK[i].name, &f), 0);
        assert_int_equal(f, OK[i].fmt);
        assert_string_equal(output_format_ext(f), OK[i].ext);
    }
    static const char *const BAD[] = {"", "JSON", "srt ", "verbose-json", "tsv", "vt"};
    OutFormat f = OUT_SRT;
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        assert_int_equal(output_format_parse(BAD[i], &f), DI_EINVAL);
        assert_int_equal(f, OUT_SRT); /* untouched on failure */
    }
    assert_int_equal(output_format_parse(NULL, &f), DI_EINVAL);
    assert_int_equal(output_format_parse("json", NULL), DI_EINVAL);
    assert_null(output_format_ext((OutFormat)42));
}

static void test_language_names(void **state) {
    (void)state;
    assert_string_equal(output_language_name("en"), "english");
    assert_string_equal(output_language_name("zh"), "chinese");
    assert_string_equal(output_language_name("no"), "norwegian");
    assert_string_equal(output_language_name("ht"), "haitian creole");
    assert_string_equal(output_language_name("haw"), "hawaiian");
    assert_string_equal(output_language_name("jw"), "javanese");
    assert_string_equal(output_language_name("my"), "myanmar");
    assert_string_equal(output_language_name("yue"), "cantonese");
    assert_null(output_language_name("xx"));
    assert_null(output_language_name(""));
    assert_null(output_language_name("EN"));
    assert_null(output_language_name(NULL));
}

static void test_errors(void **state) {
    (void)state;
    WhisperSegment segs[3];
    WhisperResult r = sample(segs);
    char msg[256];
    char *out = (char *)"sentinel";
    assert_int_equal(output_render(NULL, OUT_TEXT, NULL, &out, msg, sizeof msg), DI_EINVAL);
    assert_null(out);
    assert_int_equal(output_render(&r, OUT_TEXT, NULL, NULL, msg, sizeof msg), DI_EINVAL);
    assert_int_equal(output_render(&r, OUT_TEXT, "summarize", &out, msg, sizeof msg), DI_EINVAL);
    assert_null(out);
    assert_int_equal(output_render(&r, (OutFormat)42, NULL, &out, msg, sizeof msg), DI_EINVAL);
    assert_null(out);

    WhisperResult bad = r;
    bad.segments = NULL;
    assert_int_equal(output_render(&bad, OUT_SRT, NULL, &out, msg, sizeof msg), DI_EINVAL);
    bad = r;
    bad.n_segments = -1;
    assert_int_equal(output_render(&bad, OUT_SRT, NULL, &out, msg, sizeof msg), DI_EINVAL);
    segs[0].tokens = NULL;
    assert_int_equal(output_render(&r, OUT_VERBOSE_JSON, NULL, &out, msg, sizeof msg), DI_EINVAL);
    segs[0].tokens = TOK0;

    /* Invalid UTF-8 cannot become a JSON string. */
    char broken[] = " caf\xc3 x";
    segs[2].text = broken;
    assert_int_equal(output_render(&r, OUT_VERBOSE_JSON, NULL, &out, msg, sizeof msg), DI_EFORMAT);
    assert_null(out);
    assert_non_null(strstr(msg, "segment 2"));
    r.text = broken;
    assert_int_equal(output_render(&r, OUT_JSON, NULL, &out, msg, sizeof msg), DI_EFORMAT);
    assert_null(out);

    /* A language field without a terminator is read up to its size only. */
    memset(r.language, 'a', sizeof r.language);
    r.text = "ok";
    segs[2].text = "ok";
    out = render(&r, OUT_VERBOSE_JSON, NULL);
    assert_non_null(strstr(out, "\"language\": \"aaaaaaaaaaaaaaaa\""));
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_verbose_json),
        cmocka_unit_test(test_srt),
        cmocka_unit_test(test_vtt),
        cmocka_unit_test(test_empty_result),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_format_names),
        cmocka_unit_test(test_language_names),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
