/*
 * core: what every part of diarist shares and nothing more.
 *
 * - The error list. Functions return 0 or one of the negative DI_E* codes and
 *   write details into a message buffer the caller owns (di_fail()).
 * - JSON-lines logging on stderr.
 * - Half-precision conversion (model files store weights as IEEE f16).
 * - A small fixed pool of threads for parallel loops.
 *
 * Nothing here allocates on behalf of a caller except di_pool_create(),
 * whose result is freed with di_pool_destroy().
 */
#ifndef DIARIST_CORE_H
#define DIARIST_CORE_H

#include <stddef.h>
#include <stdint.h>

/* X-macro so the codes and their text never drift apart (libuv's UV_ERRNO_MAP). */
#define DI_ERRNO_MAP(X)                                                                            \
    X(EINVAL, -1, "invalid argument")                                                              \
    X(ENOMEM, -2, "out of memory")                                                                 \
    X(EIO, -3, "input/output error")                                                               \
    X(EFORMAT, -4, "malformed input")                                                              \
    X(EUNSUPPORTED, -5, "unsupported feature")                                                     \
    X(ENOAUDIO, -6, "no audio")                                                                    \
    X(ENOTFOUND, -7, "not found")                                                                  \
    X(ERANGE, -8, "value out of range")                                                            \
    X(EINTERNAL, -9, "internal error")

enum {
    DI_OK = 0,
#define DI_ERRNO_ENUM(name, code, text) DI_##name = code,
    DI_ERRNO_MAP(DI_ERRNO_ENUM)
#undef DI_ERRNO_ENUM
};

/* Text for a DI_E* code; never NULL. */
const char *di_strerror(int err);

/* Writes a printf-style message into msg (if msg and cap) and returns code,
 * so a failing function can say `return di_fail(msg, cap, DI_EIO, "...", ...);`. */
int di_fail(char *msg, size_t cap, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* One JSON object per line on stderr: {"ts":...,"level":...,"msg":...}.
 * level is "debug", "info", "warn" or "error". DIARIST_LOG_LEVEL filters. */
void di_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* What this CPU can run, read once through cpuid (x86-64; all 0 elsewhere).
 * Every instruction-set choice in diarist asks here, so gcc and clang
 * builds decide alike. DIARIST_CPU=avx2 or =portable caps it. */
enum {
    DI_CPU_AVX2_FMA_F16C = 1, /* with the OS saving AVX state */
    DI_CPU_AVX512 = 2,        /* F, BW, DQ and VL, with the OS saving their state */
};
int di_cpu_features(void);

/* IEEE 754 half <-> single precision, exact (round to nearest even). */
float di_f16_to_f32(uint16_t h);
uint16_t di_f32_to_f16(float f);
/* Converts n halves; uses F16C instructions when the CPU has them. */
void di_f16_to_f32_row(const uint16_t *src, float *dst, size_t n);
void di_f32_to_f16_row(const float *src, uint16_t *dst, size_t n);

/* A seeded xoshiro256** generator: the same numbers on every machine, so
 * sampling and synthetic models are repeatable. Any seed, 0 included, is
 * spread over the state by splitmix64. */
typedef struct {
    uint64_t s[4];
} DiRng;
void di_rng_seed(DiRng *rng, uint64_t seed);
uint64_t di_rng_next(DiRng *rng);
/* Uniform in [0, 1) with 53 random bits. */
double di_rng_uniform(DiRng *rng);

/* Monotonic clock in seconds. */
double di_now(void);
/* Peak resident set size of this process in bytes (0 if unknown). */
size_t di_peak_rss(void);

/* A fixed pool of worker threads that runs one parallel loop at a time.
 * di_pool_run(pool, n, fn, ctx) calls fn(ctx, i, thread) for i in [0, n)
 * spread over the threads (the caller's thread is thread 0) and returns when
 * all are done. A pool of one thread runs everything on the caller. */
typedef struct DiPool DiPool;
typedef void (*DiPoolFn)(void *ctx, int i, int thread);
int di_pool_create(int n_threads, DiPool **out);
void di_pool_destroy(DiPool *pool);
int di_pool_threads(const DiPool *pool);
void di_pool_run(DiPool *pool, int n, DiPoolFn fn, void *ctx);

#endif
