/*
 * synth: writes synthetic Whisper models in whisper.cpp's ggml file format.
 *
 * No real Whisper weights can be downloaded here, so tests and benchmarks
 * use models with the real architecture and seeded random weights, made the
 * way /work/shared/golden/README.md describes the golden "micro" model.
 *
 * The interface is declared in whisper.h. Contracts in detail:
 *
 * whisper_synth_preset(name, hp): "micro" (S 128, 2 heads, 2+2 layers),
 * "tiny" (384, 6, 4+4), "base" (512, 8, 6+6), "small" (768, 12, 12+12),
 * "medium" (1024, 16, 24+24), "large" (1280, 20, 32+32) and "large-v3-turbo"
 * (1280, 20, 32 encoder + 4 decoder layers). All have n_audio_ctx 1500,
 * n_text_ctx 448 and ftype 1. The large ones have 128 mels and large-v3's
 * multilingual n_vocab 51866; the others have 80 mels and the English-only
 * n_vocab 51864, so "tiny" means tiny.en and "tiny.en" is accepted too.
 * DI_EINVAL for any other name.
 *
 * whisper_synth_write(path, spec): writes the model, streaming tensor by
 * tensor (a large model is ~3 GB; memory use stays ~1 MB). The output
 * depends only on spec (and the content of vocab_from). DI_EINVAL for a bad spec (n_vocab >= 51864,
 * equal even encoder/decoder widths, heads dividing them, ftype 0 (f32), 1 (f16) or, with the
 * width a multiple of 32, a quantized one: 2 (q4_0), 7 (q8_0), 8 (q5_0), 9 (q5_1)) or a vocab_from whose
 * filter bank has another n_mels; DI_ENOTFOUND when vocab_from does not exist, DI_EFORMAT when it
 * is malformed, DI_EINVAL when it is the output path itself; DI_EIO when writing fails, and then
 * the partial file is removed (if it is a regular file). Without vocab_from the filters are
 * librosa's Slaney bank (bitwise what Whisper's mel_filters.npz holds) and the vocabulary is
 * GPT-2's 256 single-byte tokens; the loader synthesises the ids above them.
 *
 * Reproducibility: every tensor draws from its own xoshiro256** stream,
 * seeded from (seed, FNV-1a hash of the tensor's name). Gaussians come from
 * Marsaglia's polar method with a logarithm computed here, so the random
 * weights use only IEEE-exact operations (+ - * / sqrt) and are bit-identical
 * on every machine and libm. Only the two deterministic blocks, the mel
 * filters and the sinusoidal encoder embedding, call libm (log, exp, sin,
 * cos); another libm could change a last bit there.
 * The files are little-endian whatever the host.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "whisper/whisper_impl.h"

#define GGML_MAGIC 0x67676d6cu
#define QNT_VERSION 2 /* ggml's GGML_QNT_VERSION for these block layouts */
#define N_FFT_BINS (WHISPER_N_FFT / 2 + 1) /* 201 */
#define MIN_VOCAB 51864                    /* the smallest real Whisper vocabulary */

/* ---- Presets ----------------------------------------------------------- */

int whisper_synth_preset(const char *name, WhisperHparams *hp) {
    static const struct {
        const char *name;
        int state, heads, enc_layers, dec_layers;
    } PRESETS[] = {
        {"micro", 128, 2, 2, 2},
        {"tiny", 384, 6, 4, 4},
        {"base", 512, 8, 6, 6},
        {"small", 768, 12, 12, 12},
        {"medium", 1024, 16, 24, 24},
        {"large", 1280, 20, 32, 32},
        {"large-v3-turbo", 1280, 20, 32, 4},
    };
    if (!name || !hp) return DI_EINVAL;
    size_t len = strlen(name);
    if (len > 3 && strcmp(name + len - 3, ".en") == 0) len -= 3;
    for (size_t i = 0; i < sizeof PRESETS / sizeof PRESETS[0]; i++) {
        const char *p = PRESETS[i].name;
        if (strlen(p) != len || strncmp(p, name, len) != 0) continue;
        int large = PRESETS[i].state == 1280;
        if (large && len != strlen(name)) return DI_EINVAL; /* no English-only large */
        *hp = (WhisperHparams){
            .n_vocab = large ? 51866 : 51864,
            .n_audio_ctx = 1500,
            .n_audio_state = PRESETS[i].state,
            .n_audio_head = PRESETS[i].heads,
            .n_audio_layer = PRESETS[i].enc_layers,
            .n_text_ctx = 448,
            .n_text_state = PRESETS[i].state,
            .n_text_head = PRESETS[i].heads,
            .n_text_layer = PRESETS[i].dec_layers,
            .n_mels = large ? 128 : 80,
            .ftype = 1,
        };
        return 0;
    }
    return DI_EINVAL;
}

/* The ggml type of the 2-D matrices for a whole-file ftype (llama.cpp's
 * enum for the quantized ones), or -1. */
static int matrix_type(int ftype) {
    switch (ftype) {
    case 0:
        return TENSOR_F32;
    case 1:
        return TENSOR_F16;
    case 2:
        return TENSOR_Q4_0;
    case 7:
        return TENSOR_Q8_0;
    case 8:
        return TENSOR_Q5_0;
    case 9:
        return TENSOR_Q5_1;
    default:
        return -1;
    }
}

static int check_hparams(const WhisperHparams *hp, char *msg, size_t cap) {
    const int S = hp->n_audio_state;
    if (hp->n_vocab < MIN_VOCAB || hp->n_vocab > (1 << 20))
        return di_fail(msg, cap, DI_EINVAL, "n_vocab %d outside [%d, %d]", hp->n_vocab, MIN_VOCAB,
                       1 << 20);
    /* The sinusoidal embedding divides by S/2 - 1, so S must be at least 4. */
    if (S < 4 || S > 16384 || S % 2)
        return di_fail(msg, cap, DI_EINVAL, "n_audio_state %d must be even and in [4, 16384]", S);
    /* Cross-attention reads the encoder output with decoder-width weights. */
    if (hp->n_text_state != S)
        return di_fail(msg, cap, DI_EINVAL, "n_text_state %d differs from n_audio_state %d",
                       hp->n_text_state, S);
    if (hp->n_audio_head < 1 || S % hp->n_audio_head || hp->n_text_head < 1 || S % hp->n_text_head)
        return di_fail(msg, cap, DI_EINVAL, "head counts %d/%d must divide the width %d",
                       hp->n_audio_head, hp->n_text_head, S);
    if (hp->n_audio_layer < 1 || hp->n_audio_layer > 256 || hp->n_text_layer < 1 ||
        hp->n_text_layer > 256)
        return di_fail(msg, cap, DI_EINVAL, "layer counts %d+%d outside [1, 256]",
                       hp->n_audio_layer, hp->n_text_layer);
    if (hp->n_audio_ctx < 1 || hp->n_audio_ctx > 65536 || hp->n_text_ctx < 1 ||
        hp->n_text_ctx > 65536)
        return di_fail(msg, cap, DI_EINVAL, "context sizes %d/%d outside [1, 65536]",
                       hp->n_audio_ctx, hp->n_text_ctx);
    if (hp->n_mels < 1 || hp->n_mels > 512)
        return di_fail(msg, cap, DI_EINVAL, "n_mels %d outside [1, 512]", hp->n_mels);
    if (matrix_type(hp->ftype) < 0)
        return di_fail(msg, cap, DI_EINVAL,
                       "ftype %d: only 0 (f32), 1 (f16), 2 (q4_0), 7 (q8_0), 8 (q5_0), 9 (q5_1)",
                       hp->ftype);
    if (matrix_type(hp->ftype) > TENSOR_F16 && S % 32)
        return di_fail(msg, cap, DI_EINVAL,
                       "n_audio_state %d must be a multiple of 32 for a quantized model", S);
    return 0;
}

/* ---- Random numbers ---------------------------------------------------- */

typedef struct {
    DiRng core;
    int has_spare;
    double spare;
} Rng;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

/* One independent stream per tensor, so a tensor's values do not depend on
 * which tensors come before it. */
static void rng_init(Rng *r, uint64_t seed, const char *name) {
    DiRng mix;
    di_rng_seed(&mix, seed);
    di_rng_seed(&r->core, mix.s[0] ^ fnv1a(name));
    r->has_spare = 0;
}

static double rng_uniform(Rng *r) {
    return di_rng_uniform(&r->core);
}

/* Natural log of x in (0, 1], from basic arithmetic only so that the result
 * is the same bits everywhere: x = m * 2^e with m in [sqrt(1/2), sqrt(2)),
 * and log m = 2 atanh(z), z = (m-1)/(m+1), |z| < 0.172, summed as a series
 * whose 13 terms reach far below double precision. frexp is exact. */
static double portable_log(double x) {
    int e;
    double m = frexp(x, &e);
    if (m < M_SQRT1_2) {
        m *= 2;
        e--;
    }
    double z = (m - 1) / (m + 1), z2 = z * z, term = z, sum = 0;
    for (int k = 1; k <= 25; k += 2) {
        sum += term / k;
        term *= z2;
    }
    return e * M_LN2 + 2 * sum;
}

/* Standard normal by Marsaglia's polar method; each accepted pair of
 * uniforms gives two values. */
static double rng_gauss(Rng *r) {
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u, v, s;
    do {
        u = 2 * rng_uniform(r) - 1;
        v = 2 * rng_uniform(r) - 1;
        s = u * u + v * v;
    } while (s >= 1 || s == 0);
    double f = sqrt(-2 * portable_log(s) / s);
    r->spare = v * f;
    r->has_spare = 1;
    return u * f;
}

/* ---- The tensor list --------------------------------------------------- */

enum { T_F32 = TENSOR_F32, T_F16 = TENSOR_F16 };
enum { INIT_NORMAL, INIT_SINUSOIDS };

typedef struct {
    char name[64];
    int n_dims;
    int ne[3]; /* ggml order: ne[0] varies fastest */
    int type;
    int init;
    double mean, std;
} TensorSpec;

typedef struct {
    TensorSpec *t;
    int n, cap;
} TensorList;

/* out = a + b, cut to fit (tensor names are short; gcc cannot know that
 * through snprintf's %s, so the lengths are checked here instead). */
static void join(char *out, size_t cap, const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    if (na >= cap) na = cap - 1;
    if (nb >= cap - na) nb = cap - 1 - na;
    memcpy(out, a, na);
    memcpy(out + na, b, nb);
    out[na + nb] = 0;
}

static void add(TensorList *l, const char *name, int n_dims, int ne0, int ne1, int ne2, int type,
                int init, double mean, double std) {
    if (l->n >= l->cap) return; /* cannot happen: the list is sized exactly */
    TensorSpec *t = &l->t[l->n++];
    join(t->name, sizeof t->name, name, "");
    t->n_dims = n_dims;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->ne[2] = ne2;
    t->type = type;
    t->init = init;
    t->mean = mean;
    t->std = std;
}

static void add_attn(TensorList *l, const char *prefix, int S, int wtype) {
    char n[160];
    double qk = 1.0 / sqrt(S); /* large enough to make attention non-uniform */
    join(n, sizeof n, prefix, ".query.weight");
    add(l, n, 2, S, S, 1, wtype, INIT_NORMAL, 0, qk);
    join(n, sizeof n, prefix, ".query.bias");
    add(l, n, 1, S, 1, 1, T_F32, INIT_NORMAL, 0, 0.01);
    join(n, sizeof n, prefix, ".key.weight");
    add(l, n, 2, S, S, 1, wtype, INIT_NORMAL, 0, qk);
    join(n, sizeof n, prefix, ".value.weight");
    add(l, n, 2, S, S, 1, wtype, INIT_NORMAL, 0, 0.02);
    join(n, sizeof n, prefix, ".value.bias");
    add(l, n, 1, S, 1, 1, T_F32, INIT_NORMAL, 0, 0.01);
    join(n, sizeof n, prefix, ".out.weight");
    add(l, n, 2, S, S, 1, wtype, INIT_NORMAL, 0, 0.02);
    join(n, sizeof n, prefix, ".out.bias");
    add(l, n, 1, S, 1, 1, T_F32, INIT_NORMAL, 0, 0.01);
}

static void add_ln(TensorList *l, const char *prefix, int S) {
    char n[160];
    join(n, sizeof n, prefix, ".weight");
    add(l, n, 1, S, 1, 1, T_F32, INIT_NORMAL, 1.0, 0.05);
    join(n, sizeof n, prefix, ".bias");
    add(l, n, 1, S, 1, 1, T_F32, INIT_NORMAL, 0, 0.01);
}

static void add_block(TensorList *l, const char *prefix, int S, int wtype, int cross) {
    char n[160];
    join(n, sizeof n, prefix, ".attn");
    add_attn(l, n, S, wtype);
    join(n, sizeof n, prefix, ".attn_ln");
    add_ln(l, n, S);
    if (cross) {
        join(n, sizeof n, prefix, ".cross_attn");
        add_attn(l, n, S, wtype);
        join(n, sizeof n, prefix, ".cross_attn_ln");
        add_ln(l, n, S);
    }
    join(n, sizeof n, prefix, ".mlp.0.weight");
    add(l, n, 2, S, 4 * S, 1, wtype, INIT_NORMAL, 0, 0.02);
    join(n, sizeof n, prefix, ".mlp.0.bias");
    add(l, n, 1, 4 * S, 1, 1, T_F32, INIT_NORMAL, 0, 0.01);
    join(n, sizeof n, prefix, ".mlp.2.weight");
    add(l, n, 2, 4 * S, S, 1, wtype, INIT_NORMAL, 0, 0.02);
    join(n, sizeof n, prefix, ".mlp.2.bias");
    add(l, n, 1, S, 1, 1, T_F32, INIT_NORMAL, 0, 0.01);
    join(n, sizeof n, prefix, ".mlp_ln");
    add_ln(l, n, S);
}

/* Every tensor in OpenAI's state_dict order (a module's own parameters and
 * buffers before its submodules, hence the positional embeddings first),
 * which is also the order of the golden micro model. Types follow
 * whisper.cpp's loader: conv weights and 2-D matrices take the model's type,
 * everything else is f32; conv biases are stored as [1, S]. A quantized
 * model quantizes the 2-D matrices (the token embedding included) and keeps
 * conv weights f16, as whisper.cpp's quantizer does. */
static int build_tensors(const WhisperHparams *hp, TensorList *l) {
    const int S = hp->n_audio_state, wtype = matrix_type(hp->ftype);
    const int ctype = wtype == T_F32 ? T_F32 : T_F16;
    l->cap = 11 + 15 * hp->n_audio_layer + 24 * hp->n_text_layer;
    l->n = 0;
    l->t = calloc((size_t)l->cap, sizeof *l->t);
    if (!l->t) return DI_ENOMEM;

    add(l, "encoder.positional_embedding", 2, S, hp->n_audio_ctx, 1, T_F32, INIT_SINUSOIDS, 0, 0);
    add(l, "encoder.conv1.weight", 3, 3, hp->n_mels, S, ctype, INIT_NORMAL, 0,
        1.0 / sqrt(3.0 * hp->n_mels));
    add(l, "encoder.conv1.bias", 2, 1, S, 1, T_F32, INIT_NORMAL, 0, 0.01);
    add(l, "encoder.conv2.weight", 3, 3, S, S, ctype, INIT_NORMAL, 0, 1.0 / sqrt(3.0 * S));
    add(l, "encoder.conv2.bias", 2, 1, S, 1, T_F32, INIT_NORMAL, 0, 0.01);
    char prefix[48];
    for (int i = 0; i < hp->n_audio_layer; i++) {
        snprintf(prefix, sizeof prefix, "encoder.blocks.%d", i);
        add_block(l, prefix, S, wtype, 0);
    }
    add_ln(l, "encoder.ln_post", S);

    add(l, "decoder.positional_embedding", 2, S, hp->n_text_ctx, 1, T_F32, INIT_NORMAL, 0, 0.02);
    add(l, "decoder.token_embedding.weight", 2, S, hp->n_vocab, 1, wtype, INIT_NORMAL, 0, 0.02);
    for (int i = 0; i < hp->n_text_layer; i++) {
        snprintf(prefix, sizeof prefix, "decoder.blocks.%d", i);
        add_block(l, prefix, S, wtype, 1);
    }
    add_ln(l, "decoder.ln", S);
    return l->n == l->cap ? 0 : DI_EINTERNAL;
}

/* Value k (in file order) of OpenAI's sinusoids(length, channels): for
 * position t = k / channels and channel c = k % channels, sin(t * w_c) in
 * the first half and cos(t * w_c') in the second, where w_j =
 * exp(-j * log(10000) / (channels/2 - 1)). Computed in double and rounded
 * once, as the golden model's numpy code did (it agrees to 6e-8). */
static float sinusoid(size_t k, int channels) {
    int half = channels / 2;
    size_t t = k / (size_t)channels;
    int c = (int)(k % (size_t)channels);
    int j = c < half ? c : c - half;
    double x = (double)t * exp(-log(10000.0) / (half - 1) * j);
    return (float)(c < half ? sin(x) : cos(x));
}

/* ---- Writing ----------------------------------------------------------- */

enum { CHUNK = 1 << 15 }; /* values converted per write */

/* Output with a sticky error (an errno value), so write calls need no checks
 * each; chunk and vals are scratch space for converting tensor values. */
typedef struct {
    FILE *f;
    int err;
    uint8_t *chunk; /* CHUNK * 4 bytes */
    float *vals;    /* CHUNK values before quantization */
} Out;

static void put_bytes(Out *o, const void *p, size_t n) {
    if (!o->err && n && fwrite(p, 1, n, o->f) != n) o->err = errno ? errno : EIO;
}

static void put_u32(Out *o, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put_bytes(o, b, 4);
}

static void put_i32(Out *o, int32_t v) {
    put_u32(o, (uint32_t)v);
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Streams a tensor's values in chunks, converted to its type, little-endian. */
static void write_tensor(Out *o, const TensorSpec *t, uint64_t seed, int S) {
    size_t n = (size_t)t->ne[0] * (size_t)t->ne[1] * (size_t)t->ne[2];
    size_t name_len = strlen(t->name);

    put_i32(o, t->n_dims);
    put_i32(o, (int32_t)name_len);
    put_i32(o, t->type);
    for (int d = 0; d < t->n_dims; d++)
        put_i32(o, t->ne[d]);
    put_bytes(o, t->name, name_len);

    Rng rng;
    rng_init(&rng, seed, t->name);
    for (size_t done = 0; done < n && !o->err;) {
        size_t m = n - done < CHUNK ? n - done : CHUNK;
        uint8_t *p = o->chunk;
        if (quant_is_block_type(t->type)) {
            /* CHUNK and every row are whole blocks of 32 (check_hparams). */
            for (size_t i = 0; i < m; i++)
                o->vals[i] = (float)(t->mean + t->std * rng_gauss(&rng));
            quant_quantize_row(t->type, o->vals, o->chunk, (int)m);
            put_bytes(o, o->chunk, quant_row_bytes(t->type, (int)m));
            done += m;
            continue;
        }
        for (size_t i = 0; i < m; i++) {
            float v = t->init == INIT_SINUSOIDS ? sinusoid(done + i, S)
                                                : (float)(t->mean + t->std * rng_gauss(&rng));
            if (t->type == T_F16) {
                uint16_t h = di_f32_to_f16(v);
                *p++ = (uint8_t)h;
                *p++ = (uint8_t)(h >> 8);
            } else {
                uint32_t u = f32_bits(v);
                for (int b = 0; b < 4; b++)
                    *p++ = (uint8_t)(u >> (8 * b));
            }
        }
        put_bytes(o, o->chunk, (size_t)(p - o->chunk));
        done += m;
    }
}

/* librosa's mel scale with htk=False (Slaney): linear below 1 kHz, then
 * logarithmic with 27 mels per factor 6.4. */
static double hz_to_mel(double hz) {
    const double f_sp = 200.0 / 3, min_log_hz = 1000.0, logstep = log(6.4) / 27.0;
    if (hz < min_log_hz) return hz / f_sp;
    return min_log_hz / f_sp + log(hz / min_log_hz) / logstep;
}

static double mel_to_hz(double mel) {
    const double f_sp = 200.0 / 3, min_log_hz = 1000.0, logstep = log(6.4) / 27.0;
    const double min_log_mel = min_log_hz / f_sp;
    if (mel < min_log_mel) return f_sp * mel;
    return min_log_hz * exp(logstep * (mel - min_log_mel));
}

/* The filter bank Whisper ships in mel_filters.npz: librosa.filters.mel(sr=
 * 16000, n_fft=400, n_mels, htk=False, norm="slaney"), triangles between
 * n_mels + 2 points spaced evenly in mel from 0 Hz to 8 kHz, each scaled by
 * 2 / its width in Hz so all have the same area. librosa stores the
 * triangle in float32 and then scales it, and so does this. */
static void write_mel_filters(Out *o, int n_mels) {
    double *pts = malloc((size_t)(n_mels + 2) * sizeof *pts);
    if (!pts) {
        o->err = ENOMEM;
        return;
    }
    double top = hz_to_mel(WHISPER_SAMPLE_RATE / 2.0);
    for (int i = 0; i < n_mels + 2; i++)
        pts[i] = mel_to_hz(top * i / (n_mels + 1));
    put_i32(o, n_mels);
    put_i32(o, N_FFT_BINS);
    for (int m = 0; m < n_mels; m++) {
        double enorm = 2.0 / (pts[m + 2] - pts[m]);
        for (int k = 0; k < N_FFT_BINS; k++) {
            double f = (double)WHISPER_SAMPLE_RATE / WHISPER_N_FFT * k;
            double lower = (f - pts[m]) / (pts[m + 1] - pts[m]);
            double upper = (pts[m + 2] - f) / (pts[m + 2] - pts[m + 1]);
            double w = fmax(0.0, fmin(lower, upper));
            put_u32(o, f32_bits((float)((double)(float)w * enorm)));
        }
    }
    free(pts);
}

/* GPT-2's first 256 tokens are the single bytes, ordered printable ranges
 * first ('!'..'~', 0xa1..0xac, 0xae..0xff) and then the rest ascending; the
 * same order here makes ids 0..255 decode to the bytes GPT-2 gives them. */
static void write_byte_vocab(Out *o) {
    int order[256], n = 0;
    for (int b = 0; b < 256; b++)
        if ((b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff))
            order[n++] = b;
    for (int b = 0; b < 256; b++)
        if (!((b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)))
            order[n++] = b;
    put_i32(o, 256);
    for (int i = 0; i < 256; i++) {
        uint8_t byte = (uint8_t)order[i];
        put_u32(o, 1);
        put_bytes(o, &byte, 1);
    }
}

/* ---- Copying from an existing model ------------------------------------ */

static int get_u32(FILE *f, uint32_t *v) {
    uint8_t b[4];
    if (fread(b, 1, 4, f) != 4) return -1;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 0;
}

/* Opens src and checks its header and filter bank shape, leaving the
 * stream at the filter data. */
static int open_source(const char *path, int n_mels, FILE **out, char *msg, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return di_fail(msg, cap, errno == ENOENT ? DI_ENOTFOUND : DI_EIO, "cannot open %s: %s",
                       path, strerror(errno));
    uint32_t magic, v[11], mel_rows, mel_cols;
    int bad = get_u32(f, &magic) != 0 || magic != GGML_MAGIC;
    for (int i = 0; i < 11 && !bad; i++)
        bad = get_u32(f, &v[i]) != 0;
    bad = bad || get_u32(f, &mel_rows) != 0 || get_u32(f, &mel_cols) != 0;
    if (bad) {
        fclose(f);
        return di_fail(msg, cap, DI_EFORMAT, "%s is not a ggml Whisper model", path);
    }
    if (mel_cols != N_FFT_BINS || (int32_t)mel_rows != n_mels) {
        fclose(f);
        return di_fail(msg, cap, DI_EINVAL, "%s has a %ux%u filter bank; the spec needs %dx%d",
                       path, mel_rows, mel_cols, n_mels, N_FFT_BINS);
    }
    *out = f;
    return 0;
}

/* Copies n bytes from src to the output. */
static int copy_bytes(FILE *src, Out *o, size_t n) {
    uint8_t buf[4096];
    while (n > 0) {
        size_t m = n < sizeof buf ? n : sizeof buf;
        if (fread(buf, 1, m, src) != m) return -1;
        put_bytes(o, buf, m);
        n -= m;
    }
    return 0;
}

/* Copies the filter bank and the vocabulary block byte for byte. Returns 0,
 * or DI_EFORMAT for a truncated or implausible source. */
static int copy_source(FILE *src, int n_mels, int n_vocab, Out *o, char *msg, size_t cap) {
    put_i32(o, n_mels);
    put_i32(o, N_FFT_BINS);
    if (copy_bytes(src, o, (size_t)n_mels * N_FFT_BINS * 4))
        return di_fail(msg, cap, DI_EFORMAT, "vocab_from: truncated filter bank");
    uint32_t count;
    if (get_u32(src, &count) || count > (uint32_t)n_vocab)
        return di_fail(msg, cap, DI_EFORMAT, "vocab_from: vocabulary size missing or above %d",
                       n_vocab);
    put_u32(o, count);
    for (uint32_t i = 0; i < count; i++) {
        uint32_t len;
        /* Real tokens are a few dozen bytes; a huge length means garbage. */
        if (get_u32(src, &len) || len > 4096)
            return di_fail(msg, cap, DI_EFORMAT, "vocab_from: bad length of token %u", i);
        put_u32(o, len);
        if (copy_bytes(src, o, len))
            return di_fail(msg, cap, DI_EFORMAT, "vocab_from: truncated token %u", i);
    }
    return 0;
}

/* ---- Entry point ------------------------------------------------------- */

int whisper_synth_write(const char *path, const WhisperSynthSpec *spec, char *msg, size_t cap) {
    if (!path || !spec) return di_fail(msg, cap, DI_EINVAL, "whisper_synth_write: NULL argument");
    const WhisperHparams *hp = &spec->hp;
    int rc = check_hparams(hp, msg, cap);
    if (rc) return rc;

    TensorList list = {0};
    if (build_tensors(hp, &list)) {
        free(list.t);
        return di_fail(msg, cap, DI_ENOMEM, "out of memory listing tensors");
    }
    FILE *src = NULL;
    if (spec->vocab_from) {
        rc = open_source(spec->vocab_from, hp->n_mels, &src, msg, cap);
        if (rc) {
            free(list.t);
            return rc;
        }
    }

    /* Writing over the source would truncate it before it is read. */
    struct stat in_st, out_st;
    if (src && fstat(fileno(src), &in_st) == 0 && stat(path, &out_st) == 0 &&
        in_st.st_dev == out_st.st_dev && in_st.st_ino == out_st.st_ino) {
        fclose(src);
        free(list.t);
        return di_fail(msg, cap, DI_EINVAL, "%s is both vocab_from and the output", path);
    }

    Out o = {NULL, 0, malloc((size_t)CHUNK * 4), malloc((size_t)CHUNK * sizeof(float))};
    if (!o.chunk || !o.vals) {
        rc = di_fail(msg, cap, DI_ENOMEM, "out of memory");
        goto done;
    }
    o.f = fopen(path, "wb");
    if (!o.f) {
        rc = di_fail(msg, cap, DI_EIO, "cannot create %s: %s", path, strerror(errno));
        goto done;
    }
    /* Only a regular file of ours may be removed on failure, never a device
     * such as /dev/null that the caller asked us to write to. */
    struct stat st;
    int regular = fstat(fileno(o.f), &st) == 0 && S_ISREG(st.st_mode);
    setvbuf(o.f, NULL, _IOFBF, 1 << 20);

    /* whisper.cpp marks quantized files with the quantization version. */
    int wq = matrix_type(hp->ftype) > TENSOR_F16;
    put_u32(&o, GGML_MAGIC);
    const int32_t fields[11] = {hp->n_vocab,      hp->n_audio_ctx,   hp->n_audio_state,
                                hp->n_audio_head, hp->n_audio_layer, hp->n_text_ctx,
                                hp->n_text_state, hp->n_text_head,   hp->n_text_layer,
                                hp->n_mels,       hp->ftype + (wq ? QNT_VERSION * 1000 : 0)};
    for (int i = 0; i < 11; i++)
        put_i32(&o, fields[i]);
    if (src) {
        rc = copy_source(src, hp->n_mels, hp->n_vocab, &o, msg, cap);
    } else {
        write_mel_filters(&o, hp->n_mels);
        write_byte_vocab(&o);
    }
    for (int i = 0; i < list.n && !rc && !o.err; i++)
        write_tensor(&o, &list.t[i], spec->seed, hp->n_audio_state);

    if (fclose(o.f) != 0 && !o.err) o.err = errno ? errno : EIO;
    if (!rc && o.err)
        rc = di_fail(msg, cap, DI_EIO, "writing %s failed: %s", path, strerror(o.err));
    if (rc && regular) unlink(path);
done:
    if (src) fclose(src);
    free(o.chunk);
    free(o.vals);
    free(list.t);
    return rc;
}
