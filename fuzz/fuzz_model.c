/* libFuzzer target: model files are untrusted input. Any return code is
 * fine; a crash, a leak or an out-of-bounds access is not. */
#include "whisper/whisper.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char msg[256];
    WhisperModel *m = NULL;
    if (whisper_model_load_buffer(data, size, &m, msg, sizeof msg) == 0) whisper_model_free(m);
    return 0;
}
