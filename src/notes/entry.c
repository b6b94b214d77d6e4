/*
 * entry: the diary entry every note generator produces. Its JSON Schema,
 * a validator for the strict schema subset OpenAI's structured outputs use,
 * the readable markdown form, and the entry's date.
 */
#include "core/core.h"
#include "notes/notes.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Schema -------------------------------------------------------------- */

/* An object schema in the strict subset: every property required and no
 * others allowed. `props` is a NULL-terminated list of (name, schema)
 * pairs; the schema references are stolen. */
static json_t *strict_object(const char *name, ...) {
    json_t *obj = json_object(), *props = json_object(), *required = json_array();
    va_list ap;
    va_start(ap, name);
    for (; name; name = va_arg(ap, const char *)) {
        json_object_set_new(props, name, va_arg(ap, json_t *));
        json_array_append_new(required, json_string(name));
    }
    va_end(ap);
    json_object_set_new(obj, "type", json_string("object"));
    json_object_set_new(obj, "properties", props);
    json_object_set_new(obj, "required", required);
    json_object_set_new(obj, "additionalProperties", json_false());
    return obj;
}

static json_t *typed(const char *type, const char *description) {
    json_t *s = json_pack("{s:s}", "type", type);
    if (s && description) json_object_set_new(s, "description", json_string(description));
    return s;
}

static json_t *string_list(const char *description) {
    json_t *s = typed("array", description);
    if (s) json_object_set_new(s, "items", typed("string", NULL));
    return s;
}

json_t *notes_schema(void) {
    json_t *intensity = typed("integer", "How strong the mood is, 1 (faint) to 10 (intense)");
    json_object_set_new(intensity, "minimum", json_integer(1));
    json_object_set_new(intensity, "maximum", json_integer(10));
    json_t *valence = typed("number", "-1 (very negative) to 1 (very positive)");
    json_object_set_new(valence, "minimum", json_integer(-1));
    json_object_set_new(valence, "maximum", json_integer(1));
    json_t *mood = strict_object("label", typed("string", "One or two words, e.g. content"),
                                 "intensity", intensity, "valence", valence, NULL);

    json_t *due = json_pack("{s:[s,s],s:s}", "type", "string", "null", "description",
                            "YYYY-MM-DD when the speaker gave a day, else null");
    json_t *item = strict_object("task", typed("string", NULL), "due", due, NULL);
    json_t *actions = typed("array", "Things the speaker means to do");
    json_object_set_new(actions, "items", item);

    /* No "pattern" on date: strict mode rejects it in places, and
     * notes_validate checks the format itself. */
    return strict_object("date", typed("string", "The recording's day, YYYY-MM-DD"), "title",
                         typed("string", "A short title"), "mood", mood, "summary",
                         typed("string", "A few sentences in the first person"), "key_events",
                         string_list("What happened"), "reflections",
                         typed("string", "The speaker's thoughts and feelings, first person"),
                         "people", string_list("People mentioned by name"), "places",
                         string_list("Places mentioned"), "action_items", actions, "tags",
                         string_list("A few lowercase topic words"), "language",
                         typed("string", "ISO 639-1 code of the transcript"), NULL);
}

/* ---- Validator ----------------------------------------------------------- */

/* The path of the value being checked, grown and shrunk as the validator
 * walks down: "action_items[2].due". */
typedef struct {
    char buf[512];
    size_t len;
} Path;

static size_t path_push(Path *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t path_push(Path *p, const char *fmt, ...) {
    size_t old = p->len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p->buf + old, sizeof p->buf - old, fmt, ap);
    va_end(ap);
    if (n > 0) p->len = old + (size_t)n < sizeof p->buf ? old + (size_t)n : sizeof p->buf - 1;
    return old;
}

static void path_pop(Path *p, size_t old) {
    p->len = old;
    p->buf[old] = 0;
}

static const char *path_name(const Path *p) {
    return p->len ? p->buf : "(root)";
}

/* Whether v is of JSON Schema type `type`. An integral real (7.0) is an
 * integer, as JSON Schema counts mathematical values, not spellings. */
static int is_type(const json_t *v, const char *type) {
    if (!strcmp(type, "object")) return json_is_object(v);
    if (!strcmp(type, "array")) return json_is_array(v);
    if (!strcmp(type, "string")) return json_is_string(v);
    if (!strcmp(type, "number")) return json_is_number(v);
    if (!strcmp(type, "boolean")) return json_is_boolean(v);
    if (!strcmp(type, "null")) return json_is_null(v);
    if (!strcmp(type, "integer")) {
        if (json_is_integer(v)) return 1;
        double x = json_is_real(v) ? json_real_value(v) : NAN;
        return isfinite(x) && x == floor(x) && fabs(x) < 9007199254740992.0;
    }
    return 0;
}

static const char *type_of(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    default:
        return "null";
    }
}

/* "string or null" from a type or list of types. */
static void describe_types(const json_t *type, char *out, size_t cap) {
    out[0] = 0;
    if (json_is_string(type)) {
        snprintf(out, cap, "%s", json_string_value(type));
        return;
    }
    size_t i, n = json_array_size(type), used = 0;
    json_t *t;
    json_array_foreach(type, i, t) {
        const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
        int w = snprintf(out + used, cap - used, "%s%s", sep,
                         json_is_string(t) ? json_string_value(t) : "?");
        if (w < 0 || (size_t)w >= cap - used) break;
        used += (size_t)w;
    }
}

static int check_type(const json_t *v, const json_t *type, const Path *p, char *msg, size_t cap) {
    if (!type) return 0;
    int ok = 0;
    if (json_is_string(type)) {
        ok = is_type(v, json_string_value(type));
    } else if (json_is_array(type)) {
        size_t i;
        json_t *t;
        json_array_foreach(type, i, t) ok =
            ok || (json_is_string(t) && is_type(v, json_string_value(t)));
    } else {
        return di_fail(msg, cap, DI_EINVAL, "%s: schema has a malformed \"type\"", path_name(p));
    }
    if (ok) return 0;
    char want[128];
    describe_types(type, want, sizeof want);
    return di_fail(msg, cap, DI_EFORMAT, "%s: expected %s, got %s", path_name(p), want, type_of(v));
}

static void format_number(const json_t *v, char *out, size_t cap) {
    if (json_is_integer(v))
        snprintf(out, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else
        snprintf(out, cap, "%g", json_number_value(v));
}

static int check_bounds(const json_t *v, const json_t *schema, const Path *p, char *msg,
                        size_t cap) {
    if (!json_is_number(v)) return 0;
    const json_t *lo = json_object_get(schema, "minimum"), *hi = json_object_get(schema, "maximum");
    double x = json_number_value(v);
    char got[40], lim[40];
    format_number(v, got, sizeof got);
    if (json_is_number(lo) && !(x >= json_number_value(lo))) {
        format_number(lo, lim, sizeof lim);
        return di_fail(msg, cap, DI_EFORMAT, "%s: %s is below %s", path_name(p), got, lim);
    }
    if (json_is_number(hi) && !(x <= json_number_value(hi))) {
        format_number(hi, lim, sizeof lim);
        return di_fail(msg, cap, DI_EFORMAT, "%s: %s is above %s", path_name(p), got, lim);
    }
    return 0;
}

static int check_enum(const json_t *v, const json_t *allowed, const Path *p, char *msg,
                      size_t cap) {
    if (!allowed) return 0;
    size_t i;
    json_t *a;
    json_array_foreach(allowed, i, a) if (json_equal((json_t *)v, a)) return 0;
    return di_fail(msg, cap, DI_EFORMAT, "%s: value is not one of the allowed values",
                   path_name(p));
}

static int validate_at(const json_t *v, const json_t *schema, Path *p, char *msg, size_t cap);

static int check_object(const json_t *v, const json_t *schema, Path *p, char *msg, size_t cap) {
    if (!json_is_object(v)) return 0;
    const json_t *props = json_object_get(schema, "properties");
    const json_t *required = json_object_get(schema, "required");
    size_t i;
    json_t *name;
    json_array_foreach(required, i, name) {
        const char *key = json_string_value(name);
        if (key && !json_object_get(v, key))
            return di_fail(msg, cap, DI_EFORMAT, "%s: missing key \"%s\"", path_name(p), key);
    }
    int closed = json_is_false(json_object_get(schema, "additionalProperties"));
    const char *key;
    json_t *child;
    json_object_foreach((json_t *)v, key, child) {
        const json_t *sub = json_object_get(props, key);
        if (!sub && closed)
            return di_fail(msg, cap, DI_EFORMAT, "%s: unexpected key \"%s\"", path_name(p), key);
        if (!sub) continue;
        size_t mark = path_push(p, p->len ? ".%s" : "%s", key);
        int rc = validate_at(child, sub, p, msg, cap);
        path_pop(p, mark);
        if (rc) return rc;
    }
    return 0;
}

static int check_items(const json_t *v, const json_t *schema, Path *p, char *msg, size_t cap) {
    const json_t *items = json_object_get(schema, "items");
    if (!json_is_array(v) || !items) return 0;
    size_t i;
    json_t *child;
    json_array_foreach(v, i, child) {
        size_t mark = path_push(p, "[%zu]", i);
        int rc = validate_at(child, items, p, msg, cap);
        path_pop(p, mark);
        if (rc) return rc;
    }
    return 0;
}

static int validate_at(const json_t *v, const json_t *schema, Path *p, char *msg, size_t cap) {
    if (!json_is_object(schema))
        return di_fail(msg, cap, DI_EINVAL, "%s: schema is not an object", path_name(p));
    int rc = check_type(v, json_object_get(schema, "type"), p, msg, cap);
    if (!rc) rc = check_enum(v, json_object_get(schema, "enum"), p, msg, cap);
    if (!rc) rc = check_bounds(v, schema, p, msg, cap);
    if (!rc) rc = check_object(v, schema, p, msg, cap);
    if (!rc) rc = check_items(v, schema, p, msg, cap);
    return rc;
}

int notes_validate_schema(const json_t *value, const json_t *schema, char *msg, size_t cap) {
    if (!value || !schema) return di_fail(msg, cap, DI_EINVAL, "no value or schema to check");
    Path p = {.len = 0};
    p.buf[0] = 0;
    return validate_at(value, schema, &p, msg, cap);
}

/* ---- Dates --------------------------------------------------------------- */

static int is_leap(int64_t y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m) {
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Whether s is exactly "YYYY-MM-DD" naming a day that exists. */
static int valid_date(const char *s) {
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-') return 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)s[i])) return 0;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    return y >= 1 && m >= 1 && m <= 12 && d >= 1 && d <= days_in_month(y, m);
}

/* Civil date of a day count since 1970-01-01, for any sign, by counting
 * whole 400-year eras (146097 days each) so no time.h or TZ is involved. */
static void civil_from_days(int64_t days, int64_t *y, int *m, int *d) {
    int64_t z = days + 719468; /* days since 0000-03-01 */
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;                                      /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* from March 1 */
    int64_t mp = (5 * doy + 2) / 153;                                    /* March = 0 */
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* Seconds east of UTC for "UTC", "Z", "+02:00", "-0530", "+2", "UTC+01:00"
 * and the like; -1 with *ok = 0 for anything else. */
static int64_t fixed_offset(const char *tz, int *ok) {
    *ok = 1;
    if (!tz || !*tz) return 0;
    if (!strncmp(tz, "UTC", 3) || !strncmp(tz, "GMT", 3))
        tz += 3;
    else if (!strcmp(tz, "Z") || !strcmp(tz, "Etc/UTC") || !strcmp(tz, "Etc/GMT"))
        return 0;
    if (!*tz) return 0;
    int sign = *tz == '+' ? 1 : *tz == '-' ? -1 : 0;
    const char *s = tz + 1;
    int digits[4], n = 0;
    for (; *s && n < 4; s++) {
        if (isdigit((unsigned char)*s))
            digits[n++] = *s - '0';
        else if (!(*s == ':' && n == 2))
            break;
    }
    if (!sign || *s || n == 3 || n == 0) {
        *ok = 0;
        return 0;
    }
    int hours = n == 1 ? digits[0] : digits[0] * 10 + digits[1];
    int minutes = n == 4 ? digits[2] * 10 + digits[3] : 0;
    if (hours > 14 || minutes > 59) {
        *ok = 0;
        return 0;
    }
    return sign * (int64_t)(hours * 3600 + minutes * 60);
}

/* Day count since 1970-01-01 of a civil date; the inverse of the above. */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int64_t floor_div(int64_t a, int64_t b) {
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* ---- Named zones ----------------------------------------------------------
 * An IANA name ("Europe/Zurich") is looked up in the system's compiled
 * zoneinfo files (RFC 8536, "TZif") by reading them here rather than by
 * setting TZ and calling localtime_r: TZ is process-wide, and other threads
 * (the logger, other notes) read the environment at any moment. Times after
 * a file's last transition follow the POSIX TZ rule in its footer, e.g.
 * "CET-1CEST,M3.5.0,M10.5.0/3". A zone that cannot be read counts as UTC.
 */

/* One end of daylight time: Mm.w.d (kind 'M'), Jn (1..365, no Feb 29,
 * kind 'J') or n (0..365, kind 'N'), and the local time of day it flips. */
typedef struct {
    char kind;
    int month, week, day;
    int64_t time;
} TzRule;

typedef struct {
    int64_t std_off, dst_off; /* seconds east of UTC */
    int has_dst;
    TzRule start, end;
} PosixTz;

static int parse_num(const char **s, int max, int *out) {
    if (!isdigit((unsigned char)**s)) return -1;
    long v = 0;
    while (isdigit((unsigned char)**s) && v <= max)
        v = v * 10 + (*(*s)++ - '0');
    if (v > max) return -1;
    *out = (int)v;
    return 0;
}

/* [+-]hh[:mm[:ss]] in seconds. */
static int parse_hms(const char **s, int64_t *out) {
    int sign = **s == '-' ? -1 : 1, h, m = 0, sec = 0;
    if (**s == '+' || **s == '-') (*s)++;
    if (parse_num(s, 167, &h)) return -1;
    if (**s == ':' && ((*s)++, parse_num(s, 59, &m))) return -1;
    if (**s == ':' && ((*s)++, parse_num(s, 59, &sec))) return -1;
    *out = sign * ((int64_t)h * 3600 + m * 60 + sec);
    return 0;
}

static int parse_tz_name(const char **s) {
    const char *p = *s;
    if (*p == '<') {
        while (*p && *p != '>')
            p++;
        if (*p != '>') return -1;
        *s = p + 1;
        return 0;
    }
    while (isalpha((unsigned char)*p))
        p++;
    if (p - *s < 3) return -1;
    *s = p;
    return 0;
}

static int parse_tz_rule(const char **s, TzRule *r) {
    *r = (TzRule){.time = 7200};
    if (**s == 'M') {
        r->kind = 'M';
        (*s)++;
        if (parse_num(s, 12, &r->month) || r->month < 1 || *(*s)++ != '.' ||
            parse_num(s, 5, &r->week) || r->week < 1 || *(*s)++ != '.' || parse_num(s, 6, &r->day))
            return -1;
    } else {
        r->kind = **s == 'J' ? 'J' : 'N';
        if (**s == 'J') (*s)++;
        if (parse_num(s, 365, &r->day) || (r->kind == 'J' && r->day < 1)) return -1;
    }
    if (**s == '/') {
        (*s)++;
        return parse_hms(s, &r->time);
    }
    return 0;
}

/* POSIX offsets count hours west of UTC; PosixTz keeps seconds east. */
static int parse_posix_tz(const char *s, PosixTz *tz) {
    int64_t off;
    *tz = (PosixTz){0};
    if (parse_tz_name(&s) || parse_hms(&s, &off)) return -1;
    tz->std_off = tz->dst_off = -off;
    if (!*s) return 0;
    if (parse_tz_name(&s)) return -1;
    tz->has_dst = 1;
    tz->dst_off = tz->std_off + 3600;
    if (*s && *s != ',') {
        if (parse_hms(&s, &off)) return -1;
        tz->dst_off = -off;
    }
    if (!*s) s = ",M3.2.0,M11.1.0"; /* the customary default rule */
    if (*s++ != ',' || parse_tz_rule(&s, &tz->start) || *s++ != ',' ||
        parse_tz_rule(&s, &tz->end) || *s)
        return -1;
    return 0;
}

/* Day number (since 1970) on which rule r falls in year y. */
static int64_t rule_day(const TzRule *r, int64_t y) {
    if (r->kind == 'J') return days_from_civil(y, 1, 1) + r->day - 1 + (is_leap(y) && r->day >= 60);
    if (r->kind == 'N') return days_from_civil(y, 1, 1) + r->day;
    int64_t first = days_from_civil(y, r->month, 1);
    int weekday = (int)((first % 7 + 11) % 7); /* 1970-01-01 was a Thursday (4) */
    int64_t day = first + (r->day - weekday + 7) % 7 + (r->week - 1) * 7;
    while (day >= first + days_in_month(y, r->month))
        day -= 7;
    return day;
}

static int64_t posix_offset(const PosixTz *tz, int64_t t) {
    if (!tz->has_dst) return tz->std_off;
    int64_t y;
    int m, d;
    civil_from_days(floor_div(t + tz->std_off, 86400), &y, &m, &d);
    /* The start is given in standard time, the end in daylight time. */
    int64_t start = rule_day(&tz->start, y) * 86400 + tz->start.time - tz->std_off;
    int64_t end = rule_day(&tz->end, y) * 86400 + tz->end.time - tz->dst_off;
    int dst = start < end ? t >= start && t < end : !(t >= end && t < start);
    return dst ? tz->dst_off : tz->std_off;
}

static uint64_t be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* UTC offset at t from a TZif file's bytes; -1 if they do not parse. */
static int tzif_offset(const uint8_t *data, size_t size, int64_t t, int64_t *off) {
    const uint8_t *p = data, *end = data + size;
    int tsize = 4;
    for (int pass = 0;; pass++) {
        if (end - p < 44 || memcmp(p, "TZif", 4)) return -1;
        uint64_t isut = be(p + 20, 4), isstd = be(p + 24, 4), leap = be(p + 28, 4);
        uint64_t times = be(p + 32, 4), types = be(p + 36, 4), chars = be(p + 40, 4);
        uint64_t block =
            times * (tsize + 1) + types * 6 + chars + leap * (tsize + 4) + isstd + isut;
        if (types == 0 || block > (uint64_t)(end - p - 44)) return -1;
        if (pass == 0 && p[4] >= '2') { /* skip to the 64-bit copy */
            p += 44 + block;
            tsize = 8;
            continue;
        }
        const uint8_t *tt = p + 44, *idx = tt + times * tsize, *info = idx + times;
        uint64_t i = 0;
        while (i < times) { /* the last transition at or before t */
            int64_t at = tsize == 8 ? (int64_t)be(tt + i * 8, 8) : (int32_t)be(tt + i * 4, 4);
            if (at > t) break;
            i++;
        }
        const char *footer = (const char *)(p + 44 + block);
        char rule[128];
        size_t flen = (size_t)(end - (const uint8_t *)footer);
        if (i == times && tsize == 8 && flen > 2 && footer[0] == '\n' && flen - 2 < sizeof rule) {
            memcpy(rule, footer + 1, flen - 2);
            rule[flen - 2] = 0;
            PosixTz tz;
            if (footer[flen - 1] == '\n' && rule[0] && !parse_posix_tz(rule, &tz)) {
                *off = posix_offset(&tz, t);
                return 0;
            }
        }
        uint64_t type = i == 0 ? 0 : idx[i - 1];
        if (type >= types) return -1;
        *off = (int32_t)be(info + type * 6, 4);
        return 0;
    }
}

/* Only plain zone names ("Europe/Zurich", "Etc/GMT+3"), never a path that
 * climbs out of the zoneinfo directory. */
static int plausible_zone(const char *tz) {
    if (!tz[0] || tz[0] == '/' || strstr(tz, "..") || strlen(tz) > 64) return 0;
    for (const char *p = tz; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("/_+-", *p)) return 0;
    return 1;
}

static int named_offset(const char *tz, int64_t t, int64_t *off) {
    if (!plausible_zone(tz)) return -1;
    const char *dir = getenv("TZDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", tz);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t cap = 1 << 16;
    uint8_t *data = malloc(cap);
    size_t n = data ? fread(data, 1, cap, f) : 0;
    fclose(f);
    int rc = n > 0 && n < cap ? tzif_offset(data, n, t, off) : -1;
    free(data);
    return rc;
}

/* Seconds east of UTC in zone tz at t: fixed offsets, then named zones,
 * then UTC (with a warning) for anything unknown. */
static int64_t zone_offset(const char *tz, int64_t t) {
    int ok;
    int64_t off = fixed_offset(tz, &ok);
    if (ok) return off;
    if (!named_offset(tz, t, &off)) return off;
    di_log("warn", "unknown timezone \"%s\"; dating the entry in UTC", tz);
    return 0;
}

void notes_request_date(const NoteRequest *req, char *buf, size_t cap) {
    if (!buf || !cap) return;
    buf[0] = 0;
    if (!req) return;
    int64_t t = req->recorded_at >= 0 ? req->recorded_at : req->uploaded_at;
    /* Far beyond any real recording, but it keeps the sums below exact. */
    const int64_t limit = (int64_t)1 << 50;
    t = t < -limit ? -limit : t > limit ? limit : t;
    int64_t y;
    int m, d;
    civil_from_days(floor_div(t + zone_offset(req->timezone, t), 86400), &y, &m, &d);
    snprintf(buf, cap, "%04" PRId64 "-%02d-%02d", y, m, d);
}

/* ---- Entries ------------------------------------------------------------- */

json_t *notes_empty_entry(const char *date, const char *language, const char *generator) {
    json_t *e =
        json_pack("{s:s, s:s, s:{s:s, s:i, s:f}, s:s, s:[], s:s, s:[], s:[], s:[], s:[], "
                  "s:s}",
                  "date", date ? date : "", "title", "Diary entry", "mood", "label", "neutral",
                  "intensity", 1, "valence", 0.0, "summary", "", "key_events", "reflections", "",
                  "people", "places", "action_items", "tags", "language", language ? language : "");
    if (e && generator) json_object_set_new(e, "generator", json_string(generator));
    return e;
}

int notes_validate(const json_t *entry, char *msg, size_t cap) {
    if (!json_is_object(entry)) return di_fail(msg, cap, DI_EFORMAT, "the entry is not an object");
    /* The schema is what a model is asked for; "generator" is diarist's own
     * key, so it is checked apart on a shallow copy without it. */
    json_t *copy = json_copy((json_t *)entry);
    json_t *schema = notes_schema();
    if (!copy || !schema) {
        json_decref(copy);
        json_decref(schema);
        return di_fail(msg, cap, DI_ENOMEM, "out of memory validating the entry");
    }
    json_object_del(copy, "generator");
    int rc = notes_validate_schema(copy, schema, msg, cap);
    json_decref(copy);
    json_decref(schema);
    if (rc) return rc;
    const char *gen = json_string_value(json_object_get(entry, "generator"));
    if (!gen || !*gen) return di_fail(msg, cap, DI_EFORMAT, "generator: missing or empty");
    const char *date = json_string_value(json_object_get(entry, "date"));
    if (!valid_date(date))
        return di_fail(msg, cap, DI_EFORMAT, "date: \"%s\" is not a YYYY-MM-DD calendar date",
                       date);
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(entry, "action_items"), i, item) {
        const char *due = json_string_value(json_object_get(item, "due"));
        if (due && !valid_date(due))
            return di_fail(msg, cap, DI_EFORMAT,
                           "action_items[%zu].due: \"%s\" is not a YYYY-MM-DD calendar date", i,
                           due);
    }
    return 0;
}

/* ---- Markdown ------------------------------------------------------------ */

/* A growing string; after a failed allocation it stays failed and empty. */
typedef struct {
    char *s;
    size_t len, cap;
    int failed;
} Buf;

static void put_n(Buf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->s, cap);
        if (!grown) {
            b->failed = 1;
            return;
        }
        b->s = grown;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void put(Buf *b, const char *s) {
    put_n(b, s, strlen(s));
}

/* Text that must stay on one line (a title, a bullet): line breaks and
 * tabs become spaces so a transcript cannot start a heading of its own. */
static void put_inline(Buf *b, const char *s) {
    for (const char *p = s; *p; p++)
        put_n(b, (*p == '\n' || *p == '\r' || *p == '\t') ? " " : p, 1);
}

static void put_text_or_none(Buf *b, const char *s) {
    put(b, s && *s ? s : "_None_");
    put(b, "\n");
}

static void put_heading(Buf *b, const char *title) {
    put(b, "\n## ");
    put(b, title);
    put(b, "\n\n");
}

static void put_bullets(Buf *b, const json_t *list) {
    size_t i;
    json_t *v;
    int any = 0;
    json_array_foreach(list, i, v) {
        if (!json_is_string(v)) continue;
        put(b, "- ");
        put_inline(b, json_string_value(v));
        put(b, "\n");
        any = 1;
    }
    if (!any) put(b, "_None_\n");
}

static void put_mood(Buf *b, const json_t *mood) {
    const char *label = json_string_value(json_object_get(mood, "label"));
    char line[96];
    snprintf(line, sizeof line, " (intensity %d/10, valence %+.2f)\n",
             (int)json_number_value(json_object_get(mood, "intensity")),
             json_number_value(json_object_get(mood, "valence")));
    put_inline(b, label && *label ? label : "unknown");
    put(b, line);
}

static void put_actions(Buf *b, const json_t *items) {
    size_t i;
    json_t *item;
    int any = 0;
    json_array_foreach(items, i, item) {
        const char *task = json_string_value(json_object_get(item, "task"));
        const char *due = json_string_value(json_object_get(item, "due"));
        if (!task) continue;
        put(b, "- [ ] ");
        put_inline(b, task);
        if (due) {
            put(b, " (due ");
            put_inline(b, due);
            put(b, ")");
        }
        put(b, "\n");
        any = 1;
    }
    if (!any) put(b, "_None_\n");
}

/* Tags as "#word": spaces inside a tag become '-' so each stays one tag. */
static void put_tags(Buf *b, const json_t *tags) {
    size_t i;
    json_t *v;
    int any = 0;
    json_array_foreach(tags, i, v) {
        const char *tag = json_string_value(v);
        if (!tag || !*tag) continue;
        put(b, any ? " #" : "#");
        for (const char *p = tag; *p; p++)
            put_n(b, isspace((unsigned char)*p) ? "-" : p, 1);
        any = 1;
    }
    put(b, any ? "\n" : "_None_\n");
}

char *notes_render_markdown(const json_t *entry) {
    if (!json_is_object(entry)) return NULL;
    const char *title = json_string_value(json_object_get(entry, "title"));
    const char *date = json_string_value(json_object_get(entry, "date"));
    const char *gen = json_string_value(json_object_get(entry, "generator"));
    Buf b = {0};
    put(&b, "# ");
    put_inline(&b, title && *title ? title : "Diary entry");
    put(&b, "\n\n**Date:** ");
    put_inline(&b, date ? date : "unknown");
    put(&b, "\n");
    put_heading(&b, "Mood");
    put_mood(&b, json_object_get(entry, "mood"));
    put_heading(&b, "Key Events");
    put_bullets(&b, json_object_get(entry, "key_events"));
    put_heading(&b, "Reflections");
    put_text_or_none(&b, json_string_value(json_object_get(entry, "reflections")));
    put_heading(&b, "Summary");
    put_text_or_none(&b, json_string_value(json_object_get(entry, "summary")));
    put_heading(&b, "People");
    put_bullets(&b, json_object_get(entry, "people"));
    put_heading(&b, "Places");
    put_bullets(&b, json_object_get(entry, "places"));
    put_heading(&b, "Action Items");
    put_actions(&b, json_object_get(entry, "action_items"));
    put_heading(&b, "Tags");
    put_tags(&b, json_object_get(entry, "tags"));
    put(&b, "\n_Generated by ");
    put_inline(&b, gen && *gen ? gen : "unknown");
    put(&b, "_\n");
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    return b.s;
}
