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
    /* The largest matrix a many-row product widens whole: an MLP's. */
    size_t whole = 4 * S * S;
    size_t St = (size_t)hp->n_text_state;
    if (4 * St * St > whole) whole = 4 * St * St;
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
