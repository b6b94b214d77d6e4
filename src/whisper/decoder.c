/*
 * The decoder: tokens in, next-token logits out.
 *
 *   token embedding + learned positions -> blocks of
 *   [causal self-attention with a KV cache, cross-attention over the
 *   encoder output, MLP], each pre-LayerNorm -> LayerNorm -> logits against
 *   the token embedding (tied weights).
 *
 * Several sequences decode in lockstep as one batch (the beams of beam
 * search, the candidates of best-of sampling): their rows share every
 * weight read, which is what makes a batch cheaper than its parts. Each
 * sequence has its own self-attention cache. The beams of one window share
 * its cross-attention keys and values; a batch may also hold the windows
 * of several jobs, each sequence at its own position against its own
 * window (DecSeq).
 */
#include "whisper/whisper_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int rows_cap(const WhisperState *st) {
    int ctx = st->model->hp.n_text_ctx;
    return st->n_seq_cap > ctx ? st->n_seq_cap : ctx;
}

static size_t scores_per_thread(const WhisperState *st) {
    const WhisperHparams *hp = &st->model->hp;
    int kv = hp->n_text_ctx > hp->n_audio_ctx ? hp->n_text_ctx : hp->n_audio_ctx;
    return (size_t)rows_cap(st) * (size_t)kv;
}

int decoder_reserve(WhisperState *st, int n_seq, char *msg, size_t cap) {
    if (n_seq < 1 || n_seq > 64)
        return di_fail(msg, cap, DI_EINVAL, "cannot decode %d sequences at once (1..64)", n_seq);
    if (n_seq <= st->n_seq_cap) return 0;
    const WhisperHparams *hp = &st->model->hp;
    size_t S = (size_t)hp->n_text_state;
    size_t per_seq = (size_t)hp->n_text_layer * hp->n_text_ctx * S;
    /* realloc keeps the caches of the sequences that already exist. */
    uint16_t *k = realloc(st->self_k, (size_t)n_seq * per_seq * sizeof(uint16_t));
    if (k) st->self_k = k;
    uint16_t *v = realloc(st->self_v, (size_t)n_seq * per_seq * sizeof(uint16_t));
    if (v) st->self_v = v;
    float *lg = realloc(st->logits, (size_t)n_seq * hp->n_vocab * sizeof(float));
    if (lg) st->logits = lg;
    uint16_t *t = realloc(st->reorder_tmp, (size_t)n_seq * hp->n_text_ctx * S * sizeof(uint16_t));
    if (t) st->reorder_tmp = t;
    if (!k || !v || !lg || !t)
        return di_fail(msg, cap, DI_ENOMEM, "out of memory for decoder caches");
    /* Not cleared: a step writes its rows before attending over them, and
     * untouched pages of the context never read cost no memory. */
    int old = st->n_seq_cap;
    st->n_seq_cap = n_seq;
    size_t need = 10 * (size_t)rows_cap(st) * S + (size_t)st->n_threads * scores_per_thread(st);
    if (need > st->dec_buf_size) {
        /* Aligned to cache lines: the few-row kernels load every input row
         * once per weight row, and a load that straddles two lines costs
         * two. Scratch only, so nothing is carried over. */
        float *b = aligned_alloc(64, (need * sizeof(float) + 63) & ~(size_t)63);
        if (!b) {
            st->n_seq_cap = old;
            return di_fail(msg, cap, DI_ENOMEM, "out of memory for decoder buffers");
        }
        free(st->dec_buf);
        st->dec_buf = b;
        st->dec_buf_size = need;
    }
    return 0;
}

typedef struct {
    float *x, *h, *q, *k, *v, *a, *f, *scores;
} DecBufs;

static DecBufs dec_bufs(WhisperState *st) {
    size_t R = (size_t)rows_cap(st), S = (size_t)st->model->hp.n_text_state;
    DecBufs b;
    b.x = st->dec_buf;
    b.h = b.x + R * S;
    b.q = b.h + R * S;
    b.k = b.q + R * S;
    b.v = b.k + R * S;
    b.a = b.v + R * S;
    b.f = b.a + R * S;
    b.scores = b.f + 4 * R * S;
    return b;
}

static uint16_t *cache_row(WhisperState *st, uint16_t *base, int seq, int layer, int pos) {
    const WhisperHparams *hp = &st->model->hp;
    size_t S = (size_t)hp->n_text_state;
    return base + (((size_t)seq * hp->n_text_layer + layer) * hp->n_text_ctx + pos) * S;
}

/* Runs of consecutive sequences that attend to the same window. */
typedef struct {
    int first, count, slot;
} CrossGroup;

typedef struct {
    WhisperState *st;
    DecBufs *b;
    const DecSeq *seqs;
    const CrossGroup *groups;
    int layer, n_seq, n_tok, cross;
} DecAttnJob;

/* Self-attention: task i is one (sequence, head) pair, all of the
 * sequence's new queries against its own cache. Cross-attention: task i is
 * one (group, head) pair, every query of the group's sequences at once,
 * since they share the window's keys and values and so read them once per
 * step. */
static void dec_attn_task(void *ctx, int i, int thread) {
    DecAttnJob *j = ctx;
    const WhisperHparams *hp = &j->st->model->hp;
    int H = hp->n_text_head, S = hp->n_text_state, dh = S / H, head = i % H;
    float *scores = j->b->scores + (size_t)thread * scores_per_thread(j->st);
    size_t cap;
    float *kvbuf = op_thread_scratch(j->st, thread, &cap);
    float scale = 1.0f / sqrtf((float)dh);
    if (j->cross) {
        const CrossGroup *g = &j->groups[i / H];
        size_t T = (size_t)hp->n_audio_ctx;
        /* The window's cache is stored head by head: keys in transposed
         * blocks, values [head][T][dh] (encoder.c). */
        size_t off =
            ((size_t)g->slot * hp->n_text_layer + j->layer) * T * S + (size_t)head * T * dh;
        size_t qoff = (size_t)g->first * j->n_tok * S + (size_t)head * dh;
        op_cross_attention_f16(j->b->a + qoff, S, j->b->q + qoff, S, j->st->cross_k + off,
                               j->st->cross_v + off, g->count * j->n_tok, (int)T, dh, scale,
                               scores);
    } else {
        const DecSeq *sq = &j->seqs[i / H];
        size_t qoff = (size_t)(i / H) * j->n_tok * S + (size_t)head * dh;
        const uint16_t *k =
            cache_row(j->st, j->st->self_k, sq->self, j->layer, 0) + (size_t)head * dh;
        const uint16_t *v =
            cache_row(j->st, j->st->self_v, sq->self, j->layer, 0) + (size_t)head * dh;
        op_attention_f16(j->b->a + qoff, S, j->b->q + qoff, S, k, v, S, j->n_tok,
                         sq->n_past + j->n_tok, dh, scale, sq->n_past, scores, kvbuf);
    }
}

static void decoder_block(WhisperState *st, DecBufs *b, int l, int n_seq, const DecSeq *seqs,
                          const CrossGroup *groups, int n_groups, int n_tok) {
    const WhisperHparams *hp = &st->model->hp;
    const Block *L = &st->model->w.dec[l];
    int S = hp->n_text_state, M = n_seq * n_tok;
    DecAttnJob aj = {st, b, seqs, groups, l, n_seq, n_tok, 0};

    /* Causal self-attention; the new keys and values join each cache first. */
    op_layer_norm(st, b->h, b->x, M, S, &L->attn_ln_w, &L->attn_ln_b);
    op_matmul(st, b->q, b->h, M, S, &L->attn.q_w, &L->attn.q_b);
    op_matmul(st, b->k, b->h, M, S, &L->attn.k_w, NULL);
    op_matmul(st, b->v, b->h, M, S, &L->attn.v_w, &L->attn.v_b);
    for (int s = 0; s < n_seq; s++) {
        size_t rows = (size_t)s * n_tok * S, n = (size_t)n_tok * S;
        di_f32_to_f16_row(b->k + rows, cache_row(st, st->self_k, seqs[s].self, l, seqs[s].n_past),
                          n);
        di_f32_to_f16_row(b->v + rows, cache_row(st, st->self_v, seqs[s].self, l, seqs[s].n_past),
                          n);
    }
    di_pool_run(st->pool, n_seq * hp->n_text_head, dec_attn_task, &aj);
    op_matmul_ex(st, b->h, b->a, M, S, &L->attn.o_w, &L->attn.o_b, 0, b->x);

    /* Cross-attention over this window's audio. */
    op_layer_norm(st, b->h, b->x, M, S, &L->cross_ln_w, &L->cross_ln_b);
    op_matmul(st, b->q, b->h, M, S, &L->cross.q_w, &L->cross.q_b);
    aj.cross = 1;
    di_pool_run(st->pool, n_groups * hp->n_text_head, dec_attn_task, &aj);
    op_matmul_ex(st, b->h, b->a, M, S, &L->cross.o_w, &L->cross.o_b, 0, b->x);

    /* MLP. */
    op_layer_norm(st, b->h, b->x, M, S, &L->mlp_ln_w, &L->mlp_ln_b);
    op_matmul_ex(st, b->f, b->h, M, S, &L->fc1_w, &L->fc1_b, 1, NULL);
    op_matmul_ex(st, b->h, b->f, M, 4 * S, &L->fc2_w, &L->fc2_b, 0, b->x);
}

int decoder_forward_seqs(WhisperState *st, int n_seq, const DecSeq *seqs, const int *tokens,
                         int n_tok, float *logits, char *msg, size_t cap) {
    const WhisperModel *m = st->model;
    const WhisperHparams *hp = &m->hp;
    int S = hp->n_text_state, rc, max_self = 0;
    if (n_seq < 1 || n_seq > 64 || n_tok < 1)
        return di_fail(msg, cap, DI_EINVAL, "cannot decode %d sequences of %d tokens", n_seq,
                       n_tok);
    for (int s = 0; s < n_seq; s++) {
        const DecSeq *q = &seqs[s];
        if (q->n_past < 0 || q->n_past + n_tok > hp->n_text_ctx)
            return di_fail(msg, cap, DI_ERANGE, "decoder positions %d..%d exceed the context of %d",
                           q->n_past, q->n_past + n_tok, hp->n_text_ctx);
        if (q->self < 0 || q->self >= 64 || q->cross < 0 || q->cross >= st->n_cross_cap)
            return di_fail(msg, cap, DI_EINVAL, "sequence %d names cache %d and window %d", s,
                           q->self, q->cross);
        for (int r = 0; r < s; r++)
            if (seqs[r].self == q->self)
                return di_fail(msg, cap, DI_EINVAL, "two sequences share cache %d", q->self);
        if (q->self > max_self) max_self = q->self;
    }
    int need = max_self + 1 > n_seq ? max_self + 1 : n_seq;
    if ((rc = decoder_reserve(st, need, msg, cap))) return rc;
    if (!logits) logits = st->logits; /* only now: reserving may have moved it */
    if (n_seq * n_tok > rows_cap(st))
        return di_fail(msg, cap, DI_EINVAL, "%d sequences of %d tokens is too large a batch", n_seq,
                       n_tok);
    for (int i = 0; i < n_seq * n_tok; i++)
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
            return di_fail(msg, cap, DI_EINVAL, "token id %d is outside the vocabulary", tokens[i]);
    DecBufs b = dec_bufs(st);
    CrossGroup groups[64];
    int n_groups = 0;
    for (int s = 0; s < n_seq; s++) {
        if (n_groups && groups[n_groups - 1].slot == seqs[s].cross)
            groups[n_groups - 1].count++;
        else
            groups[n_groups++] = (CrossGroup){s, 1, seqs[s].cross};
    }

    /* Token embedding plus the learned position. */
    const Tensor *emb = &m->w.tok_emb;
    const float *pos = m->w.dec_pos.data;
    for (int s = 0; s < n_seq; s++) {
        for (int i = 0; i < n_tok; i++) {
            float *x = b.x + ((size_t)s * n_tok + i) * S;
            size_t row = (size_t)tokens[s * n_tok + i] * quant_row_bytes(emb->type, S);
            quant_dequant_row(emb->type, (const uint8_t *)emb->data + row, x, S);
            const float *p = pos + (size_t)(seqs[s].n_past + i) * S;
            for (int c = 0; c < S; c++)
                x[c] += p[c];
        }
    }

    for (int l = 0; l < hp->n_text_layer; l++)
        decoder_block(st, &b, l, n_seq, seqs, groups, n_groups, n_tok);

    /* Logits of each sequence's last token only. */
    for (int s = 0; s < n_seq; s++)
        memcpy(b.q + (size_t)s * S, b.x + ((size_t)s * n_tok + n_tok - 1) * S,
               (size_t)S * sizeof(float));
    op_layer_norm(st, b.h, b.q, n_seq, S, &m->w.dec_ln_w, &m->w.dec_ln_b);
    op_matmul(st, logits, b.h, n_seq, S, emb, NULL);
    return 0;
}

int decoder_forward(WhisperState *st, int n_seq, const int *tokens, int n_tok, int n_past,
                    float *logits, char *msg, size_t cap) {
    if (n_seq < 1 || n_seq > 64)
        return di_fail(msg, cap, DI_EINVAL, "cannot decode %d sequences at once (1..64)", n_seq);
    DecSeq seqs[64];
    for (int s = 0; s < n_seq; s++)
        seqs[s] = (DecSeq){s, st->cross_slot, n_past};
    return decoder_forward_seqs(st, n_seq, seqs, tokens, n_tok, logits, msg, cap);
}

void decoder_reorder(WhisperState *st, int n_seq, const int *src, int n_past) {
    const WhisperHparams *hp = &st->model->hp;
    size_t S = (size_t)hp->n_text_state, rows = (size_t)n_past * S;
    if (n_past <= 0) return;
    int identity = 1;
    for (int s = 0; s < n_seq; s++)
        identity &= src[s] == s;
    if (identity) return;
    /* Through a copy, since a beam's source may itself be overwritten. */
    uint16_t *tmp = st->reorder_tmp;
    uint16_t *caches[2] = {st->self_k, st->self_v};
    for (int c = 0; c < 2; c++) {
        for (int l = 0; l < hp->n_text_layer; l++) {
            for (int s = 0; s < n_seq; s++)
                memcpy(tmp + s * rows, cache_row(st, caches[c], src[s], l, 0),
                       rows * sizeof(uint16_t));
            for (int s = 0; s < n_seq; s++)
                memcpy(cache_row(st, caches[c], s, l, 0), tmp + s * rows, rows * sizeof(uint16_t));
        }
    }
}

int whisper_decode(WhisperState *st, const int *tokens, int n, int n_past, const float **logits,
                   char *msg, size_t cap) {
    if (!st || !tokens || !logits) return di_fail(msg, cap, DI_EINVAL, "missing argument");
    int rc = decoder_forward(st, 1, tokens, n, n_past, NULL, msg, cap);
    *logits = rc ? NULL : st->logits;
    return rc;
}
