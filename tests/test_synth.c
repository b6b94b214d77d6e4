/* Tests for whisper/synth: synthetic ggml Whisper models, checked with a
 * small parser of the file format written here independently of synth.c. */
#include "testutil.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "whisper/whisper.h"

#define GOLDEN "golden/ggml-micro-synthetic.en.bin"

/* ---- An independent reader of the ggml Whisper layout -------------------- */

typedef struct {
    char name[96];
    int n_dims, ne[3], type;
    const uint8_t *data;
    size_t nbytes;
} TInfo;

typedef struct {
    uint8_t *bytes;
    size_t size;
    int32_t hp[11];
    const float *filters; /* [n_mel][201], unaligned-safe copy below */
    int n_mel, n_fft;
    size_t vocab_off, vocab_end; /* the vocabulary block, count included */
    int vocab_count;
    TInfo *t;
    int n_t;
} Parsed;

static int rd32(const Parsed *p, size_t *off, int32_t *v) {
    if (*off + 4 > p->size) return -1;
    const uint8_t *b = p->bytes + *off;
    *v = (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                   (uint32_t)b[3] << 24);
    *off += 4;
    return 0;
}

/* Parses a whole model file; asserts on any structural error. */
static Parsed parse(const char *path) {
    Parsed p = {0};
    p.bytes = tu_read(path, &p.size);
    assert_non_null(p.bytes);
    size_t off = 0;
    int32_t magic = 0;
    assert_int_equal(rd32(&p, &off, &magic), 0);
    assert_int_equal((uint32_t)magic, 0x67676d6cu);
    for (int i = 0; i < 11; i++)
        assert_int_equal(rd32(&p, &off, &p.hp[i]), 0);
    int32_t v = 0;
    assert_int_equal(rd32(&p, &off, &v), 0);
    p.n_mel = v;
    assert_int_equal(rd32(&p, &off, &v), 0);
    p.n_fft = v;
    assert_true(off + (size_t)p.n_mel * p.n_fft * 4 <= p.size);
    p.filters = (const float *)(p.bytes + off);
    off += (size_t)p.n_mel * p.n_fft * 4;
    p.vocab_off = off;
    assert_int_equal(rd32(&p, &off, &v), 0);
    p.vocab_count = v;
    for (int i = 0; i < p.vocab_count; i++) {
        assert_int_equal(rd32(&p, &off, &v), 0);
        assert_true(v >= 0 && off + (size_t)v <= p.size);
        off += (size_t)v;
    }
    p.vocab_end = off;
    int cap = 0;
    while (off < p.size) {
        if (p.n_t == cap) {
            cap = cap ? 2 * cap : 128;
            p.t = realloc(p.t, (size_t)cap * sizeof *p.t);
            assert_non_null(p.t);
        }
        TInfo *t = &p.t[p.n_t++];
        int32_t name_len = 0;
        assert_int_equal(rd32(&p, &off, &v), 0);
        t->n_dims = v;
        assert_true(t->n_dims >= 1 && t->n_dims <= 3);
        assert_int_equal(rd32(&p, &off, &name_len), 0);
        assert_true(name_len > 0 && name_len < (int)sizeof t->name);
        assert_int_equal(rd32(&p, &off, &v), 0);
        t->type = v;
        assert_true(t->type == 0 || t->type == 1);
        size_t n = 1;
        t->ne[0] = t->ne[1] = t->ne[2] = 1;
        for (int d = 0; d < t->n_dims; d++) {
            assert_int_equal(rd32(&p, &off, &v), 0);
            t->ne[d] = v;
            n *= (size_t)v;
        }
        assert_true(off + (size_t)name_len <= p.size);
        memcpy(t->name, p.bytes + off, (size_t)name_len);
        t->name[name_len] = '\0';
        off += (size_t)name_len;
        t->nbytes = n * (t->type == 0 ? 4 : 2);
        assert_true(off + t->nbytes <= p.size);
        t->data = p.bytes + off;
        off += t->nbytes;
    }
    return p;
}

static void parsed_free(Parsed *p) {
    free(p->bytes);
    free(p->t);
}

static const TInfo *find(const Parsed *p, const char *name) {
    for (int i = 0; i < p->n_t; i++)
        if (strcmp(p->t[i].name, name) == 0) return &p->t[i];
    fail_msg("tensor %s missing", name);
    return NULL;
}

static double value(const TInfo *t, size_t i) {
    if (t->type == 0) {
        float f;
        memcpy(&f, t->data + 4 * i, 4);
        return f;
    }
    uint16_t h = (uint16_t)(t->data[2 * i] | t->data[2 * i + 1] << 8);
    return di_f16_to_f32(h);
}

static void stats(const TInfo *t, double *mean, double *std) {
    size_t n = t->nbytes / (t->type == 0 ? 4 : 2);
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) {
        double x = value(t, i);
        s += x;
        s2 += x * x;
    }
    *mean = s / n;
    *std = sqrt(s2 / n - *mean * *mean);
}

/* ---- The expected tensor list, from the golden README's tables ---------- */

typedef struct {
    char name[96];
    int n_dims, ne[3], type;
} Want;

enum { MAT, VEC, FC1, FC1_B, FC2 };
static const struct {
    const char *suffix;
    int shape;
    int cross; /* decoder blocks only */
} BLOCK[] = {
    {"attn.query.weight", MAT, 0},
    {"attn.query.bias", VEC, 0},
    {"attn.key.weight", MAT, 0},
    {"attn.value.weight", MAT, 0},
    {"attn.value.bias", VEC, 0},
    {"attn.out.weight", MAT, 0},
    {"attn.out.bias", VEC, 0},
    {"attn_ln.weight", VEC, 0},
    {"attn_ln.bias", VEC, 0},
    {"cross_attn.query.weight", MAT, 1},
    {"cross_attn.query.bias", VEC, 1},
    {"cross_attn.key.weight", MAT, 1},
    {"cross_attn.value.weight", MAT, 1},
    {"cross_attn.value.bias", VEC, 1},
    {"cross_attn.out.weight", MAT, 1},
    {"cross_attn.out.bias", VEC, 1},
    {"cross_attn_ln.weight", VEC, 1},
    {"cross_attn_ln.bias", VEC, 1},
    {"mlp.0.weight", FC1, 0},
    {"mlp.0.bias", FC1_B, 0},
    {"mlp.2.weight", FC2, 0},
    {"mlp.2.bias", VEC, 0},
    {"mlp_ln.weight", VEC, 0},
    {"mlp_ln.bias", VEC, 0},
};

static void want(Want *w, int *n, const char *name, int n_dims, int a, int b, int c, int type) {
    Want *x = &w[(*n)++];
    snprintf(x->name, sizeof x->name, "%s", name);
    x->n_dims = n_dims;
    x->ne[0] = a;
    x->ne[1] = b;
    x->ne[2] = c;
    x->type = type;
}

static void want_blocks(Want *w, int *n, const char *part, int layers, int S, int wt, int dec) {
    for (int l = 0; l < layers; l++) {
        for (size_t k = 0; k < sizeof BLOCK / sizeof BLOCK[0]; k++) {
            if (BLOCK[k].cross && !dec) continue;
            char name[96];
            snprintf(name, sizeof name, "%s.blocks.%d.%s", part, l, BLOCK[k].suffix);
            switch (BLOCK[k].shape) {
            case MAT:
                want(w, n, name, 2, S, S, 1, wt);
                break;
            case VEC:
                want(w, n, name, 1, S, 1, 1, 0);
                break;
            case FC1:
                want(w, n, name, 2, S, 4 * S, 1, wt);
                break;
            case FC1_B:
                want(w, n, name, 1, 4 * S, 1, 1, 0);
                break;
            case FC2:
                want(w, n, name, 2, 4 * S, S, 1, wt);
                break;
            }
        }
    }
}

/* The expected tensors in order; *n receives the count. */
static Want *expected(const WhisperHparams *hp, int *n) {
    int S = hp->n_audio_state, wt = hp->ftype ? 1 : 0;
    Want *w =
        calloc(11 + 15 * (size_t)hp->n_audio_layer + 24 * (size_t)hp->n_text_layer, sizeof *w);
    assert_non_null(w);
    *n = 0;
    want(w, n, "encoder.positional_embedding", 2, S, hp->n_audio_ctx, 1, 0);
    want(w, n, "encoder.conv1.weight", 3, 3, hp->n_mels, S, wt);
    want(w, n, "encoder.conv1.bias", 2, 1, S, 1, 0);
    want(w, n, "encoder.conv2.weight", 3, 3, S, S, wt);
    want(w, n, "encoder.conv2.bias", 2, 1, S, 1, 0);
    want_blocks(w, n, "encoder", hp->n_audio_layer, S, wt, 0);
    want(w, n, "encoder.ln_post.weight", 1, S, 1, 1, 0);
    want(w, n, "encoder.ln_post.bias", 1, S, 1, 1, 0);
    want(w, n, "decoder.positional_embedding", 2, S, hp->n_text_ctx, 1, 0);
    want(w, n, "decoder.token_embedding.weight", 2, S, hp->n_vocab, 1, wt);
    want_blocks(w, n, "decoder", hp->n_text_layer, S, wt, 1);
    want(w, n, "decoder.ln.weight", 1, S, 1, 1, 0);
    want(w, n, "decoder.ln.bias", 1, S, 1, 1, 0);
    return w;
}

/* Checks p's header and tensors against hp; returns the parameter count. */
static size_t check_layout(const Parsed *p, const WhisperHparams *hp, size_t vocab_bytes) {
    const int32_t h[11] = {hp->n_vocab,       hp->n_audio_ctx, hp->n_audio_state, hp->n_audio_head,
                           hp->n_audio_layer, hp->n_text_ctx,  hp->n_text_state,  hp->n_text_head,
                           hp->n_text_layer,  hp->n_mels,      hp->ftype};
    for (int i = 0; i < 11; i++)
        assert_int_equal(p->hp[i], h[i]);
    assert_int_equal(p->n_mel, hp->n_mels);
    assert_int_equal(p->n_fft, 201);
    assert_int_equal(p->vocab_end - p->vocab_off, vocab_bytes);

    int n;
    Want *w = expected(hp, &n);
    assert_int_equal(n, 11 + 15 * hp->n_audio_layer + 24 * hp->n_text_layer);
    assert_int_equal(p->n_t, n);
    size_t size = 4 + 44 + 8 + (size_t)hp->n_mels * 201 * 4 + vocab_bytes, params = 0;
    for (int i = 0; i < n; i++) {
        const TInfo *t = &p->t[i];
        assert_string_equal(t->name, w[i].name);
        assert_int_equal(t->n_dims, w[i].n_dims);
        for (int d = 0; d < 3; d++)
            assert_int_equal(t->ne[d], w[i].ne[d]);
        assert_int_equal(t->type, w[i].type);
        size_t elems = (size_t)w[i].ne[0] * w[i].ne[1] * w[i].ne[2];
        params += elems;
        size += 12 + 4 * (size_t)w[i].n_dims + strlen(w[i].name) + elems * (w[i].type ? 2 : 4);
    }
    assert_int_equal(p->size, size);
    free(w);
    return params;
}

static WhisperSynthSpec micro_spec(uint64_t seed, const char *vocab_from) {
    WhisperSynthSpec s;
    memset(&s, 0, sizeof s);
    assert_int_equal(whisper_synth_preset("micro", &s.hp), 0);
    s.seed = seed;
    s.vocab_from = vocab_from;
    return s;
}

static void write_ok(const char *path, const WhisperSynthSpec *s) {
    char msg[256] = "";
    int rc = whisper_synth_write(path, s, msg, sizeof msg);
    if (rc) fprintf(stderr, "whisper_synth_write: %s\n", msg);
    assert_int_equal(rc, 0);
}

/* ---- Tests --------------------------------------------------------------- */

/* With the golden model's vocabulary, a micro model has exactly the golden
 * file's layout: same size, same bytes up to the tensors, same tensor
 * headers; the weights follow the README's recipe. */
static void test_micro_like_golden(void **state) {
    (void)state;
    WhisperSynthSpec s = micro_spec(1001, tu_shared(GOLDEN));
    const char *path = tu_tmp("micro.bin");
    write_ok(path, &s);
    Parsed p = parse(path), g = parse(tu_shared(GOLDEN));

    assert_int_equal(p.size, 16893244);
    assert_int_equal(p.size, g.size);
    assert_int_equal(p.vocab_end, g.vocab_end);
    assert_memory_equal(p.bytes, g.bytes, g.vocab_end); /* header, filters, vocabulary */
    assert_int_equal(p.vocab_count, 50257);
    assert_int_equal(check_layout(&p, &s.hp, g.vocab_end - g.vocab_off), 7893504);
    assert_int_equal(p.n_t, 89);
    for (int i = 0; i < g.n_t; i++) {
        assert_string_equal(p.t[i].name, g.t[i].name);
        assert_int_equal(p.t[i].type, g.t[i].type);
        assert_int_equal(p.t[i].nbytes, g.t[i].nbytes);
    }

    /* The sinusoidal embedding is not random: it matches the golden one. */
    const TInfo *a = find(&p, "encoder.positional_embedding");
    const TInfo *b = find(&g, "encoder.positional_embedding");
    double maxd = 0;
    for (size_t i = 0; i < 128 * 1500; i++)
        maxd = fmax(maxd, fabs(value(a, i) - value(b, i)));
    fprintf(stderr, "positional embedding max |diff| vs golden: %g\n", maxd);
    assert_true(maxd < 1e-6);
    assert_true(fabs(value(a, 0 * 128 + 64) - 1.0) < 1e-7);                  /* cos(0) */
    assert_true(fabs(value(a, 7 * 128 + 0) - sin(7.0)) < 1e-7);              /* w_0 = 1 */
    assert_true(fabs(value(a, 1499 * 128 + 127) - cos(1499 * 1e-4)) < 1e-6); /* w_63 */

    /* The recipe's spreads, measured on the largest tensors of each kind. */
    static const struct {
        const char *name;
        double mean, std;
    } RECIPE[] = {
        {"decoder.token_embedding.weight", 0, 0.02},
        {"encoder.blocks.0.attn.query.weight", 0, 0.08838834764831845}, /* 1/sqrt(128) */
        {"decoder.blocks.1.cross_attn.key.weight", 0, 0.08838834764831845},
        {"encoder.blocks.1.mlp.0.weight", 0, 0.02},
        {"encoder.conv1.weight", 0, 0.06454972243679027}, /* 1/sqrt(240) */
        {"encoder.conv2.weight", 0, 0.05103103630798288}, /* 1/sqrt(384) */
        {"decoder.positional_embedding", 0, 0.02},
        {"decoder.blocks.0.mlp.0.bias", 0, 0.01},
    };
    for (size_t i = 0; i < sizeof RECIPE / sizeof RECIPE[0]; i++) {
        double mean, std;
        stats(find(&p, RECIPE[i].name), &mean, &std);
        assert_true(fabs(mean - RECIPE[i].mean) < 0.1 * RECIPE[i].std);
        assert_true(fabs(std / RECIPE[i].std - 1) < 0.1);
    }
    /* Layer norms: weights near 1, biases near 0, over all of them. */
    double sw = 0, sb = 0;
    int nw = 0, nb = 0;
    for (int i = 0; i < p.n_t; i++) {
        const TInfo *t = &p.t[i];
        size_t len = strlen(t->name);
        int is_ln = strstr(t->name, "ln") != NULL && t->n_dims == 1;
        for (int k = 0; is_ln && k < t->ne[0]; k++) {
            if (strcmp(t->name + len - 6, "weight") == 0) {
                sw += value(t, k);
                nw++;
            } else {
                sb += value(t, k);
                nb++;
            }
        }
    }
    assert_int_equal(nw, 12 * 128); /* 2*2 + 2*3 + 2 layer norms */
    assert_true(fabs(sw / nw - 1.0) < 0.01);
    assert_true(fabs(sb / nb) < 0.002);
    parsed_free(&p);
    parsed_free(&g);
    unlink(path);
}

static void test_deterministic(void **state) {
    (void)state;
    WhisperSynthSpec s = micro_spec(7, NULL);
    const char *a = tu_tmp("a.bin"), *b = tu_tmp("b.bin"), *c = tu_tmp("c.bin");
    write_ok(a, &s);
    write_ok(b, &s);
    s.seed = 8;
    write_ok(c, &s);
    Parsed pa = parse(a), pb = parse(b), pc = parse(c);
    assert_int_equal(pa.size, pb.size);
    assert_memory_equal(pa.bytes, pb.bytes, pa.size);
    assert_int_equal(pa.size, pc.size);
    assert_int_equal(pa.n_t, pc.n_t);
    assert_memory_equal(pa.bytes, pc.bytes, pa.vocab_end);
    /* Every random tensor changes with the seed; the sinusoids do not. */
    for (int i = 0; i < pa.n_t; i++) {
        int same = memcmp(pa.t[i].data, pc.t[i].data, pa.t[i].nbytes) == 0;
        assert_int_equal(same, strcmp(pa.t[i].name, "encoder.positional_embedding") == 0);
    }
    /* Streams are per tensor: two tensors of one model never repeat. */
    const TInfo *q = find(&pa, "encoder.blocks.0.attn.value.weight");
    const TInfo *o = find(&pa, "encoder.blocks.0.attn.out.weight");
    assert_true(memcmp(q->data, o->data, q->nbytes) != 0);
    parsed_free(&pa);
    parsed_free(&pb);
    parsed_free(&pc);
    unlink(a);
    unlink(b);
    unlink(c);
}

static void test_tiny_f32(void **state) {
    (void)state;
    WhisperSynthSpec s;
    memset(&s, 0, sizeof s);
    assert_int_equal(whisper_synth_preset("tiny", &s.hp), 0);
    s.hp.ftype = 0;
    s.seed = 42;
    const char *path = tu_tmp("tiny-f32.bin");
    write_ok(path, &s);
    Parsed p = parse(path);
    /* The generated vocabulary: 256 entries of one byte each. */
    size_t params = check_layout(&p, &s.hp, 4 + 256 * 5);
    assert_int_equal(p.n_t, 167);
    fprintf(stderr, "tiny f32: %zu parameters, %zu bytes\n", params, p.size);
    for (int i = 0; i < p.n_t; i++)
        assert_int_equal(p.t[i].type, 0);
    double mean, std;
    stats(find(&p, "decoder.blocks.3.attn.key.weight"), &mean, &std);
    assert_true(fabs(std * sqrt(384.0) - 1) < 0.02);
    parsed_free(&p);
    unlink(path);
}

/* The generated filter bank is librosa's Slaney bank, which is what Whisper's
 * mel_filters.npz (and so the golden model's filter block) holds. */
static void test_slaney_filters(void **state) {
    (void)state;
    WhisperSynthSpec s = micro_spec(1, NULL);
    const char *path = tu_tmp("filters.bin");
    write_ok(path, &s);
    Parsed p = parse(path), g = parse(tu_shared(GOLDEN));
    double maxd = 0;
    for (int i = 0; i < 80 * 201; i++) {
        float a, b;
        memcpy(&a, (const uint8_t *)p.filters + 4 * i, 4);
        memcpy(&b, (const uint8_t *)g.filters + 4 * i, 4);
        maxd = fmax(maxd, fabs((double)a - b));
    }
    fprintf(stderr, "80-mel filter bank max |diff| vs golden: %g\n", maxd);
    assert_true(maxd < 1e-6);
    parsed_free(&p);
    parsed_free(&g);

    /* 128 mels (large-v3) on a micro-sized model: triangles that rise and
     * fall once, peaks moving up, and Slaney's equal area (2 / width in Hz,
     * times 40 Hz per bin) for bands wide enough to sample well. */
    s.hp.n_mels = 128;
    write_ok(path, &s);
    p = parse(path);
    assert_int_equal(p.n_mel, 128);
    int last_peak = -1;
    double upper_area = 0;
    for (int m = 0; m < 128; m++) {
        float row[201];
        memcpy(row, (const uint8_t *)p.filters + (size_t)m * 201 * 4, sizeof row);
        int peak = 0, changes = 0;
        double sum = 0;
        for (int k = 0; k < 201; k++) {
            assert_true(row[k] >= 0);
            sum += row[k];
            if (row[k] > row[peak]) peak = k;
            if (k > 1 && (row[k] - row[k - 1]) * (row[k - 1] - row[k - 2]) < 0) changes++;
        }
        assert_true(sum > 0);
        assert_true(peak >= last_peak);
        assert_true(changes <= 1);
        last_peak = peak;
        if (m >= 64) {
            assert_true(fabs(sum * 40.0 - 1.0) < 0.1); /* sampling error of ~10-bin triangles */
            upper_area += sum * 40.0 / 64;
        }
    }
    assert_true(fabs(upper_area - 1.0) < 0.01);
    parsed_free(&p);
    unlink(path);
}

static void test_byte_vocab(void **state) {
    (void)state;
    WhisperSynthSpec s = micro_spec(3, NULL);
    const char *path = tu_tmp("vocab.bin");
    write_ok(path, &s);
    Parsed p = parse(path), g = parse(tu_shared(GOLDEN));
    assert_int_equal(p.vocab_count, 256);
    /* GPT-2's first 256 tokens are single bytes in the same order. The
     * golden (whisper.cpp test model) vocabulary holds the 128 bytes >= 0x80
     * as U+FFFD, so only its single-byte entries can be compared. */
    int seen[256] = {0}, compared = 0;
    const uint8_t *e = p.bytes + p.vocab_off + 4, *ge = g.bytes + g.vocab_off + 4;
    for (int i = 0; i < 256; i++, e += 5) {
        assert_int_equal(e[0] | e[1] << 8 | e[2] << 16 | e[3] << 24, 1);
        seen[e[4]]++;
        uint32_t glen = ge[0] | ge[1] << 8 | ge[2] << 16 | (uint32_t)ge[3] << 24;
        if (glen == 1) {
            assert_int_equal(e[4], ge[4]);
            compared++;
        } else {
            assert_int_equal(glen, 3);
            assert_memory_equal(ge + 4, "\xef\xbf\xbd", 3);
            assert_true(e[4] >= 0x80);
        }
        ge += 4 + glen;
    }
    assert_int_equal(compared, 128);
    for (int b = 0; b < 256; b++)
        assert_int_equal(seen[b], 1);
    e = p.bytes + p.vocab_off + 4;
    assert_int_equal(e[4], '!');            /* id 0 */
    assert_int_equal(e[5 * 94 + 4], 0xa1);  /* after '!'..'~' */
    assert_int_equal(e[5 * 188 + 4], 0x00); /* the non-printables follow */
    assert_int_equal(e[5 * 220 + 4], ' ');  /* "Ġ" is id 220 */
    parsed_free(&p);
    parsed_free(&g);
    unlink(path);
}

static void test_presets(void **state) {
    (void)state;
    static const struct {
        const char *name;
        int S, heads, enc, dec, mels, vocab;
    } P[] = {
        {"micro", 128, 2, 2, 2, 80, 51864},      {"tiny", 384, 6, 4, 4, 80, 51864},
        {"tiny.en", 384, 6, 4, 4, 80, 51864},    {"base", 512, 8, 6, 6, 80, 51864},
        {"small", 768, 12, 12, 12, 80, 51864},   {"medium", 1024, 16, 24, 24, 80, 51864},
        {"large", 1280, 20, 32, 32, 128, 51866}, {"large-v3-turbo", 1280, 20, 32, 4, 128, 51866},
    };
    for (size_t i = 0; i < sizeof P / sizeof P[0]; i++) {
        WhisperHparams hp;
        memset(&hp, 0xff, sizeof hp);
        assert_int_equal(whisper_synth_preset(P[i].name, &hp), 0);
        assert_int_equal(hp.n_audio_state, P[i].S);
        assert_int_equal(hp.n_text_state, P[i].S);
        assert_int_equal(hp.n_audio_head, P[i].heads);
        assert_int_equal(hp.n_text_head, P[i].heads);
        assert_int_equal(hp.n_audio_layer, P[i].enc);
        assert_int_equal(hp.n_text_layer, P[i].dec);
        assert_int_equal(hp.n_mels, P[i].mels);
        assert_int_equal(hp.n_vocab, P[i].vocab);
        assert_int_equal(hp.n_audio_ctx, 1500);
        assert_int_equal(hp.n_text_ctx, 448);
        assert_int_equal(hp.ftype, 1);
    }
    WhisperHparams hp;
    static const char *const BAD[] = {"huge", "", "Tiny", "large.en", "tiny.en.en", ".en", "tin"};
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++)
        assert_int_equal(whisper_synth_preset(BAD[i], &hp), DI_EINVAL);
    assert_int_equal(whisper_synth_preset(NULL, &hp), DI_EINVAL);
    assert_int_equal(whisper_synth_preset("tiny", NULL), DI_EINVAL);
}

static int exists(const char *path) {
    return access(path, F_OK) == 0;
}

static void expect_fail(const WhisperSynthSpec *s, const char *path, int code) {
    char msg[256] = "";
    assert_int_equal(whisper_synth_write(path, s, msg, sizeof msg), code);
    assert_true(msg[0] != '\0');
    assert_false(exists(path));
}

static void test_bad_specs(void **state) {
    (void)state;
    const char *path = tu_tmp("bad.bin");
    WhisperSynthSpec s = micro_spec(1, NULL);
    char msg[128];
    assert_int_equal(whisper_synth_write(NULL, &s, msg, sizeof msg), DI_EINVAL);
    assert_int_equal(whisper_synth_write(path, NULL, msg, sizeof msg), DI_EINVAL);
    s.hp.n_audio_state = s.hp.n_text_state = 127;
    expect_fail(&s, path, DI_EINVAL);
    s = micro_spec(1, NULL);
    s.hp.n_text_head = 3; /* does not divide 128 */
    expect_fail(&s, path, DI_EINVAL);
    s = micro_spec(1, NULL);
    s.hp.ftype = 3; /* q4_1: quantizations other than q4_0, q5_0, q5_1, q8_0 */
    expect_fail(&s, path, DI_EINVAL);
    s = micro_spec(1, NULL);
    s.hp.n_vocab = 1000;
    expect_fail(&s, path, DI_EINVAL);
    s = micro_spec(1, NULL);
    s.hp.n_text_state = 256;
    expect_fail(&s, path, DI_EINVAL);
    s = micro_spec(1, NULL);
    s.hp.n_audio_layer = 0;
    expect_fail(&s, path, DI_EINVAL);
}

static void test_bad_vocab_sources(void **state) {
    (void)state;
    const char *path = tu_tmp("bad.bin");
    WhisperSynthSpec s = micro_spec(1, tu_tmp("no-such-model.bin"));
    expect_fail(&s, path, DI_ENOTFOUND);
    /* Another mel count than the source's filter bank. */
    s = micro_spec(1, tu_shared(GOLDEN));
    s.hp.n_mels = 128;
    expect_fail(&s, path, DI_EINVAL);
    /* The output path itself: refused, and the source left intact. */
    const char *self = tu_tmp("self.bin");
    s = micro_spec(1, NULL);
    write_ok(self, &s);
    size_t before, after;
    uint8_t *orig = tu_read(self, &before);
    assert_non_null(orig);
    s = micro_spec(2, self);
    char msg[256];
    assert_int_equal(whisper_synth_write(self, &s, msg, sizeof msg), DI_EINVAL);
    uint8_t *now = tu_read(self, &after);
    assert_non_null(now);
    assert_int_equal(after, before);
    assert_memory_equal(now, orig, before);
    free(orig);
    free(now);
    unlink(self);
    /* Not a model at all. */
    s = micro_spec(1, tu_shared("golden/jfk_mel_80x3000.f32"));
    expect_fail(&s, path, DI_EFORMAT);
    /* A model cut off inside its vocabulary. */
    size_t size;
    uint8_t *g = tu_read(tu_shared(GOLDEN), &size);
    assert_non_null(g);
    const char *cut = tu_tmp("cut.bin");
    assert_int_equal(tu_write(cut, g, 300000), 0);
    free(g);
    s = micro_spec(1, cut);
    expect_fail(&s, path, DI_EFORMAT);
    unlink(cut);
}

static void test_write_errors(void **state) {
    (void)state;
    WhisperSynthSpec s = micro_spec(1, NULL);
    expect_fail(&s, tu_tmp("no-such-dir/x.bin"), DI_EIO);

    /* A write that fails half-way (the file size limit stands in for a full
     * disk) must leave no partial file. The limit is set in a child so this
     * process keeps its own. */
    const char *path = tu_tmp("partial.bin");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit lim = {1 << 20, 1 << 20};
        char msg[256] = "";
        int ok = setrlimit(RLIMIT_FSIZE, &lim) == 0 &&
                 whisper_synth_write(path, &s, msg, sizeof msg) == DI_EIO && msg[0] &&
                 !exists(path);
        _exit(ok ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_false(exists(path));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_micro_like_golden), cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_tiny_f32),          cmocka_unit_test(test_slaney_filters),
        cmocka_unit_test(test_byte_vocab),        cmocka_unit_test(test_presets),
        cmocka_unit_test(test_bad_specs),         cmocka_unit_test(test_bad_vocab_sources),
        cmocka_unit_test(test_write_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
