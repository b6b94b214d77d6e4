/* Tests of the tokenizer (src/whisper/tokenizer.c) on the golden model's
 * real English vocabulary: the golden BPE encoding, special ids for the
 * three vocabulary sizes, round trips, split UTF-8, the non-speech set and
 * the language table. */
#include "testutil.h"

#include "whisper/whisper_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The golden model file's vocabulary block, parsed here because the model
 * loader is not part of this module. Entries point into the file buffer. */
typedef struct {
    uint8_t *file;
    int n_vocab;
    int count;
    const uint8_t **entries;
    uint32_t *lens;
} Vocab;

static Vocab vocab;

static uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int load_vocab(void **state) {
    (void)state;
    size_t size = 0;
    uint8_t *d = tu_read(tu_shared("golden/ggml-micro-synthetic.en.bin"), &size);
    if (!d || size < 4 + 44 + 8 || rd_u32(d) != 0x67676d6c) return -1;
    vocab.file = d;
    vocab.n_vocab = (int)rd_u32(d + 4);
    size_t o = 4 + 44;
    size_t n_filt = (size_t)rd_u32(d + o) * rd_u32(d + o + 4);
    o += 8 + 4 * n_filt;
    if (o + 4 > size) return -1;
    vocab.count = (int)rd_u32(d + o);
    o += 4;
    if (vocab.count < 0 || vocab.count > vocab.n_vocab) return -1;
    vocab.entries = calloc((size_t)vocab.count, sizeof *vocab.entries);
    vocab.lens = calloc((size_t)vocab.count, sizeof *vocab.lens);
    if (!vocab.entries || !vocab.lens) return -1;
    for (int i = 0; i < vocab.count; i++) {
        if (o + 4 > size) return -1;
        uint32_t len = rd_u32(d + o);
        o += 4;
        if (len > size - o) return -1;
        vocab.entries[i] = d + o;
        vocab.lens[i] = len;
        o += len;
    }
    return 0;
}

static int free_vocab(void **state) {
    (void)state;
    free(vocab.file);
    free(vocab.entries);
    free(vocab.lens);
    return 0;
}

/* A model holding only a tokenizer, enough for the whisper_* wrappers. */
static WhisperModel *make_model(int n_vocab) {
    WhisperModel *m = calloc(1, sizeof *m);
    assert_non_null(m);
    char msg[256] = "";
    int err =
        tokenizer_init(&m->tok, n_vocab, vocab.count, vocab.entries, vocab.lens, msg, sizeof msg);
    if (err) fprintf(stderr, "tokenizer_init: %s\n", msg);
    assert_int_equal(err, 0);
    m->hp.n_vocab = n_vocab;
    return m;
}

static void free_model(WhisperModel *m) {
    tokenizer_free(&m->tok);
    free(m);
}

static const char *token_text(const WhisperModel *m, int id, char *buf, size_t cap) {
    int len = 0;
    const char *b = whisper_token_bytes(m, id, &len);
    assert_non_null(b);
    assert_true((size_t)len < cap);
    memcpy(buf, b, (size_t)len);
    buf[len] = 0;
    return buf;
}

static void test_golden_encoding(void **state) {
    (void)state;
    WhisperModel *m = make_model(vocab.n_vocab);
    const int expect[] = {843, 523, 616,  5891, 3399, 11,  1265, 407,
                          644, 534, 1499, 460,  466,  329, 345};
    int *ids = NULL, n = 0;
    char msg[256] = "";
    assert_int_equal(
        whisper_tokenize(m, " And so my fellow Americans, ask not what your country can do for you",
                         &ids, &n, msg, sizeof msg),
        0);
    assert_int_equal(n, 15);
    assert_memory_equal(ids, expect, sizeof expect);
    free(ids);

    /* GPT-2's well-known encodings of a greeting. */
    assert_int_equal(tokenizer_encode(&m->tok, "Hello world", &ids, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 15496);
    assert_int_equal(ids[1], 995);
    free(ids);

    /* Empty text: no tokens, but a freeable result. */
    assert_int_equal(tokenizer_encode(&m->tok, "", &ids, &n), 0);
    assert_int_equal(n, 0);
    free(ids);
    assert_int_equal(whisper_tokenize(m, NULL, &ids, &n, msg, sizeof msg), DI_EINVAL);
    assert_null(ids);
    free_model(m);
}

static void check_specials(int n_vocab, int eot, int translate, int n_languages) {
    WhisperModel *m = make_model(n_vocab);
    const WhisperSpecials *sp = whisper_specials(m);
    assert_non_null(sp);
    assert_int_equal(sp->eot, eot);
    assert_int_equal(sp->sot, eot + 1);
    assert_int_equal(sp->lang_begin, eot + 2);
    assert_int_equal(sp->translate, translate);
    assert_int_equal(sp->transcribe, translate + 1);
    assert_int_equal(sp->solm, translate + 2);
    assert_int_equal(sp->prev, translate + 3);
    assert_int_equal(sp->nosp, translate + 4);
    assert_int_equal(sp->notimestamps, translate + 5);
    assert_int_equal(sp->timestamp_begin, translate + 6);
    assert_int_equal(sp->n_languages, n_languages);

    char buf[64];
    assert_string_equal(token_text(m, sp->eot, buf, sizeof buf), "<|endoftext|>");
    assert_string_equal(token_text(m, sp->sot, buf, sizeof buf), "<|startoftranscript|>");
    assert_string_equal(token_text(m, sp->lang_begin, buf, sizeof buf), "<|en|>");
    assert_string_equal(token_text(m, sp->lang_begin + 1, buf, sizeof buf), "<|zh|>");
    assert_string_equal(token_text(m, sp->translate - 1, buf, sizeof buf),
                        n_languages == 100 ? "<|yue|>" : "<|su|>");
    assert_string_equal(token_text(m, sp->translate, buf, sizeof buf), "<|translate|>");
    assert_string_equal(token_text(m, sp->transcribe, buf, sizeof buf), "<|transcribe|>");
    assert_string_equal(token_text(m, sp->solm, buf, sizeof buf), "<|startoflm|>");
    assert_string_equal(token_text(m, sp->prev, buf, sizeof buf), "<|startofprev|>");
    assert_string_equal(token_text(m, sp->nosp, buf, sizeof buf), "<|nospeech|>");
    assert_string_equal(token_text(m, sp->notimestamps, buf, sizeof buf), "<|notimestamps|>");
    assert_string_equal(token_text(m, sp->timestamp_begin, buf, sizeof buf), "<|0.00|>");
    assert_string_equal(token_text(m, sp->timestamp_begin + 1, buf, sizeof buf), "<|0.02|>");
    assert_string_equal(token_text(m, sp->timestamp_begin + 777, buf, sizeof buf), "<|15.54|>");
    assert_string_equal(token_text(m, sp->timestamp_begin + 1500, buf, sizeof buf), "<|30.00|>");
    /* The timestamps run to the end of the vocabulary. */
    assert_int_equal(sp->timestamp_begin + 1500, n_vocab - 1);
    int len = 5;
    assert_null(whisper_token_bytes(m, n_vocab, &len));
    assert_int_equal(len, 0);
    assert_null(whisper_token_bytes(m, -1, &len));
    free_model(m);
}

static void test_specials(void **state) {
    (void)state;
    check_specials(51864, 50256, 50357, 0);
    check_specials(51865, 50257, 50358, 99);
    check_specials(51866, 50257, 50359, 100);

    /* A larger future vocabulary: accepted, languages capped at the known
     * 100, the unknown language slot gets a placeholder name. */
    WhisperModel *m = make_model(51867);
    assert_int_equal(m->tok.sp.translate, 50360);
    assert_int_equal(m->tok.sp.n_languages, 100);
    char buf[64];
    assert_string_equal(token_text(m, m->tok.sp.lang_begin + 100, buf, sizeof buf),
                        "[_extra_token_50359]");
    free_model(m);
}

static void test_rejects_bad_vocab(void **state) {
    (void)state;
    Tokenizer t;
    char msg[256] = "";
    assert_int_equal(
        tokenizer_init(&t, 51863, vocab.count, vocab.entries, vocab.lens, msg, sizeof msg),
        DI_EFORMAT);
    assert_non_null(strstr(msg, "51863"));
    assert_int_equal(tokenizer_init(&t, 51864, 51865, vocab.entries, vocab.lens, msg, sizeof msg),
                     DI_EFORMAT);
    assert_int_equal(tokenizer_init(&t, 51864, 10, NULL, NULL, msg, sizeof msg), DI_EINVAL);
    assert_int_equal(tokenizer_init(NULL, 51864, 0, NULL, NULL, msg, sizeof msg), DI_EINVAL);

    uint32_t lens[3] = {1, 1025, 1};
    static uint8_t big[1025];
    const uint8_t *entries[3] = {(const uint8_t *)"a", big, (const uint8_t *)"b"};
    assert_int_equal(tokenizer_init(&t, 51864, 3, entries, lens, msg, sizeof msg), DI_EFORMAT);
    assert_non_null(strstr(msg, "1025"));
    tokenizer_free(&t); /* after a failure the struct is empty and freeable */
    tokenizer_free(NULL);
}

/* Strict UTF-8 check, independent of the code under test. */
static int valid_utf8(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 0 : (*p >> 5) == 6 ? 1 : (*p >> 4) == 14 ? 2 : (*p >> 3) == 30 ? 3 : -1;
        if (n < 0 || (n == 1 && *p < 0xC2)) return 0;
        unsigned cp = n == 0 ? *p : *p & (0x3F >> n);
        for (int i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        p += n + 1;
    }
    return 1;
}

static void test_round_trips(void **state) {
    (void)state;
    WhisperModel *m = make_model(vocab.n_vocab);
    const char *texts[] = {
        "Hello, world! It's 2024 and we're testing.",
        " café crème brûlée, naïve façade",
        "日本語のテキストと中文",
        "emoji 🎉🚀 and ♪ music ♪",
        "numbers 3.14159 1,000,000 42nd",
        "!!!??? ...--- (((nested))) [[x]] {{y}}",
        "multiple   spaces    here",
        "line one\nline two\n\n\tindented\r\n",
        "trailing spaces   ",
        "   leading",
        "I'm you'll they've she'd we'RE 'tis",
        "Ελληνικά Русский עברית العربية हिन्दी ไทย",
        "\xC2\xA0nbsp and\xE3\x80\x80ideographic space",
        "<|endoftext|> is plain text here",
    };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        int *ids = NULL, n = 0;
        assert_int_equal(tokenizer_encode(&m->tok, texts[i], &ids, &n), 0);
        assert_true(n > 0);
        for (int k = 0; k < n; k++)
            assert_true(ids[k] >= 0 && ids[k] < m->tok.sp.eot);
        char *back = whisper_detokenize(m, ids, n);
        assert_non_null(back);
        assert_string_equal(back, texts[i]);
        free(back);
        free(ids);
    }
    free_model(m);
}

/* The GPT-2 pre-split, seen through tokens that are whole pieces. */
static void expect_pieces(const WhisperModel *m, const char *text, const char *const *pieces,
                          int n_pieces) {
    int *ids = NULL, n = 0;
    assert_int_equal(tokenizer_encode(&m->tok, text, &ids, &n), 0);
    assert_int_equal(n, n_pieces);
    char buf[64];
    for (int i = 0; i < n; i++)
        assert_string_equal(token_text(m, ids[i], buf, sizeof buf), pieces[i]);
    free(ids);
}

static void test_pre_split(void **state) {
    (void)state;
    WhisperModel *m = make_model(vocab.n_vocab);
    /* Two spaces before a word: the first stands alone, the second leads the word. */
    expect_pieces(m, "hello  world", (const char *[]){"hello", " ", " world"}, 3);
    /* Newlines before a word are split one by one. */
    expect_pieces(m, "a\n\nb", (const char *[]){"a", "\n", "\n", "b"}, 4);
    /* At the end, a whitespace run stays whole. */
    expect_pieces(m, "a\n\n", (const char *[]){"a", "\n\n"}, 2);
    /* Contractions split off; the pattern is case-sensitive. */
    expect_pieces(m, "I'm", (const char *[]){"I", "'m"}, 2);
    expect_pieces(m, "they'll", (const char *[]){"they", "'ll"}, 2);
    /* Letters, numbers and punctuation form separate runs. */
    expect_pieces(m, "abc123", (const char *[]){"abc", "123"}, 2);
    expect_pieces(m, " (x)", (const char *[]){" (", "x", ")"}, 3);
    free_model(m);
}

static void test_split_utf8_detokenize(void **state) {
    (void)state;
    WhisperModel *m = make_model(vocab.n_vocab);
    int c3 = tokenizer_lookup(&m->tok, "\xC3", 1);
    int a9 = tokenizer_lookup(&m->tok, "\xA9", 1);
    int e4 = tokenizer_lookup(&m->tok, "\xE4", 1);
    int b8 = tokenizer_lookup(&m->tok, "\xB8", 1);
    int ad = tokenizer_lookup(&m->tok, "\xAD", 1);
    int a = tokenizer_lookup(&m->tok, "a", 1);
    assert_true(c3 >= 0 && a9 >= 0 && e4 >= 0 && b8 >= 0 && ad >= 0 && a >= 0);
    /* Single bytes are the first 256 ids. */
    assert_true(c3 < 256 && a9 < 256);

    const WhisperSpecials *sp = whisper_specials(m);
    struct {
        int ids[6];
        int n;
        const char *text;
    } cases[] = {
        {{c3, a9}, 2, "\xC3\xA9"},         /* é from two tokens */
        {{e4, b8, ad}, 3, "\xE4\xB8\xAD"}, /* 中 from three */
        {{c3}, 1, "\xEF\xBF\xBD"},         /* a dangling lead byte */
        {{c3, a},
         2,
         "\xEF\xBF\xBD"
         "a"}, /* a lead byte before ASCII */
        {{e4, b8, a},
         3,
         "\xEF\xBF\xBD"
         "a"},                                     /* a cut 3-byte character: one U+FFFD */
        {{a9, a9}, 2, "\xEF\xBF\xBD\xEF\xBF\xBD"}, /* stray continuation bytes */
        {{c3, sp->eot, a9}, 3, "\xC3\xA9"},        /* specials are skipped */
        {{sp->sot, sp->timestamp_begin + 5, -3, 999999, a}, 5, "a"}, /* and so is junk */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *s = whisper_detokenize(m, cases[i].ids, cases[i].n);
        assert_non_null(s);
        assert_string_equal(s, cases[i].text);
        free(s);
    }
    char *s = whisper_detokenize(m, NULL, 0);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);

    /* Any sequence of ordinary tokens decodes to valid UTF-8. */
    uint64_t x = 12345;
    int ids[40];
    for (int round = 0; round < 500; round++) {
        for (int i = 0; i < 40; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            ids[i] = (int)((x >> 33) % (round % 2 ? 256 : (uint64_t)sp->eot));
        }
        s = whisper_detokenize(m, ids, 40);
        assert_non_null(s);
        assert_true(valid_utf8(s));
        free(s);
    }
    free_model(m);
}

static int in_set(const Tokenizer *t, int id) {
    for (int i = 0; i < t->n_non_speech; i++)
        if (t->non_speech[i] == id) return 1;
    return 0;
}

static void test_non_speech(void **state) {
    (void)state;
    WhisperModel *m = make_model(vocab.n_vocab);
    const Tokenizer *t = &m->tok;
    assert_true(t->n_non_speech > 20);
    for (int i = 1; i < t->n_non_speech; i++)
        assert_true(t->non_speech[i - 1] < t->non_speech[i]);
    const char *in[] = {"(", " (", ")", "\"", " \"", "#", "[", " [", "~", " -", " '", ">>", "--"};
    for (size_t i = 0; i < sizeof in / sizeof *in; i++) {
        int id = tokenizer_lookup(t, in[i], (int)strlen(in[i]));
        assert_true(id >= 0);
        assert_true(in_set(t, id));
    }
    /* Every musical sign contributes its first token, alone and after a space. */
    const char *musical[] = {"♩", "♪", " ♪", "♯"};
    for (size_t i = 0; i < sizeof musical / sizeof *musical; i++) {
        int *ids = NULL, n = 0;
        assert_int_equal(tokenizer_encode(t, musical[i], &ids, &n), 0);
        assert_true(n >= 1);
        assert_true(in_set(t, ids[0]));
        free(ids);
    }
    /* Not " ": this file's vocabulary lost the token " \xE2\x99" (see
     * repair_byte_tokens in tokenizer.c), so " ♪" starts with " " here. */
    const char *out[] = {" the", "hello", " And", "a", ",", ".", "?", "!", " I"};
    for (size_t i = 0; i < sizeof out / sizeof *out; i++) {
        int id = tokenizer_lookup(t, out[i], (int)strlen(out[i]));
        assert_true(id >= 0);
        assert_false(in_set(t, id));
    }
    assert_int_equal(t->blank, tokenizer_lookup(t, " ", 1));
    assert_int_equal(t->blank, 220);
    free_model(m);
}

static void test_token_bytes(void **state) {
    (void)state;
    WhisperModel *m = make_model(vocab.n_vocab);
    int len = 0;
    const char *b = whisper_token_bytes(m, 843, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(b, " And", 4);
    assert_int_equal(tokenizer_lookup(&m->tok, " And", 4), 843);
    assert_int_equal(tokenizer_lookup(&m->tok, "no such token xyz", 17), -1);
    /* Specials are not ordinary tokens, so their text does not look them up. */
    assert_int_equal(tokenizer_lookup(&m->tok, "<|endoftext|>", 13), -1);
    assert_null(whisper_token_bytes(NULL, 0, &len));
    assert_int_equal(len, 0);
    free_model(m);
}

/* A vocabulary without some single bytes cannot encode them: an error,
 * not a crash or a silent loss. */
static void test_unencodable_text(void **state) {
    (void)state;
    const uint8_t *entries[4] = {(const uint8_t *)"a", (const uint8_t *)"b", (const uint8_t *)"ab",
                                 (const uint8_t *)" "};
    uint32_t lens[4] = {1, 1, 2, 1};
    WhisperModel *m = calloc(1, sizeof *m);
    assert_non_null(m);
    char msg[256] = "";
    assert_int_equal(tokenizer_init(&m->tok, 51864, 4, entries, lens, msg, sizeof msg), 0);
    int *ids = NULL, n = 0;
    assert_int_equal(tokenizer_encode(&m->tok, "abab", &ids, &n), 0);
    assert_int_equal(n, 2); /* the whole piece is no token: a b a b -> ab ab */
    free(ids);
    assert_int_equal(tokenizer_encode(&m->tok, "ab ab", &ids, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 3);
    assert_int_equal(ids[2], 2);
    free(ids);
    assert_int_equal(whisper_tokenize(m, "abc", &ids, &n, msg, sizeof msg), DI_EUNSUPPORTED);
    assert_null(ids);
    assert_true(strlen(msg) > 0);
    /* Ids past the file's entries, below eot, get placeholder names. */
    char buf[64];
    assert_string_equal(token_text(m, 4, buf, sizeof buf), "[_extra_token_4]");
    tokenizer_free(&m->tok);
    free(m);
}

/* Pathological input: a long piece without spaces, and arbitrary bytes
 * (invalid UTF-8) that must still encode byte for byte. */
static void test_long_and_binary_input(void **state) {
    (void)state;
    WhisperModel *m = make_model(vocab.n_vocab);
    size_t n_text = 256 * 1024;
    char *text = malloc(n_text + 1);
    assert_non_null(text);
    for (size_t i = 0; i < n_text; i++)
        text[i] = "ab"[i % 7 == 0];
    text[n_text] = 0;
    int *ids = NULL, n = 0;
    double t0 = di_now();
    assert_int_equal(tokenizer_encode(&m->tok, text, &ids, &n), 0);
    assert_true(di_now() - t0 < 20.0);
    assert_true(n > 0 && (size_t)n < n_text);
    char *back = whisper_detokenize(m, ids, n);
    assert_non_null(back);
    assert_string_equal(back, text);
    free(back);
    free(ids);

    uint64_t x = 99;
    for (size_t i = 0; i < 4096; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        text[i] = (char)((x >> 40) % 255 + 1); /* any byte but NUL */
    }
    text[4096] = 0;
    assert_int_equal(tokenizer_encode(&m->tok, text, &ids, &n), 0);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        int len = 0;
        const char *b = whisper_token_bytes(m, ids[i], &len);
        assert_true(ids[i] < m->tok.sp.eot);
        assert_memory_equal(b, text + total, (size_t)len);
        total += (size_t)len;
    }
    assert_int_equal(total, 4096);
    free(ids);
    free(text);
    free_model(m);
}

static void test_languages(void **state) {
    (void)state;
    assert_int_equal(whisper_lang_count(), 100);
    assert_int_equal(whisper_lang_id("en"), 0);
    assert_int_equal(whisper_lang_id("zh"), 1);
    assert_int_equal(whisper_lang_id("yue"), 99);
    assert_int_equal(whisper_lang_id("haw"), 93);
    assert_int_equal(whisper_lang_id("xx"), -1);
    assert_int_equal(whisper_lang_id(""), -1);
    assert_int_equal(whisper_lang_id(NULL), -1);
    assert_int_equal(whisper_lang_id("English"), 0);
    assert_int_equal(whisper_lang_id("SPANISH"), 3);
    assert_int_equal(whisper_lang_id("EN"), 0);
    assert_int_equal(whisper_lang_id("castilian"), 3);
    assert_string_equal(whisper_lang_code(0), "en");
    assert_string_equal(whisper_lang_code(99), "yue");
    assert_null(whisper_lang_code(100));
    assert_null(whisper_lang_code(-1));
    for (int i = 0; i < whisper_lang_count(); i++)
        assert_int_equal(whisper_lang_id(whisper_lang_code(i)), i);
    /* The multilingual model's language tokens carry the same order. */
    WhisperModel *m = make_model(51866);
    char buf[64], want[64];
    for (int i = 0; i < m->tok.sp.n_languages; i++) {
        snprintf(want, sizeof want, "<|%s|>", whisper_lang_code(i));
        assert_string_equal(token_text(m, m->tok.sp.lang_begin + i, buf, sizeof buf), want);
    }
    free_model(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_encoding),   cmocka_unit_test(test_specials),
        cmocka_unit_test(test_rejects_bad_vocab), cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_pre_split),         cmocka_unit_test(test_split_utf8_detokenize),
        cmocka_unit_test(test_non_speech),        cmocka_unit_test(test_token_bytes),
        cmocka_unit_test(test_unencodable_text),  cmocka_unit_test(test_long_and_binary_input),
        cmocka_unit_test(test_languages),
    };
    return cmocka_run_group_tests(tests, load_vocab, free_vocab);
}
