/* core: errors, logging, f16 conversion, clock, peak memory. */
#include "core/core.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

const char *di_strerror(int err) {
    switch (err) {
    case DI_OK:
        return "success";
#define DI_ERRNO_CASE(name, code, text)                                                            \
    case code:                                                                                     \
        return text;
        DI_ERRNO_MAP(DI_ERRNO_CASE)
#undef DI_ERRNO_CASE
    }
    return "unknown error";
}

int di_fail(char *msg, size_t cap, int code, const char *fmt, ...) {
    if (msg && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, cap, fmt, ap);
        va_end(ap);
    }
    return code;
}

static int level_rank(const char *level) {
    if (!level) return 1;
    if (!strcmp(level, "debug")) return 0;
    if (!strcmp(level, "info")) return 1;
    if (!strcmp(level, "warn")) return 2;
    return 3;
}

/* Escapes s as a JSON string body into out (always terminated). */
static void json_escape(const char *s, char *out, size_t cap) {
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = 0;
}

void di_log(const char *level, const char *fmt, ...) {
    const char *min = getenv("DIARIST_LOG_LEVEL");
    if (level_rank(level) < level_rank(min ? min : "info")) return;
    char text[2048], esc[4096], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    json_escape(text, esc, sizeof esc);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":\"%s\"}\n", ts,
            now.tv_nsec / 1000000, level, esc);
}

static int read_cpu_features(void) {
    int f = 0;
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return 0;
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    if ((lo & 0x6) != 0x6) return 0; /* the OS does not save YMM state */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int avx2 = (b >> 5) & 1;
    if (avx2 && fma && f16c) f |= DI_CPU_AVX2_FMA_F16C;
    int avx512 = ((b >> 16) & 1) && ((b >> 17) & 1) && ((b >> 30) & 1) && ((b >> 31) & 1);
    if (avx512 && (lo & 0xe6) == 0xe6) f |= DI_CPU_AVX512;
#endif
    return f;
}

/* DIARIST_CPU caps what is used: "avx2" (no AVX-512) or "portable" (plain
 * C), to reproduce another machine's numbers or test every kernel path on
 * one machine; anything else, or unset, uses all the CPU has. */
static int capped_cpu_features(void) {
    int f = read_cpu_features();
    const char *cap = getenv("DIARIST_CPU");
    if (cap && !strcmp(cap, "avx2")) f &= DI_CPU_AVX2_FMA_F16C;
    if (cap && !strcmp(cap, "portable")) f = 0;
    return f;
}

int di_cpu_features(void) {
    static int cached = -1;
    if (cached < 0) cached = capped_cpu_features(); /* idempotent, so a race is harmless */
    return cached;
}

float di_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                man <<= 1;
                e++;
            } while (!(man & 0x400));
            bits = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | man << 13;
    } else {
        bits = sign | (exp + 127 - 15) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t di_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffff;
    if (absx >= 0x7f800000) /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000 ? 0x200 : 0));
    if (absx >= 0x477ff000) /* rounds to >= 65520: overflow */
        return (uint16_t)(sign | 0x7c00);
    if (absx < 0x38800000) { /* below the smallest normal half */
        float a;
        memcpy(&a, &absx, 4);
        /* Adding 0.5 makes the FPU round the subnormal to nearest even. */
        float r = a + 0.5f;
        uint32_t rb;
        memcpy(&rb, &r, 4);
        return (uint16_t)(sign | (rb - 0x3f000000));
    }
    uint32_t mant_odd = (absx >> 13) & 1;
    absx += 0xc8000fff + mant_odd; /* rebias exponent and round to nearest even */
    return (uint16_t)(sign | (absx >> 13));
}

#if defined(__x86_64__)
__attribute__((target("f16c,avx"))) static void f16_row_f16c(const uint16_t *src, float *dst,
                                                             size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; i++)
        dst[i] = di_f16_to_f32(src[i]);
}
#endif

void di_f16_to_f32_row(const uint16_t *src, float *dst, size_t n) {
#if defined(__x86_64__)
    if (di_cpu_features() & DI_CPU_AVX2_FMA_F16C) {
        f16_row_f16c(src, dst, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++)
        dst[i] = di_f16_to_f32(src[i]);
}

#if defined(__x86_64__)
__attribute__((target("f16c,avx"))) static void f32_row_f16c(const float *src, uint16_t *dst,
                                                             size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(dst + i), h);
    }
    for (; i < n; i++)
        dst[i] = di_f32_to_f16(src[i]);
}
#endif

void di_f32_to_f16_row(const float *src, uint16_t *dst, size_t n) {
#if defined(__x86_64__)
    if (di_cpu_features() & DI_CPU_AVX2_FMA_F16C) {
        f32_row_f16c(src, dst, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++)
        dst[i] = di_f32_to_f16(src[i]);
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void di_rng_seed(DiRng *rng, uint64_t seed) {
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

uint64_t di_rng_next(DiRng *rng) {
    uint64_t *s = rng->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double di_rng_uniform(DiRng *rng) {
    return (double)(di_rng_next(rng) >> 11) * 0x1p-53;
}

double di_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

size_t di_peak_rss(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (size_t)ru.ru_maxrss * 1024; /* Linux reports KiB */
}
