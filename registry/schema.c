/*
 * schema.c - Table Schema documents: parse and validate them, turn CSV cells
 * into typed values under a field's constraints, match header spellings, and
 * judge whether a new version of a schema is a compatible evolution.
 *
 * schema_convert() runs for every cell of every published file, so it does
 * one pass over the cell per check and allocates nothing (but a copy of a
 * cell longer than 255 bytes that must match a pattern); messages are only
 * built on the failure path.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "mu_err.h"
#include "schema.h"

/* Generated at build time from the registry/schemas JSON files (embed_schemas.py). */
extern const char *const schema_builtin_table[];
extern const size_t schema_builtin_table_len;

#define QUOTE_MAX 64               /* bytes of a cell quoted in a message */
#define NUM_MAX 128                /* longest number text we parse */
#define SCHEMA_FILE_MAX (4u << 20) /* a schema file larger than this is hostile */
#define PATTERN_MAX 1024           /* bytes of a pattern */
#define PATTERN_COST_MAX 10000     /* regex positions once repetitions are expanded */

static const char *const type_names[] = {
	[SCHEMA_STRING] = "string", [SCHEMA_INTEGER] = "integer", [SCHEMA_NUMBER] = "number",
	[SCHEMA_BOOLEAN] = "boolean", [SCHEMA_DATE] = "date", [SCHEMA_DATETIME] = "datetime",
	[SCHEMA_TIME] = "time", [SCHEMA_YEAR] = "year", [SCHEMA_GEOPOINT] = "geopoint",
};
#define NTYPES (sizeof(type_names) / sizeof(type_names[0]))

/* Frictionless defaults. "true"/"false" are always accepted besides a
 * field's own spellings, because schema_format() writes them. */
static const char *const default_true[] = { "true", "True", "TRUE", "1" };
static const char *const default_false[] = { "false", "False", "FALSE", "0" };

const char *schema_type_name(enum schema_type t)
{
	return (unsigned)t < NTYPES ? type_names[t] : "unknown";
}

size_t schema_builtin_count(void)
{
	return schema_builtin_table_len;
}

const char *schema_builtin_json(size_t i)
{
	return i < schema_builtin_table_len ? schema_builtin_table[i] : NULL;
}

/* ---- numbers in the C locale, whatever the program's locale is ---- */

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale_obj;

static void c_locale_init(void)
{
	c_locale_obj = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

static locale_t c_locale(void)
{
	pthread_once(&c_locale_once, c_locale_init);
	return c_locale_obj;
}

/* Shortest "%.Ng" that reads back as the same double. */
static size_t fmt_double(double d, char *out, size_t cap)
{
	locale_t c = c_locale(), old = c != (locale_t)0 ? uselocale(c) : (locale_t)0;
	char tmp[40];
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	if (old != (locale_t)0)
		uselocale(old);
	return (size_t)snprintf(out, cap, "%s", tmp);
}

/* ---- messages ---- */

__attribute__((format(printf, 3, 4)))
static int reject(char *why, size_t whylen, const char *fmt, ...)
{
	if (why != NULL && whylen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return MU_E_SCHEMA;
}

__attribute__((format(printf, 2, 3)))
static int fail(char **why, const char *fmt, ...)
{
	if (why != NULL) {
		va_list ap;
		va_start(ap, fmt);
		free(*why);
		if (vasprintf(why, fmt, ap) < 0)
			*why = NULL;
		va_end(ap);
	}
	return MU_E_SCHEMA;
}

/* A cell as it appears in a message: cut at QUOTE_MAX bytes on a character
 * boundary, control characters (newlines of multi-line cells) as spaces. */
static const char *quote(char *dst, size_t cap, const char *s, size_t len)
{
	size_t n = len, o = 0;

	if (n > QUOTE_MAX) {
		n = QUOTE_MAX;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	for (size_t i = 0; i < n && o + 4 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		dst[o++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	if (n < len && o + 4 < cap) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
	return dst;
}

/* `"a", "b", ""` into dst, cut with "..." when it does not fit. */
static const char *list_values(char *dst, size_t cap, char *const *v, size_t n)
{
	size_t o = 0;

	dst[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		int w = snprintf(dst + o, cap - o, "%s\"%s\"", i > 0 ? ", " : "", v[i]);
		if (w < 0 || (size_t)w >= cap - o) {
			snprintf(dst + (o < cap - 4 ? o : cap - 4), 4, "...");
			break;
		}
		o += (size_t)w;
	}
	return dst;
}

/* ---- cell syntax ---- */

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Decimal integer with an optional sign: 0, -1 not an integer, -2 overflow. */
static int parse_int(const char *s, size_t len, int64_t *out)
{
	size_t i = 0;
	int neg = 0;
	uint64_t v = 0, limit = INT64_MAX;

	if (len > 0 && (s[0] == '+' || s[0] == '-'))
		neg = s[i++] == '-';
	if (i == len)
		return -1;
	limit += (uint64_t)neg;
	for (; i < len; i++) {
		if (!is_digit(s[i]))
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (limit - d) / 10)
			return -2;
		v = v * 10 + d;
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

/* [+-]digits[.digits][e[+-]digits]: the only spellings handed to strtod, so
 * "nan", "inf", hex floats and locale decimal commas never get through.
 * 0, -1 not a number, -2 out of range or too long. */
static int parse_num(const char *s, size_t len, double *out)
{
	char buf[NUM_MAX];
	size_t i = 0, digits = 0;
	locale_t c;

	if (i < len && (s[i] == '+' || s[i] == '-'))
		i++;
	for (; i < len && is_digit(s[i]); i++)
		digits++;
	if (i < len && s[i] == '.')
		for (i++; i < len && is_digit(s[i]); i++)
			digits++;
	if (digits == 0)
		return -1;
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		size_t e = 0;
		if (++i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		for (; i < len && is_digit(s[i]); i++)
			e++;
		if (e == 0)
			return -1;
	}
	if (i != len)
		return -1;
	if (len >= sizeof(buf))
		return -2;
	memcpy(buf, s, len);
	buf[len] = '\0';
	c = c_locale();
	*out = c != (locale_t)0 ? strtod_l(buf, NULL, c) : strtod(buf, NULL);
	return isinf(*out) ? -2 : 0;
}

/* A cursor over a cell for the date and time readers. */
struct scan {
	const char *p, *end;
};

/* Read min..max digits as an int. */
static int scan_digits(struct scan *sc, int min, int max, int *out)
{
	int n = 0, v = 0;
	while (n < max && sc->p < sc->end && is_digit(*sc->p)) {
		v = v * 10 + (*sc->p++ - '0');
		n++;
	}
	*out = v;
	return n >= min;
}

static int scan_char(struct scan *sc, char c)
{
	if (sc->p < sc->end && *sc->p == c) {
		sc->p++;
		return 1;
	}
	return 0;
}

static int days_in_month(int y, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : days[m - 1];
}

/* YYYY-MM-DD or YYYY/M/D (as Japanese files write it); one separator. */
static int scan_date(struct scan *sc, int *y, int *m, int *d)
{
	char sep;

	if (!scan_digits(sc, 4, 4, y) || sc->p >= sc->end)
		return 0;
	sep = *sc->p;
	if ((sep != '-' && sep != '/') || !scan_char(sc, sep))
		return 0;
	return scan_digits(sc, 1, 2, m) && scan_char(sc, sep) && scan_digits(sc, 1, 2, d);
}

/* H:MM or HH:MM[:SS]; seconds default to 0. */
static int scan_time(struct scan *sc, int *h, int *mi, int *s)
{
	*s = 0;
	if (!scan_digits(sc, 1, 2, h) || !scan_char(sc, ':') || !scan_digits(sc, 2, 2, mi))
		return 0;
	return !scan_char(sc, ':') || scan_digits(sc, 2, 2, s);
}

static int time_ok(int h, int mi, int s, int allow24)
{
	return (h < 24 && mi < 60 && s < 60) || (allow24 && h == 24 && mi == 0 && s == 0);
}

/* Date, 'T' or ' ', time, then an optional zone Z, ±HH, ±HHMM or ±HH:MM:
 * dt gets Y M D h m s, zone "Z", "±HH:MM" or "" (local time). */
static int scan_datetime(struct scan *sc, int dt[6], char *zone, size_t zlen)
{
	int zh = 0, zm = 0;

	zone[0] = '\0';
	if (!scan_date(sc, &dt[0], &dt[1], &dt[2]) || !(scan_char(sc, 'T') || scan_char(sc, ' ')) ||
	    !scan_time(sc, &dt[3], &dt[4], &dt[5]) || !time_ok(dt[3], dt[4], dt[5], 0))
		return 0;
	if (scan_char(sc, 'Z')) {
		snprintf(zone, zlen, "Z");
	} else if (sc->p < sc->end && (*sc->p == '+' || *sc->p == '-')) {
		char sign = *sc->p++;
		if (!scan_digits(sc, 2, 2, &zh))
			return 0;
		if ((scan_char(sc, ':') || sc->p < sc->end) && !scan_digits(sc, 2, 2, &zm))
			return 0;
		if (zh > 23 || zm > 59)
			return 0;
		snprintf(zone, zlen, "%c%02d:%02d", sign, zh % 100, zm % 100);
	}
	return sc->p == sc->end;
}

/* Check a scanned date (the cell is s) and say what is wrong with it. */
static int date_ok(int y, int m, int d, const char *s, size_t len, char *why, size_t whylen)
{
	char q[QUOTE_MAX + 8];

	if (m < 1 || m > 12)
		return reject(why, whylen, "\"%s\" is not a date: there is no month %d",
			      quote(q, sizeof(q), s, len), m);
	if (d < 1 || d > days_in_month(y, m))
		return reject(why, whylen, "\"%s\" is not a date: %04d-%02d has no day %d",
			      quote(q, sizeof(q), s, len), y, m, d);
	return 0;
}

/* Sanity of UTF-8: no overlong forms, surrogates or code points past U+10FFFF. */
static int utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			n = 1;
			cp = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			n = 2;
			cp = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (len - i <= n)
			return 0;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
			return 0;
		i += n + 1;
	}
	return 1;
}

static size_t utf8_chars(const char *s, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += ((unsigned char)s[i] & 0xC0) != 0x80;
	return n;
}

static int in_list(char *const *v, size_t n, const char *s, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(v[i]) == len && memcmp(v[i], s, len) == 0)
			return 1;
	return 0;
}

/* ---- cells ---- */

/* The type part of schema_convert(): text (not empty) to a typed value. */
static int convert_type(const struct schema_field *f, const char *s, size_t len,
			struct mu_value *out, char *why, size_t whylen)
{
	char q[QUOTE_MAX + 8];
	struct scan sc = { s, s + len };
	int y, m, d, h, mi, sec, rc;

/* The cell for a message, only quoted on the failure path. */
#define Q quote(q, sizeof(q), s, len)
	switch (f->type) {
	case SCHEMA_STRING:
		if (!utf8_valid((const unsigned char *)s, len))
			return reject(why, whylen, "\"%s\" is not valid UTF-8", Q);
		out->kind = MU_VAL_TEXT;
		out->text = s;
		out->len = len;
		return 0;
	case SCHEMA_INTEGER:
		if ((rc = parse_int(s, len, &out->i)) == -2)
			return reject(why, whylen, "\"%s\" is out of range for an integer", Q);
		if (rc < 0)
			return reject(why, whylen, "\"%s\" is not an integer", Q);
		out->kind = MU_VAL_INT;
		return 0;
	case SCHEMA_YEAR:
		if (len > 4 || parse_int(s, len, &out->i) < 0 || !is_digit(s[0]))
			return reject(why, whylen, "\"%s\" is not a year", Q);
		out->kind = MU_VAL_INT;
		return 0;
	case SCHEMA_NUMBER:
		if ((rc = parse_num(s, len, &out->d)) == -2)
			return reject(why, whylen, "\"%s\" is out of range for a number", Q);
		if (rc < 0)
			return reject(why, whylen, "\"%s\" is not a number", Q);
		out->kind = MU_VAL_NUM;
		return 0;
	case SCHEMA_BOOLEAN:
		if (in_list(f->true_values, f->ntrue, s, len) ||
		    (len == 4 && memcmp(s, "true", 4) == 0))
			out->i = 1;
		else if (in_list(f->false_values, f->nfalse, s, len) ||
			 (len == 5 && memcmp(s, "false", 5) == 0))
			out->i = 0;
		else {
			char t[256], fl[256];
			return reject(why, whylen, "\"%s\" is not a boolean (true: %s; false: %s)", Q,
				      list_values(t, sizeof(t), f->true_values, f->ntrue),
				      list_values(fl, sizeof(fl), f->false_values, f->nfalse));
		}
		out->kind = MU_VAL_BOOL;
		return 0;
	case SCHEMA_DATE:
		if (!scan_date(&sc, &y, &m, &d) || sc.p != sc.end)
			return reject(why, whylen, "\"%s\" is not a date (YYYY-MM-DD or YYYY/M/D)", Q);
		if ((rc = date_ok(y, m, d, s, len, why, whylen)) < 0)
			return rc;
		snprintf(out->buf, sizeof(out->buf), "%04d-%02d-%02d", y, m, d);
		break;
	case SCHEMA_DATETIME: {
		int dt[6];
		char zone[16];
		if (!scan_datetime(&sc, dt, zone, sizeof(zone)))
			return reject(why, whylen, "\"%s\" is not a datetime (YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM] "
				      "or YYYY/MM/DD HH:MM[:SS])", Q);
		if ((rc = date_ok(dt[0], dt[1], dt[2], s, len, why, whylen)) < 0)
			return rc;
		/* the scanners read at most 4 and 2 digits; % tells the compiler */
		snprintf(out->buf, sizeof(out->buf), "%04d-%02d-%02dT%02d:%02d:%02d%s",
			 dt[0] % 10000, dt[1] % 100, dt[2] % 100, dt[3] % 100, dt[4] % 100,
			 dt[5] % 100, zone);
		break;
	}
	case SCHEMA_TIME:
		if (!scan_time(&sc, &h, &mi, &sec) || sc.p != sc.end || !time_ok(h, mi, sec, 1))
			return reject(why, whylen, "\"%s\" is not a time (HH:MM[:SS])", Q);
		snprintf(out->buf, sizeof(out->buf), "%02d:%02d:%02d", h, mi, sec);
		break;
	case SCHEMA_GEOPOINT: {
		/* musubi's geopoint is "lat,lon", the order Japanese files use. */
		const char *comma = memchr(s, ',', len), *a = s, *b, *ae, *be = s + len;
		double lat, lon;
		char t1[32], t2[32];
		if (comma == NULL)
			return reject(why, whylen, "\"%s\" is not a geopoint (lat,lon)", Q);
		for (ae = comma; ae > a && ae[-1] == ' '; ae--)
			;
		for (b = comma + 1; b < be && *b == ' '; b++)
			;
		if (parse_num(a, (size_t)(ae - a), &lat) < 0 || parse_num(b, (size_t)(be - b), &lon) < 0)
			return reject(why, whylen, "\"%s\" is not a geopoint (lat,lon)", Q);
		if (lat < -90 || lat > 90 || lon < -180 || lon > 180)
			return reject(why, whylen, "\"%s\" is not a geopoint: latitude must be in "
				      "[-90, 90] and longitude in [-180, 180]", Q);
		fmt_double(lat, t1, sizeof(t1));
		fmt_double(lon, t2, sizeof(t2));
		if ((size_t)snprintf(out->buf, sizeof(out->buf), "%s,%s", t1, t2) >= sizeof(out->buf))
			return reject(why, whylen, "\"%s\" has too many digits for a geopoint", Q);
		break;
	}
	default:
		return reject(why, whylen, "field has an unknown type");
	}
	out->kind = MU_VAL_TEXT;
	out->text = out->buf;
	out->len = strlen(out->buf);
	return 0;
#undef Q
}

/*
 * 0 when the whole cell matches f's pattern, 1 when not, -1 out of memory.
 * REG_STARTEND gives regexec the length (a NUL inside the cell cannot end
 * the match early), but the text need not be NUL-terminated and sanitizers'
 * regexec wrappers read to a NUL: match a terminated copy, on the stack for
 * the short codes patterns are written for.
 */
static int pattern_match(const struct schema_field *f, const char *text, size_t len)
{
	char stack[256], *buf = len < sizeof(stack) ? stack : malloc(len + 1);
	regmatch_t m = { .rm_so = 0, .rm_eo = (regoff_t)len };
	int rc;

	if (buf == NULL)
		return -1;
	memcpy(buf, text, len);
	buf[len] = '\0';
	rc = regexec(&f->pattern_re, buf, 1, &m, REG_STARTEND) != 0;
	if (buf != stack)
		free(buf);
	return rc;
}

int schema_convert(const struct schema_field *f, const char *text, size_t len,
		   struct mu_value *out, char *why, size_t whylen)
{
	char q[QUOTE_MAX + 8];
	int rc;

	out->kind = MU_VAL_NULL;
	out->text = NULL;
	out->len = 0;
	out->i = 0;
	out->d = 0;
	if (len == 0)  /* the one missing value */
		return f->required ? reject(why, whylen, "value is required") : 0;
	if ((rc = convert_type(f, text, len, out, why, whylen)) < 0)
		return rc;

	if (f->pattern != NULL && (rc = pattern_match(f, text, len)) != 0) {
		if (rc < 0)
			return reject(why, whylen, "out of memory");
		return reject(why, whylen, "\"%s\" does not match the pattern %s",
			      quote(q, sizeof(q), text, len), f->pattern);
	}
	if (f->enum_values != NULL) {
		char canon[64];
		const char *v = text;
		size_t vlen = len;
		if (f->type != SCHEMA_STRING) {
			vlen = schema_format(out, canon, sizeof(canon));
			v = canon;
		}
		if (!in_list(f->enum_values, f->nenum, v, vlen)) {
			char list[512];
			return reject(why, whylen, "\"%s\" is not one of the allowed values: %s",
				      quote(q, sizeof(q), text, len),
				      list_values(list, sizeof(list), f->enum_values, f->nenum));
		}
	}
	if (f->has_minimum || f->has_maximum) {
		double v = out->kind == MU_VAL_NUM ? out->d : (double)out->i;
		char bound[40];
		if (f->has_minimum && v < f->minimum) {
			fmt_double(f->minimum, bound, sizeof(bound));
			return reject(why, whylen, "\"%s\" is below the minimum %s",
				      quote(q, sizeof(q), text, len), bound);
		}
		if (f->has_maximum && v > f->maximum) {
			fmt_double(f->maximum, bound, sizeof(bound));
			return reject(why, whylen, "\"%s\" is above the maximum %s",
				      quote(q, sizeof(q), text, len), bound);
		}
	}
	if (f->min_length >= 0 || f->max_length >= 0) {
		size_t n = utf8_chars(text, len);
		if (f->min_length >= 0 && n < (size_t)f->min_length)
			return reject(why, whylen, "\"%s\" is shorter than minLength %ld (%zu characters)",
				      quote(q, sizeof(q), text, len), f->min_length, n);
		if (f->max_length >= 0 && n > (size_t)f->max_length)
			return reject(why, whylen, "\"%s\" is longer than maxLength %ld (%zu characters)",
				      quote(q, sizeof(q), text, len), f->max_length, n);
	}
	return 0;
}

static size_t put(char *out, size_t cap, const char *s, size_t len)
{
	if (cap > 0) {
		size_t n = len < cap ? len : cap - 1;
		memcpy(out, s, n);
		out[n] = '\0';
	}
	return len;
}

size_t schema_format(const struct mu_value *v, char *out, size_t cap)
{
	switch (v->kind) {
	case MU_VAL_TEXT:
		return put(out, cap, v->text, v->len);
	case MU_VAL_INT:
		return (size_t)snprintf(out, cap, "%" PRId64, v->i);
	case MU_VAL_NUM:
		return fmt_double(v->d, out, cap);
	case MU_VAL_BOOL:
		return v->i ? put(out, cap, "true", 4) : put(out, cap, "false", 5);
	case MU_VAL_NULL:
		break;
	}
	return put(out, cap, "", 0);
}

/* ---- header names ---- */

/* A header spelling with spaces trimmed (ASCII, U+3000, NBSP, and a stray
 * BOM) and full-width ASCII U+FF01..U+FF5E folded, read one byte at a time. */
struct norm {
	const unsigned char *p, *end;
};

static size_t space_prefix(const unsigned char *p, const unsigned char *end)
{
	size_t n = (size_t)(end - p);
	if (n >= 1 && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		return 1;
	if (n >= 2 && p[0] == 0xC2 && p[1] == 0xA0)
		return 2;
	if (n >= 3 && ((p[0] == 0xE3 && p[1] == 0x80 && p[2] == 0x80) ||
		       (p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF)))
		return 3;
	return 0;
}

static size_t space_suffix(const unsigned char *p, const unsigned char *end)
{
	for (size_t n = 1; n <= 3 && n <= (size_t)(end - p); n++)
		if (space_prefix(end - n, end) == n)
			return n;
	return 0;
}

static void norm_init(struct norm *it, const char *s, size_t len)
{
	size_t n;
	it->p = (const unsigned char *)s;
	it->end = it->p + len;
	while ((n = space_prefix(it->p, it->end)) > 0)
		it->p += n;
	while ((n = space_suffix(it->p, it->end)) > 0)
		it->end -= n;
}

static int norm_next(struct norm *it)
{
	const unsigned char *p = it->p;
	if (p >= it->end)
		return -1;
	if (p[0] == 0xEF && it->end - p >= 3 && (p[2] & 0xC0) == 0x80) {
		unsigned cp = (unsigned)(p[0] & 0x0F) << 12 | (unsigned)(p[1] & 0x3F) << 6 | (p[2] & 0x3F);
		if ((p[1] & 0xC0) == 0x80 && cp >= 0xFF01 && cp <= 0xFF5E) {
			it->p += 3;
			return (int)(cp - 0xFEE0);
		}
	}
	it->p++;
	return *p;
}

static int norm_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	struct norm x, y;
	int ca, cb;
	norm_init(&x, a, alen);
	norm_init(&y, b, blen);
	do {
		ca = norm_next(&x);
		cb = norm_next(&y);
	} while (ca == cb && ca != -1);
	return ca - cb;
}

long schema_field_index(const struct schema *s, const char *header, size_t len)
{
	for (size_t i = 0; i < s->nfields; i++)
		if (strlen(s->fields[i].name) == len && memcmp(s->fields[i].name, header, len) == 0)
			return (long)i;
	for (size_t i = 0; i < s->nfields; i++)
		if (in_list(s->fields[i].aliases, s->fields[i].naliases, header, len))
			return (long)i;
	for (size_t i = 0; i < s->nfields; i++) {
		const struct schema_field *f = &s->fields[i];
		if (norm_cmp(f->name, strlen(f->name), header, len) == 0)
			return (long)i;
		for (size_t k = 0; k < f->naliases; k++)
			if (norm_cmp(f->aliases[k], strlen(f->aliases[k]), header, len) == 0)
				return (long)i;
	}
	return -1;
}

/* ---- parsing documents ---- */

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; v != NULL && i < n; i++)
		free(v[i]);
	free(v);
}

void schema_destroy(struct schema **sp)
{
	struct schema *s;

	if (sp == NULL || (s = *sp) == NULL)
		return;
	for (size_t i = 0; s->fields != NULL && i < s->nfields; i++) {
		struct schema_field *f = &s->fields[i];
		free(f->name);
		free(f->title);
		free(f->description);
		free_strv(f->aliases, f->naliases);
		if (f->pattern != NULL)
			regfree(&f->pattern_re);
		free(f->pattern);
		free_strv(f->enum_values, f->nenum);
		free_strv(f->true_values, f->ntrue);
		free_strv(f->false_values, f->nfalse);
	}
	free(s->fields);
	for (size_t i = 0; s->fkeys != NULL && i < s->nfkeys; i++) {
		free(s->fkeys[i].fields);
		free(s->fkeys[i].resource);
		free_strv(s->fkeys[i].ref_fields, s->fkeys[i].nfields);
	}
	free(s->fkeys);
	free(s->pk);
	free(s->id);
	free(s->title);
	free(s->description);
	free(s->json);
	free(s);
	*sp = NULL;
}

/* An optional string member: 0 absent or copied, MU_E_SCHEMA wrong type,
 * -ENOMEM. */
static int opt_string(json_t *obj, const char *key, char **out, const char *where, char **why)
{
	json_t *v = json_object_get(obj, key);
	if (v == NULL)
		return 0;
	if (!json_is_string(v))
		return fail(why, "%s: \"%s\" must be a string", where, key);
	return (*out = strdup(json_string_value(v))) != NULL ? 0 : -ENOMEM;
}

/* An array of non-empty strings; an empty array gives *out NULL, *n 0. */
static int string_array(json_t *v, char ***out, size_t *n, const char *where, const char *key,
			char **why)
{
	size_t len = json_array_size(v);

	if (!json_is_array(v))
		return fail(why, "%s: \"%s\" must be an array of strings", where, key);
	*n = 0;
	if (len == 0)
		return 0;
	if ((*out = calloc(len, sizeof(char *))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		json_t *e = json_array_get(v, i);
		if (!json_is_string(e) || json_string_length(e) == 0)
			return fail(why, "%s: \"%s\" must hold non-empty strings", where, key);
		if (((*out)[i] = strdup(json_string_value(e))) == NULL)
			return -ENOMEM;
		(*n)++;
	}
	return 0;
}

static int copy_defaults(char ***out, size_t *n, const char *const *v, size_t len)
{
	if ((*out = calloc(len, sizeof(char *))) == NULL)
		return -ENOMEM;
	for (*n = 0; *n < len; (*n)++)
		if (((*out)[*n] = strdup(v[*n])) == NULL)
			return -ENOMEM;
	return 0;
}

/*
 * Wrapping a pattern in ^(...)$ is only faithful when the pattern closes
 * every group it opens (glibc reads a stray ')' as a literal, so "a)|(b"
 * would slip out of the anchors). Also refuse what makes regcomp or regexec
 * explode on hostile input: back-references, and repetitions that glibc
 * compiles by copying the repeated part (a{m,n} into n copies, a+ into aa*)
 * beyond PATTERN_COST_MAX positions in all (nested repetitions multiply).
 * Returns NULL or what is wrong.
 */
static const char *pattern_problem(const char *p)
{
	long cost[64], atom = 0;   /* cost of each open group; of the last atom */
	int depth = 0, quantified = 0;

	cost[0] = 0;
	for (; *p != '\0'; p++) {
		/* A quantifier on a quantifier (a**, a+*, a{2}?) only makes
		 * glibc's compiler work exponentially harder: refuse it. */
		int quantifier = *p == '*' || *p == '+' || *p == '?' ||
				 (*p == '{' && is_digit(p[1]));
		if (quantifier && quantified)
			return "a quantifier follows a quantifier";
		quantified = quantifier;
		switch (*p) {
		case '\\':
			if (p[1] >= '1' && p[1] <= '9')
				return "back-references are not supported";
			if (p[1] != '\0')
				p++;
			cost[depth] += atom;
			atom = 1;
			break;
		case '[':
			/* to the closing ']': a leading ']' and [:class:] are inside */
			if (*++p == '^')
				p++;
			if (*p == ']')
				p++;
			while (*p != '\0' && *p != ']') {
				if (p[0] == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
					char d = p[1];
					for (p += 2; *p != '\0' && !(p[0] == d && p[1] == ']'); p++)
						;
					if (*p == '\0')
						return NULL;  /* unterminated: regcomp says so */
				}
				p++;
			}
			if (*p == '\0')
				return NULL;
			cost[depth] += atom;
			atom = 1;
			break;
		case '(':
			if (depth + 1 >= (int)(sizeof(cost) / sizeof(cost[0])))
				return "groups are nested too deeply";
			cost[depth] += atom;
			atom = 0;
			cost[++depth] = 0;
			break;
		case ')':
			if (depth == 0)
				return "a ')' has no matching '('";
			atom += cost[depth--];
			break;
		case '{': {
			/* a bound {m}, {m,} or {m,n}; anything else is a literal '{' */
			const char *q = p + 1;
			long lo = 0, hi;
			int any = 0;
			for (; is_digit(*q); q++, any = 1)
				lo = lo > PATTERN_COST_MAX ? lo : lo * 10 + (*q - '0');
			hi = lo;
			if (*q == ',' && is_digit(*++q))
				for (hi = 0; is_digit(*q); q++, any = 1)
					hi = hi > PATTERN_COST_MAX ? hi : hi * 10 + (*q - '0');
			if (!any || *q != '}')
				goto literal;
			if (hi > PATTERN_COST_MAX || (atom > 0 && hi + 1 > PATTERN_COST_MAX / atom))
				return "its {m,n} bounds expand too far";
			atom *= hi + 1;
			p = q;
			break;
		}
		case '+':
			atom *= 2;  /* glibc copies the atom: a+ is aa* */
			break;
		case '|':
		case '*':
		case '?':
		case '^':
		case '$':
			break;
		default:
literal:
			cost[depth] += atom;
			atom = 1;
		}
		if (cost[depth] + atom > PATTERN_COST_MAX)
			return "it expands too far";
	}
	return NULL;
}

static int parse_pattern(struct schema_field *f, const char *pat, const char *where, char **why)
{
	const char *problem;
	char *anchored = NULL;
	int rc;

	if (strlen(pat) > PATTERN_MAX)
		return fail(why, "%s: pattern is longer than %d bytes", where, PATTERN_MAX);
	if ((problem = pattern_problem(pat)) != NULL)
		return fail(why, "%s: pattern %s is refused: %s", where, pat, problem);
	if (asprintf(&anchored, "^(%s)$", pat) < 0)
		return -ENOMEM;
	rc = regcomp(&f->pattern_re, anchored, REG_EXTENDED | REG_NOSUB);
	free(anchored);
	if (rc != 0) {
		char msg[128];
		regerror(rc, &f->pattern_re, msg, sizeof(msg));
		regfree(&f->pattern_re);
		return fail(why, "%s: pattern %s does not compile: %s", where, pat, msg);
	}
	if ((f->pattern = strdup(pat)) == NULL) {
		regfree(&f->pattern_re);
		return -ENOMEM;
	}
	return 0;
}

/* Enum values are kept in the field type's canonical text (schema_format),
 * so a cell is compared after conversion: "2020/3/1" matches "2020-03-01". */
static int parse_enum(struct schema_field *f, json_t *v, const char *where, char **why)
{
	size_t n = json_array_size(v);

	if (!json_is_array(v) || n == 0)
		return fail(why, "%s: enum must be a non-empty array", where);
	if ((f->enum_values = calloc(n, sizeof(char *))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(v, i);
		char text[64], canon[64], msg[256];
		struct mu_value val;

		if (json_is_string(e))
			snprintf(text, sizeof(text), "%s", json_string_value(e));
		else if (f->type == SCHEMA_STRING)
			return fail(why, "%s: enum values of a string field must be strings", where);
		else if (json_is_integer(e))
			snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, json_integer_value(e));
		else if (json_is_real(e))
			fmt_double(json_real_value(e), text, sizeof(text));
		else if (json_is_boolean(e))
			snprintf(text, sizeof(text), "%s", json_is_true(e) ? "true" : "false");
		else
			return fail(why, "%s: enum value %zu is not a string, number or boolean",
				    where, i + 1);

		if (f->type == SCHEMA_STRING || text[0] == '\0') {
			f->enum_values[i] = strdup(json_is_string(e) ? json_string_value(e) : text);
		} else {
			if (json_is_string(e) && json_string_length(e) >= sizeof(text))
				return fail(why, "%s: enum value %zu is too long", where, i + 1);
			if (convert_type(f, text, strlen(text), &val, msg, sizeof(msg)) < 0)
				return fail(why, "%s: enum value %s", where, msg);
			schema_format(&val, canon, sizeof(canon));
			f->enum_values[i] = strdup(canon);
		}
		if (f->enum_values[i] == NULL)
			return -ENOMEM;
		f->nenum++;
	}
	return 0;
}

static int json_num(json_t *v, double *out)
{
	if (!json_is_number(v))
		return 0;
	*out = json_number_value(v);
	return 1;
}

static int parse_constraints(struct schema_field *f, json_t *c, const char *where, char **why)
{
	const char *key;
	json_t *v, *en = NULL;
	int numeric = f->type == SCHEMA_INTEGER || f->type == SCHEMA_NUMBER || f->type == SCHEMA_YEAR;
	int rc;

	if (!json_is_object(c))
		return fail(why, "%s: \"constraints\" must be an object", where);
	json_object_foreach(c, key, v) {
		if (strcmp(key, "required") == 0 || strcmp(key, "unique") == 0) {
			if (!json_is_boolean(v))
				return fail(why, "%s: constraint %s must be true or false", where, key);
			*(key[0] == 'r' ? &f->required : &f->unique) = json_is_true(v);
		} else if (strcmp(key, "minimum") == 0 || strcmp(key, "maximum") == 0) {
			int min = key[1] == 'i';
			if (!numeric)
				return fail(why, "%s: constraint %s applies only to integer, number and "
					    "year fields", where, key);
			if (!json_num(v, min ? &f->minimum : &f->maximum))
				return fail(why, "%s: constraint %s must be a number", where, key);
			*(min ? &f->has_minimum : &f->has_maximum) = 1;
		} else if (strcmp(key, "minLength") == 0 || strcmp(key, "maxLength") == 0) {
			if (f->type != SCHEMA_STRING)
				return fail(why, "%s: constraint %s applies only to string fields",
					    where, key);
			if (!json_is_integer(v) || json_integer_value(v) < 0 ||
			    json_integer_value(v) > LONG_MAX)
				return fail(why, "%s: constraint %s must be a non-negative integer",
					    where, key);
			*(key[1] == 'i' ? &f->min_length : &f->max_length) = (long)json_integer_value(v);
		} else if (strcmp(key, "pattern") == 0) {
			if (!json_is_string(v))
				return fail(why, "%s: constraint pattern must be a string", where);
			if ((rc = parse_pattern(f, json_string_value(v), where, why)) < 0)
				return rc;
		} else if (strcmp(key, "enum") == 0) {
			en = v;  /* after the loop: needs the whole field */
		} else {
			return fail(why, "%s: unknown constraint \"%s\"", where, key);
		}
	}
	if (f->has_minimum && f->has_maximum && f->minimum > f->maximum)
		return fail(why, "%s: minimum is greater than maximum", where);
	if (f->min_length >= 0 && f->max_length >= 0 && f->min_length > f->max_length)
		return fail(why, "%s: minLength is greater than maxLength", where);
	return en != NULL ? parse_enum(f, en, where, why) : 0;
}

static int parse_field(json_t *jf, size_t idx, struct schema_field *f, char **why)
{
	char where[160];
	json_t *v, *tv, *fv;
	int rc;

	f->min_length = f->max_length = -1;
	if (!json_is_object(jf))
		return fail(why, "field %zu is not an object", idx + 1);
	v = json_object_get(jf, "name");
	if (!json_is_string(v) || json_string_length(v) == 0)
		return fail(why, "field %zu has no \"name\"", idx + 1);
	if ((f->name = strdup(json_string_value(v))) == NULL)
		return -ENOMEM;
	snprintf(where, sizeof(where), "field %zu (\"%s\")", idx + 1, f->name);

	if ((rc = opt_string(jf, "title", &f->title, where, why)) < 0 ||
	    (rc = opt_string(jf, "description", &f->description, where, why)) < 0)
		return rc;
	if ((v = json_object_get(jf, "type")) != NULL) {
		size_t t;
		if (!json_is_string(v))
			return fail(why, "%s: \"type\" must be a string", where);
		for (t = 0; t < NTYPES && strcmp(type_names[t], json_string_value(v)) != 0; t++)
			;
		if (t == NTYPES)
			return fail(why, "%s: unknown type \"%s\"", where, json_string_value(v));
		f->type = (enum schema_type)t;
	}
	if ((v = json_object_get(jf, "format")) != NULL) {
		if (!json_is_string(v))
			return fail(why, "%s: \"format\" must be a string", where);
		if (f->type == SCHEMA_GEOPOINT && strcmp(json_string_value(v), "default") != 0)
			return fail(why, "%s: a geopoint's format must be \"default\" (\"lat,lon\")",
				    where);
	}
	if ((v = json_object_get(jf, "x-aliases")) != NULL &&
	    (rc = string_array(v, &f->aliases, &f->naliases, where, "x-aliases", why)) < 0)
		return rc;
	if ((v = json_object_get(jf, "x-valid")) != NULL) {
		const char *t = json_string_value(v);
		if (t == NULL || (strcmp(t, "from") != 0 && strcmp(t, "until") != 0))
			return fail(why, "%s: \"x-valid\" must be \"from\" or \"until\"", where);
		if (f->type != SCHEMA_DATE && f->type != SCHEMA_DATETIME)
			return fail(why, "%s: \"x-valid\" applies only to date and datetime fields", where);
		f->valid = t[0] == 'f' ? SCHEMA_VALID_FROM : SCHEMA_VALID_UNTIL;
	}

	tv = json_object_get(jf, "trueValues");
	fv = json_object_get(jf, "falseValues");
	if (f->type != SCHEMA_BOOLEAN && (tv != NULL || fv != NULL))
		return fail(why, "%s: trueValues and falseValues apply only to boolean fields", where);
	if (f->type == SCHEMA_BOOLEAN) {
		rc = tv != NULL ? string_array(tv, &f->true_values, &f->ntrue, where, "trueValues", why)
				: copy_defaults(&f->true_values, &f->ntrue, default_true, 4);
		if (rc < 0)
			return rc;
		rc = fv != NULL ? string_array(fv, &f->false_values, &f->nfalse, where, "falseValues", why)
				: copy_defaults(&f->false_values, &f->nfalse, default_false, 4);
		if (rc < 0)
			return rc;
		for (size_t i = 0; i < f->ntrue; i++)
			if (in_list(f->false_values, f->nfalse, f->true_values[i], strlen(f->true_values[i])) ||
			    strcmp(f->true_values[i], "false") == 0)
				return fail(why, "%s: \"%s\" is both true and false", where, f->true_values[i]);
		if (in_list(f->false_values, f->nfalse, "true", 4))
			return fail(why, "%s: \"true\" is both true and false", where);
	}
	if ((v = json_object_get(jf, "constraints")) != NULL)
		return parse_constraints(f, v, where, why);
	return 0;
}

/* A header spelling (name or alias) and the field it selects. */
struct spelling {
	const char *s;
	size_t field;
};

static int spelling_cmp(const void *a, const void *b)
{
	const char *x = ((const struct spelling *)a)->s, *y = ((const struct spelling *)b)->s;
	return norm_cmp(x, strlen(x), y, strlen(y));
}

/* No header may select two fields: names and aliases must differ even after
 * trimming and folding. */
static int check_spellings(struct schema *s, char **why)
{
	struct spelling *v;
	size_t n = 0, total = s->nfields;
	int rc = 0;

	for (size_t i = 0; i < s->nfields; i++)
		total += s->fields[i].naliases;
	if ((v = calloc(total, sizeof(*v))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < s->nfields; i++) {
		v[n++] = (struct spelling){ s->fields[i].name, i };
		for (size_t k = 0; k < s->fields[i].naliases; k++)
			v[n++] = (struct spelling){ s->fields[i].aliases[k], i };
	}
	qsort(v, n, sizeof(*v), spelling_cmp);
	for (size_t i = 1; i < n && rc == 0; i++) {
		size_t a = v[i - 1].field, b = v[i].field;
		if (a == b || spelling_cmp(&v[i - 1], &v[i]) != 0)
			continue;
		if (strcmp(s->fields[a].name, s->fields[b].name) == 0)
			rc = fail(why, "fields %zu and %zu are both named \"%s\"", a < b ? a + 1 : b + 1,
				  a < b ? b + 1 : a + 1, s->fields[a].name);
		else
			rc = fail(why, "fields \"%s\" and \"%s\" would both match the header \"%s\"",
				  s->fields[a < b ? a : b].name, s->fields[a < b ? b : a].name, v[i].s);
	}
	free(v);
	return rc;
}

static int parse_pk(struct schema *s, json_t *pk, char **why)
{
	size_t n = json_is_string(pk) ? 1 : json_array_size(pk);

	if (pk == NULL)
		return fail(why, "missing \"primaryKey\"");
	if (n == 0)
		return fail(why, "\"primaryKey\" must be a field name or a non-empty array of them");
	if ((s->pk = calloc(n, sizeof(size_t))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_is_string(pk) ? pk : json_array_get(pk, i);
		size_t k;
		if (!json_is_string(e))
			return fail(why, "\"primaryKey\" must be a field name or a non-empty array of them");
		for (k = 0; k < s->nfields && strcmp(s->fields[k].name, json_string_value(e)) != 0; k++)
			;
		if (k == s->nfields)
			return fail(why, "\"primaryKey\" names \"%s\", which is not a field",
				    json_string_value(e));
		for (size_t j = 0; j < i; j++)
			if (s->pk[j] == k)
				return fail(why, "\"primaryKey\" names \"%s\" twice", s->fields[k].name);
		s->pk[s->npk++] = k;
	}
	return 0;
}

static long field_named(const struct schema *s, const char *name)
{
	for (size_t k = 0; k < s->nfields; k++)
		if (strcmp(s->fields[k].name, name) == 0)
			return (long)k;
	return -1;
}

/* A field name or an array of them (Table Schema allows both). */
static size_t names_of(json_t *v, json_t **at, size_t cap)
{
	size_t n = json_is_string(v) ? 1 : json_array_size(v);

	for (size_t i = 0; i < n && i < cap; i++)
		at[i] = json_is_string(v) ? v : json_array_get(v, i);
	return n;
}

/* One from-field and one until-field at most; then "foreignKeys". */
static int parse_valid_and_fkeys(struct schema *s, json_t *fk, char **why)
{
	int from = 0, until = 0;

	for (size_t i = 0; i < s->nfields; i++) {
		from += s->fields[i].valid == SCHEMA_VALID_FROM;
		until += s->fields[i].valid == SCHEMA_VALID_UNTIL;
	}
	if (from > 1 || until > 1)
		return fail(why, "more than one field is marked \"x-valid\": \"%s\"",
			    from > 1 ? "from" : "until");
	if (fk == NULL)
		return 0;
	if (!json_is_array(fk))
		return fail(why, "\"foreignKeys\" must be an array");
	if ((s->fkeys = calloc(json_array_size(fk) + 1, sizeof(*s->fkeys))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < json_array_size(fk); i++) {
		json_t *o = json_array_get(fk, i), *ref = json_object_get(o, "reference");
		json_t *mine[16], *theirs[16];
		const char *res = json_string_value(json_object_get(ref, "resource"));
		size_t n = names_of(json_object_get(o, "fields"), mine, 16);
		struct schema_fkey *k = &s->fkeys[s->nfkeys++];

		if (!json_is_object(o) || !json_is_object(ref) || res == NULL)
			return fail(why, "foreign key %zu needs \"fields\" and a \"reference\" with "
				    "\"resource\" and \"fields\"", i + 1);
		if (res[0] == '\0')
			return fail(why, "foreign key %zu refers to this table (resource \"\"): "
				    "musubi checks keys into other datasets only", i + 1);
		if (n == 0 || n > 16 || names_of(json_object_get(ref, "fields"), theirs, 16) != n)
			return fail(why, "foreign key %zu must name 1 to 16 fields, as many on each "
				    "side", i + 1);
		if ((k->resource = strdup(res)) == NULL ||
		    (k->fields = calloc(n, sizeof(size_t))) == NULL ||
		    (k->ref_fields = calloc(n, sizeof(char *))) == NULL)
			return -ENOMEM;
		for (size_t j = 0; j < n; j++) {
			const char *a = json_string_value(mine[j]), *b = json_string_value(theirs[j]);
			long f = a != NULL ? field_named(s, a) : -1;
			if (f < 0 || b == NULL || b[0] == '\0')
				return fail(why, "foreign key %zu: \"%s\" is not a field of this schema, "
					    "or a referenced field name is not a string", i + 1,
					    a != NULL ? a : "?");
			k->fields[j] = (size_t)f;
			if ((k->ref_fields[j] = strdup(b)) == NULL)
				return -ENOMEM;
			k->nfields++;
		}
	}
	return 0;
}

/* Schema ids become dataset table names and file names: keep them plain. */
static int valid_id(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > 64 || id[0] < 'a' || id[0] > 'z')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((id[i] >= 'a' && id[i] <= 'z') || is_digit(id[i]) || id[i] == '_'))
			return 0;
	return 1;
}

int schema_parse(const char *json, size_t len, struct schema **out, char **why)
{
	struct schema *s = NULL;
	json_error_t jerr;
	json_t *root, *v, *fields;
	int rc;

	*out = NULL;
	if (why != NULL)
		*why = NULL;
	if ((root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL)
		return fail(why, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column,
			    jerr.text);
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (!json_is_object(root)) {
		rc = fail(why, "a schema must be a JSON object");
		goto out;
	}
	v = json_object_get(root, "name");
	if (!json_is_string(v)) {
		rc = fail(why, "missing \"name\" (the schema id)");
		goto out;
	}
	if (!valid_id(json_string_value(v))) {
		rc = fail(why, "\"name\" must be a schema id: up to 64 lower-case letters, digits "
			  "and _, starting with a letter");
		goto out;
	}
	if ((s->id = strdup(json_string_value(v))) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	v = json_object_get(root, "version");
	if (v == NULL) {
		rc = fail(why, "missing \"version\"");
		goto out;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > UINT_MAX) {
		rc = fail(why, "\"version\" must be a positive integer");
		goto out;
	}
	s->version = (unsigned)json_integer_value(v);
	if ((rc = opt_string(root, "title", &s->title, "the schema", why)) < 0 ||
	    (rc = opt_string(root, "description", &s->description, "the schema", why)) < 0)
		goto out;
	v = json_object_get(root, "missingValues");
	if (v != NULL && !(json_array_size(v) == 1 && json_is_string(json_array_get(v, 0)) &&
			   json_string_length(json_array_get(v, 0)) == 0)) {
		rc = fail(why, "\"missingValues\" must be [\"\"]: only the empty cell can be missing");
		goto out;
	}

	fields = json_object_get(root, "fields");
	if (!json_is_array(fields) || json_array_size(fields) == 0) {
		rc = fail(why, "\"fields\" must be a non-empty array");
		goto out;
	}
	if ((s->fields = calloc(json_array_size(fields), sizeof(*s->fields))) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < json_array_size(fields); i++) {
		s->nfields++;  /* counted first: destroy frees a half-parsed field */
		if ((rc = parse_field(json_array_get(fields, i), i, &s->fields[i], why)) < 0)
			goto out;
	}
	if ((rc = check_spellings(s, why)) < 0 ||
	    (rc = parse_pk(s, json_object_get(root, "primaryKey"), why)) < 0 ||
	    (rc = parse_valid_and_fkeys(s, json_object_get(root, "foreignKeys"), why)) < 0)
		goto out;

	if ((s->json = malloc(len + 1)) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(s->json, json, len);
	s->json[len] = '\0';
	s->json_len = len;
	if (EVP_Digest(json, len, s->digest, NULL, EVP_sha256(), NULL) != 1) {
		rc = MU_E_CRYPTO;
		goto out;
	}
	*out = s;
	s = NULL;
	rc = 0;
out:
	if (rc == -ENOMEM && why != NULL && *why == NULL)
		fail(why, "out of memory");
	schema_destroy(&s);
	json_decref(root);
	return rc;
}

/* ---- resolving a spec ---- */

static int read_file(const char *path, char **buf, size_t *len, char **why)
{
	FILE *fp = fopen(path, "rb");
	int rc = 0;

	*buf = NULL;
	if (fp == NULL) {
		rc = -errno;
		fail(why, "cannot open %s: %s", path, strerror(errno));
		return rc;
	}
	if ((*buf = malloc(SCHEMA_FILE_MAX + 1)) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	*len = fread(*buf, 1, SCHEMA_FILE_MAX + 1, fp);
	if (ferror(fp)) {
		rc = -EIO;
		fail(why, "cannot read %s", path);
	} else if (*len > SCHEMA_FILE_MAX) {
		rc = MU_E_TOOBIG;
		fail(why, "%s is larger than %u bytes", path, SCHEMA_FILE_MAX);
	}
out:
	fclose(fp);
	if (rc < 0) {
		free(*buf);
		*buf = NULL;
	}
	return rc;
}

int schema_resolve(const char *spec, struct schema **out, char **why)
{
	size_t n = strlen(spec);
	const char *at;
	char *end;
	unsigned long version;

	*out = NULL;
	if (why != NULL)
		*why = NULL;
	if (strchr(spec, '/') != NULL || (n >= 5 && strcmp(spec + n - 5, ".json") == 0)) {
		char *buf;
		size_t len = 0;
		int rc = read_file(spec, &buf, &len, why);
		if (rc < 0)
			return rc;
		rc = schema_parse(buf, len, out, why);
		free(buf);
		return rc;
	}
	at = strrchr(spec, '@');
	if (at == NULL || at == spec || !is_digit(at[1]) ||
	    (version = strtoul(at + 1, &end, 10)) == 0 || *end != '\0' || version > UINT_MAX) {
		fail(why, "\"%s\" is neither ID@VERSION nor a path to a schema file", spec);
		return MU_E_USAGE;
	}
	for (size_t i = 0; i < schema_builtin_table_len; i++) {
		json_t *root = json_loads(schema_builtin_table[i], 0, NULL);
		const char *id = json_string_value(json_object_get(root, "name"));
		int match = id != NULL && strlen(id) == (size_t)(at - spec) &&
			    memcmp(id, spec, (size_t)(at - spec)) == 0 &&
			    json_integer_value(json_object_get(root, "version")) == (json_int_t)version;
		json_decref(root);
		if (match)
			return schema_parse(schema_builtin_table[i], strlen(schema_builtin_table[i]),
					    out, why);
	}
	fail(why, "no built-in schema %s", spec);
	return -ENOENT;
}

/* ---- compatibility ---- */

static const struct schema_field *find_field(const struct schema *s, const char *name)
{
	for (size_t i = 0; i < s->nfields; i++)
		if (strcmp(s->fields[i].name, name) == 0)
			return &s->fields[i];
	return NULL;
}

static void print_pk(FILE *m, const struct schema *s)
{
	fputc('(', m);
	for (size_t i = 0; i < s->npk; i++)
		fprintf(m, "%s%s", i > 0 ? ", " : "", s->fields[s->pk[i]].name);
	fputc(')', m);
}

/* Values of `old` (spellings or enum values) that `next` no longer has. */
static void lost_values(FILE *m, const char *field, const char *what, char *const *old,
			size_t nold, char *const *next, size_t nnext)
{
	for (size_t i = 0; i < nold; i++)
		if (!in_list(next, nnext, old[i], strlen(old[i])))
			fprintf(m, "field \"%s\" no longer accepts \"%s\" %s\n", field, old[i], what);
}

static void compare_field(FILE *m, const struct schema_field *a, const struct schema_field *b)
{
	const char *n = a->name;
	char x[40], y[40];

	if (a->type != b->type)
		fprintf(m, "field \"%s\" changes type from %s to %s\n", n, schema_type_name(a->type),
			schema_type_name(b->type));
	if (b->required && !a->required)
		fprintf(m, "field \"%s\" becomes required\n", n);
	if (b->unique && !a->unique)
		fprintf(m, "field \"%s\" becomes unique\n", n);
	fmt_double(a->minimum, x, sizeof(x));
	fmt_double(b->minimum, y, sizeof(y));
	if (b->has_minimum && !a->has_minimum)
		fprintf(m, "field \"%s\" gains a minimum of %s\n", n, y);
	else if (b->has_minimum && b->minimum > a->minimum)
		fprintf(m, "field \"%s\" raises its minimum from %s to %s\n", n, x, y);
	fmt_double(a->maximum, x, sizeof(x));
	fmt_double(b->maximum, y, sizeof(y));
	if (b->has_maximum && !a->has_maximum)
		fprintf(m, "field \"%s\" gains a maximum of %s\n", n, y);
	else if (b->has_maximum && b->maximum < a->maximum)
		fprintf(m, "field \"%s\" lowers its maximum from %s to %s\n", n, x, y);
	if (b->min_length > (a->min_length < 0 ? 0 : a->min_length))
		fprintf(m, "field \"%s\" raises minLength to %ld\n", n, b->min_length);
	if (b->max_length >= 0 && (a->max_length < 0 || b->max_length < a->max_length))
		fprintf(m, "field \"%s\" lowers maxLength to %ld\n", n, b->max_length);
	if (b->pattern != NULL && (a->pattern == NULL || strcmp(a->pattern, b->pattern) != 0))
		fprintf(m, "field \"%s\" gets the pattern %s\n", n, b->pattern);
	if (b->enum_values != NULL && a->enum_values == NULL)
		fprintf(m, "field \"%s\" gains an enum\n", n);
	else if (b->enum_values != NULL)
		lost_values(m, n, "(enum)", a->enum_values, a->nenum, b->enum_values, b->nenum);
	if (a->type == SCHEMA_BOOLEAN && b->type == SCHEMA_BOOLEAN) {
		lost_values(m, n, "as true", a->true_values, a->ntrue, b->true_values, b->ntrue);
		lost_values(m, n, "as false", a->false_values, a->nfalse, b->false_values, b->nfalse);
	}
	lost_values(m, n, "as a header (x-aliases)", a->aliases, a->naliases, b->aliases,
		    b->naliases);
}

int schema_compat(const struct schema *prev, const struct schema *next, char **why)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	int same_pk = prev->npk == next->npk;

	if (why != NULL)
		*why = NULL;
	if (m == NULL)
		return -errno;
	if (strcmp(prev->id, next->id) != 0)
		fprintf(m, "the schema id changes from %s to %s\n", prev->id, next->id);
	if (next->version <= prev->version)
		fprintf(m, "version %u is not higher than %u\n", next->version, prev->version);
	for (size_t i = 0; same_pk && i < prev->npk; i++)
		same_pk = strcmp(prev->fields[prev->pk[i]].name, next->fields[next->pk[i]].name) == 0;
	if (!same_pk) {
		fputs("the primary key changes from ", m);
		print_pk(m, prev);
		fputs(" to ", m);
		print_pk(m, next);
		fputc('\n', m);
	}
	for (size_t i = 0; i < prev->nfields; i++) {
		const struct schema_field *b = find_field(next, prev->fields[i].name);
		if (b == NULL)
			fprintf(m, "field \"%s\" is removed\n", prev->fields[i].name);
		else
			compare_field(m, &prev->fields[i], b);
	}
	for (size_t i = 0; i < next->nfields; i++)
		if (next->fields[i].required && find_field(prev, next->fields[i].name) == NULL)
			fprintf(m, "new field \"%s\" is required\n", next->fields[i].name);
	if (fclose(m) != 0) {
		free(buf);
		return -ENOMEM;
	}
	if (len == 0) {
		free(buf);
		return 0;
	}
	buf[len - 1] = '\0';  /* the last newline */
	if (why != NULL)
		*why = buf;
	else
		free(buf);
	return MU_E_INCOMPAT;
}
