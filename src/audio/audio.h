/*
 * audio: turns any audio FFmpeg can read into what the Whisper engine eats,
 * 16 kHz mono float PCM.
 *
 * Used by the CLI (a file path, or "-" for stdin) and later by the service
 * (uploaded bytes in memory, and audio_sniff() to refuse non-audio uploads
 * before spending time on them). Containers and codecs are whatever the
 * installed libavformat/libavcodec support: wav, mp3, m4a/aac, ogg (opus,
 * vorbis), flac, webm, and the audio track of a video file. libswresample
 * downmixes all channels and resamples to 16000 Hz. The format is found
 * from the bytes alone (a file's name and extension play no part), a path is
 * never taken as a URL, and nested references inside a file (playlists) are
 * never followed, so files and uploaded bytes are treated alike.
 *
 * Ownership: the caller owns the AudioPcm struct; audio_decode_*() fill it
 * and allocate out->samples, which audio_pcm_free() releases. On failure the
 * struct is left zeroed (samples NULL), so freeing it is always safe.
 *
 * Errors are negative DI_E* codes (core/core.h) with a message in msg:
 *   DI_EIO       the file cannot be opened or read (message has the path and
 *                strerror)
 *   DI_ENOAUDIO  the file or stdin is empty, the media has no audio stream,
 *                or decoding produced no samples
 *   DI_EFORMAT   the bytes are not media FFmpeg can read, or every packet of
 *                the audio stream failed to decode
 *   DI_EUNSUPPORTED  the audio codec has no decoder in this FFmpeg build,
 *                or its sample format or layout cannot be converted
 *   DI_ERANGE    the audio is longer than INT32_MAX samples at 16 kHz
 *   DI_ENOMEM, DI_EINVAL, DI_EINTERNAL as usual
 * Corrupt packets in the middle of a stream are skipped (one "warn" log line
 * per file) rather than failing the whole file.
 *
 * FFmpeg's own logging is silenced on first use so that diarist's stderr
 * stays pure JSON lines. All functions are thread-safe (no shared state
 * besides that one-time setting).
 */
#ifndef DIARIST_AUDIO_H
#define DIARIST_AUDIO_H

#include <stddef.h>
#include <stdint.h>

#define AUDIO_SAMPLE_RATE 16000

typedef struct {
    float *samples;        /* 16 kHz mono float in [-1,1], owned */
    size_t n_samples;      /* at most INT32_MAX (about 37 hours) */
    double duration;       /* n_samples / 16000.0 */
    int64_t creation_time; /* Unix seconds from metadata, -1 if none (see below) */
    char codec[32];        /* e.g. "mp3", "pcm_s16le" */
    char format[64];       /* container, e.g. "wav", "mov,mp4,m4a,3gp,3g2,mj2" */
    int source_rate, source_channels;
} AudioPcm;
/* creation_time comes from the container's or the audio stream's
 * "creation_time" tag, else a "date" tag that holds a full date (a bare
 * year is refused), else Broadcast WAV origination date and time. Dates
 * without a UTC offset are read as UTC. */

/* Decodes the whole file at path ("-" reads all of stdin) into *out.
 * Returns 0 or a negative DI_E* code with a message in msg. */
int audio_decode_file(const char *path, AudioPcm *out, char *msg, size_t cap);

/* Same, from a complete file held in memory (not copied, not kept). */
int audio_decode_memory(const void *data, size_t size, AudioPcm *out, char *msg, size_t cap);

/* Frees samples and zeroes the struct; NULL is fine. */
void audio_pcm_free(AudioPcm *pcm);

/* Probes the first n bytes of a file or buffer (a few KiB is enough):
 * 1 if FFmpeg recognises an audio-bearing container or codec from them,
 * 0 if not, negative DI_E* on error. When the head is too short to show
 * the streams (an mp4 whose index is at the end, a long ID3 tag) but the
 * container is recognised with confidence, the answer is 1: refusing real
 * audio is worse than letting the full decode reject a rare non-audio file. */
int audio_sniff(const void *head, size_t n);

#endif
