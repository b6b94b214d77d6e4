/* Tests for src/audio: decoding through FFmpeg to 16 kHz mono float.
 *
 * Inputs are made at test time with espeak-ng, sox and the ffmpeg tool in
 * tu_tmpdir(): one spoken sentence as WAV (22050 Hz, so every format is
 * really resampled), then the same audio in each container and codec. */
#include "audio/audio.h"
#include "core/core.h"
#include "testutil.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Lossy codecs add start padding and round the end up to whole frames; the
 * demuxers trim most of it (edit lists, opus pre-skip, LAME gapless tags),
 * but not always to the sample. The largest frame here is AAC's 1024
 * samples plus 1024 of priming at the source rate, i.e. at most 2048
 * samples; at 16 kHz from 22.05 kHz that is fewer than 2048 samples, so
 * 2048 output samples (128 ms) is one codec frame with room to spare. */
#define FRAME_TOLERANCE 2048

#define FFMPEG "ffmpeg -nostdin -hide_banner -loglevel error -y"

static const char *SENTENCE =
    "The quick brown fox jumps over the lazy dog, and then it runs back home before the rain.";

/* The reference: the espeak-ng WAV as decoded by the code under test. */
static AudioPcm speech;

static void decode_ok(const char *path, AudioPcm *pcm) {
    char msg[512] = "";
    int rc = audio_decode_file(path, pcm, msg, sizeof msg);
    if (rc != 0) print_error("decoding %s failed: %d %s\n", path, rc, msg);
    assert_int_equal(rc, 0);
    assert_non_null(pcm->samples);
    assert_true(pcm->n_samples > 0);
}

static double rms(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return n ? sqrt(s / (double)n) : 0;
}

/* Best normalised cross-correlation of the 1 s of ref from `start` against
 * x shifted by up to +-max_lag samples: close to 1 when x carries the same
 * waveform, near 0 for noise or silence. */
static double correlation_at(const AudioPcm *ref, const AudioPcm *x, size_t start, int max_lag) {
    size_t len = 16000;
    double best = 0;
    for (int lag = -max_lag; lag <= max_lag; lag++) {
        if ((long)start + lag < 0 || start + lag + len > x->n_samples) continue;
        const float *a = ref->samples + start, *b = x->samples + start + lag;
        double ab = 0, aa = 0, bb = 0;
        for (size_t i = 0; i < len; i++) {
            ab += (double)a[i] * b[i];
            aa += (double)a[i] * a[i];
            bb += (double)b[i] * b[i];
        }
        double c = aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
        if (c > best) best = c;
    }
    return best;
}

/* The same, for the middle second and lags within one codec frame. */
static double best_correlation(const AudioPcm *ref, const AudioPcm *x) {
    return correlation_at(ref, x, ref->n_samples / 2 - 8000, FRAME_TOLERANCE);
}

static long count_diff(const AudioPcm *a, const AudioPcm *b) {
    return labs((long)a->n_samples - (long)b->n_samples);
}

static int make_inputs(void **state) {
    (void)state;
    /* tu_tmp() rotates a few static buffers, so keep our own copy. */
    char wav[4096];
    snprintf(wav, sizeof wav, "%s", tu_tmp("speech.wav"));
    int rc = tu_sh("espeak-ng -w '%s' '%s'", wav, SENTENCE);
    rc |= tu_sh(FFMPEG " -i '%s' -c:a libmp3lame '%s'", wav, tu_tmp("speech.mp3"));
    rc |= tu_sh(FFMPEG " -i '%s' -c:a libopus '%s'", wav, tu_tmp("opus.ogg"));
    rc |= tu_sh(FFMPEG " -i '%s' -c:a libvorbis '%s'", wav, tu_tmp("vorbis.ogg"));
    rc |= tu_sh(FFMPEG " -i '%s' -c:a flac '%s'", wav, tu_tmp("speech.flac"));
    rc |= tu_sh(FFMPEG " -i '%s' -c:a aac -movflags +faststart '%s'", wav, tu_tmp("speech.m4a"));
    /* Without faststart the moov atom is written after the audio data. Five
     * loops of the sentence make the file far larger than FFmpeg's read
     * buffer, so reaching the index and coming back really needs seeking. */
    rc |= tu_sh(FFMPEG " -stream_loop 4 -i '%s' -c:a aac '%s'", wav, tu_tmp("moov_end.m4a"));
    rc |= tu_sh(FFMPEG " -i '%s' -c:a libopus '%s'", wav, tu_tmp("speech.webm"));
    rc |= tu_sh(FFMPEG " -f lavfi -i color=c=black:s=64x64:d=10 -i '%s' -shortest -c:v mpeg4 "
                       "-c:a aac '%s'",
                wav, tu_tmp("video.mp4"));
    rc |= tu_sh(FFMPEG " -f lavfi -i color=c=black:s=64x64:d=1 -c:v mpeg4 -movflags +faststart "
                       "'%s'",
                tu_tmp("video_only.mp4"));
    if (rc) return -1;
    char msg[256];
    if (audio_decode_file(wav, &speech, msg, sizeof msg)) return -1;
    return 0;
}

static int free_inputs(void **state) {
    (void)state;
    audio_pcm_free(&speech);
    return 0;
}

/* ---- Exactness --------------------------------------------------------- */

/* Finds the "data" chunk of a RIFF/WAVE file; NULL if there is none. */
static const uint8_t *wav_data(const uint8_t *p, size_t size, size_t *len) {
    size_t off = 12;
    while (off + 8 <= size) {
        size_t n = p[off + 4] | p[off + 5] << 8 | p[off + 6] << 16 | (size_t)p[off + 7] << 24;
        if (!memcmp(p + off, "data", 4)) {
            *len = n < size - off - 8 ? n : size - off - 8;
            return p + off + 8;
        }
        off += 8 + n + (n & 1);
    }
    return NULL;
}

static void test_jfk_exact(void **state) {
    (void)state;
    const char *path = tu_shared("samples/jfk.wav");
    size_t size = 0, len = 0;
    uint8_t *raw = tu_read(path, &size);
    assert_non_null(raw);
    const uint8_t *data = wav_data(raw, size, &len);
    assert_non_null(data);
    AudioPcm pcm;
    decode_ok(path, &pcm);
    assert_int_equal(pcm.n_samples, 176000);
    assert_int_equal(len / 2, pcm.n_samples);
    size_t mismatches = 0;
    for (size_t i = 0; i < pcm.n_samples; i++) {
        int16_t s = (int16_t)(data[2 * i] | data[2 * i + 1] << 8);
        float want = s / 32768.0f;
        if (memcmp(&want, &pcm.samples[i], sizeof want)) mismatches++;
    }
    assert_int_equal(mismatches, 0);
    assert_string_equal(pcm.codec, "pcm_s16le");
    assert_string_equal(pcm.format, "wav");
    assert_int_equal(pcm.source_rate, 16000);
    assert_int_equal(pcm.source_channels, 1);
    assert_true(fabs(pcm.duration - 11.0) < 1e-9);
    assert_int_equal(pcm.creation_time, -1);
    audio_pcm_free(&pcm);
    assert_null(pcm.samples);
    assert_int_equal(pcm.n_samples, 0);
    free(raw);
}

/* ---- Every container and codec ---------------------------------------- */

static void test_reference_wav(void **state) {
    (void)state;
    /* 22050 Hz in, so the count must be the resampled one. */
    AudioPcm src;
    char msg[256];
    assert_int_equal(audio_decode_file(tu_tmp("speech.wav"), &src, msg, sizeof msg), 0);
    assert_int_equal(src.source_rate, 22050);
    size_t n_in = 0;
    uint8_t *raw = tu_read(tu_tmp("speech.wav"), &n_in);
    size_t len = 0;
    assert_non_null(wav_data(raw, n_in, &len));
    double want = (double)(len / 2) * 16000.0 / 22050.0;
    assert_true(fabs((double)src.n_samples - want) <= 2.0);
    assert_true(rms(src.samples, src.n_samples) > 0.02);
    free(raw);
    audio_pcm_free(&src);
}

static void check_format(const char *file, const char *codec, double min_corr) {
    AudioPcm pcm;
    decode_ok(tu_tmp(file), &pcm);
    long diff = count_diff(&pcm, &speech);
    double r = rms(pcm.samples, pcm.n_samples), r0 = rms(speech.samples, speech.n_samples);
    double corr = best_correlation(&speech, &pcm);
    print_message("  %-14s %-7s %zu samples (wav %zu, diff %ld) rms %.4f/%.4f corr %.3f\n", file,
                  pcm.codec, pcm.n_samples, speech.n_samples, diff, r, r0, corr);
    assert_string_equal(pcm.codec, codec);
    assert_true(diff <= FRAME_TOLERANCE);
    /* Speech, not silence or noise: loudness close to the original's and the
     * same waveform (lossy codecs keep it well at these bitrates). */
    assert_true(r > 0.5 * r0 && r < 2.0 * r0);
    assert_true(corr > min_corr);
    for (size_t i = 0; i < pcm.n_samples; i++)
        assert_true(pcm.samples[i] >= -1.0f && pcm.samples[i] <= 1.0f);
    audio_pcm_free(&pcm);
}

static void test_mp3(void **state) {
    (void)state;
    check_format("speech.mp3", "mp3", 0.9);
}

static void test_ogg_opus(void **state) {
    (void)state;
    check_format("opus.ogg", "opus", 0.8);
}

static void test_ogg_vorbis(void **state) {
    (void)state;
    check_format("vorbis.ogg", "vorbis", 0.8);
}

static void test_m4a(void **state) {
    (void)state;
    check_format("speech.m4a", "aac", 0.9);
}

static void test_webm(void **state) {
    (void)state;
    check_format("speech.webm", "opus", 0.8);
}

static void test_video_audio_track(void **state) {
    (void)state;
    check_format("video.mp4", "aac", 0.9);
    AudioPcm pcm;
    decode_ok(tu_tmp("video.mp4"), &pcm);
    assert_non_null(strstr(pcm.format, "mp4"));
    audio_pcm_free(&pcm);
}

static void test_flac_lossless(void **state) {
    (void)state;
    check_format("speech.flac", "flac", 0.999);
    AudioPcm pcm;
    decode_ok(tu_tmp("speech.flac"), &pcm);
    /* Same s16 samples in, same resampler: the output must be identical. */
    assert_int_equal(pcm.n_samples, speech.n_samples);
    assert_memory_equal(pcm.samples, speech.samples, pcm.n_samples * sizeof(float));
    assert_string_equal(pcm.format, "flac");
    audio_pcm_free(&pcm);
}

/* ---- Channels and rates ------------------------------------------------ */

static void test_stereo_44k(void **state) {
    (void)state;
    /* A 440 Hz tone at half scale on the left, silence on the right. */
    const char *mono = tu_tmp("tone.wav"), *st = tu_tmp("stereo44.wav");
    assert_int_equal(tu_sh("sox -n -r 44100 -b 16 -c 1 '%s' synth 2.5 sine 440 vol 0.5", mono), 0);
    assert_int_equal(tu_sh("sox '%s' '%s' remix 1 0", mono, st), 0);
    AudioPcm pcm;
    decode_ok(st, &pcm);
    assert_int_equal(pcm.source_rate, 44100);
    assert_int_equal(pcm.source_channels, 2);
    /* 2.5 s at 16 kHz. */
    assert_true(labs((long)pcm.n_samples - 40000) <= 2);
    assert_true(fabs(pcm.duration - 2.5) < 0.001);
    /* Downmixing averages the channels: half of a half-scale sine. */
    double r = rms(pcm.samples + 1000, pcm.n_samples - 2000);
    assert_true(fabs(r - 0.25 / sqrt(2.0)) < 0.01);
    audio_pcm_free(&pcm);
}

static void test_many_channels(void **state) {
    (void)state;
    /* Twelve channels have no standard speaker layout: each counts the same. */
    const char *path = tu_tmp("twelve.wav");
    assert_int_equal(tu_sh("sox -n -r 16000 -b 16 -c 12 '%s' synth 1 sine 440 vol 0.5", path), 0);
    AudioPcm pcm;
    decode_ok(path, &pcm);
    assert_int_equal(pcm.source_channels, 12);
    assert_int_equal(pcm.n_samples, 16000);
    assert_true(fabs(rms(pcm.samples, pcm.n_samples) - 0.5 / sqrt(2.0)) < 0.01);
    audio_pcm_free(&pcm);
}

/* ---- Memory and stdin -------------------------------------------------- */

static void check_memory_matches_file(const char *file) {
    AudioPcm a, b;
    char msg[256] = "";
    decode_ok(tu_tmp(file), &a);
    size_t size = 0;
    void *data = tu_read(tu_tmp(file), &size);
    assert_non_null(data);
    int rc = audio_decode_memory(data, size, &b, msg, sizeof msg);
    if (rc) print_error("%s from memory: %s\n", file, msg);
    assert_int_equal(rc, 0);
    assert_int_equal(a.n_samples, b.n_samples);
    assert_memory_equal(a.samples, b.samples, a.n_samples * sizeof(float));
    assert_string_equal(a.format, b.format);
    free(data);
    audio_pcm_free(&a);
    audio_pcm_free(&b);
}

static void test_memory(void **state) {
    (void)state;
    check_memory_matches_file("speech.m4a");
    check_memory_matches_file("moov_end.m4a");
    AudioPcm pcm;
    decode_ok(tu_tmp("moov_end.m4a"), &pcm);
    assert_true(labs((long)pcm.n_samples - 5 * (long)speech.n_samples) <= FRAME_TOLERANCE);
    audio_pcm_free(&pcm);
    check_memory_matches_file("speech.mp3");
}

/* Decodes "-" with stdin replaced by a pipe fed from a child process, so
 * nothing can seek: the code must read it all and seek in memory. */
static int decode_via_stdin_pipe(const void *data, size_t size, AudioPcm *pcm, char *msg,
                                 size_t cap) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        const char *p = data;
        while (size > 0) {
            ssize_t k = write(fds[1], p, size);
            if (k <= 0) _exit(1);
            p += k;
            size -= (size_t)k;
        }
        _exit(0);
    }
    close(fds[1]);
    int saved = dup(STDIN_FILENO);
    dup2(fds[0], STDIN_FILENO);
    close(fds[0]);
    int rc = audio_decode_file("-", pcm, msg, cap);
    dup2(saved, STDIN_FILENO);
    close(saved);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return rc;
}

static void test_stdin(void **state) {
    (void)state;
    const char *files[] = {"moov_end.m4a", "speech.m4a"};
    for (int i = 0; i < 2; i++) {
        AudioPcm a, b;
        char msg[256] = "";
        decode_ok(tu_tmp(files[i]), &a);
        size_t size = 0;
        void *data = tu_read(tu_tmp(files[i]), &size);
        assert_non_null(data);
        int rc = decode_via_stdin_pipe(data, size, &b, msg, sizeof msg);
        if (rc) print_error("%s via stdin: %s\n", files[i], msg);
        assert_int_equal(rc, 0);
        assert_int_equal(a.n_samples, b.n_samples);
        assert_memory_equal(a.samples, b.samples, a.n_samples * sizeof(float));
        free(data);
        audio_pcm_free(&a);
        audio_pcm_free(&b);
    }
    AudioPcm pcm;
    char msg[256] = "";
    assert_int_equal(decode_via_stdin_pipe("", 0, &pcm, msg, sizeof msg), DI_ENOAUDIO);
    assert_non_null(strstr(msg, "empty"));
    assert_null(pcm.samples);
}

/* ---- Errors ------------------------------------------------------------ */

static void test_text_named_mp3(void **state) {
    (void)state;
    const char *path = tu_tmp("x.mp3");
    const char *text = "This is not audio at all, just a few words of plain text.\n";
    assert_int_equal(tu_write(path, text, strlen(text)), 0);
    AudioPcm pcm;
    char msg[256] = "";
    assert_int_equal(audio_decode_file(path, &pcm, msg, sizeof msg), DI_EFORMAT);
    assert_non_null(strstr(msg, "x.mp3"));
    assert_non_null(strstr(msg, "not a media file"));
    assert_null(pcm.samples);
    assert_int_equal(audio_decode_memory(text, strlen(text), &pcm, msg, sizeof msg), DI_EFORMAT);
}

static void test_empty_file(void **state) {
    (void)state;
    const char *path = tu_tmp("empty.wav");
    assert_int_equal(tu_write(path, "", 0), 0);
    AudioPcm pcm;
    char msg[256] = "";
    assert_int_equal(audio_decode_file(path, &pcm, msg, sizeof msg), DI_ENOAUDIO);
    assert_non_null(strstr(msg, "file is empty"));
    assert_int_equal(audio_decode_memory("", 0, &pcm, msg, sizeof msg), DI_ENOAUDIO);
}

static void test_missing_and_unreadable(void **state) {
    (void)state;
    AudioPcm pcm;
    char msg[256] = "";
    const char *path = tu_tmp("does-not-exist.wav");
    assert_int_equal(audio_decode_file(path, &pcm, msg, sizeof msg), DI_EIO);
    assert_non_null(strstr(msg, "does-not-exist.wav"));
    assert_non_null(strstr(msg, "No such file"));
    assert_int_equal(audio_decode_file(tu_tmpdir(), &pcm, msg, sizeof msg), DI_EIO);
    assert_non_null(strstr(msg, "directory"));
    assert_int_equal(audio_decode_file(NULL, &pcm, msg, sizeof msg), DI_EINVAL);
    assert_int_equal(audio_decode_file(path, NULL, msg, sizeof msg), DI_EINVAL);
    assert_int_equal(audio_decode_memory(NULL, 10, &pcm, msg, sizeof msg), DI_EINVAL);
    audio_pcm_free(NULL);
}

static void test_video_only(void **state) {
    (void)state;
    AudioPcm pcm;
    char msg[256] = "";
    assert_int_equal(audio_decode_file(tu_tmp("video_only.mp4"), &pcm, msg, sizeof msg),
                     DI_ENOAUDIO);
    assert_non_null(strstr(msg, "no audio stream"));
    assert_null(pcm.samples);
}

static void test_random_bytes(void **state) {
    (void)state;
    srand(1234);
    size_t sizes[] = {1, 7, 64, 4096, 100000};
    for (int i = 0; i < 5; i++) {
        uint8_t *buf = malloc(sizes[i]);
        for (size_t j = 0; j < sizes[i]; j++)
            buf[j] = (uint8_t)rand();
        AudioPcm pcm;
        char msg[256] = "";
        int rc = audio_decode_memory(buf, sizes[i], &pcm, msg, sizeof msg);
        assert_true(rc < 0);
        assert_true(msg[0] != 0);
        assert_null(pcm.samples);
        assert_int_equal(tu_write(tu_tmp("random.bin"), buf, sizes[i]), 0);
        assert_true(audio_decode_file(tu_tmp("random.bin"), &pcm, msg, sizeof msg) < 0);
        free(buf);
    }
}

static void test_truncated_mp3(void **state) {
    (void)state;
    size_t size = 0;
    uint8_t *data = tu_read(tu_tmp("speech.mp3"), &size);
    assert_non_null(data);
    assert_int_equal(tu_write(tu_tmp("half.mp3"), data, size / 2), 0);
    AudioPcm pcm;
    decode_ok(tu_tmp("half.mp3"), &pcm);
    double frac = (double)pcm.n_samples / (double)speech.n_samples;
    assert_true(frac > 0.35 && frac < 0.65);
    audio_pcm_free(&pcm);
    free(data);
}

static void test_corrupt_middle(void **state) {
    (void)state;
    /* Garbage over a stretch a quarter of the way in: the decoder resyncs
     * after it and the file still yields nearly all its audio. The frames
     * lost are gone (not replaced by silence), so the audio after them is
     * early by that much. */
    size_t size = 0;
    uint8_t *data = tu_read(tu_tmp("speech.mp3"), &size);
    assert_non_null(data);
    srand(99);
    for (size_t i = size / 4; i < size / 4 + 600; i++)
        data[i] = (uint8_t)rand();
    AudioPcm pcm;
    char msg[256] = "";
    int rc = audio_decode_memory(data, size, &pcm, msg, sizeof msg);
    if (rc) print_error("corrupt mp3: %s\n", msg);
    assert_int_equal(rc, 0);
    long lost = (long)speech.n_samples - (long)pcm.n_samples;
    assert_true(lost >= 0 && lost <= 4 * FRAME_TOLERANCE);
    /* Before the damage and after it the waveform is the original's. */
    assert_true(correlation_at(&speech, &pcm, 4000, 16) > 0.99);
    assert_true(correlation_at(&speech, &pcm, speech.n_samples - 20000, (int)lost + 1024) > 0.9);
    audio_pcm_free(&pcm);
    free(data);
}

/* ---- Metadata ---------------------------------------------------------- */

static void test_creation_time(void **state) {
    (void)state;
    const char *wav = tu_tmp("speech.wav");
    assert_int_equal(tu_sh(FFMPEG " -i '%s' -c:a aac -metadata creation_time=2024-03-05T10:20:30Z "
                                  "'%s'",
                           wav, tu_tmp("dated.m4a")),
                     0);
    AudioPcm pcm;
    decode_ok(tu_tmp("dated.m4a"), &pcm);
    assert_int_equal(pcm.creation_time, 1709634030);
    audio_pcm_free(&pcm);

    /* A "date" tag with a UTC offset: 10:20:30 at +01:00 is 09:20:30Z. */
    assert_int_equal(tu_sh(FFMPEG " -i '%s' -c:a flac -metadata date=2024-03-05T10:20:30+01:00 "
                                  "'%s'",
                           wav, tu_tmp("dated.flac")),
                     0);
    decode_ok(tu_tmp("dated.flac"), &pcm);
    assert_int_equal(pcm.creation_time, 1709634030 - 3600);
    audio_pcm_free(&pcm);

    /* A bare year is a release date, not a recording time. */
    assert_int_equal(
        tu_sh(FFMPEG " -i '%s' -c:a flac -metadata date=2011 '%s'", wav, tu_tmp("year.flac")), 0);
    decode_ok(tu_tmp("year.flac"), &pcm);
    assert_int_equal(pcm.creation_time, -1);
    audio_pcm_free(&pcm);

    decode_ok(tu_shared("samples/jfk.wav"), &pcm);
    assert_int_equal(pcm.creation_time, -1);
    audio_pcm_free(&pcm);
}

/* ---- Sniffing ---------------------------------------------------------- */

static int sniff_file(const char *path, size_t n) {
    size_t size = 0;
    uint8_t *data = tu_read(path, &size);
    assert_non_null(data);
    int r = audio_sniff(data, size < n ? size : n);
    free(data);
    return r;
}

static void test_sniff(void **state) {
    (void)state;
    const char *audio[] = {"speech.wav", "speech.mp3", "speech.flac",  "opus.ogg",
                           "vorbis.ogg", "speech.m4a", "moov_end.m4a", "speech.webm"};
    for (int i = 0; i < 8; i++) {
        int r = sniff_file(tu_tmp(audio[i]), 4096);
        if (r != 1) print_error("sniff %s = %d\n", audio[i], r);
        assert_int_equal(r, 1);
    }
    assert_int_equal(sniff_file(tu_shared("samples/jfk.wav"), 4096), 1);

    /* An mp3 whose ID3 tag alone is longer than the sniffed head. */
    assert_int_equal(tu_sh(FFMPEG " -i '%s' -c:a libmp3lame -metadata comment=\"$(head -c 9000 "
                                  "/dev/zero | tr '\\0' a)\" '%s'",
                           tu_tmp("speech.wav"), tu_tmp("tagged.mp3")),
                     0);
    assert_int_equal(sniff_file(tu_tmp("tagged.mp3"), 4096), 1);

    const char *text = "Dear team,\nplease find the minutes of the meeting below.\n";
    assert_int_equal(audio_sniff(text, strlen(text)), 0);
    uint8_t zeros[4096] = {0};
    assert_int_equal(audio_sniff(zeros, sizeof zeros), 0);
    assert_int_equal(sniff_file(tu_tmp("video_only.mp4"), 4096), 0);
    /* A still image is media FFmpeg reads, but not audio. */
    assert_int_equal(
        tu_sh(FFMPEG " -f lavfi -i color=c=red:s=64x64 -frames:v 1 '%s'", tu_tmp("image.png")), 0);
    assert_int_equal(sniff_file(tu_tmp("image.png"), 4096), 0);
    assert_int_equal(audio_sniff(zeros, 0), 0);
    assert_true(audio_sniff(NULL, 10) < 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jfk_exact),     cmocka_unit_test(test_reference_wav),
        cmocka_unit_test(test_mp3),           cmocka_unit_test(test_ogg_opus),
        cmocka_unit_test(test_ogg_vorbis),    cmocka_unit_test(test_m4a),
        cmocka_unit_test(test_webm),          cmocka_unit_test(test_video_audio_track),
        cmocka_unit_test(test_flac_lossless), cmocka_unit_test(test_stereo_44k),
        cmocka_unit_test(test_many_channels), cmocka_unit_test(test_memory),
        cmocka_unit_test(test_stdin),         cmocka_unit_test(test_text_named_mp3),
        cmocka_unit_test(test_empty_file),    cmocka_unit_test(test_missing_and_unreadable),
        cmocka_unit_test(test_video_only),    cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_truncated_mp3), cmocka_unit_test(test_corrupt_middle),
        cmocka_unit_test(test_creation_time), cmocka_unit_test(test_sniff),
    };
    return cmocka_run_group_tests(tests, make_inputs, free_inputs);
}
