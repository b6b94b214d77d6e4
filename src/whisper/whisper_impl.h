/*
 * Private to src/whisper: the structures behind whisper.h's opaque types and
 * the functions its files call in one another. Nothing outside src/whisper
 * includes this (tests aside).
 *
 * Shapes in comments are C order, slowest index first: [rows][cols].
 */
#ifndef DIARIST_WHISPER_IMPL_H
#define DIARIST_WHISPER_IMPL_H

#include "whisper/whisper.h"

/* ggml's type ids for the tensor types the loader accepts. */
enum {
    TENSOR_F32 = 0,
    TENSOR_F16 = 1,
    TENSOR_Q4_0 = 2,
    TENSOR_Q5_0 = 6,
    TENSOR_Q5_1 = 7,
    TENSOR_Q8_0 = 8,
};

/* A view of one tensor inside the loaded file. ne[0] is the fastest index
 * (ggml order): a PyTorch [out][in] matrix has ne = {in, out}. */
typedef struct {
    int type; /* TENSOR_*; block-quantized only for 2-D matrices */
    int n_dims;
    int ne[3];
    const void *data;
} Tensor;

typedef struct {
    Tensor q_w, q_b; /* [S][S], [S] */
    Tensor k_w;      /* [S][S], Whisper's key projection has no bias */
    Tensor v_w, v_b; /* [S][S], [S] */
    Tensor o_w, o_b; /* [S][S], [S] */
} AttnWeights;

/* A transformer block; encoder blocks leave cross-attention empty. */
typedef struct {
    Tensor attn_ln_w, attn_ln_b; /* [S] */
    AttnWeights attn;
    Tensor cross_ln_w, cross_ln_b; /* [S] */
    AttnWeights cross;
    Tensor mlp_ln_w, mlp_ln_b; /* [S] */
    Tensor fc1_w, fc1_b;       /* [4S][S], [4S] */
    Tensor fc2_w, fc2_b;       /* [S][4S], [S] */
} Block;

typedef struct {
    Tensor conv1_w, conv1_b; /* [S][n_mels][3], [S] */
    Tensor conv2_w, conv2_b; /* [S][S][3], [S] */
    Tensor enc_pos;          /* [n_audio_ctx][S] f32 */
    Block *enc;              /* n_audio_layer */
    Tensor enc_ln_w, enc_ln_b;
    Tensor tok_emb; /* [n_vocab][S] */
    Tensor dec_pos; /* [n_text_ctx][S] f32 */
    Block *dec;     /* n_text_layer */
    Tensor dec_ln_w, dec_ln_b;
} Weights;

/* The tokenizer: every id's bytes, a lookup from bytes to id for BPE, the
 * special ids and OpenAI's set of non-speech tokens to suppress. */
typedef struct {
    int n_vocab;
    char **bytes; /* [n_vocab], owned */
    int *lens;    /* [n_vocab] */
    int *hash;    /* open-addressing table of ids, n_hash slots, -1 = empty */
    int n_hash;
    WhisperSpecials sp;
    int *non_speech; /* sorted ids */
    int n_non_speech;
    int blank; /* encode(" ")[0], suppressed at the start of a window */
} Tokenizer;

struct WhisperModel {
    WhisperHparams hp;
    char type_name[64];
    int multilingual;
    uint8_t *file; /* the whole model file; tensors point into it */
    size_t file_size;
    float *mel_filters; /* [n_mels][201] */
    Tokenizer tok;
    Weights w;
};

/* Tokenizer (tokenizer.c). entries[i]/lens[i], i < count, are the file's
 * vocabulary block; ids from count to n_vocab are synthesised. */
int tokenizer_init(Tokenizer *t, int n_vocab, int count, const uint8_t *const *entries,
                   const uint32_t *lens, char *msg, size_t cap);
void tokenizer_free(Tokenizer *t);
int tokenizer_encode(const Tokenizer *t, const char *text, int **ids, int *n);
int tokenizer_lookup(const Tokenizer *t, const char *bytes, int len); /* id or -1 */

/* Log-mel (mel.c) given the filter bank [n_mels][201]. */
int log_mel(const float *filters, int n_mels, const float *pcm, size_t n_samples,
            size_t pad_samples, int n_threads, float **mel, int *n_frames);

/* The FFT behind log_mel (mel.c): complex, interleaved re/im, any n whose
 * prime factors are at most 31. */
typedef struct FftPlan FftPlan;
int fft_plan_create(int n, FftPlan **out);
void fft_plan_free(FftPlan *p);
void fft_run(const FftPlan *p, const double *in, double *out);

/* Per-run buffers and caches (state.c, encoder.c, decoder.c). */
struct WhisperState {
    const WhisperModel *model;
    DiPool *pool;
    int n_threads;

    /* Encoder. */
    float *enc_out; /* [n_audio_ctx][S], inside scratch; NULL before an encode */
    /* Cross-attention keys and values of up to n_cross_cap windows (the
     * windows of several jobs decoded as one batch), f16, each slot
     * [n_text_layer][n_text_head][n_audio_ctx][S / n_text_head]: head by
     * head, so a head's keys are one block. An encode writes slot cross_slot,
     * which is also the one plain decoder_forward reads. */
    uint16_t *cross_k;
    uint16_t *cross_v;
    int n_cross_cap;
    int cross_slot;
    float *scratch; /* encoder work space */
    size_t scratch_size;
    /* Weights widened to f32 for sgemm: one whole matrix (the encoder's
     * largest) or, for few-row products, a block of rows per thread. */
    float *wbuf;
    size_t wbuf_total; /* floats */
    size_t wbuf_size;  /* floats per thread */
    size_t wbuf_whole; /* floats for one whole widened matrix, at any thread count */

    /* Decoder: one self-attention cache per sequence. */
    int n_seq_cap;
    uint16_t *self_k; /* [n_seq_cap][n_text_layer][n_text_ctx][S], f16 */
    uint16_t *self_v;
    float *dec_buf; /* decoder activations */
    size_t dec_buf_size;
    float *logits;         /* [n_seq_cap][n_vocab] */
    uint16_t *reorder_tmp; /* [n_seq_cap][n_text_ctx][S], for decoder_reorder */
};

/* One sequence of a batch: its self-attention cache (0..n_seq_cap), the
 * encoded window it attends to (0..n_cross_cap) and its position. */
typedef struct {
    int self, cross, n_past;
} DecSeq;

/* Feeds n_tok tokens to each of n_seq sequences (tokens[s * n_tok + i]),
 * sequence s being seqs[s]: the general form, where the sequences of one
 * batch may belong to different windows and stand at different positions.
 * Self slots must be distinct. Logits as decoder_forward's. */
int decoder_forward_seqs(WhisperState *st, int n_seq, const DecSeq *seqs, const int *tokens,
                         int n_tok, float *logits, char *msg, size_t cap);
/* Grows the cross-attention slots to n_slots, keeping what they hold. */
int cross_reserve(WhisperState *st, int n_slots, char *msg, size_t cap);

/* Feeds n_tok tokens to each of n_seq sequences (tokens[s * n_tok + i]) at
 * positions n_past.., in self slots 0..n_seq-1, all against the window in
 * cross_slot.
 * Writes each sequence's last-token logits to logits[s * n_vocab]; with
 * logits NULL, to the state's own st->logits (valid until the next call;
 * never pass st->logits itself, as growing the caches may move it). */
int decoder_forward(WhisperState *st, int n_seq, const int *tokens, int n_tok, int n_past,
                    float *logits, char *msg, size_t cap);
/* Beam reordering: sequence s takes the first n_past cache rows of old
 * sequence src[s]. */
void decoder_reorder(WhisperState *st, int n_seq, const int *src, int n_past);
/* Grows the caches to hold n_seq sequences. */
int decoder_reserve(WhisperState *st, int n_seq, char *msg, size_t cap);

#endif

/* ---- Operations (ops.c), parallel over the state's pool ----------------- */

/* y[M][N] = x[M][K] . W^T (+ b), W a [N][K] f16 or f32 tensor, b [N] or NULL. */
void op_matmul(WhisperState *st, float *y, const float *x, int M, int K, const Tensor *w,
               const Tensor *b);
/* The same, then on each block of y as it is computed: the bias, GELU
 * (tanh approximation, as whisper.cpp) when gelu, and y added into add_to
 * (rows N apart) when add_to is not NULL. */
void op_matmul_ex(WhisperState *st, float *y, const float *x, int M, int K, const Tensor *w,
                  const Tensor *b, int gelu, float *add_to);
/* y = LayerNorm(x) * g + b over rows of N; y may equal x. */
void op_layer_norm(WhisperState *st, float *y, const float *x, int M, int N, const Tensor *g,
                   const Tensor *b);
/* In place over one row. */
void op_softmax(float *x, int n);
/* sum of e[i] = exp((x[i] - shift) * scale), each e[i] computed in float to
 * within a few ulp and taken as 0 below exp(-87.3) (so -inf entries give
 * exactly 0), summed in double. out[0..n) receives e when not NULL. The
 * sampler's and the log-probabilities' one pass over the vocabulary. */
double op_sum_exp(const float *x, int n, float shift, float scale, float *out);
/* The largest entry, NaNs skipped; -inf when n is 0. */
float op_max(const float *x, int n);
/* Multi-head attention for one head and a block of queries:
 * out[i][0..dh) = softmax(q[i] . k[j]^T * scale, j < n_kv (and j <= causal_base + i when
 * causal_base >= 0)) . v; rows of q/k/v are ld floats apart, of out ld_out.
 * scores holds n_q*n_kv. */
void op_attention(float *out, int ld_out, const float *q, const float *k, const float *v, int n_q,
                  int n_kv, int dh, int ld, float scale, int causal_base, float *scores);
/* Attention of n_q queries (rows ld_q apart) against n_kv f16 keys and
 * values (rows ld_kv halves apart), the mask and scale as op_attention's;
 * out rows ld_out apart. kvbuf holds 64 * dh floats. */
void op_attention_f16(float *out, int ld_out, const float *q, int ld_q, const uint16_t *k,
                      const uint16_t *v, int ld_kv, int n_q, int n_kv, int dh, float scale,
                      int causal_base, float *scores, float *kvbuf);
/* Attention of n_q queries (rows ld_q apart) of one head against all n_kv
 * of its keys and values, no mask; out rows ld_out apart. Keys come in
 * blocks of ATTN_KEY_BLOCK (the last may be shorter), each transposed:
 * dimension c of key j0 + j, in the block from j0 of length nk, is at
 * kb[j0 * dh + c * nk + j]. Values are rows, v[j * dh + c]. Each output row
 * is what that query gives alone. scores holds n_q * n_kv.
 * op_encoder_attention takes the encoder's f32 heads; op_encoder_attention_fast
 * tells whether this CPU has its vector kernel for heads of dh (without it,
 * op_attention's sgemm is faster). op_cross_attention_f16 takes a window's
 * f16 cross-attention cache. */
#define ATTN_KEY_BLOCK 64
int op_encoder_attention_fast(int dh);
void op_encoder_attention(float *out, int ld_out, const float *q, int ld_q, const float *kb,
                          const float *v, int n_q, int n_kv, int dh, float scale, float *scores);
void op_cross_attention_f16(float *out, int ld_out, const float *q, int ld_q, const uint16_t *kb,
                            const uint16_t *v, int n_q, int n_kv, int dh, float scale,
                            float *scores);
/* Floats a weight matrix of N rows of K takes packed for the many-row
 * kernel (whole panels of output columns). */
size_t op_packed_floats(int N, int K);
/* Fills wbuf-sized scratch per thread: floats available to each thread. */
float *op_thread_scratch(WhisperState *st, int thread, size_t *n);

/* ---- Weight formats (quant.c) ------------------------------------------ */

/* Block-quantized types pack 32 weights per block, so a row's length n must
 * be a multiple of 32 for them (the loader checks). The functions accept
 * TENSOR_F32 and TENSOR_F16 as well, so callers need no special case. */
int quant_is_block_type(int type); /* q4_0, q5_0, q5_1, q8_0 */
size_t quant_row_bytes(int type, int n);
/* Widens n weights (a row or several whole rows) to f32. */
void quant_dequant_row(int type, const void *src, float *dst, int n);
/* y[m][n] = x[m] . W[n] for rows n0..n1 of a block-quantized W [N][K] and
 * M <= 8 rows of x, straight from the blocks; y rows ldy apart. 0, or -1
 * when this CPU has no such kernel (the caller widens rows instead). */
int quant_gemv_rows(int type, const void *w, const float *x, int M, int K, float *y, int ldy,
                    int n0, int n1);
/* ggml's reference quantization of n floats (for synthetic models, tests). */
void quant_quantize_row(int type, const float *src, void *dst, int n);

/* Floats of encoder scratch a state needs (encoder.c). */
size_t encoder_scratch_floats(const WhisperHparams *hp, int n_threads);
/* FLOPs of one whisper_encode (for benchmarks): the encoder and the
 * decoder's cross-attention keys and values it projects. */
double encoder_flops(const WhisperHparams *hp);
