/* audio: demux with libavformat, decode with libavcodec, and convert with
 * libswresample to 16 kHz mono float. See audio.h for the contract. */
#include "audio/audio.h"
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>

/* Size of the buffer FFmpeg reads compressed bytes into. */
#define IO_BUFFER_SIZE 65536
/* libswresample cannot mix more channels than this. */
#define MAX_CHANNELS 64
/* Keeping the sample count within int32 (about 37 hours) spares every later
 * stage that counts samples or frames in int from checking for overflow. */
#define MAX_SAMPLES ((size_t)INT32_MAX)
/* audio_sniff() looks at no more than this much of what it is given. */
#define SNIFF_MAX (1 << 20)

/* ---- FFmpeg's logging ---------------------------------------------------- */

static pthread_once_t quiet_once = PTHREAD_ONCE_INIT;

static void quiet_ffmpeg_once(void) {
    /* FFmpeg prints to stderr by default, which would break diarist's
     * JSON-lines log; everything it would say is reported through our own
     * error messages instead. */
    av_log_set_level(AV_LOG_QUIET);
}

static void quiet_ffmpeg(void) {
    pthread_once(&quiet_once, quiet_ffmpeg_once);
}

/* ---- Where the compressed bytes come from -------------------------------- */

/* Either a complete file in memory (data) or an open file (fd >= 0). Both are
 * read through our own AVIOContext, so a path is never interpreted by
 * FFmpeg as a URL or protocol and the same code serves files and stdin. */
typedef struct {
    const uint8_t *data;
    size_t size, pos;
    int fd;
    int read_errno; /* first read error on fd, 0 if none */
} Source;

static int source_read(void *opaque, uint8_t *buf, int n) {
    Source *s = opaque;
    if (s->fd < 0) {
        size_t left = s->size - s->pos;
        if (left == 0) return AVERROR_EOF;
        size_t k = (size_t)n < left ? (size_t)n : left;
        memcpy(buf, s->data + s->pos, k);
        s->pos += k;
        return (int)k;
    }
    for (;;) {
        ssize_t k = read(s->fd, buf, (size_t)n);
        if (k > 0) return (int)k;
        if (k == 0) return AVERROR_EOF;
        if (errno == EINTR) continue;
        if (!s->read_errno) s->read_errno = errno;
        return AVERROR(errno);
    }
}

/* Seeking matters: an m4a written without "faststart" keeps its index (the
 * moov atom) at the end, and the demuxer must jump there and back. */
static int64_t source_seek(void *opaque, int64_t offset, int whence) {
    Source *s = opaque;
    whence &= ~AVSEEK_FORCE;
    if (whence == AVSEEK_SIZE) return (int64_t)s->size;
    if (s->fd >= 0) {
        off_t pos = lseek(s->fd, (off_t)offset, whence);
        return pos < 0 ? AVERROR(errno) : (int64_t)pos;
    }
    int64_t base;
    if (whence == SEEK_SET)
        base = 0;
    else if (whence == SEEK_CUR)
        base = (int64_t)s->pos;
    else if (whence == SEEK_END)
        base = (int64_t)s->size;
    else
        return AVERROR(EINVAL);
    if (offset < -base || offset > (int64_t)s->size - base) return AVERROR(EINVAL);
    s->pos = (size_t)(base + offset);
    return (int64_t)s->pos;
}

/* Playlists and similar formats (hls, concat, ...) name other files or URLs.
 * Bytes from a user must never make us open local files or the network, so
 * every nested open is refused. */
static int refuse_nested_open(AVFormatContext *s, AVIOContext **pb, const char *url, int flags,
                              AVDictionary **options) {
    (void)s, (void)pb, (void)url, (void)flags, (void)options;
    return AVERROR(EPERM);
}

/* Opens a demuxer on src. fmt_hint may be NULL (probe). On success *fmt and
 * *avio are set and must be released with close_input(). */
static int open_input(Source *src, const AVInputFormat *fmt_hint, AVFormatContext **fmt,
                      AVIOContext **avio) {
    *fmt = NULL;
    uint8_t *buf = av_malloc(IO_BUFFER_SIZE);
    *avio = buf ? avio_alloc_context(buf, IO_BUFFER_SIZE, 0, src, source_read, NULL, source_seek)
                : NULL;
    AVFormatContext *ctx = *avio ? avformat_alloc_context() : NULL;
    if (!ctx) {
        if (*avio)
            av_freep(&(*avio)->buffer);
        else
            av_free(buf);
        avio_context_free(avio);
        return AVERROR(ENOMEM);
    }
    ctx->pb = *avio;
    ctx->io_open = refuse_nested_open;
    /* On failure avformat_open_input frees ctx but leaves our AVIOContext. */
    int ret = avformat_open_input(&ctx, NULL, fmt_hint, NULL);
    if (ret < 0) {
        av_freep(&(*avio)->buffer);
        avio_context_free(avio);
        return ret;
    }
    *fmt = ctx;
    return 0;
}

static void close_input(AVFormatContext **fmt, AVIOContext **avio) {
    avformat_close_input(fmt);
    if (*avio) av_freep(&(*avio)->buffer);
    avio_context_free(avio);
}

/* ---- Metadata dates ------------------------------------------------------ */

/* Reads exactly k decimal digits at *p; -1 if they are not there. */
static int read_digits(const char **p, int k) {
    int v = 0;
    for (int i = 0; i < k; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9') return -1;
        v = v * 10 + (c - '0');
    }
    *p += k;
    return v;
}

/* Parses "YYYY-MM-DD", optionally followed by "[T ]hh:mm[:ss[.fff]]" and a
 * "Z" or "+hh:mm" / "-hhmm" offset, into Unix seconds. A date without an
 * offset is taken as UTC, which is how FFmpeg writes creation_time. A bare
 * year (common in music tags) says nothing about when audio was recorded,
 * so it is refused. Returns -1 if s is not such a date. */
static int64_t parse_date(const char *s) {
    struct tm tm = {0};
    const char *p = s;
    int y = read_digits(&p, 4);
    if (y < 1970 || *p++ != '-') return -1;
    int mo = read_digits(&p, 2);
    if (mo < 1 || mo > 12 || *p++ != '-') return -1;
    int d = read_digits(&p, 2);
    if (d < 1 || d > 31) return -1;
    int h = 0, mi = 0, sec = 0, offset = 0;
    if (*p == 'T' || *p == ' ') {
        p++;
        h = read_digits(&p, 2);
        if (h < 0 || h > 23 || *p++ != ':') return -1;
        mi = read_digits(&p, 2);
        if (mi < 0 || mi > 59) return -1;
        if (*p == ':') {
            p++;
            sec = read_digits(&p, 2);
            if (sec < 0 || sec > 60) return -1;
            if (*p == '.')
                for (p++; *p >= '0' && *p <= '9'; p++) {
                }
        }
        if (*p == 'Z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1;
            int oh = read_digits(&p, 2);
            if (*p == ':') p++;
            int om = read_digits(&p, 2);
            if (oh < 0 || oh > 14 || om < 0 || om > 59) return -1;
            offset = sign * (oh * 3600 + om * 60);
        }
    }
    if (*p) return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    return t == (time_t)-1 ? -1 : (int64_t)t - offset;
}

/* The recording time, from the first of these tags that parses: container
 * then stream "creation_time" (mp4, mov, mkv), "date" (ogg, flac, wav INFO),
 * and the Broadcast WAV origination date and time of field recorders. */
static int64_t find_creation_time(const AVFormatContext *fmt, const AVStream *st) {
    AVDictionary *dicts[2] = {fmt->metadata, st->metadata};
    const char *keys[2] = {"creation_time", "date"};
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 2; i++) {
            AVDictionaryEntry *e = av_dict_get(dicts[i], keys[k], NULL, 0);
            int64_t t = e ? parse_date(e->value) : -1;
            if (t >= 0) return t;
        }
    }
    AVDictionaryEntry *date = av_dict_get(fmt->metadata, "origination_date", NULL, 0);
    AVDictionaryEntry *time = av_dict_get(fmt->metadata, "origination_time", NULL, 0);
    if (date && time) {
        /* BWF writes "hh-mm-ss" or "hh:mm:ss"; normalise to colons. */
        char buf[64];
        snprintf(buf, sizeof buf, "%.10sT%.8s", date->value, time->value);
        for (char *c = buf + 11; *c; c++)
            if (*c == '-') *c = ':';
        int64_t t = parse_date(buf);
        if (t >= 0) return t;
    }
    return date ? parse_date(date->value) : -1;
}

/* ---- Decoding ------------------------------------------------------------ */

typedef struct {
    AVCodecContext *dec;
    SwrContext *swr;
    /* The input the resampler was built for; a stream may change its rate
     * or layout part-way (chained ogg, HE-AAC switching), and then the
     * resampler is drained and rebuilt. */
    int swr_rate, swr_format;
    AVChannelLayout swr_layout;
    float *out;
    size_t n, cap;
    int n_corrupt;
    int first_error; /* AVERROR of the first corrupt packet */
} Decoder;

/* Makes room for `more` samples after the n already there, doubling so a
 * long file costs O(n) copies in total. */
static int reserve(Decoder *d, size_t more) {
    if (d->n + more > MAX_SAMPLES) return DI_ERANGE;
    if (d->n + more <= d->cap) return 0;
    size_t cap = d->cap ? d->cap : (size_t)AUDIO_SAMPLE_RATE * 30;
    while (cap < d->n + more)
        cap *= 2;
    float *p = realloc(d->out, cap * sizeof *p);
    if (!p) return DI_ENOMEM;
    d->out = p;
    d->cap = cap;
    return 0;
}

/* Runs n_in input samples (NULL, 0 to drain) through the resampler and
 * appends what comes out. Returns the number of samples added or a DI_E*. */
static int resample(Decoder *d, const uint8_t **in, int n_in) {
    int max = swr_get_out_samples(d->swr, n_in);
    if (max < 0) return DI_EINTERNAL;
    int err = reserve(d, (size_t)max);
    if (err) return err;
    float *dst = d->out + d->n;
    int got = swr_convert(d->swr, (uint8_t **)&dst, max, in, n_in);
    if (got < 0) return DI_EINTERNAL;
    /* Resampling filters ring a little past full scale on loud input, and
     * float decoders (mp3, aac) can overshoot too; keep the promised range. */
    for (int i = 0; i < got; i++) {
        if (dst[i] > 1.0f) dst[i] = 1.0f;
        if (dst[i] < -1.0f) dst[i] = -1.0f;
    }
    d->n += (size_t)got;
    return got;
}

/* Pulls the last samples out of the resampler's filter delay. */
static int drain_resampler(Decoder *d) {
    if (!d->swr) return 0;
    for (;;) {
        int got = resample(d, NULL, 0);
        if (got <= 0) return got;
    }
}

/* Builds the resampler for frames like f: any rate, format and layout in,
 * 16 kHz mono float out. */
static int setup_resampler(Decoder *d, const AVFrame *f) {
    int nch = f->ch_layout.nb_channels;
    if (nch <= 0 || f->sample_rate <= 0) return DI_EFORMAT;
    if (nch > MAX_CHANNELS) return DI_EUNSUPPORTED;
    AVChannelLayout in = {0}, mono = AV_CHANNEL_LAYOUT_MONO;
    if (f->ch_layout.order == AV_CHANNEL_ORDER_NATIVE) {
        if (av_channel_layout_copy(&in, &f->ch_layout) < 0) return DI_ENOMEM;
    } else {
        av_channel_layout_default(&in, nch);
    }
    int ret = swr_alloc_set_opts2(&d->swr, &mono, AV_SAMPLE_FMT_FLT, AUDIO_SAMPLE_RATE, &in,
                                  (enum AVSampleFormat)f->format, f->sample_rate, 0, NULL);
    if (ret >= 0 && in.order == AV_CHANNEL_ORDER_NATIVE) {
        /* Known speaker positions: let libswresample weigh them (centre
         * louder, LFE out), but normalise so the mix cannot clip; for stereo
         * this is the plain mean of left and right. */
        ret = av_opt_set_double(d->swr, "rematrix_maxval", 1.0, 0);
    } else if (ret >= 0) {
        /* Unknown positions: every channel counts the same. */
        double w[MAX_CHANNELS];
        for (int c = 0; c < nch; c++)
            w[c] = 1.0 / nch;
        ret = swr_set_matrix(d->swr, w, nch);
    }
    av_channel_layout_uninit(&in);
    if (ret >= 0) ret = swr_init(d->swr);
    if (ret < 0) return DI_EUNSUPPORTED;
    d->swr_rate = f->sample_rate;
    d->swr_format = f->format;
    return av_channel_layout_copy(&d->swr_layout, &f->ch_layout) < 0 ? DI_ENOMEM : 0;
}

static void free_resampler(Decoder *d) {
    swr_free(&d->swr);
    av_channel_layout_uninit(&d->swr_layout);
}

static int take_frame(Decoder *d, const AVFrame *f) {
    if (f->nb_samples <= 0) return 0;
    int changed = !d->swr || d->swr_rate != f->sample_rate || d->swr_format != f->format ||
                  av_channel_layout_compare(&d->swr_layout, &f->ch_layout) != 0;
    if (changed) {
        int err = drain_resampler(d);
        if (err < 0) return err;
        free_resampler(d);
        err = setup_resampler(d, f);
        if (err) return err;
    }
    int got = resample(d, (const uint8_t **)f->extended_data, f->nb_samples);
    return got < 0 ? got : 0;
}

static void note_corrupt(Decoder *d, int averr) {
    if (d->n_corrupt++ == 0) d->first_error = averr;
}

/* Sends one packet (NULL flushes) and takes every frame it yields. A packet
 * the decoder rejects is counted and skipped, never fatal. */
static int decode_packet(Decoder *d, const AVPacket *pkt, AVFrame *frame) {
    int ret = avcodec_send_packet(d->dec, pkt);
    if (ret < 0 && ret != AVERROR_EOF) {
        note_corrupt(d, ret);
        if (pkt) return 0;
    }
    for (;;) {
        ret = avcodec_receive_frame(d->dec, frame);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return 0;
        if (ret < 0) {
            note_corrupt(d, ret);
            return 0;
        }
        int err = take_frame(d, frame);
        av_frame_unref(frame);
        if (err) return err;
    }
}

/* Reads every packet of stream `index` and decodes it to d->out. */
static int decode_stream(AVFormatContext *fmt, int index, Decoder *d) {
    AVPacket *pkt = av_packet_alloc();
    AVFrame *frame = av_frame_alloc();
    int err = pkt && frame ? 0 : DI_ENOMEM;
    while (!err) {
        /* Any read error ends the stream, as in the ffmpeg tool: a truncated
         * file keeps what was decoded before the cut. */
        if (av_read_frame(fmt, pkt) < 0) break;
        if (pkt->stream_index == index) err = decode_packet(d, pkt, frame);
        av_packet_unref(pkt);
    }
    if (!err) err = decode_packet(d, NULL, frame);
    if (!err) {
        int got = drain_resampler(d);
        if (got < 0) err = got;
    }
    av_packet_free(&pkt);
    av_frame_free(&frame);
    return err;
}

/* Finds the audio stream, fills the descriptive fields of out, and opens the
 * decoder. Returns the stream index or a DI_E*. */
static int open_audio_stream(AVFormatContext *fmt, const char *name, AudioPcm *out,
                             AVCodecContext **dec, char *msg, size_t cap) {
    const AVCodec *codec = NULL;
    int index = av_find_best_stream(fmt, AVMEDIA_TYPE_AUDIO, -1, -1, &codec, 0);
    if (index == AVERROR_DECODER_NOT_FOUND) {
        index = av_find_best_stream(fmt, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0);
        const char *c =
            index >= 0 ? avcodec_get_name(fmt->streams[index]->codecpar->codec_id) : "?";
        return di_fail(msg, cap, DI_EUNSUPPORTED, "%s: no decoder for audio codec %s", name, c);
    }
    if (index < 0)
        return di_fail(msg, cap, DI_ENOAUDIO,
                       "%s: no audio stream (%s container with %u stream(s), none of them audio)",
                       name, fmt->iformat->name, fmt->nb_streams);
    AVStream *st = fmt->streams[index];
    for (unsigned i = 0; i < fmt->nb_streams; i++)
        if ((int)i != index) fmt->streams[i]->discard = AVDISCARD_ALL;
    snprintf(out->codec, sizeof out->codec, "%s", avcodec_get_name(st->codecpar->codec_id));
    snprintf(out->format, sizeof out->format, "%s", fmt->iformat->name);
    out->source_rate = st->codecpar->sample_rate;
    out->source_channels = st->codecpar->ch_layout.nb_channels;
    out->creation_time = find_creation_time(fmt, st);

    *dec = avcodec_alloc_context3(codec);
    if (!*dec) return di_fail(msg, cap, DI_ENOMEM, "%s: out of memory", name);
    int ret = avcodec_parameters_to_context(*dec, st->codecpar);
    /* Decoders time their frames, and the trimming of encoder padding, in
     * the stream's time base; without it some warn and guess. */
    (*dec)->pkt_timebase = st->time_base;
    if (ret >= 0) ret = avcodec_open2(*dec, codec, NULL);
    if (ret < 0)
        return di_fail(msg, cap, DI_EFORMAT, "%s: cannot open %s decoder (%s)", name, out->codec,
                       av_err2str(ret));
    return index;
}

/* Turns the outcome of decode_stream() into the caller's error, if any:
 * reading or converting failed, nothing decoded at all, or a few corrupt
 * packets (only logged). */
static int judge(int err, const Decoder *d, const Source *src, const char *name, const char *codec,
                 char *msg, size_t cap) {
    if (err == DI_ENOMEM) return di_fail(msg, cap, err, "%s: out of memory", name);
    if (err == DI_ERANGE)
        return di_fail(msg, cap, err, "%s: longer than %zu samples (%.1f hours) of 16 kHz audio",
                       name, MAX_SAMPLES, MAX_SAMPLES / (AUDIO_SAMPLE_RATE * 3600.0));
    if (err)
        return di_fail(msg, cap, err, "%s: cannot convert %s audio to 16 kHz mono", name, codec);
    if (src->read_errno)
        return di_fail(msg, cap, DI_EIO, "%s: read error: %s", name, strerror(src->read_errno));
    if (d->n == 0 && d->n_corrupt)
        return di_fail(msg, cap, DI_EFORMAT, "%s: no %s packet could be decoded (%s)", name, codec,
                       av_err2str(d->first_error));
    if (d->n == 0)
        return di_fail(msg, cap, DI_ENOAUDIO, "%s: the %s stream decoded to no samples", name,
                       codec);
    if (d->n_corrupt)
        di_log("warn", "%s: skipped %d corrupt %s packet(s) (%s)", name, d->n_corrupt, codec,
               av_err2str(d->first_error));
    return 0;
}

/* The whole pipeline for one input; name is used in messages only. */
static int decode_source(Source *src, const char *name, AudioPcm *out, char *msg, size_t cap) {
    AVFormatContext *fmt = NULL;
    AVIOContext *avio = NULL;
    Decoder d = {0};
    int ret = open_input(src, NULL, &fmt, &avio);
    if (ret == AVERROR(ENOMEM)) return di_fail(msg, cap, DI_ENOMEM, "%s: out of memory", name);
    if (ret < 0 && src->read_errno)
        return di_fail(msg, cap, DI_EIO, "%s: %s", name, strerror(src->read_errno));
    if (ret < 0)
        return di_fail(msg, cap, DI_EFORMAT, "%s: not a media file FFmpeg can read (%s)", name,
                       av_err2str(ret));
    /* Some containers (MPEG-TS, raw ADTS) only describe their streams once
     * packets are read. Failing here is not fatal: what was found is used. */
    avformat_find_stream_info(fmt, NULL);
    int err = open_audio_stream(fmt, name, out, &d.dec, msg, cap);
    if (err >= 0) err = judge(decode_stream(fmt, err, &d), &d, src, name, out->codec, msg, cap);
    if (!err && out->source_rate <= 0) out->source_rate = d.swr_rate;
    if (!err && out->source_channels <= 0) out->source_channels = d.swr_layout.nb_channels;
    free_resampler(&d);
    avcodec_free_context(&d.dec);
    close_input(&fmt, &avio);
    if (err) {
        free(d.out);
        memset(out, 0, sizeof *out);
        return err;
    }
    /* Give back the unused tail of the doubling buffer; keep it if that fails. */
    float *fit = realloc(d.out, d.n * sizeof *fit);
    out->samples = fit ? fit : d.out;
    out->n_samples = d.n;
    out->duration = (double)d.n / AUDIO_SAMPLE_RATE;
    return 0;
}

/* ---- Public functions ---------------------------------------------------- */

int audio_decode_memory(const void *data, size_t size, AudioPcm *out, char *msg, size_t cap) {
    if (!out) return di_fail(msg, cap, DI_EINVAL, "audio_decode_memory: out is NULL");
    memset(out, 0, sizeof *out);
    if (!data && size) return di_fail(msg, cap, DI_EINVAL, "audio_decode_memory: data is NULL");
    if (size == 0) return di_fail(msg, cap, DI_ENOAUDIO, "memory buffer: file is empty");
    quiet_ffmpeg();
    Source src = {.data = data, .size = size, .fd = -1};
    return decode_source(&src, "memory buffer", out, msg, cap);
}

/* Reads everything left on fd (a pipe cannot seek, so it is decoded from
 * memory). Returns 0 or -errno. */
static int read_all(int fd, uint8_t **data, size_t *size) {
    size_t n = 0, cap = 0;
    uint8_t *buf = NULL;
    for (;;) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 1 << 20;
            uint8_t *p = realloc(buf, ncap);
            if (!p) {
                free(buf);
                return -ENOMEM;
            }
            buf = p;
            cap = ncap;
        }
        ssize_t k = read(fd, buf + n, cap - n);
        if (k == 0) break;
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            int e = errno;
            free(buf);
            return -e;
        }
        n += (size_t)k;
    }
    *data = buf;
    *size = n;
    return 0;
}

/* Decodes a pipe, terminal or device by reading it whole first. */
static int decode_stream_fd(int fd, const char *name, AudioPcm *out, char *msg, size_t cap) {
    uint8_t *data = NULL;
    size_t size = 0;
    int e = read_all(fd, &data, &size);
    if (e == -ENOMEM) return di_fail(msg, cap, DI_ENOMEM, "%s: out of memory", name);
    if (e) return di_fail(msg, cap, DI_EIO, "%s: %s", name, strerror(-e));
    int err = DI_ENOAUDIO;
    if (size == 0) {
        di_fail(msg, cap, err, "%s: file is empty", name);
    } else {
        Source src = {.data = data, .size = size, .fd = -1};
        err = decode_source(&src, name, out, msg, cap);
    }
    free(data);
    return err;
}

int audio_decode_file(const char *path, AudioPcm *out, char *msg, size_t cap) {
    if (!out) return di_fail(msg, cap, DI_EINVAL, "audio_decode_file: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path || !*path) return di_fail(msg, cap, DI_EINVAL, "audio_decode_file: empty path");
    quiet_ffmpeg();
    if (!strcmp(path, "-")) return decode_stream_fd(STDIN_FILENO, "stdin", out, msg, cap);

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return di_fail(msg, cap, DI_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    int err;
    if (fstat(fd, &st) != 0) {
        err = di_fail(msg, cap, DI_EIO, "cannot stat %s: %s", path, strerror(errno));
    } else if (S_ISDIR(st.st_mode)) {
        err = di_fail(msg, cap, DI_EIO, "cannot read %s: %s", path, strerror(EISDIR));
    } else if (!S_ISREG(st.st_mode)) {
        err = decode_stream_fd(fd, path, out, msg, cap);
    } else if (st.st_size == 0) {
        err = di_fail(msg, cap, DI_ENOAUDIO, "%s: file is empty", path);
    } else {
        Source src = {.size = (size_t)st.st_size, .fd = fd};
        err = decode_source(&src, path, out, msg, cap);
    }
    close(fd);
    return err;
}

void audio_pcm_free(AudioPcm *pcm) {
    if (!pcm) return;
    free(pcm->samples);
    memset(pcm, 0, sizeof *pcm);
}

/* ---- Sniffing ------------------------------------------------------------ */

/* An ID3v2 tag (mp3, raw aac) can hold cover art far larger than a sniffed
 * head; when the head is all tag, the tag itself is the evidence. */
static int is_long_id3v2(const uint8_t *p, size_t n) {
    if (n < 10 || memcmp(p, "ID3", 3) != 0 || p[3] == 0xff || p[4] == 0xff) return 0;
    if ((p[6] | p[7] | p[8] | p[9]) & 0x80) return 0;
    size_t len = 10 + ((size_t)p[6] << 21 | (size_t)p[7] << 14 | (size_t)p[8] << 7 | p[9]);
    return len + 16 >= n;
}

/* Opens the recognised format on the head alone and looks for an audio
 * stream: 1 yes, 0 streams but no audio, -1 cannot tell from the head. */
static int head_has_audio(const uint8_t *head, size_t n, const AVInputFormat *iformat) {
    Source src = {.data = head, .size = n, .fd = -1};
    AVFormatContext *fmt = NULL;
    AVIOContext *avio = NULL;
    if (open_input(&src, iformat, &fmt, &avio) < 0) return -1;
    avformat_find_stream_info(fmt, NULL);
    int audio = 0, moving_video = 0;
    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        const AVCodecParameters *par = fmt->streams[i]->codecpar;
        const AVCodecDescriptor *desc = avcodec_descriptor_get(par->codec_id);
        if (par->codec_type == AVMEDIA_TYPE_AUDIO) audio = 1;
        int still = desc && ((desc->props & AV_CODEC_PROP_INTRA_ONLY) ||
                             (desc->props & AV_CODEC_PROP_LOSSY) == 0);
        if (par->codec_type == AVMEDIA_TYPE_VIDEO && !still) moving_video = 1;
    }
    /* Formats without a header (MPEG-PS) reveal streams only as packets
     * arrive, so a head showing only video may still hide an audio stream.
     * Still images (PNG, JPEG pipes) are headerless too, but their codecs
     * are intra-only (JPEG) or purely lossless (PNG), unlike video codecs. */
    int unknown = fmt->nb_streams == 0 || ((fmt->ctx_flags & AVFMTCTX_NOHEADER) && moving_video);
    close_input(&fmt, &avio);
    return audio ? 1 : unknown ? -1 : 0;
}

int audio_sniff(const void *head, size_t n) {
    if (!head && n) return DI_EINVAL;
    if (n == 0) return 0;
    quiet_ffmpeg();
    if (n > SNIFF_MAX) n = SNIFF_MAX;
    if (is_long_id3v2(head, n)) return 1;
    /* The prober may read a little past the end, so it wants zero padding. */
    uint8_t *buf = av_mallocz(n + AVPROBE_PADDING_SIZE);
    if (!buf) return DI_ENOMEM;
    memcpy(buf, head, n);
    AVProbeData pd = {.filename = "", .buf = buf, .buf_size = (int)n};
    int score = 0;
    const AVInputFormat *iformat = av_probe_input_format3(&pd, 1, &score);
    int result = 0;
    /* Below the "retry" score FFmpeg itself would keep reading before
     * trusting a guess; such weak matches are what text and noise get. */
    if (iformat && score > AVPROBE_SCORE_RETRY) {
        result = head_has_audio(buf, n, iformat);
        /* A head too short to show its streams: trust a confident match. */
        if (result < 0) result = score >= AVPROBE_SCORE_EXTENSION;
    }
    av_free(buf);
    return result;
}
