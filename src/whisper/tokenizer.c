/*
 * Whisper's tokenizer: byte-level BPE over the GPT-2 style vocabulary that
 * the model file carries, plus the special tokens Whisper derives from the
 * vocabulary size.
 *
 * - Ids below the file's entry count take the file's bytes. The ids above
 *   are synthesised with OpenAI's names ("<|endoftext|>", "<|en|>",
 *   "<|0.00|>", ...), or "[_extra_token_<id>]" where OpenAI has none.
 * - Encoding works like tiktoken: the text is split into pieces by the
 *   GPT-2 pattern, and each piece is merged from single bytes, always
 *   joining the adjacent pair whose concatenation is the token with the
 *   lowest id (in Whisper's vocabularies the id is the merge rank).
 * - Decoding concatenates bytes and repairs invalid UTF-8 with U+FFFD.
 */
#include "whisper/whisper_impl.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TOKEN_MAX_BYTES 1024 /* longest vocabulary entry accepted */
#define MAX_VOCAB (1 << 20)
#define N_TIMESTAMPS 1501 /* <|0.00|> .. <|30.00|> */
#define PIECE_SLICE 512   /* bytes of one piece merged at a time */

/* ---- Languages ------------------------------------------------------------ */

/* OpenAI's order: a language's index is its token's offset from sot + 1. */
static const char *const LANG_CODES[] = {
    "en", "zh", "de", "es",  "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv",
    "it", "id", "hi", "fi",  "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no",
    "th", "ur", "hr", "bg",  "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr",
    "az", "sl", "kn", "et",  "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw",
    "gl", "mr", "pa", "si",  "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu",
    "am", "yi", "lo", "uz",  "fo", "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl",
    "mg", "as", "tt", "haw", "ln", "ha", "ba", "jw", "su", "yue"};

static const char *const LANG_NAMES[] = {
    "english",  "chinese",    "german",         "spanish",     "russian",    "korean",
    "french",   "japanese",   "portuguese",     "turkish",     "polish",     "catalan",
    "dutch",    "arabic",     "swedish",        "italian",     "indonesian", "hindi",
    "finnish",  "vietnamese", "hebrew",         "ukrainian",   "greek",      "malay",
    "czech",    "romanian",   "danish",         "hungarian",   "tamil",      "norwegian",
    "thai",     "urdu",       "croatian",       "bulgarian",   "lithuanian", "latin",
    "maori",    "malayalam",  "welsh",          "slovak",      "telugu",     "persian",
    "latvian",  "bengali",    "serbian",        "azerbaijani", "slovenian",  "kannada",
    "estonian", "macedonian", "breton",         "basque",      "icelandic",  "armenian",
    "nepali",   "mongolian",  "bosnian",        "kazakh",      "albanian",   "swahili",
    "galician", "marathi",    "punjabi",        "sinhala",     "khmer",      "shona",
    "yoruba",   "somali",     "afrikaans",      "occitan",     "georgian",   "belarusian",
    "tajik",    "sindhi",     "gujarati",       "amharic",     "yiddish",    "lao",
    "uzbek",    "faroese",    "haitian creole", "pashto",      "turkmen",    "nynorsk",
    "maltese",  "sanskrit",   "luxembourgish",  "myanmar",     "tibetan",    "tagalog",
    "malagasy", "assamese",   "tatar",          "hawaiian",    "lingala",    "hausa",
    "bashkir",  "javanese",   "sundanese",      "cantonese"};

/* Other names OpenAI accepts for the same languages. */
static const char *const LANG_ALIASES[][2] = {
    {"burmese", "my"},       {"valencian", "ca"}, {"flemish", "nl"},   {"haitian", "ht"},
    {"letzeburgesch", "lb"}, {"pushto", "ps"},    {"panjabi", "pa"},   {"moldavian", "ro"},
    {"moldovan", "ro"},      {"sinhalese", "si"}, {"castilian", "es"}, {"mandarin", "zh"}};

#define N_LANGS ((int)(sizeof LANG_CODES / sizeof *LANG_CODES))

int whisper_lang_count(void) {
    return N_LANGS;
}

const char *whisper_lang_code(int id) {
    return id >= 0 && id < N_LANGS ? LANG_CODES[id] : NULL;
}

/* Accepts a code ("en") or an English name ("English"), in any case. */
int whisper_lang_id(const char *code) {
    if (!code) return -1;
    for (int i = 0; i < N_LANGS; i++)
        if (!strcasecmp(code, LANG_CODES[i]) || !strcasecmp(code, LANG_NAMES[i])) return i;
    for (size_t i = 0; i < sizeof LANG_ALIASES / sizeof *LANG_ALIASES; i++)
        if (!strcasecmp(code, LANG_ALIASES[i][0])) return whisper_lang_id(LANG_ALIASES[i][1]);
    return -1;
}

/* ---- Character classes for the GPT-2 pre-split --------------------------- */

/* The split pattern is
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * and needs each code point's class. ASCII is classified exactly, and so is
 * Unicode White_Space. Beyond ASCII a full Unicode table would be large, so
 * this is an approximation: the digit and number blocks below are numbers;
 * the punctuation, symbol, combining-mark, emoji and private-use blocks
 * below (and the vowel signs of the Indic scripts) are "other"; everything
 * else counts as a letter. Checked against Unicode's categories it is
 * exact for the scripts of Whisper's languages (Latin, Greek, Cyrillic,
 * Arabic, Hebrew, the Indic scripts, Thai, CJK, kana, Hangul, ...) and
 * their punctuation; about 1% of all assigned code points, in rare scripts
 * and symbol blocks, are misclassified. */
enum { CL_LETTER, CL_NUMBER, CL_SPACE, CL_OTHER };

typedef struct {
    uint32_t lo, hi;
} Range;

static const Range NUMBER_RANGES[] = {
    {0xB2, 0xB3},       {0xB9, 0xB9},     {0xBC, 0xBE},     {0x660, 0x669},     {0x6F0, 0x6F9},
    {0x7C0, 0x7C9},     {0x966, 0x96F},   {0x9E6, 0x9EF},   {0x9F4, 0x9F9},     {0xA66, 0xA6F},
    {0xAE6, 0xAEF},     {0xB66, 0xB6F},   {0xB72, 0xB77},   {0xBE6, 0xBF2},     {0xC66, 0xC6F},
    {0xC78, 0xC7E},     {0xCE6, 0xCEF},   {0xD58, 0xD5E},   {0xD66, 0xD78},     {0xDE6, 0xDEF},
    {0xE50, 0xE59},     {0xED0, 0xED9},   {0xF20, 0xF33},   {0x1040, 0x1049},   {0x1090, 0x1099},
    {0x1369, 0x137C},   {0x16EE, 0x16F0}, {0x17E0, 0x17E9}, {0x17F0, 0x17F9},   {0x1810, 0x1819},
    {0x1946, 0x194F},   {0x19D0, 0x19DA}, {0x1B50, 0x1B59}, {0x2070, 0x2070},   {0x2074, 0x2079},
    {0x2080, 0x2089},   {0x2150, 0x2182}, {0x2185, 0x2189}, {0x2460, 0x249B},   {0x24EA, 0x24FF},
    {0x2776, 0x2793},   {0x2CFD, 0x2CFD}, {0x3007, 0x3007}, {0x3021, 0x3029},   {0x3038, 0x303A},
    {0x3192, 0x3195},   {0x3220, 0x3229}, {0x3248, 0x324F}, {0x3251, 0x325F},   {0x3280, 0x3289},
    {0x32B1, 0x32BF},   {0xA620, 0xA629}, {0xFF10, 0xFF19}, {0x1D7CE, 0x1D7FF}, {0x1F100, 0x1F10C},
    {0x1FBF0, 0x1FBF9},
};

static const Range OTHER_RANGES[] = {
    {0x80, 0xA9},       {0xAB, 0xB4},        {0xB6, 0xB8},       {0xBB, 0xBB},
    {0xBF, 0xBF},       {0xD7, 0xD7},        {0xF7, 0xF7},       {0x2C2, 0x2C5},
    {0x2D2, 0x2DF},     {0x2E5, 0x2EB},      {0x2ED, 0x2ED},     {0x2EF, 0x36F},
    {0x375, 0x375},     {0x37E, 0x37E},      {0x384, 0x385},     {0x387, 0x387},
    {0x3F6, 0x3F6},     {0x482, 0x489},      {0x55A, 0x55F},     {0x589, 0x58A},
    {0x58D, 0x58F},     {0x591, 0x5C7},      {0x5F3, 0x5F4},     {0x600, 0x61F},
    {0x64B, 0x65F},     {0x66A, 0x66D},      {0x670, 0x670},     {0x6D4, 0x6D4},
    {0x6D6, 0x6E4},     {0x6E7, 0x6ED},      {0x6FD, 0x6FE},     {0x94E, 0x94F},
    {0x9F2, 0x9F3},     {0x9FA, 0x9FB},      {0xA70, 0xA71},     {0xA75, 0xA76},
    {0xAF0, 0xAF1},     {0xAFA, 0xAFF},      {0xBF3, 0xBFA},     {0xD81, 0xD83},
    {0xDCA, 0xDDF},     {0xDF2, 0xDF4},      {0xE31, 0xE31},     {0xE34, 0xE3A},
    {0xE3F, 0xE3F},     {0xE47, 0xE4F},      {0xE5A, 0xE5B},     {0xEB1, 0xEB1},
    {0xEB4, 0xEBC},     {0xEC8, 0xECE},      {0xF01, 0xF1F},     {0xF34, 0xF3F},
    {0xF71, 0xF87},     {0xF8D, 0xFFF},      {0x102B, 0x103E},   {0x104A, 0x104F},
    {0x1056, 0x1059},   {0x105E, 0x1060},    {0x1062, 0x1064},   {0x1067, 0x106D},
    {0x1071, 0x1074},   {0x1082, 0x108D},    {0x108F, 0x108F},   {0x109A, 0x109F},
    {0x10FB, 0x10FB},   {0x135D, 0x1368},    {0x1390, 0x1399},   {0x17B4, 0x17D6},
    {0x17D8, 0x17DB},   {0x17DD, 0x17DD},    {0x1800, 0x180F},   {0x1AB0, 0x1AFF},
    {0x1DC0, 0x1DFF},   {0x1FBD, 0x1FBD},    {0x1FBF, 0x1FC1},   {0x1FCD, 0x1FCF},
    {0x1FDD, 0x1FDF},   {0x1FED, 0x1FEF},    {0x1FFD, 0x1FFE},   {0x2000, 0x206F},
    {0x207A, 0x207E},   {0x208A, 0x208E},    {0x20A0, 0x20FF},   {0x2100, 0x2101},
    {0x2103, 0x2106},   {0x2108, 0x2109},    {0x2114, 0x2114},   {0x2116, 0x2118},
    {0x211E, 0x2123},   {0x2125, 0x2125},    {0x2127, 0x2127},   {0x2129, 0x2129},
    {0x212E, 0x212E},   {0x213A, 0x213B},    {0x2140, 0x2144},   {0x214A, 0x214D},
    {0x214F, 0x214F},   {0x218A, 0x218B},    {0x2190, 0x245F},   {0x249C, 0x24E9},
    {0x2500, 0x2775},   {0x2794, 0x2BFF},    {0x2CE5, 0x2CEA},   {0x2CEF, 0x2CF1},
    {0x2CF9, 0x2CFC},   {0x2CFE, 0x2CFF},    {0x2E00, 0x2FFF},   {0x3001, 0x3004},
    {0x3008, 0x3020},   {0x302A, 0x3030},    {0x3036, 0x3037},   {0x303D, 0x303F},
    {0x3099, 0x309C},   {0x30A0, 0x30A0},    {0x30FB, 0x30FB},   {0x3190, 0x3191},
    {0x3196, 0x319F},   {0x31C0, 0x31E3},    {0x3200, 0x321E},   {0x322A, 0x3247},
    {0x3250, 0x3250},   {0x3260, 0x327F},    {0x328A, 0x32B0},   {0x32C0, 0x33FF},
    {0x4DC0, 0x4DFF},   {0xA490, 0xA4C6},    {0xA4FE, 0xA4FF},   {0xA60D, 0xA60F},
    {0xA700, 0xA716},   {0xA720, 0xA721},    {0xA789, 0xA78A},   {0xD800, 0xF8FF},
    {0xFB29, 0xFB29},   {0xFD3E, 0xFD3F},    {0xFDFC, 0xFDFD},   {0xFE00, 0xFE6F},
    {0xFEFF, 0xFEFF},   {0xFF01, 0xFF0F},    {0xFF1A, 0xFF20},   {0xFF3B, 0xFF40},
    {0xFF5B, 0xFF65},   {0xFFE0, 0xFFEE},    {0xFFF9, 0xFFFF},   {0x1D000, 0x1D24F},
    {0x1D300, 0x1D35F}, {0x1F000, 0x1F0FF},  {0x1F10D, 0x1FAFF}, {0x1FB00, 0x1FBEF},
    {0xE0000, 0xE0FFF}, {0xF0000, 0x10FFFF},
};

static int in_ranges(uint32_t cp, const Range *r, int n) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < r[mid].lo)
            hi = mid - 1;
        else if (cp > r[mid].hi)
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

static int is_white_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

/* The Indic blocks from Devanagari to Malayalam share one layout: their
 * vowel signs and other marks sit at the same offsets in each block. */
static int is_indic_mark(uint32_t cp) {
    if (cp < 0x900 || cp > 0xD7F) return 0;
    if (cp == 0x980 || cp == 0xB83 || cp == 0xC80 || cp == 0xD3A) return 0; /* letters */
    uint32_t off = cp & 0x7F;
    return off <= 0x03 || (off >= 0x3A && off <= 0x3C) || (off >= 0x3E && off <= 0x4D) ||
           (off >= 0x51 && off <= 0x57) || (off >= 0x62 && off <= 0x65) || cp == 0x970;
}

#define NO_CODE_POINT 0xFFFFFFFFu /* an invalid byte: class "other" */

static int char_class(uint32_t cp) {
    if (cp < 0x80) {
        if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return CL_LETTER;
        if (cp >= '0' && cp <= '9') return CL_NUMBER;
        if (is_white_space(cp)) return CL_SPACE;
        return CL_OTHER;
    }
    if (cp == NO_CODE_POINT) return CL_OTHER;
    if (is_white_space(cp)) return CL_SPACE;
    if (in_ranges(cp, NUMBER_RANGES, (int)(sizeof NUMBER_RANGES / sizeof *NUMBER_RANGES)))
        return CL_NUMBER;
    if (in_ranges(cp, OTHER_RANGES, (int)(sizeof OTHER_RANGES / sizeof *OTHER_RANGES)) ||
        is_indic_mark(cp))
        return CL_OTHER;
    return CL_LETTER;
}

/* ---- UTF-8 ------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is invalid, in
 * which case *bad is the length of its longest valid-looking prefix (at
 * least 1): the bytes one U+FFFD replaces, as Python's decoder does. */
static int utf8_seq(const uint8_t *s, size_t n, int *bad) {
    uint8_t c = s[0];
    int need;
    uint8_t lo = 0x80, hi = 0xBF;
    *bad = 1;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    for (int i = 1; i <= need; i++) {
        if ((size_t)i >= n || s[i] < lo || s[i] > hi) {
            *bad = i;
            return 0;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

/* The code point at s[i] and its byte length; an invalid byte is one
 * "code point" NO_CODE_POINT of length 1. */
static int next_cp(const uint8_t *s, size_t n, size_t i, uint32_t *cp) {
    int bad;
    int len = utf8_seq(s + i, n - i, &bad);
    if (len == 0) {
        *cp = NO_CODE_POINT;
        return 1;
    }
    static const uint8_t lead_mask[] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    uint32_t v = s[i] & lead_mask[len];
    for (int k = 1; k < len; k++)
        v = (v << 6) | (s[i + k] & 0x3F);
    *cp = v;
    return len;
}

/* ---- Pre-split ------------------------------------------------------------ */

/* End of the GPT-2 pattern's match that starts at s[i]: the alternatives
 * are tried in the pattern's order, as a backtracking regex would. */
static size_t piece_end(const uint8_t *s, size_t n, size_t i) {
    if (s[i] == '\'' && i + 1 < n) {
        uint8_t a = s[i + 1], b = i + 2 < n ? s[i + 2] : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
            return i + 3;
    }
    uint32_t cp;
    size_t j = i;
    int len = next_cp(s, n, j, &cp);
    int cls = char_class(cp);
    if (s[i] == ' ' && i + 1 < n) { /* " ?" before a letter, number or other run */
        uint32_t cp2;
        int len2 = next_cp(s, n, i + 1, &cp2);
        int cls2 = char_class(cp2);
        if (cls2 != CL_SPACE) {
            j = i + 1;
            len = len2;
            cls = cls2;
        }
    }
    if (cls != CL_SPACE) {
        j += (size_t)len;
        while (j < n) {
            int l = next_cp(s, n, j, &cp);
            if (char_class(cp) != cls) break;
            j += (size_t)l;
        }
        return j;
    }
    /* A whitespace run. At the end of the text it is taken whole; before
     * other text, \s+(?!\S) gives up its last character so that it can
     * prefix the next word, unless the run is a single character. */
    size_t last = i, e = i;
    while (e < n) {
        int l = next_cp(s, n, e, &cp);
        if (char_class(cp) != CL_SPACE) break;
        last = e;
        e += (size_t)l;
    }
    if (e == n) return e;
    return last > i ? last : e;
}

/* ---- Vocabulary lookup ----------------------------------------------------- */

static uint32_t hash_bytes(const char *s, int len) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (int i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

/* The id of an ordinary token (below eot) with exactly these bytes, or -1. */
int tokenizer_lookup(const Tokenizer *t, const char *bytes, int len) {
    if (!t || !t->hash || !bytes || len <= 0 || len > TOKEN_MAX_BYTES) return -1;
    uint32_t mask = (uint32_t)t->n_hash - 1;
    for (uint32_t h = hash_bytes(bytes, len) & mask;; h = (h + 1) & mask) {
        int id = t->hash[h];
        if (id < 0) return -1;
        if (t->lens[id] == len && !memcmp(t->bytes[id], bytes, (size_t)len)) return id;
    }
}

static int build_hash(Tokenizer *t, int n_ordinary) {
    int n = 64;
    while (n < 2 * n_ordinary)
        n *= 2;
    t->hash = malloc((size_t)n * sizeof *t->hash);
    if (!t->hash) return DI_ENOMEM;
    t->n_hash = n;
    for (int i = 0; i < n; i++)
        t->hash[i] = -1;
    for (int id = 0; id < n_ordinary; id++) {
        if (t->lens[id] <= 0 || tokenizer_lookup(t, t->bytes[id], t->lens[id]) >= 0)
            continue; /* a duplicate keeps its lowest id, the one BPE would pick */
        uint32_t h = hash_bytes(t->bytes[id], t->lens[id]) & (uint32_t)(n - 1);
        while (t->hash[h] >= 0)
            h = (h + 1) & (uint32_t)(n - 1);
        t->hash[h] = id;
    }
    return 0;
}

/* ---- BPE ----------------------------------------------------------------- */

typedef struct {
    int *v;
    int n, cap;
} IntVec;

static int push(IntVec *a, int x) {
    if (a->n == a->cap) {
        if (a->cap > INT_MAX / 2) return DI_ENOMEM;
        int cap = a->cap ? 2 * a->cap : 16;
        int *v = realloc(a->v, (size_t)cap * sizeof *v);
        if (!v) return DI_ENOMEM;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

/* Id of the token joining parts i and i+1 (they start at start[i],
 * start[i+1] and end at start[i+2]), or INT_MAX if there is none. */
static int pair_rank(const Tokenizer *t, const char *p, const int *start, int i) {
    int id = tokenizer_lookup(t, p + start[i], start[i + 2] - start[i]);
    return id < 0 ? INT_MAX : id;
}

/* Appends the tokens of one piece. The whole piece, when it is itself a
 * token, is taken at once, as tiktoken does. A part whose bytes are not in
 * the vocabulary fails with DI_EUNSUPPORTED (only a damaged vocabulary
 * lacks a single byte). Quadratic in the piece length, which is fine for
 * words and prompts. */
static int bpe_piece(const Tokenizer *t, const char *p, int n, IntVec *out) {
    int whole = tokenizer_lookup(t, p, n);
    if (whole >= 0) return push(out, whole);
    int *start = malloc((size_t)(n + 1) * sizeof *start);
    int *rank = malloc((size_t)n * sizeof *rank);
    int err = 0;
    if (!start || !rank) {
        err = DI_ENOMEM;
        goto done;
    }
    int np = n; /* parts; part i is bytes [start[i], start[i+1]) */
    for (int i = 0; i <= n; i++)
        start[i] = i;
    for (int i = 0; i + 1 < np; i++)
        rank[i] = pair_rank(t, p, start, i);
    for (;;) {
        int best = 0;
        for (int i = 1; i + 1 < np; i++)
            if (rank[i] < rank[best]) best = i;
        if (np < 2 || rank[best] == INT_MAX) break;
        /* Part best+1 joins part best: drop its start and the pair rank
         * that began at it, then rescore the pairs around the new part. */
        memmove(start + best + 1, start + best + 2, (size_t)(np - best - 1) * sizeof *start);
        memmove(rank + best, rank + best + 1, (size_t)(np - best - 2) * sizeof *rank);
        np--;
        if (best > 0) rank[best - 1] = pair_rank(t, p, start, best - 1);
        if (best + 1 < np) rank[best] = pair_rank(t, p, start, best);
    }
    for (int i = 0; i < np && !err; i++) {
        int id = tokenizer_lookup(t, p + start[i], start[i + 1] - start[i]);
        err = id < 0 ? DI_EUNSUPPORTED : push(out, id);
    }
done:
    free(start);
    free(rank);
    return err;
}

int tokenizer_encode(const Tokenizer *t, const char *text, int **ids, int *n) {
    if (ids) *ids = NULL;
    if (n) *n = 0;
    if (!t || !t->hash || !text || !ids || !n) return DI_EINVAL;
    const uint8_t *s = (const uint8_t *)text;
    size_t len = strlen(text);
    IntVec out = {0};
    int err = push(&out, 0); /* so that even empty text gives an allocation */
    out.n = 0;
    for (size_t i = 0; i < len && !err;) {
        size_t e = piece_end(s, len, i);
        /* BPE is quadratic in the piece length, so a pathological piece
         * (a megabyte without a space) is merged in slices. Real words are
         * far shorter than a slice, so this changes no ordinary text. */
        for (size_t a = i; a < e && !err; a += PIECE_SLICE) {
            size_t b = e - a < PIECE_SLICE ? e : a + PIECE_SLICE;
            err = bpe_piece(t, text + a, (int)(b - a), &out);
        }
        i = e;
    }
    if (err) {
        free(out.v);
        return err;
    }
    *ids = out.v;
    *n = out.n;
    return 0;
}

/* ---- Vocabulary set-up ------------------------------------------------------ */

/* Whisper's vocabularies begin with the 256 single bytes in GPT-2's order:
 * the printable bytes ! .. ~, 0xA1 .. 0xAC and 0xAE .. 0xFF first, then the
 * rest in increasing order. */
static int gpt2_byte_of_id(int id) {
    int k = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        if (printable && k++ == id) return b;
    }
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        if (!printable && k++ == id) return b;
    }
    return -1;
}

/* Some converted files (whisper.cpp's test models among them) decoded their
 * vocabulary as UTF-8 and stored U+FFFD for every byte that is not a whole
 * character, single-byte tokens 0x80..0xFF included. Without those, BPE
 * cannot encode non-ASCII text, so when the file has GPT-2's byte layout
 * the lost single bytes are put back. */
static void repair_byte_tokens(Tokenizer *t, int count) {
    if (count < 256 || t->lens[0] != 1 || t->bytes[0][0] != '!' || t->lens[188] != 1 ||
        t->bytes[188][0] != 0)
        return;
    int repaired = 0;
    for (int id = 0; id < 256; id++) {
        if (t->lens[id] == 3 && !memcmp(t->bytes[id], "\xEF\xBF\xBD", 3)) {
            t->bytes[id][0] = (char)gpt2_byte_of_id(id);
            t->bytes[id][1] = 0;
            t->lens[id] = 1;
            repaired++;
        }
    }
    if (repaired) di_log("debug", "tokenizer: restored %d single-byte tokens", repaired);
}

static WhisperSpecials derive_specials(int n_vocab) {
    WhisperSpecials sp;
    int multilingual = n_vocab >= 51865;
    int num_languages = multilingual ? n_vocab - 51765 - 1 : 0;
    int dt = multilingual ? num_languages - 98 : 0;
    sp.eot = 50256 + multilingual;
    sp.sot = sp.eot + 1;
    sp.translate = 50357 + dt;
    sp.transcribe = 50358 + dt;
    sp.solm = 50359 + dt;
    sp.prev = 50360 + dt;
    sp.nosp = 50361 + dt;
    sp.notimestamps = 50362 + dt;
    sp.timestamp_begin = 50363 + dt;
    sp.lang_begin = sp.sot + 1;
    /* Only languages with a known code are offered to the decoder. */
    sp.n_languages = num_languages < N_LANGS ? num_languages : N_LANGS;
    return sp;
}

/* OpenAI's name for a synthesised id, written to buf. */
static void special_name(const WhisperSpecials *sp, int id, char *buf, size_t cap) {
    const struct {
        int id;
        const char *name;
    } named[] = {{sp->eot, "endoftext"},       {sp->sot, "startoftranscript"},
                 {sp->translate, "translate"}, {sp->transcribe, "transcribe"},
                 {sp->solm, "startoflm"},      {sp->prev, "startofprev"},
                 {sp->nosp, "nospeech"},       {sp->notimestamps, "notimestamps"}};
    for (size_t i = 0; i < sizeof named / sizeof *named; i++) {
        if (id == named[i].id) {
            snprintf(buf, cap, "<|%s|>", named[i].name);
            return;
        }
    }
    int lang = id - sp->lang_begin;
    if (id >= sp->lang_begin && id < sp->translate && lang < N_LANGS) {
        snprintf(buf, cap, "<|%s|>", LANG_CODES[lang]);
        return;
    }
    int ts = id - sp->timestamp_begin;
    if (ts >= 0 && ts < N_TIMESTAMPS) {
        snprintf(buf, cap, "<|%d.%02d|>", ts / 50, (ts % 50) * 2);
        return;
    }
    snprintf(buf, cap, "[_extra_token_%d]", id);
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* OpenAI's suppress_tokens="-1" set: tokens that spell symbols and
 * brackets rather than speech. A symbol counts when it encodes to a single
 * token, alone or after a space; the musical signs always give their
 * first token. */
static int build_non_speech(Tokenizer *t) {
    static const char *const symbols[] = {
        "\"",  "#",  "(",  ")",   "*",   "+",   "/",   ":",  ";",   "<",  "=",  ">",
        "@",   "[",  "\\", "]",   "^",   "_",   "`",   "{",  "|",   "}",  "~",  "「",
        "」",  "『", "』", "<<",  ">>",  "<<<", ">>>", "--", "---", "-(", "-[", "('",
        "(\"", "((", "))", "(((", ")))", "[[",  "]]",  "{{", "}}",  "♪♪", "♪♪♪"};
    static const char *const musical[] = {"♩", "♪", "♫", "♬", "♭", "♮", "♯"};
    const int n_sym = (int)(sizeof symbols / sizeof *symbols);
    const int n_mus = (int)(sizeof musical / sizeof *musical);
    IntVec set = {0};
    int err = 0;
    const char *lead[] = {" -", " '"};
    for (int i = 0; i < 2 && !err; i++) {
        int *ids, n;
        if (tokenizer_encode(t, lead[i], &ids, &n) == 0 && n > 0) err = push(&set, ids[0]);
        free(ids);
    }
    for (int s = 0; s < n_sym + n_mus && !err; s++) {
        int is_musical = s >= n_sym;
        const char *sym = is_musical ? musical[s - n_sym] : symbols[s];
        char spaced[16];
        snprintf(spaced, sizeof spaced, " %s", sym);
        const char *forms[] = {sym, spaced};
        for (int f = 0; f < 2 && !err; f++) {
            int *ids, n;
            /* A symbol the vocabulary cannot encode is left out. */
            if (tokenizer_encode(t, forms[f], &ids, &n) == 0 && n > 0 && (n == 1 || is_musical))
                err = push(&set, ids[0]);
            free(ids);
        }
    }
    if (err) {
        free(set.v);
        return err;
    }
    if (set.n > 1) qsort(set.v, (size_t)set.n, sizeof *set.v, cmp_int);
    int u = 0;
    for (int i = 0; i < set.n; i++)
        if (u == 0 || set.v[i] != set.v[u - 1]) set.v[u++] = set.v[i];
    t->non_speech = set.v;
    t->n_non_speech = u;
    return 0;
}

void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    if (t->bytes)
        for (int i = 0; i < t->n_vocab; i++)
            free(t->bytes[i]);
    free(t->bytes);
    free(t->lens);
    free(t->hash);
    free(t->non_speech);
    memset(t, 0, sizeof *t);
}

int tokenizer_init(Tokenizer *t, int n_vocab, int count, const uint8_t *const *entries,
                   const uint32_t *lens, char *msg, size_t cap) {
    if (!t) return di_fail(msg, cap, DI_EINVAL, "tokenizer_init: no tokenizer");
    memset(t, 0, sizeof *t);
    if (n_vocab < 51864 || n_vocab > MAX_VOCAB)
        return di_fail(msg, cap, DI_EFORMAT,
                       "vocabulary of %d tokens: Whisper needs 51864 (English-only) or more",
                       n_vocab);
    if (count < 0 || count > n_vocab)
        return di_fail(msg, cap, DI_EFORMAT, "vocabulary block has %d entries for %d tokens", count,
                       n_vocab);
    if (count > 0 && (!entries || !lens))
        return di_fail(msg, cap, DI_EINVAL, "tokenizer_init: missing vocabulary entries");
    for (int i = 0; i < count; i++) {
        if (lens[i] > TOKEN_MAX_BYTES)
            return di_fail(msg, cap, DI_EFORMAT, "vocabulary entry %d is %u bytes long (max %d)", i,
                           lens[i], TOKEN_MAX_BYTES);
        if (lens[i] > 0 && !entries[i])
            return di_fail(msg, cap, DI_EINVAL, "vocabulary entry %d has no bytes", i);
    }

    t->n_vocab = n_vocab;
    t->sp = derive_specials(n_vocab);
    t->bytes = calloc((size_t)n_vocab, sizeof *t->bytes);
    t->lens = calloc((size_t)n_vocab, sizeof *t->lens);
    if (!t->bytes || !t->lens) goto oom;
    for (int id = 0; id < n_vocab; id++) {
        char name[64];
        const char *src = name;
        size_t len;
        if (id < count) {
            src = (const char *)entries[id];
            len = lens[id];
        } else {
            special_name(&t->sp, id, name, sizeof name);
            len = strlen(name);
        }
        t->bytes[id] = malloc(len + 1);
        if (!t->bytes[id]) goto oom;
        if (len) memcpy(t->bytes[id], src, len);
        t->bytes[id][len] = 0;
        t->lens[id] = (int)len;
    }
    repair_byte_tokens(t, count);
    if (build_hash(t, count < t->sp.eot ? count : t->sp.eot)) goto oom;

    int *ids = NULL, n = 0;
    int err = tokenizer_encode(t, " ", &ids, &n);
    t->blank = err == 0 && n > 0 ? ids[0] : -1;
    free(ids);
    if (err == DI_ENOMEM || build_non_speech(t)) goto oom;
    return 0;
oom:
    tokenizer_free(t);
    return di_fail(msg, cap, DI_ENOMEM, "out of memory for a %d-token vocabulary", n_vocab);
}

/* ---- Public wrappers ----------------------------------------------------- */

const WhisperSpecials *whisper_specials(const WhisperModel *model) {
    return model ? &model->tok.sp : NULL;
}

const char *whisper_token_bytes(const WhisperModel *model, int id, int *len) {
    if (len) *len = 0;
    if (!model || !model->tok.bytes || id < 0 || id >= model->tok.n_vocab) return NULL;
    if (len) *len = model->tok.lens[id];
    return model->tok.bytes[id];
}

char *whisper_detokenize(const WhisperModel *model, const int *ids, int n) {
    if (!model || !model->tok.bytes || (!ids && n > 0)) return NULL;
    const Tokenizer *t = &model->tok;
    size_t raw_len = 0;
    for (int i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < t->sp.eot && ids[i] < t->n_vocab)
            raw_len += (size_t)t->lens[ids[i]];
    uint8_t *raw = malloc(raw_len + 1);
    /* Each invalid byte grows to at most the 3 bytes of U+FFFD. */
    char *text = raw_len < SIZE_MAX / 4 ? malloc(3 * raw_len + 1) : NULL;
    if (!raw || !text) {
        free(raw);
        free(text);
        return NULL;
    }
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->sp.eot || ids[i] >= t->n_vocab) continue;
        memcpy(raw + k, t->bytes[ids[i]], (size_t)t->lens[ids[i]]);
        k += (size_t)t->lens[ids[i]];
    }
    size_t o = 0;
    for (size_t i = 0; i < raw_len;) {
        int bad;
        int len = utf8_seq(raw + i, raw_len - i, &bad);
        if (len > 0) {
            memcpy(text + o, raw + i, (size_t)len);
            o += (size_t)len;
            i += (size_t)len;
        } else {
            memcpy(text + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += (size_t)bad;
        }
    }
    text[o] = 0;
    free(raw);
    return text;
}

int whisper_tokenize(const WhisperModel *model, const char *text, int **ids, int *n, char *msg,
                     size_t cap) {
    if (ids) *ids = NULL;
    if (n) *n = 0;
    if (!model || !text || !ids || !n)
        return di_fail(msg, cap, DI_EINVAL, "whisper_tokenize: missing argument");
    int err = tokenizer_encode(&model->tok, text, ids, n);
    switch (err) {
    case 0:
        return 0;
    case DI_EUNSUPPORTED:
        return di_fail(msg, cap, err,
                       "the model's vocabulary cannot encode every byte of the text");
    case DI_ENOMEM:
        return di_fail(msg, cap, err, "out of memory while tokenizing");
    default:
        return di_fail(msg, cap, err, "tokenizing failed: %s", di_strerror(err));
    }
}
