/*
 * The encoder: 3000 log-mel frames in, n_audio_ctx (1500) vectors out.
 *
 *   conv1 (k=3, pad 1) + GELU -> conv2 (k=3, stride 2, pad 1) + GELU
 *   + sinusoidal positions -> pre-LayerNorm transformer blocks -> ln_post
 *
 * Convolutions run as matrix products over im2col matrices, so nearly all
 * the work is sgemm. whisper_encode also projects the output into every
 * decoder layer's cross-attention keys and values: they depend only on the
 * audio, so the decoder computes them once per window, not once per token.
 */
#include "whisper/whisper_impl.h"

#include <math.h>
#include <string.h>

#define ATTN_QUERY_BLOCK 250
/* The MLP and conv2 run over chunks of this many positions, so their wide
 * intermediate ([rows][4S], [rows][3S]) needs a chunk's room, not the
 * window's: 10 MB less at base. Still enough rows per product for sgemm. */
#define ENC_CHUNK 500

typedef struct {
    float *x, *h, *q, *k, *v, *big, *scores;
} EncBufs;

/* x, h, q, k, v of [n_ctx][S] and one wide buffer that holds, in turn,
 * conv1's im2col, conv2's (a chunk), each thread's attention scores and the
 * MLP's hidden layer (a chunk). */
size_t encoder_scratch_floats(const WhisperHparams *hp, int n_threads) {
    size_t T = (size_t)hp->n_audio_ctx, S = (size_t)hp->n_audio_state;
    size_t big = 2 * T * 3 * (size_t)hp->n_mels;
    if (ENC_CHUNK * 4 * S > big) big = ENC_CHUNK * 4 * S;
    if ((size_t)n_threads * ATTN_QUERY_BLOCK * T > big)
        big = (size_t)n_threads * ATTN_QUERY_BLOCK * T;
    return 5 * T * S + big;
}

static EncBufs enc_bufs(WhisperState *st) {
    const WhisperHparams *hp = &st->model->hp;
    size_t T = (size_t)hp->n_audio_ctx, S = (size_t)hp->n_audio_state;
    EncBufs b;
    b.x = st->scratch;
    b.h = b.x + T * S;
    b.q = b.h + T * S;
    b.k = b.q + T * S;
    b.v = b.k + T * S;
    b.big = b.v + T * S;
    b.scores = b.big;
    return b;
}

/* im2col for conv1: row t holds mel[c][t + j - 1] at column c*3 + j, the
 * layout of a PyTorch [out][in][3] weight flattened to [out][3*in]. */
static void im2col_mel(float *col, const float *mel, int n_mels, int n_frames, int offset, int F) {
    for (int t = 0; t < F; t++) {
        float *row = col + (size_t)t * n_mels * 3;
        for (int c = 0; c < n_mels; c++) {
            for (int j = 0; j < 3; j++) {
                int f = t + j - 1; /* frame within the window */
                int src = offset + f;
                row[c * 3 + j] =
                    (f < 0 || f >= F || src >= n_frames) ? 0.0f : mel[(size_t)c * n_frames + src];
            }
        }
    }
}

/* im2col for conv2 (stride 2) over a time-major [F][S] input, output
 * positions t0..t1 into rows from 0. */
static void im2col_stride2(float *col, const float *in, int F, int S, int t0, int t1) {
    for (int t = t0; t < t1; t++) {
        float *row = col + (size_t)(t - t0) * S * 3;
        for (int j = 0; j < 3; j++) {
            int f = 2 * t + j - 1;
            for (int c = 0; c < S; c++)
                row[c * 3 + j] = (f < 0 || f >= F) ? 0.0f : in[(size_t)f * S + c];
        }
    }
}

typedef struct {
    EncBufs *b;
    int T, S, n_head, dh;
    float scale;
    float *qh, *kh, *vh; /* [n_head][T][dh]; kh in blocks when blocked */
    int blocked;         /* op_encoder_attention's kernel, not sgemm */
} AttnJob;

/* Copies one head of a [T][S] matrix into a contiguous [T][dh] block of
 * dst ([n_head][T][dh]). Read in place, a head's 1500 rows each sit on their
 * own page, and sgemm's packing of them (once per block of queries) spent
 * most of its time on TLB misses. Keys for op_encoder_attention go into its
 * blocks of 64 transposed keys instead: 16 KB that the kernel reads from
 * four pages, where one [dh][T] matrix would spread a block over 64. */
typedef struct {
    const float *src;
    float *dst;
    int T, S, dh;
    int blocked;
    uint16_t *dst16; /* when not NULL, dst's head also goes here in f16 */
} HeadsJob;

static void heads_task(void *ctx, int head, int thread) {
    (void)thread;
    HeadsJob *j = ctx;
    float *dst = j->dst + (size_t)head * j->T * j->dh;
    const float *src = j->src + (size_t)head * j->dh;
    if (!j->blocked) {
        for (int t = 0; t < j->T; t++)
            memcpy(dst + (size_t)t * j->dh, src + (size_t)t * j->S, (size_t)j->dh * sizeof(float));
    } else {
        for (int t0 = 0; t0 < j->T; t0 += ATTN_KEY_BLOCK) {
            int nk = j->T - t0 < ATTN_KEY_BLOCK ? j->T - t0 : ATTN_KEY_BLOCK;
            float *blk = dst + (size_t)t0 * j->dh;
            for (int c = 0; c < j->dh; c++)
                for (int t = 0; t < nk; t++)
                    blk[(size_t)c * nk + t] = src[(size_t)(t0 + t) * j->S + c];
        }
    }
    if (j->dst16) /* while the head is still in this core's cache */
        di_f32_to_f16_row(dst, j->dst16 + (size_t)head * j->T * j->dh, (size_t)j->T * j->dh);
}

static void enc_attn_task(void *ctx, int i, int thread) {
    AttnJob *j = ctx;
    int blocks = (j->T + ATTN_QUERY_BLOCK - 1) / ATTN_QUERY_BLOCK;
    int head = i / blocks, q0 = (i % blocks) * ATTN_QUERY_BLOCK;
    int nq = j->T - q0 < ATTN_QUERY_BLOCK ? j->T - q0 : ATTN_QUERY_BLOCK;
    size_t hoff = (size_t)head * j->T * j->dh;
    float *scores = j->b->scores + (size_t)thread * ATTN_QUERY_BLOCK * j->T;
    /* The output goes back to the [T][S] layout the next product reads. */
    float *out = j->b->v + (size_t)q0 * j->S + (size_t)head * j->dh;
    const float *q = j->qh + hoff + (size_t)q0 * j->dh;
    if (j->blocked)
        op_encoder_attention(out, j->S, q, j->dh, j->kh + hoff, j->vh + hoff, nq, j->T, j->dh,
                             j->scale, scores);
    else
        op_attention(out, j->S, q, j->kh + hoff, j->vh + hoff, nq, j->T, j->dh, j->dh, j->scale, -1,
                     scores);
}

static void encoder_block(WhisperState *st, EncBufs *b, const Block *L) {
    const WhisperHparams *hp = &st->model->hp;
    int T = hp->n_audio_ctx, S = hp->n_audio_state, H = hp->n_audio_head;

    /* Self-attention on the normalised input, added back to the residual. */
    op_layer_norm(st, b->h, b->x, T, S, &L->attn_ln_w, &L->attn_ln_b);
    op_matmul(st, b->q, b->h, T, S, &L->attn.q_w, &L->attn.q_b);
    op_matmul(st, b->k, b->h, T, S, &L->attn.k_w, NULL);
    op_matmul(st, b->v, b->h, T, S, &L->attn.v_w, &L->attn.v_b);
    /* Head-major copies, each into the buffer the previous one freed:
     * q -> h (done with), k -> q, v -> k; the heads' output goes to v. */
    int dh = S / H, blocked = op_encoder_attention_fast(dh);
    HeadsJob hj[3] = {{b->q, b->h, T, S, dh, 0, NULL},
                      {b->k, b->q, T, S, dh, blocked, NULL},
                      {b->v, b->k, T, S, dh, 0, NULL}};
    for (int c = 0; c < 3; c++)
        di_pool_run(st->pool, H, heads_task, &hj[c]);
    AttnJob aj = {b, T, S, H, dh, 1.0f / sqrtf((float)dh), b->h, b->q, b->k, blocked};
    di_pool_run(st->pool, H * ((T + ATTN_QUERY_BLOCK - 1) / ATTN_QUERY_BLOCK), enc_attn_task, &aj);
    op_matmul_ex(st, b->h, b->v, T, S, &L->attn.o_w, &L->attn.o_b, 0, b->x);

    /* MLP: S -> 4S -> GELU -> S, a chunk of positions at a time; each
     * chunk's output overwrites its own rows of h, already consumed, and
     * is added into its rows of x. */
    op_layer_norm(st, b->h, b->x, T, S, &L->mlp_ln_w, &L->mlp_ln_b);
    for (int t0 = 0; t0 < T; t0 += ENC_CHUNK) {
        int n = T - t0 < ENC_CHUNK ? T - t0 : ENC_CHUNK;
        float *h = b->h + (size_t)t0 * S;
        op_matmul_ex(st, b->big, h, n, S, &L->fc1_w, &L->fc1_b, 1, NULL);
        op_matmul_ex(st, h, b->big, n, 4 * S, &L->fc2_w, &L->fc2_b, 0, b->x + (size_t)t0 * S);
    }
}

int whisper_encode(WhisperState *st, const float *mel, int n_frames, int offset, char *msg,
                   size_t cap) {
    if (!st || !mel) return di_fail(msg, cap, DI_EINVAL, "no state or mel");
    if (n_frames < 0 || offset < 0)
        return di_fail(msg, cap, DI_EINVAL, "negative mel frame count or offset");
    const WhisperModel *m = st->model;
    const WhisperHparams *hp = &m->hp;
    const Weights *w = &m->w;
    int T = hp->n_audio_ctx, S = hp->n_audio_state, F = 2 * T;
    EncBufs b = enc_bufs(st);

    /* conv1 + GELU into q..k (F x S fits exactly in two T x S buffers). */
    float *c1 = b.q;
    im2col_mel(b.big, mel, hp->n_mels, n_frames, offset, F);
    op_matmul_ex(st, c1, b.big, F, 3 * hp->n_mels, &w->conv1_w, &w->conv1_b, 1, NULL);

    /* conv2 (stride 2) + GELU, then the positional embedding. */
    for (int t0 = 0; t0 < T; t0 += ENC_CHUNK) {
        int t1 = T - t0 < ENC_CHUNK ? T : t0 + ENC_CHUNK;
        im2col_stride2(b.big, c1, F, S, t0, t1);
        op_matmul_ex(st, b.x + (size_t)t0 * S, b.big, t1 - t0, 3 * S, &w->conv2_w, &w->conv2_b, 1,
                     NULL);
    }
    const float *pos = w->enc_pos.data;
    for (size_t i = 0; i < (size_t)T * S; i++)
        b.x[i] += pos[i];

    for (int l = 0; l < hp->n_audio_layer; l++)
        encoder_block(st, &b, &w->enc[l]);
    /* The output lives in the scratch (v is free now) until the next encode. */
    st->enc_out = b.v;
    op_layer_norm(st, st->enc_out, b.x, T, S, &w->enc_ln_w, &w->enc_ln_b);

    /* Cross-attention keys and values for every decoder layer, into the
     * state's current slot. They are stored in f16, as the decoder reads
     * them at every step, and head by head, so the decoder streams each
     * head's as one run rather than 128 bytes from every kilobyte: values
     * [head][T][dh], keys in the transposed blocks op_cross_attention_f16
     * multiplies without sums across lanes. The encoder's own head copies
     * lay them out (in h and x, free now) and convert them. */
    int H = hp->n_text_head, dh = S / H;
    size_t slot = (size_t)st->cross_slot * hp->n_text_layer * T * S;
    for (int l = 0; l < hp->n_text_layer; l++) {
        const AttnWeights *c = &w->dec[l].cross;
        op_matmul(st, b.q, st->enc_out, T, S, &c->k_w, NULL);
        op_matmul(st, b.k, st->enc_out, T, S, &c->v_w, &c->v_b);
        HeadsJob kv[2] = {{b.q, b.h, T, S, dh, 1, st->cross_k + slot + (size_t)l * T * S},
                          {b.k, b.x, T, S, dh, 0, st->cross_v + slot + (size_t)l * T * S}};
        for (int i = 0; i < 2; i++)
            di_pool_run(st->pool, H, heads_task, &kv[i]);
    }
    return 0;
}
