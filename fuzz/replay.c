/*
 * Runs the fuzz target without libFuzzer, so every build (gcc, ASan) can
 * exercise it in CTest: `replay FILE...` feeds each file; `replay --mutate
 * SEED_FILE N` feeds N deterministic mutations of a valid model (bit flips,
 * overwritten integers, truncations), concentrated on the header, the
 * vocabulary and the first tensor headers where the parser makes decisions.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint8_t *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *d = malloc(len > 0 ? (size_t)len : 1);
    if (d && len > 0 && fread(d, 1, (size_t)len, f) != (size_t)len) {
        free(d);
        d = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return d;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "--mutate")) {
        size_t n;
        uint8_t *seed = read_file(argv[2], &n);
        if (!seed) {
            fprintf(stderr, "replay: cannot read %s\n", argv[2]);
            return 1;
        }
        long iters = atol(argv[3]);
        uint8_t *buf = malloc(n);
        size_t hot = n < (1u << 20) ? n : (1u << 20); /* header, filters, vocab, first tensors */
        for (long i = 0; i < iters; i++) {
            memcpy(buf, seed, n);
            size_t len = n;
            int edits = 1 + (int)(next() % 4);
            for (int e = 0; e < edits; e++) {
                size_t at = (next() % 4 == 0) ? (size_t)(next() % 64) : (size_t)(next() % hot);
                switch (next() % 4) {
                case 0:
                    buf[at] ^= (uint8_t)(1u << (next() % 8));
                    break;
                case 1: {
                    static const int32_t vals[] = {0,     -1,    1, 0x7fffffff, (int32_t)0x80000000,
                                                   65536, 51865, 3};
                    int32_t v = vals[next() % 8];
                    if (at + 4 <= len) memcpy(buf + (at & ~(size_t)3), &v, 4);
                    break;
                }
                case 2:
                    len = (size_t)(next() % len);
                    break;
                default:
                    buf[at] = (uint8_t)next();
                    break;
                }
            }
            LLVMFuzzerTestOneInput(buf, len);
        }
        printf("replayed %ld mutations of %s\n", iters, argv[2]);
        free(buf);
        free(seed);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        size_t n;
        uint8_t *d = read_file(argv[i], &n);
        if (!d) {
            fprintf(stderr, "replay: cannot read %s\n", argv[i]);
            return 1;
        }
        LLVMFuzzerTestOneInput(d, n);
        free(d);
    }
    return 0;
}
