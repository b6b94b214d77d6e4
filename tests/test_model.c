/* Model loader: the golden micro model loads, and every kind of broken or
 * hostile file is a clear error (run under ASan in CI, so an out-of-bounds
 * read fails the test too). */
#include "testutil.h"
#include "whisper/whisper.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint8_t *model_bytes;
static size_t model_size;

/* Offsets inside the golden file, found by walking it independently. */
static size_t off_filters, off_vocab, off_tensors, off_last_tensor;

static int32_t rd32(size_t off) {
    int32_t v;
    memcpy(&v, model_bytes + off, 4);
    return v;
}

static void wr32(uint8_t *buf, size_t off, int32_t v) {
    memcpy(buf + off, &v, 4);
}

static size_t tensor_size(size_t off) {
    int32_t n_dims = rd32(off), name_len = rd32(off + 4), type = rd32(off + 8);
    size_t count = 1;
    for (int i = 0; i < n_dims; i++)
        count *= (size_t)rd32(off + 12 + 4 * (size_t)i);
    return 12 + 4 * (size_t)n_dims + (size_t)name_len + count * (type == 1 ? 2 : 4);
}

static int setup(void **state) {
    (void)state;
    model_bytes = tu_read(tu_shared("golden/ggml-micro-synthetic.en.bin"), &model_size);
    if (!model_bytes) return -1;
    off_filters = 4 + 11 * 4;
    off_vocab = off_filters + 8 + (size_t)rd32(off_filters) * (size_t)rd32(off_filters + 4) * 4;
    size_t p = off_vocab + 4;
    for (int i = 0; i < rd32(off_vocab); i++)
        p += 4 + (size_t)rd32(p);
    off_tensors = p;
    while (p < model_size) {
        off_last_tensor = p;
        p += tensor_size(p);
    }
    return p == model_size ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    free(model_bytes);
    return 0;
}

/* Loads a buffer and returns the code; the message must be non-empty on failure. */
static int load_buf(const uint8_t *buf, size_t n, char *msg, size_t cap) {
    WhisperModel *m = NULL;
    msg[0] = 0;
    int rc = whisper_model_load_buffer(buf, n, &m, msg, cap);
    if (rc == 0) {
        assert_non_null(m);
        whisper_model_free(m);
    } else {
        assert_null(m);
        assert_true(strlen(msg) > 10);
    }
    return rc;
}

static void loads_golden_model(void **state) {
    (void)state;
    char msg[512];
    WhisperModel *m;
    assert_int_equal(
        whisper_model_load(tu_shared("golden/ggml-micro-synthetic.en.bin"), &m, msg, sizeof msg),
        0);
    const WhisperHparams *hp = whisper_model_hparams(m);
    assert_int_equal(hp->n_vocab, 51864);
    assert_int_equal(hp->n_audio_state, 128);
    assert_int_equal(hp->n_text_layer, 2);
    assert_int_equal(hp->n_mels, 80);
    assert_int_equal(hp->ftype, 1);
    assert_false(whisper_model_is_multilingual(m));
    assert_string_equal(whisper_model_type(m), "custom (S=128, 2+2 layers)");
    /* 7,893,504 parameters: the matrices in f16, the rest in f32. */
    assert_true(whisper_model_bytes(m) > 7893504u * 2 && whisper_model_bytes(m) < 7893504u * 4);
    whisper_model_free(m);
    whisper_model_free(NULL);
}

static void missing_file_is_io_error(void **state) {
    (void)state;
    char msg[512];
    WhisperModel *m;
    assert_int_equal(whisper_model_load("/nonexistent/model.bin", &m, msg, sizeof msg), DI_EIO);
    assert_non_null(strstr(msg, "/nonexistent/model.bin"));
    assert_int_equal(whisper_model_load(tu_tmpdir(), &m, msg, sizeof msg), DI_EIO);
}

static void wrong_magic(void **state) {
    (void)state;
    char msg[512];
    uint8_t *b = malloc(model_size);
    memcpy(b, model_bytes, model_size);
    memcpy(b, "GGUF", 4);
    assert_int_equal(load_buf(b, model_size, msg, sizeof msg), DI_EFORMAT);
    assert_non_null(strstr(msg, "magic"));
    free(b);
    assert_int_equal(load_buf((const uint8_t *)"", 0, msg, sizeof msg), DI_EFORMAT);
}

/* Every truncation of the header (magic, hparams, filter sizes) and of the
 * first vocabulary entries and tensor header, and a stride through the rest. */
static void every_truncation_is_an_error(void **state) {
    (void)state;
    char msg[512];
    size_t points = 0;
    /* Byte by byte where the structure is dense, with a stride elsewhere. */
    const size_t dense[][2] = {
        {0, off_filters + 64}, {off_vocab, off_vocab + 256}, {off_tensors, off_tensors + 128}};
    for (size_t r = 0; r < 3; r++)
        for (size_t n = dense[r][0]; n < dense[r][1]; n++, points++)
            assert_int_equal(load_buf(model_bytes, n, msg, sizeof msg), DI_EFORMAT);
    for (size_t n = off_filters + 64; n < off_tensors; n += 4099, points++)
        assert_int_equal(load_buf(model_bytes, n, msg, sizeof msg), DI_EFORMAT);
    for (size_t n = off_tensors + 128; n < model_size; n += 1000003, points++)
        assert_int_equal(load_buf(model_bytes, n, msg, sizeof msg), DI_EFORMAT);
    assert_true(points > 300);
    /* One byte short of the end: the last tensor's data is cut. */
    assert_int_equal(load_buf(model_bytes, model_size - 1, msg, sizeof msg), DI_EFORMAT);
    assert_non_null(strstr(msg, "truncated"));
}

static void absurd_hparams(void **state) {
    (void)state;
    static const int32_t bad[][2] = {{0, -1}, {0, 0},      {0, 1 << 30}, {1, 0},      {1, 3000},
                                     {2, 0},  {2, -128},   {2, 1 << 20}, {3, 0},      {3, 7},
                                     {4, 0},  {4, 100000}, {5, 0},       {5, -5},     {6, 1 << 16},
                                     {7, 0},  {8, -1},     {9, 0},       {9, 100000}, {10, -3}};
    char msg[512];
    uint8_t *b = malloc(model_size);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memcpy(b, model_bytes, model_size);
        wr32(b, 4 + 4 * (size_t)bad[i][0], bad[i][1]);
        int rc = load_buf(b, model_size, msg, sizeof msg);
        assert_int_equal(rc, DI_EFORMAT);
    }
    free(b);
}

/* q8_0, q5_1, q5_0 and q4_0 load (tests/test_quant.c); other quantizations
 * are refused by name. */
static void unsupported_quantization_is_refused_clearly(void **state) {
    (void)state;
    char msg[512];
    uint8_t *b = malloc(model_size);
    memcpy(b, model_bytes, model_size);
    wr32(b, 4 + 10 * 4, 2003); /* q4_1, quantization version 2 */
    assert_int_equal(load_buf(b, model_size, msg, sizeof msg), DI_EUNSUPPORTED);
    assert_non_null(strstr(msg, "q4_1"));
    wr32(b, 4 + 10 * 4, 2015); /* q4_k_m */
    assert_int_equal(load_buf(b, model_size, msg, sizeof msg), DI_EUNSUPPORTED);
    assert_non_null(strstr(msg, "q4_k_m"));
    /* A single tensor of an unsupported type (3 = q4_1) in an f16 file. */
    memcpy(b, model_bytes, model_size);
    wr32(b, off_tensors + 8, 3);
    assert_int_equal(load_buf(b, model_size, msg, sizeof msg), DI_EUNSUPPORTED);
    assert_non_null(strstr(msg, "q4_1"));
    /* A supported quantization where only f32 may be (the positional
     * embedding). */
    memcpy(b, model_bytes, model_size);
    wr32(b, off_tensors + 8, 8);
    assert_int_equal(load_buf(b, model_size, msg, sizeof msg), DI_EFORMAT);
    assert_non_null(strstr(msg, "q8_0"));
    free(b);
}

static void wrong_tensor_shape(void **state) {
    (void)state;
    char msg[512];
    uint8_t *b = malloc(model_size);
    memcpy(b, model_bytes, model_size);
    /* Swap the first tensor's first dimension for another of the same byte count. */
    int32_t ne0 = rd32(off_tensors + 12);
    wr32(b, off_tensors + 12, ne0 + 1);
    assert_int_equal(load_buf(b, model_size, msg, sizeof msg), DI_EFORMAT);
    memcpy(b, model_bytes, model_size);
    wr32(b, off_tensors, 4); /* four dimensions */
    assert_int_equal(load_buf(b, model_size, msg, sizeof msg), DI_EFORMAT);
    free(b);
}

static void missing_unknown_and_duplicate_tensors(void **state) {
    (void)state;
    char msg[512];
    /* Without its last tensor the file is well-formed but incomplete. */
    assert_int_equal(load_buf(model_bytes, off_last_tensor, msg, sizeof msg), DI_EFORMAT);
    assert_non_null(strstr(msg, "missing tensor"));

    uint8_t *b = malloc(model_size + tensor_size(off_last_tensor));
    memcpy(b, model_bytes, model_size);
    b[off_last_tensor + 12 + 4 * (size_t)rd32(off_last_tensor)] ^= 0x20; /* rename */
    assert_int_equal(load_buf(b, model_size, msg, sizeof msg), DI_EFORMAT);
    assert_non_null(strstr(msg, "unknown tensor"));

    memcpy(b, model_bytes, model_size);
    memcpy(b + model_size, model_bytes + off_last_tensor, tensor_size(off_last_tensor));
    assert_int_equal(load_buf(b, model_size + tensor_size(off_last_tensor), msg, sizeof msg),
                     DI_EFORMAT);
    assert_non_null(strstr(msg, "twice"));
    free(b);
}

static void corrupt_vocabulary(void **state) {
    (void)state;
    char msg[512];
    uint8_t *b = malloc(model_size);
    memcpy(b, model_bytes, model_size);
    wr32(b, off_vocab, 60000); /* more entries than n_vocab */
    assert_int_equal(load_buf(b, model_size, msg, sizeof msg), DI_EFORMAT);
    memcpy(b, model_bytes, model_size);
    wr32(b, off_vocab + 4, 0x7fffffff); /* first entry absurdly long */
    assert_int_equal(load_buf(b, model_size, msg, sizeof msg), DI_EFORMAT);
    memcpy(b, model_bytes, model_size);
    wr32(b, off_filters, 128); /* filter bank does not match n_mels */
    assert_int_equal(load_buf(b, model_size, msg, sizeof msg), DI_EFORMAT);
    free(b);
}

static void bad_arguments(void **state) {
    (void)state;
    char msg[512];
    WhisperModel *m;
    assert_int_equal(whisper_model_load(NULL, &m, msg, sizeof msg), DI_EINVAL);
    assert_int_equal(whisper_model_load_buffer(NULL, 10, &m, msg, sizeof msg), DI_EINVAL);
    assert_int_equal(whisper_model_load("x", NULL, msg, sizeof msg), DI_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loads_golden_model),
        cmocka_unit_test(missing_file_is_io_error),
        cmocka_unit_test(wrong_magic),
        cmocka_unit_test(every_truncation_is_an_error),
        cmocka_unit_test(absurd_hparams),
        cmocka_unit_test(unsupported_quantization_is_refused_clearly),
        cmocka_unit_test(wrong_tensor_shape),
        cmocka_unit_test(missing_unknown_and_duplicate_tensors),
        cmocka_unit_test(corrupt_vocabulary),
        cmocka_unit_test(bad_arguments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
