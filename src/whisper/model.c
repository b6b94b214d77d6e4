/*
 * Model loader for whisper.cpp's ggml Whisper files.
 *
 * The file is untrusted input: every field goes through a bounds-checked
 * reader, every header value is checked before it sizes anything, and a
 * tensor's memory is allocated only after its bytes are known to be in the
 * file. Tensors are copied into 64-byte aligned blocks because the format
 * packs them at arbitrary byte offsets.
 */
#include "whisper/whisper_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGML_MAGIC 0x67676d6cu
#define MAX_NAME 256
#define MAX_TOKEN_BYTES 1024

/* ---- Bounds-checked reader over a buffer or a file descriptor ---------- */

typedef struct {
    const uint8_t *buf; /* whole input in memory, or NULL to read from fd */
    int fd;
    size_t size, pos;
} Reader;

static int rd_read(Reader *r, void *dst, size_t n) {
    if (n > r->size - r->pos) return DI_EFORMAT;
    if (r->buf) {
        memcpy(dst, r->buf + r->pos, n);
    } else {
        size_t done = 0;
        while (done < n) {
            ssize_t got = pread(r->fd, (char *)dst + done, n - done, (off_t)(r->pos + done));
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) return DI_EIO;
            done += (size_t)got;
        }
    }
    r->pos += n;
    return 0;
}

static int rd_i32(Reader *r, int32_t *v) {
    uint8_t b[4];
    int rc = rd_read(r, b, 4);
    if (rc) return rc;
    *v = (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                   (uint32_t)b[3] << 24);
    return 0;
}

/* ---- Header ------------------------------------------------------------ */

static const char *ggml_type_name(int t) {
    switch (t) {
    case 0:
        return "f32";
    case 1:
        return "f16";
    case 2:
        return "q4_0";
    case 3:
        return "q4_1";
    case 6:
        return "q5_0";
    case 7:
        return "q5_1";
    case 8:
        return "q8_0";
    case 9:
        return "q8_1";
    case 10:
        return "q2_k";
    case 11:
        return "q3_k";
    case 12:
        return "q4_k";
    case 13:
        return "q5_k";
    case 14:
        return "q6_k";
    case 15:
        return "q8_k";
    default:
        return "unknown";
    }
}

/* Whole-file ftype values for quantized models (llama.cpp's enum); the
 * k-quants (10 and up) name a mix of types and are all refused. */
static const char *ftype_name(int f) {
    static const char *const names[] = {"f32",    "f16",    "q4_0",   "q4_1",   "q4_1_some_f16",
                                        "q4_2",   "q4_3",   "q8_0",   "q5_0",   "q5_1",
                                        "q2_k",   "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s",
                                        "q4_k_m", "q5_k_s", "q5_k_m", "q6_k"};
    return f >= 0 && f < (int)(sizeof names / sizeof names[0]) ? names[f] : "unknown";
}

/* Whole-file types whose tensors this engine can run. */
static int ftype_supported(int f) {
    return f == 0 || f == 1 || f == 2 || f == 7 || f == 8 || f == 9;
}

static int check_range(const char *name, int v, int lo, int hi, char *msg, size_t cap) {
    if (v < lo || v > hi)
        return di_fail(msg, cap, DI_EFORMAT, "model header: %s = %d is outside [%d, %d]", name, v,
                       lo, hi);
    return 0;
}

static int read_hparams(Reader *r, WhisperHparams *hp, char *msg, size_t cap) {
    int32_t v[11];
    for (int i = 0; i < 11; i++)
        if (rd_i32(r, &v[i]))
            return di_fail(msg, cap, DI_EFORMAT, "model header truncated (hparams)");
    *hp = (WhisperHparams){v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10]};
    int rc;
    if ((rc = check_range("n_vocab", hp->n_vocab, 51864, 51866, msg, cap)) ||
        (rc = check_range("n_audio_ctx", hp->n_audio_ctx, 1500, 1500, msg, cap)) ||
        (rc = check_range("n_audio_state", hp->n_audio_state, 8, 8192, msg, cap)) ||
        (rc = check_range("n_audio_head", hp->n_audio_head, 1, 256, msg, cap)) ||
        (rc = check_range("n_audio_layer", hp->n_audio_layer, 1, 128, msg, cap)) ||
        (rc = check_range("n_text_ctx", hp->n_text_ctx, 8, 4096, msg, cap)) ||
        (rc = check_range("n_text_state", hp->n_text_state, 8, 8192, msg, cap)) ||
        (rc = check_range("n_text_head", hp->n_text_head, 1, 256, msg, cap)) ||
        (rc = check_range("n_text_layer", hp->n_text_layer, 1, 128, msg, cap)) ||
        (rc = check_range("n_mels", hp->n_mels, 1, 512, msg, cap)))
        return rc;
    if (hp->n_audio_state % hp->n_audio_head || hp->n_text_state % hp->n_text_head)
        return di_fail(msg, cap, DI_EFORMAT, "model header: state width not divisible by heads");
    if (hp->n_audio_state != hp->n_text_state)
        return di_fail(msg, cap, DI_EFORMAT,
                       "model header: n_audio_state %d != n_text_state %d (Whisper has them equal)",
                       hp->n_audio_state, hp->n_text_state);
    if (hp->ftype < 0)
        return di_fail(msg, cap, DI_EFORMAT, "model header: negative ftype %d", hp->ftype);
    hp->ftype %= 1000;
    if (!ftype_supported(hp->ftype))
        return di_fail(msg, cap, DI_EUNSUPPORTED,
                       "model is quantized as %s (ftype %d), which is not supported; use f32, "
                       "f16, q8_0, q5_1, q5_0 or q4_0",
                       ftype_name(hp->ftype), hp->ftype);
    return 0;
}

static int read_mel_filters(Reader *r, WhisperModel *m, char *msg, size_t cap) {
    int32_t n_mel, n_fft;
    if (rd_i32(r, &n_mel) || rd_i32(r, &n_fft))
        return di_fail(msg, cap, DI_EFORMAT, "model truncated in the mel filter header");
    if (n_mel != m->hp.n_mels || n_fft != WHISPER_N_FFT / 2 + 1)
        return di_fail(msg, cap, DI_EFORMAT, "mel filters are %dx%d, expected %dx%d", n_mel, n_fft,
                       m->hp.n_mels, WHISPER_N_FFT / 2 + 1);
    size_t bytes = (size_t)n_mel * (size_t)n_fft * 4;
    if (bytes > r->size - r->pos)
        return di_fail(msg, cap, DI_EFORMAT, "model truncated in the mel filters");
    m->mel_filters = malloc(bytes);
    if (!m->mel_filters) return di_fail(msg, cap, DI_ENOMEM, "out of memory (mel filters)");
    if (rd_read(r, m->mel_filters, bytes))
        return di_fail(msg, cap, DI_EIO, "could not read the mel filters");
    return 0;
}

static int read_vocab(Reader *r, WhisperModel *m, char *msg, size_t cap) {
    int32_t count;
    if (rd_i32(r, &count))
        return di_fail(msg, cap, DI_EFORMAT, "model truncated at the vocabulary");
    if (count < 0 || count > m->hp.n_vocab)
        return di_fail(msg, cap, DI_EFORMAT, "vocabulary has %d entries for n_vocab %d", count,
                       m->hp.n_vocab);
    uint8_t **entries = calloc((size_t)count + 1, sizeof *entries);
    uint32_t *lens = calloc((size_t)count + 1, sizeof *lens);
    int rc = (entries && lens) ? 0 : di_fail(msg, cap, DI_ENOMEM, "out of memory (vocabulary)");
    for (int i = 0; !rc && i < count; i++) {
        int32_t len;
        if (rd_i32(r, &len) || len < 0 || len > MAX_TOKEN_BYTES) {
            rc = di_fail(msg, cap, DI_EFORMAT, "vocabulary entry %d is truncated or too long", i);
            break;
        }
        lens[i] = (uint32_t)len;
        entries[i] = malloc((size_t)len + 1);
        if (!entries[i]) {
            rc = di_fail(msg, cap, DI_ENOMEM, "out of memory (vocabulary)");
        } else if (rd_read(r, entries[i], (size_t)len)) {
            rc = di_fail(msg, cap, DI_EFORMAT, "model truncated in vocabulary entry %d", i);
        }
    }
    if (!rc)
        rc = tokenizer_init(&m->tok, m->hp.n_vocab, count, (const uint8_t *const *)entries, lens,
                            msg, cap);
    for (int i = 0; entries && i < count; i++)
        free(entries[i]);
    free(entries);
    free(lens);
    return rc;
}

/* ---- Tensors ----------------------------------------------------------- */

/* One expected tensor: where it goes, its shape (ggml order) and whether it
 * is a matrix that may be stored in f16. */
typedef struct {
    char name[64];
    Tensor *dst;
    int n_dims;
    int ne[3];
    int matrix;
    int found;
} Expect;

typedef struct {
    Expect *e;
    int n, cap;
} ExpectList;

static int expect(ExpectList *l, Tensor *dst, int matrix, int n_dims, int ne0, int ne1, int ne2,
                  const char *fmt, ...) __attribute__((format(printf, 8, 9)));

static int expect(ExpectList *l, Tensor *dst, int matrix, int n_dims, int ne0, int ne1, int ne2,
                  const char *fmt, ...) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 256;
        Expect *e = realloc(l->e, (size_t)cap * sizeof *e);
        if (!e) return DI_ENOMEM;
        l->e = e;
        l->cap = cap;
    }
    Expect *x = &l->e[l->n++];
    *x = (Expect){.dst = dst, .n_dims = n_dims, .ne = {ne0, ne1, ne2}, .matrix = matrix};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->name, sizeof x->name, fmt, ap);
    va_end(ap);
    return 0;
}

static int expect_attn(ExpectList *l, AttnWeights *a, int S, const char *prefix) {
    int rc = 0;
    rc |= expect(l, &a->q_w, 1, 2, S, S, 1, "%s.query.weight", prefix);
    rc |= expect(l, &a->q_b, 0, 1, S, 1, 1, "%s.query.bias", prefix);
    rc |= expect(l, &a->k_w, 1, 2, S, S, 1, "%s.key.weight", prefix);
    rc |= expect(l, &a->v_w, 1, 2, S, S, 1, "%s.value.weight", prefix);
    rc |= expect(l, &a->v_b, 0, 1, S, 1, 1, "%s.value.bias", prefix);
    rc |= expect(l, &a->o_w, 1, 2, S, S, 1, "%s.out.weight", prefix);
    rc |= expect(l, &a->o_b, 0, 1, S, 1, 1, "%s.out.bias", prefix);
    return rc;
}

static int expect_block(ExpectList *l, Block *b, int S, const char *side, int i, int cross) {
    char p[64], q[80];
    snprintf(p, sizeof p, "%s.blocks.%d", side, i);
    int rc = 0;
    snprintf(q, sizeof q, "%s.attn", p);
    rc |= expect_attn(l, &b->attn, S, q);
    rc |= expect(l, &b->attn_ln_w, 0, 1, S, 1, 1, "%s.attn_ln.weight", p);
    rc |= expect(l, &b->attn_ln_b, 0, 1, S, 1, 1, "%s.attn_ln.bias", p);
    if (cross) {
        snprintf(q, sizeof q, "%s.cross_attn", p);
        rc |= expect_attn(l, &b->cross, S, q);
        rc |= expect(l, &b->cross_ln_w, 0, 1, S, 1, 1, "%s.cross_attn_ln.weight", p);
        rc |= expect(l, &b->cross_ln_b, 0, 1, S, 1, 1, "%s.cross_attn_ln.bias", p);
    }
    rc |= expect(l, &b->fc1_w, 1, 2, S, 4 * S, 1, "%s.mlp.0.weight", p);
    rc |= expect(l, &b->fc1_b, 0, 1, 4 * S, 1, 1, "%s.mlp.0.bias", p);
    rc |= expect(l, &b->fc2_w, 1, 2, 4 * S, S, 1, "%s.mlp.2.weight", p);
    rc |= expect(l, &b->fc2_b, 0, 1, S, 1, 1, "%s.mlp.2.bias", p);
    rc |= expect(l, &b->mlp_ln_w, 0, 1, S, 1, 1, "%s.mlp_ln.weight", p);
    rc |= expect(l, &b->mlp_ln_b, 0, 1, S, 1, 1, "%s.mlp_ln.bias", p);
    return rc;
}

/* Lists every tensor the hparams call for, with its shape. */
static int expect_all(ExpectList *l, WhisperModel *m) {
    const WhisperHparams *hp = &m->hp;
    Weights *w = &m->w;
    int S = hp->n_audio_state, rc = 0;
    w->enc = calloc((size_t)hp->n_audio_layer, sizeof *w->enc);
    w->dec = calloc((size_t)hp->n_text_layer, sizeof *w->dec);
    if (!w->enc || !w->dec) return DI_ENOMEM;
    rc |= expect(l, &w->enc_pos, 0, 2, S, hp->n_audio_ctx, 1, "encoder.positional_embedding");
    rc |= expect(l, &w->conv1_w, 1, 3, 3, hp->n_mels, S, "encoder.conv1.weight");
    rc |= expect(l, &w->conv1_b, 0, 2, 1, S, 1, "encoder.conv1.bias");
    rc |= expect(l, &w->conv2_w, 1, 3, 3, S, S, "encoder.conv2.weight");
    rc |= expect(l, &w->conv2_b, 0, 2, 1, S, 1, "encoder.conv2.bias");
    for (int i = 0; i < hp->n_audio_layer; i++)
        rc |= expect_block(l, &w->enc[i], S, "encoder", i, 0);
    rc |= expect(l, &w->enc_ln_w, 0, 1, S, 1, 1, "encoder.ln_post.weight");
    rc |= expect(l, &w->enc_ln_b, 0, 1, S, 1, 1, "encoder.ln_post.bias");
    rc |= expect(l, &w->dec_pos, 0, 2, S, hp->n_text_ctx, 1, "decoder.positional_embedding");
    rc |= expect(l, &w->tok_emb, 1, 2, S, hp->n_vocab, 1, "decoder.token_embedding.weight");
    for (int i = 0; i < hp->n_text_layer; i++)
        rc |= expect_block(l, &w->dec[i], S, "decoder", i, 1);
    rc |= expect(l, &w->dec_ln_w, 0, 1, S, 1, 1, "decoder.ln.weight");
    rc |= expect(l, &w->dec_ln_b, 0, 1, S, 1, 1, "decoder.ln.bias");
    return rc ? DI_ENOMEM : 0;
}

static Expect *find_expect(ExpectList *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->e[i].name, name)) return &l->e[i];
    return NULL;
}

/* Types and shape: f32 anywhere, f16 for matrices, block-quantized types
 * only for 2-D matrices whose rows are whole 32-weight blocks (as
 * whisper.cpp's quantizer leaves conv weights in f16). */
static int check_tensor_type(const Expect *e, const char *name, int ttype, const int32_t *ne,
                             char *msg, size_t cap) {
    if (ttype != TENSOR_F32 && ttype != TENSOR_F16 && !quant_is_block_type(ttype))
        return di_fail(msg, cap, DI_EUNSUPPORTED,
                       "tensor '%s' has type %s (ggml type %d), which is not supported; use f32, "
                       "f16, q8_0, q5_1, q5_0 or q4_0",
                       name, ggml_type_name(ttype), ttype);
    if (ttype != TENSOR_F32 && !e->matrix)
        return di_fail(msg, cap, DI_EFORMAT, "tensor '%s' is %s but must be f32", name,
                       ggml_type_name(ttype));
    for (int i = 0; i < 3; i++)
        if (ne[i] != e->ne[i])
            return di_fail(msg, cap, DI_EFORMAT,
                           "tensor '%s' has shape [%d, %d, %d], expected [%d, %d, %d]", name, ne[0],
                           ne[1], ne[2], e->ne[0], e->ne[1], e->ne[2]);
    if (quant_is_block_type(ttype) && e->n_dims != 2)
        return di_fail(msg, cap, DI_EFORMAT, "tensor '%s' is %s but only 2-D matrices may be",
                       name, ggml_type_name(ttype));
    if (quant_is_block_type(ttype) && ne[0] % 32)
        return di_fail(msg, cap, DI_EFORMAT,
                       "tensor '%s' is %s but its rows of %d weights are not whole blocks of 32",
                       name, ggml_type_name(ttype), ne[0]);
    return 0;
}

static int read_tensor(Reader *r, ExpectList *l, WhisperModel *m, char *msg, size_t cap) {
    int32_t n_dims, name_len, ttype, ne[3] = {1, 1, 1};
    if (rd_i32(r, &n_dims) || rd_i32(r, &name_len) || rd_i32(r, &ttype))
        return di_fail(msg, cap, DI_EFORMAT, "model truncated in a tensor header");
    if (n_dims < 1 || n_dims > 3 || name_len < 1 || name_len >= MAX_NAME)
        return di_fail(msg, cap, DI_EFORMAT, "tensor header is corrupt (n_dims %d, name length %d)",
                       n_dims, name_len);
    for (int i = 0; i < n_dims; i++)
        if (rd_i32(r, &ne[i]))
            return di_fail(msg, cap, DI_EFORMAT, "model truncated in a tensor shape");
    char name[MAX_NAME];
    if (rd_read(r, name, (size_t)name_len))
        return di_fail(msg, cap, DI_EFORMAT, "model truncated in a tensor name");
    name[name_len] = 0;
    for (int i = 0; i < name_len; i++)
        if ((unsigned char)name[i] < 0x20 || (unsigned char)name[i] > 0x7e) name[i] = '?';

    Expect *e = find_expect(l, name);
    if (!e) return di_fail(msg, cap, DI_EFORMAT, "unknown tensor '%s' in model", name);
    if (e->found) return di_fail(msg, cap, DI_EFORMAT, "tensor '%s' appears twice", name);
    int rc = check_tensor_type(e, name, ttype, ne, msg, cap);
    if (rc) return rc;
    size_t bytes = quant_row_bytes(ttype, ne[0]) * (size_t)ne[1] * (size_t)ne[2];
    if (bytes > r->size - r->pos)
        return di_fail(msg, cap, DI_EFORMAT, "model truncated in the data of tensor '%s'", name);
    void *data = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!data) return di_fail(msg, cap, DI_ENOMEM, "out of memory loading tensor '%s'", name);
    if (rd_read(r, data, bytes)) {
        free(data);
        return di_fail(msg, cap, DI_EIO, "could not read tensor '%s'", name);
    }
    *e->dst = (Tensor){.type = ttype, .n_dims = n_dims, .ne = {ne[0], ne[1], ne[2]}, .data = data};
    e->found = 1;
    m->file_size += bytes;
    return 0;
}

static void name_model(WhisperModel *m) {
    const WhisperHparams *hp = &m->hp;
    const char *base = NULL;
    switch (hp->n_audio_state) {
    case 384:
        base = hp->n_audio_layer == 4 ? "tiny" : NULL;
        break;
    case 512:
        base = hp->n_audio_layer == 6 ? "base" : NULL;
        break;
    case 768:
        base = hp->n_audio_layer == 12 ? "small" : NULL;
        break;
    case 1024:
        base = hp->n_audio_layer == 24 ? "medium" : NULL;
        break;
    case 1280:
        base = hp->n_audio_layer != 32 ? NULL
               : hp->n_text_layer == 4 ? "large-v3-turbo"
               : hp->n_mels == 128     ? "large-v3"
                                       : "large";
        break;
    }
    if (base)
        snprintf(m->type_name, sizeof m->type_name, "%s%s", base, m->multilingual ? "" : ".en");
    else
        snprintf(m->type_name, sizeof m->type_name, "custom (S=%d, %d+%d layers)",
                 hp->n_audio_state, hp->n_audio_layer, hp->n_text_layer);
}

static int load(Reader *r, WhisperModel **out, char *msg, size_t cap) {
    *out = NULL;
    WhisperModel *m = calloc(1, sizeof *m);
    if (!m) return di_fail(msg, cap, DI_ENOMEM, "out of memory");
    ExpectList l = {0};
    int32_t magic;
    int rc = 0;
    if (rd_i32(r, &magic)) {
        rc = di_fail(msg, cap, DI_EFORMAT, "model file is too short to be a ggml Whisper model");
    } else if ((uint32_t)magic != GGML_MAGIC) {
        rc = di_fail(msg, cap, DI_EFORMAT,
                     "not a ggml Whisper model (bad magic 0x%08x; expected 0x%08x)",
                     (unsigned)magic, GGML_MAGIC);
    }
    if (!rc) rc = read_hparams(r, &m->hp, msg, cap);
    if (!rc) {
        m->multilingual = m->hp.n_vocab >= 51865;
        rc = read_mel_filters(r, m, msg, cap);
    }
    if (!rc) rc = read_vocab(r, m, msg, cap);
    if (!rc && expect_all(&l, m)) rc = di_fail(msg, cap, DI_ENOMEM, "out of memory");
    while (!rc && r->pos < r->size)
        rc = read_tensor(r, &l, m, msg, cap);
    for (int i = 0; !rc && i < l.n; i++)
        if (!l.e[i].found)
            rc = di_fail(msg, cap, DI_EFORMAT, "model is missing tensor '%s'", l.e[i].name);
    free(l.e);
    if (rc) {
        whisper_model_free(m);
        return rc;
    }
    name_model(m);
    *out = m;
    return 0;
}

int whisper_model_load(const char *path, WhisperModel **out, char *msg, size_t cap) {
    if (!out) return di_fail(msg, cap, DI_EINVAL, "no output pointer");
    *out = NULL;
    if (!path) return di_fail(msg, cap, DI_EINVAL, "no model path given");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return di_fail(msg, cap, DI_EIO, "cannot open model '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return di_fail(msg, cap, DI_EIO, "model '%s' is not a regular file", path);
    }
    Reader r = {.fd = fd, .size = (size_t)st.st_size};
    int rc = load(&r, out, msg, cap);
    close(fd);
    if (rc && msg && cap) {
        char inner[512];
        snprintf(inner, sizeof inner, "%s", msg);
        snprintf(msg, cap, "%s: %s", path, inner);
    }
    return rc;
}

int whisper_model_load_buffer(const void *data, size_t size, WhisperModel **out, char *msg,
                              size_t cap) {
    if (!out) return di_fail(msg, cap, DI_EINVAL, "no output pointer");
    *out = NULL;
    if (!data && size) return di_fail(msg, cap, DI_EINVAL, "no model data");
    Reader r = {.buf = data, .size = size};
    return load(&r, out, msg, cap);
}

static void free_tensor(Tensor *t) {
    free((void *)t->data);
    t->data = NULL;
}

static void free_attn(AttnWeights *a) {
    Tensor *t[] = {&a->q_w, &a->q_b, &a->k_w, &a->v_w, &a->v_b, &a->o_w, &a->o_b};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        free_tensor(t[i]);
}

static void free_block(Block *b) {
    free_attn(&b->attn);
    free_attn(&b->cross);
    Tensor *t[] = {&b->attn_ln_w, &b->attn_ln_b, &b->cross_ln_w, &b->cross_ln_b, &b->mlp_ln_w,
                   &b->mlp_ln_b,  &b->fc1_w,     &b->fc1_b,      &b->fc2_w,      &b->fc2_b};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        free_tensor(t[i]);
}

void whisper_model_free(WhisperModel *m) {
    if (!m) return;
    Weights *w = &m->w;
    for (int i = 0; w->enc && i < m->hp.n_audio_layer; i++)
        free_block(&w->enc[i]);
    for (int i = 0; w->dec && i < m->hp.n_text_layer; i++)
        free_block(&w->dec[i]);
    free(w->enc);
    free(w->dec);
    Tensor *t[] = {&w->conv1_w,  &w->conv1_b, &w->conv2_w, &w->conv2_b,  &w->enc_pos, &w->enc_ln_w,
                   &w->enc_ln_b, &w->tok_emb, &w->dec_pos, &w->dec_ln_w, &w->dec_ln_b};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        free_tensor(t[i]);
    tokenizer_free(&m->tok);
    free(m->mel_filters);
    free(m);
}

const WhisperHparams *whisper_model_hparams(const WhisperModel *m) {
    return m ? &m->hp : NULL;
}

int whisper_model_is_multilingual(const WhisperModel *m) {
    return m ? m->multilingual : 0;
}

const char *whisper_model_type(const WhisperModel *m) {
    return m ? m->type_name : "";
}

size_t whisper_model_bytes(const WhisperModel *m) {
    return m ? m->file_size : 0;
}
