/*
 * Choosing OpenBLAS's kernels for this CPU.
 *
 * Debian 12's OpenBLAS 0.3.21 picks its kernels by CPU model number and
 * does not know recent ones: on AMD Zen 4 and Intel Sapphire/Emerald Rapids
 * it falls back to Haswell or even Prescott kernels and runs sgemm at a
 * half to a fifth of what the AVX-512 kernels reach. It reads its choice
 * from OPENBLAS_CORETYPE once, when the library loads, so the only reliable
 * fix from inside the program is to decide from the CPU's own feature flags
 * and, if OpenBLAS chose worse, start the program again with the variable
 * set (main does that, once, before anything else runs).
 */
#include "whisper/whisper.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

char *openblas_get_corename(void);

const char *whisper_blas_core(void) {
    const char *name = openblas_get_corename();
    return name ? name : "unknown";
}

/* Kernel families that use less than AVX2+FMA. */
static int is_pre_avx2(const char *core) {
    static const char *const weak[] = {"prescott",  "core2",      "penryn",       "dunnington",
                                       "nehalem",   "atom",       "sandybridge",  "barcelona",
                                       "bulldozer", "piledriver", "steamroller",  "excavator",
                                       "bobcat",    "katmai",     "coppermine",   "northwood",
                                       "banias",    "opteron",    "opteron_sse3", "unknown"};
    for (size_t i = 0; i < sizeof weak / sizeof weak[0]; i++)
        if (!strcasecmp(core, weak[i])) return 1;
    return 0;
}

static int is_avx512(const char *core) {
    return !strcasecmp(core, "skylakex") || !strcasecmp(core, "cooperlake") ||
           !strcasecmp(core, "sapphirerapids");
}

const char *whisper_blas_better_core(void) {
#if defined(__x86_64__)
    const char *core = whisper_blas_core();
    int f = di_cpu_features();
    if (f & DI_CPU_AVX512) return is_avx512(core) ? NULL : "SkylakeX";
    if (f & DI_CPU_AVX2_FMA_F16C) return is_pre_avx2(core) ? "Haswell" : NULL;
#endif
    return NULL;
}

void whisper_blas_single_thread(void) {
    /* The engine splits work over its own threads; OpenBLAS's own would
     * fight them (and every concurrent state) for the same cores. */
    openblas_set_num_threads(1);
}
