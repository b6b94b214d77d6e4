/* diarist gen-model: write a synthetic Whisper model with the real
 * architecture and seeded random weights (no real weights can be fetched
 * where diarist is tested). */
#include "cli/cli.h"
#include "whisper/whisper.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: diarist gen-model [options] OUTPUT\n\n"
               "  -p, --preset NAME     micro, tiny, base, small, medium, large, large-v3-turbo\n"
               "                        (default tiny)\n"
               "  -s, --seed N          weight seed (default 1001)\n"
               "      --vocab-from PATH copy mel filters and vocabulary from a ggml model\n"
               "      --f32             store matrices as f32 instead of f16\n"
               "      --quantize TYPE   store the 2-D matrices as q8_0, q5_1, q5_0 or q4_0\n"
               "                        (conv weights stay f16; width a multiple of 32)\n"
               "      --layers E,D      override encoder/decoder depth\n"
               "      --state S --heads H --mels N --vocab N   override dimensions\n");
}

/* The file-wide ftype (llama.cpp's enum, as whisper.cpp writes it) for a
 * quantization name, or -1. */
static int quant_ftype(const char *name) {
    static const struct {
        const char *name;
        int ftype;
    } T[] = {{"q4_0", 2}, {"q8_0", 7}, {"q5_0", 8}, {"q5_1", 9}};
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
        if (!strcmp(name, T[i].name)) return T[i].ftype;
    return -1;
}

int cmd_gen_model(int argc, char **argv) {
    static const struct option opts[] = {{"preset", required_argument, 0, 'p'},
                                         {"seed", required_argument, 0, 's'},
                                         {"vocab-from", required_argument, 0, 'v'},
                                         {"f32", no_argument, 0, 'F'},
                                         {"quantize", required_argument, 0, 'Q'},
                                         {"layers", required_argument, 0, 'L'},
                                         {"state", required_argument, 0, 'S'},
                                         {"heads", required_argument, 0, 'H'},
                                         {"mels", required_argument, 0, 'M'},
                                         {"vocab", required_argument, 0, 'V'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *preset = "tiny";
    WhisperSynthSpec spec = {.seed = 1001};
    int c, seed, f32 = 0, quant = 0, enc = 0, dec = 0, state = 0, heads = 0, mels = 0, vocab = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "p:s:h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'p':
            preset = optarg;
            break;
        case 's':
            bad = cli_int(optarg, 0, 2147483647, &seed);
            spec.seed = (uint64_t)seed;
            break;
        case 'v':
            spec.vocab_from = optarg;
            break;
        case 'F':
            f32 = 1;
            break;
        case 'Q':
            bad = (quant = quant_ftype(optarg)) < 0;
            break;
        case 'L':
            bad = sscanf(optarg, "%d,%d", &enc, &dec) != 2;
            break;
        case 'S':
            bad = cli_int(optarg, 8, 8192, &state);
            break;
        case 'H':
            bad = cli_int(optarg, 1, 256, &heads);
            break;
        case 'M':
            bad = cli_int(optarg, 1, 512, &mels);
            break;
        case 'V':
            bad = cli_int(optarg, 51864, 51866, &vocab);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "diarist gen-model: invalid value '%s'\n", optarg);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    if (whisper_synth_preset(preset, &spec.hp)) {
        fprintf(stderr, "diarist gen-model: unknown preset '%s'\n", preset);
        return 2;
    }
    if (f32 && quant) {
        fprintf(stderr, "diarist gen-model: --f32 and --quantize exclude each other\n");
        return 2;
    }
    if (f32) spec.hp.ftype = 0;
    if (quant) spec.hp.ftype = quant;
    if (enc) spec.hp.n_audio_layer = enc;
    if (dec) spec.hp.n_text_layer = dec;
    if (state) spec.hp.n_audio_state = spec.hp.n_text_state = state;
    if (heads) spec.hp.n_audio_head = spec.hp.n_text_head = heads;
    if (mels) spec.hp.n_mels = mels;
    if (vocab) spec.hp.n_vocab = vocab;
    char msg[1024];
    if (whisper_synth_write(argv[optind], &spec, msg, sizeof msg)) {
        fprintf(stderr, "diarist gen-model: %s\n", msg);
        return 1;
    }
    di_log("info", "wrote synthetic %s model to %s", preset, argv[optind]);
    return 0;
}
