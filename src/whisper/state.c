/*
 * Per-run states: the buffers one transcription needs, sized from the
 * model once so the forward passes never allocate.
 */
#include "whisper/whisper_impl.h"

#include <stdlib.h>
#include <string.h>

static float *falloc(size_t n) {
    return aligned_alloc(64, ((n * sizeof(float)) + 63) & ~(size_t)63);
}

int whisper_state_create(const WhisperModel *model, int n_threads, WhisperState **out, char *msg,
                         size_t cap) {
    if (!out) return di_fail(msg, cap, DI_EINVAL, "no output pointer");
    *out = NULL;
    if (!model) return di_fail(msg, cap, DI_EINVAL, "no model");
    if (n_threads < 1 || n_threads > 256)
        return di_fail(msg, cap, DI_EINVAL, "thread count %d is outside [1, 256]", n_threads);
    const WhisperHparams *hp = &model->hp;
    whisper_blas_single_thread();
    WhisperState *st = calloc(1, sizeof *st);
    if (!st) return di_fail(msg, cap, DI_ENOMEM, "out of memory");
    st->model = model;
    st->n_threads = n_threads;
    size_t T = (size_t)hp->n_audio_ctx, S = (size_t)hp->n_audio_state;
    size_t K = 4 * S > 3 * (size_t)hp->n_mels ? 4 * S : 3 * (size_t)hp->n_mels;
    st->wbuf_size = 256 * K;
    /* The largest matrix a many-row product widens whole: an MLP's, in
     * either direction, padded to whole panels. Never less than one
     * thread's block, and never dependent on the thread count: which path a
     * product takes must not change with it. */
    size_t St = (size_t)hp->n_text_state, whole = st->wbuf_size;
    size_t sides[2] = {S, St};
    for (int i = 0; i < 2; i++) {
        int s = (int)sides[i];
        size_t up = op_packed_floats(4 * s, s), down = op_packed_floats(s, 4 * s);
        if (up > whole) whole = up;
        if (down > whole) whole = down;
    }
    st->wbuf_whole = whole;
    st->wbuf_total = st->wbuf_size * (size_t)n_threads;
    if (whole > st->wbuf_total) st->wbuf_total = whole;
    st->scratch_size = encoder_scratch_floats(hp, n_threads);
    size_t cross = (size_t)hp->n_text_layer * T * S;
    st->cross_k = aligned_alloc(64, (cross * sizeof(uint16_t) + 63) & ~(size_t)63);
    st->cross_v = aligned_alloc(64, (cross * sizeof(uint16_t) + 63) & ~(size_t)63);
    st->scratch = falloc(st->scratch_size);
    st->wbuf = falloc(st->wbuf_total);
    int rc = (st->cross_k && st->cross_v && st->scratch && st->wbuf)
                 ? 0
                 : di_fail(msg, cap, DI_ENOMEM, "out of memory for the encoder buffers");
    if (!rc && di_pool_create(n_threads, &st->pool))
        rc = di_fail(msg, cap, DI_ENOMEM, "cannot start %d threads", n_threads);
    st->n_cross_cap = 1;
    if (!rc) rc = decoder_reserve(st, 1, msg, cap);
    if (rc) {
        whisper_state_free(st);
        return rc;
    }
    /* Zeroed so a decode before any encode reads defined (if meaningless) values. */
    memset(st->cross_k, 0, cross * sizeof(uint16_t));
    memset(st->cross_v, 0, cross * sizeof(uint16_t));
    *out = st;
    return 0;
}

int cross_reserve(WhisperState *st, int n_slots, char *msg, size_t cap) {
    if (n_slots < 1 || n_slots > 64)
        return di_fail(msg, cap, DI_EINVAL, "cannot hold %d encoded windows at once (1..64)",
                       n_slots);
    if (n_slots <= st->n_cross_cap) return 0;
    const WhisperHparams *hp = &st->model->hp;
    size_t per = (size_t)hp->n_text_layer * hp->n_audio_ctx * hp->n_audio_state;
    size_t bytes = ((size_t)n_slots * per * sizeof(uint16_t) + 63) & ~(size_t)63;
    uint16_t *k = aligned_alloc(64, bytes), *v = aligned_alloc(64, bytes);
    if (!k || !v) {
        free(k);
        free(v);
        return di_fail(msg, cap, DI_ENOMEM, "out of memory for %d windows' cross-attention",
                       n_slots);
    }
    /* The windows already encoded stay; new slots are filled by their encode. */
    size_t old = (size_t)st->n_cross_cap * per * sizeof(uint16_t);
    memcpy(k, st->cross_k, old);
    memcpy(v, st->cross_v, old);
    free(st->cross_k);
    free(st->cross_v);
    st->cross_k = k;
    st->cross_v = v;
    st->n_cross_cap = n_slots;
    return 0;
}

void whisper_state_free(WhisperState *st) {
    if (!st) return;
    di_pool_destroy(st->pool);
    free(st->cross_k);
    free(st->cross_v);
    free(st->scratch);
    free(st->wbuf);
    free(st->self_k);
    free(st->self_v);
    free(st->dec_buf);
    free(st->logits);
    free(st->reorder_tmp);
    free(st);
}

const float *whisper_encoder_output(const WhisperState *st) {
    return st ? st->enc_out : NULL;
}
