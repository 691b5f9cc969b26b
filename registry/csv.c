/*
 * csv.c - the streaming CSV reader behind csv.h.
 *
 * Raw input arrives in blocks (CSV_BLOCK bytes) from an fd or a memory
 * buffer. Each block is hashed, then decoded into `buf`: UTF-8 input is
 * validated and copied, CP932 input goes through iconv. The parser scans
 * `buf` from `start` and copies the unescaped fields of one record into
 * `rec`, NUL-terminating each. When a record runs past the decoded data the
 * parser gives up and fill() decodes more (at least as much again as is
 * buffered, so a long record is re-scanned only O(log n) times); a record
 * is thus never held twice and memory stays bounded by the longest record.
 *
 * Decoding stops at the first invalid byte; the parser reports the
 * encoding error when it reaches that point, so it can name the line and
 * field, and every record before it is still delivered.
 */
#include <errno.h>
#include <iconv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "csv.h"
#include "mu_err.h"

/* Raw bytes read at a time. Fuzz builds may shrink it (-DCSV_BLOCK=16) so
 * that small inputs reach every block-edge case; 3 at least, for the BOM. */
#ifndef CSV_BLOCK
#define CSV_BLOCK (64u * 1024)
#endif
#define CSV_CP932_GROWTH 3  /* one CP932 byte becomes at most 3 UTF-8 bytes */

/* parse() results besides a record (1) and errors (< 0). */
enum { P_EOF = 0, P_RECORD = 1, P_NEED = 2 };

struct csv_reader {
	/* raw input */
	int fd;
	const uint8_t *mem;
	size_t mem_len, mem_pos;
	uint8_t *raw;             /* fd only: CSV_BLOCK + a carried partial character */
	const uint8_t *in;        /* raw bytes read but not yet decoded */
	size_t in_len;
	EVP_MD_CTX *md;
	uint64_t bytes_read;

	/* decoding */
	int detected;
	enum csv_encoding enc;
	iconv_t cd;
	int eof;                  /* no more decoded data will come */
	int capped;               /* parsing against the record size cap */
	const char *enc_err;      /* why decoding stopped early, or NULL */

	/* decoded text: [start, end) is unparsed; buf[end] is a 0 sentinel */
	char *buf;
	size_t cap, start, end;
	uint64_t line;            /* physical line at buf + start */

	/* the current record */
	char *rec;
	size_t rec_cap;
	struct csv_field *fields;
	size_t fields_cap;

	int err;                  /* sticky error, or 0 */
	int done;
	char msg[160];
};

/* Bytes that end a run of plain data outside and inside quotes. 0 is the
 * sentinel at the end of the buffer as well as a forbidden NUL. */
static const uint8_t stop_plain[256] = {
	[0] = 1, ['\n'] = 1, ['\r'] = 1, ['"'] = 1, [','] = 1,
};
static const uint8_t stop_quoted[256] = { [0] = 1, ['\n'] = 1, ['"'] = 1 };

static int fail(struct csv_reader *r, int rc, uint64_t line, size_t col,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail(struct csv_reader *r, int rc, uint64_t line, size_t col,
		const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (line > 0)
		n = snprintf(r->msg, sizeof(r->msg), "line %llu, column %zu: ",
			     (unsigned long long)line, col);
	va_start(ap, fmt);
	vsnprintf(r->msg + n, sizeof(r->msg) - (size_t)n, fmt, ap);
	va_end(ap);
	r->err = rc;
	return rc;
}

/*
 * Length of the longest valid UTF-8 prefix of p[0..n) (Unicode table 3-7:
 * no overlongs, surrogates or code points above U+10FFFF). *partial is set
 * when what follows is the valid start of a character cut off by the end.
 */
static size_t utf8_valid(const uint8_t *p, size_t n, int *partial)
{
	size_t i = 0;

	*partial = 0;
	while (i < n) {
		uint64_t w;
		if (n - i >= 8) {
			memcpy(&w, p + i, 8);
			if ((w & 0x8080808080808080ull) == 0) {
				i += 8;
				continue;
			}
		}
		uint8_t c = p[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t need;
		uint8_t lo = 0x80, hi = 0xBF;
		if (c >= 0xC2 && c <= 0xDF)
			need = 1;
		else if (c >= 0xE0 && c <= 0xEF) {
			need = 2;
			if (c == 0xE0)
				lo = 0xA0;
			else if (c == 0xED)
				hi = 0x9F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			need = 3;
			if (c == 0xF0)
				lo = 0x90;
			else if (c == 0xF4)
				hi = 0x8F;
		} else
			return i;
		for (size_t k = 1; k <= need; k++) {
			if (i + k == n) {
				*partial = 1;
				return i;
			}
			if (p[i + k] < lo || p[i + k] > hi)
				return i;
			lo = 0x80;
			hi = 0xBF;
		}
		i += need + 1;
	}
	return i;
}

/* p resized to hold at least `need` items (doubling), or NULL with p
 * untouched when out of memory. */
static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
	size_t n = *cap > 0 ? *cap : 64;

	if (need <= *cap)
		return p;
	while (n < need)
		n *= 2;
	if ((p = realloc(p, n * size)) != NULL)
		*cap = n;
	return p;
}

/* Append the next block of raw input to the undecoded bytes; 0 at end. */
static ssize_t read_block(struct csv_reader *r)
{
	const uint8_t *fresh;
	size_t got = 0;

	if (r->fd < 0) {
		got = r->mem_len - r->mem_pos;
		if (got > CSV_BLOCK)
			got = CSV_BLOCK;
		fresh = r->mem + r->mem_pos;
		r->mem_pos += got;
		r->in = fresh - r->in_len;  /* undecoded bytes precede mem_pos */
	} else {
		memmove(r->raw, r->in, r->in_len);
		r->in = r->raw;
		fresh = r->raw + r->in_len;
		/* fill the whole block: detection looks at a full first block */
		while (got < CSV_BLOCK) {
			ssize_t n = read(r->fd, r->raw + r->in_len + got, CSV_BLOCK - got);
			if (n == 0)
				break;
			if (n < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			got += (size_t)n;
		}
	}
	if (got > 0 && EVP_DigestUpdate(r->md, fresh, got) != 1)
		return MU_E_CRYPTO;
	r->in_len += got;
	r->bytes_read += got;
	return (ssize_t)got;
}

/* Choose the encoding from the first block: a BOM, else valid UTF-8 up to
 * the last complete character, else CP932. */
static int detect(struct csv_reader *r)
{
	int partial;

	r->detected = 1;
	if (r->in_len >= 3 && memcmp(r->in, "\xEF\xBB\xBF", 3) == 0) {
		r->enc = CSV_ENC_UTF8_BOM;
		r->in += 3;
		r->in_len -= 3;
	} else if (utf8_valid(r->in, r->in_len, &partial) < r->in_len && !partial) {
		r->enc = CSV_ENC_CP932;
		if ((r->cd = iconv_open("UTF-8", "CP932")) == (iconv_t)-1)
			return -errno;
	}
	return 0;
}

/* Move the undecoded bytes into buf; the caller made room for them. */
static void decode(struct csv_reader *r)
{
	if (r->enc == CSV_ENC_CP932) {
		char *ip = (char *)r->in, *op = r->buf + r->end;  /* iconv never writes *ip */
		size_t ileft = r->in_len, oleft = r->cap - r->end - 1;
		/* EINVAL: a character split by the block end waits for the next
		 * block; E2BIG cannot happen with CSV_CP932_GROWTH room. */
		if (iconv(r->cd, &ip, &ileft, &op, &oleft) == (size_t)-1 && errno != EINVAL) {
			r->enc_err = "invalid Shift_JIS (CP932) byte sequence";
			r->eof = 1;
		}
		r->in = (const uint8_t *)ip;
		r->in_len = ileft;
		r->end = (size_t)(op - r->buf);
	} else {
		int partial;
		size_t n = utf8_valid(r->in, r->in_len, &partial);
		memcpy(r->buf + r->end, r->in, n);
		r->end += n;
		r->in += n;
		r->in_len -= n;
		if (r->in_len > 0 && !partial) {
			r->enc_err = "invalid UTF-8";
			r->eof = 1;
		}
	}
}

/* Decode at least as much input as is already buffered (one block at the
 * least), or up to the end of input. */
static int fill(struct csv_reader *r)
{
	size_t want, added = 0;
	int rc;

	if (r->start > 0) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	want = r->end > 0 ? r->end : 1;
	while (!r->eof && added < want) {
		ssize_t got = read_block(r);
		if (got < 0)
			return fail(r, (int)got, 0, 0, "read failed: %s",
				    mu_strerror((int)got));
		if (got == 0) {
			r->eof = 1;
			if (r->in_len > 0)
				r->enc_err = "incomplete multibyte character at end of input";
			break;
		}
		if (!r->detected && (rc = detect(r)) < 0)
			return fail(r, rc, 0, 0, "iconv_open(CP932): %s", mu_strerror(rc));
		size_t room = r->in_len * (r->enc == CSV_ENC_CP932 ? CSV_CP932_GROWTH : 1);
		char *nb = grow(r->buf, &r->cap, r->end + room + 1, 1);
		if (nb == NULL)
			return fail(r, -ENOMEM, 0, 0, "out of memory");
		r->buf = nb;
		size_t before = r->end;
		decode(r);
		added += r->end - before;
	}
	r->buf[r->end] = '\0';
	return 0;
}

/* The parser reached the end of the decoded data at (line, col): P_NEED
 * while more may come, the pending encoding error, or P_EOF. */
static int ran_out(struct csv_reader *r, uint64_t line, size_t col)
{
	if (r->capped)
		return fail(r, MU_E_CSV, r->line, col, "record longer than %u bytes",
			    CSV_MAX_RECORD);
	if (!r->eof)
		return P_NEED;
	if (r->enc_err != NULL)
		return fail(r, MU_E_ENCODING, line, col, "%s", r->enc_err);
	return P_EOF;
}

/* Move start past blank lines, so they never count as record bytes.
 * P_RECORD when a record begins there, else what ran_out() said. */
static int skip_blank_lines(struct csv_reader *r)
{
	const char *p = r->buf + r->start, *e = r->buf + r->end;
	int rc = P_RECORD;

	while (p < e) {
		if (*p == '\n') {
			p++;
		} else if (*p == '\r' && p + 1 < e && p[1] == '\n') {
			p += 2;
		} else if (*p == '\r' && p + 1 == e) {
			/* CR LF cut by the end of data, or a CR ending the input */
			if ((rc = ran_out(r, r->line, 1)) != P_EOF)
				break;
			p++;
		} else {
			break;
		}
		r->line++;
	}
	r->start = (size_t)(p - r->buf);
	if (p == e)
		rc = ran_out(r, r->line, 1);
	return rc;
}

/*
 * Parse the record at buf + start, which ends before e, into rec. `rec`
 * has room for the whole text plus one byte: every field's NUL takes the
 * place of the delimiter after it, except after the last field at the end
 * of input. *e is 0, a sentinel that stops every scan loop.
 */
static int parse_record(struct csv_reader *r, const char *e, struct csv_record *out_rec)
{
	const char *p = r->buf + r->start, *q;
	uint64_t line = r->line;
	char *out = r->rec;
	size_t nf = 0;
	int rc, at_end = 0;

	while (!at_end) {
		char *f = out;
		int quoted = *p == '"';
		size_t col = nf + 1;

		if (nf == CSV_MAX_FIELDS)
			return fail(r, MU_E_CSV, line, col, "more than %d fields",
				    CSV_MAX_FIELDS);
		if (quoted) {
			uint64_t open_line = line;
			p++;
			for (;;) {
				for (q = p; !stop_quoted[(uint8_t)*q]; q++)
					;
				memcpy(out, p, (size_t)(q - p));
				out += q - p;
				p = q;
				if (p == e) {
					if ((rc = ran_out(r, line, col)) != P_EOF)
						return rc;
					return fail(r, MU_E_CSV, open_line, col,
						    "unterminated quoted field (opened here)");
				}
				if (*p == '\0')
					return fail(r, MU_E_CSV, line, col, "NUL byte");
				if (*p == '\n') {
					line++;
					*out++ = *p++;
					continue;
				}
				/* a quote: doubled, or the closing one */
				if (p + 1 == e && (rc = ran_out(r, line, col)) != P_EOF)
					return rc;
				if (p + 1 < e && p[1] == '"') {
					*out++ = '"';
					p += 2;
					continue;
				}
				p++;
				break;
			}
		} else {
			for (;;) {
				for (q = p; !stop_plain[(uint8_t)*q]; q++)
					;
				memcpy(out, p, (size_t)(q - p));
				out += q - p;
				p = q;
				if (p == e || *p != '\r')
					break;
				/* a CR ends the record before LF or at the end, else is data */
				if (p + 1 == e && (rc = ran_out(r, line, col)) != P_EOF)
					return rc;
				if (p + 1 == e || p[1] == '\n')
					break;
				*out++ = *p++;
			}
			if (p < e && *p == '"')
				return fail(r, MU_E_CSV, line, col,
					    "stray quote in unquoted field");
			if (p < e && *p == '\0')
				return fail(r, MU_E_CSV, line, col, "NUL byte");
		}

		/* the delimiter after the field */
		if (p == e) {
			if ((rc = ran_out(r, line, col)) != P_EOF)
				return rc;
			at_end = 1;
		} else if (*p == ',') {
			p++;
		} else if (*p == '\n') {
			p++;
			line++;
			at_end = 1;
		} else if (*p == '\r' && p + 1 == e) {
			if ((rc = ran_out(r, line, col)) != P_EOF)
				return rc;
			p++;
			line++;
			at_end = 1;
		} else if (*p == '\r' && p[1] == '\n') {
			p += 2;
			line++;
			at_end = 1;
		} else {
			return fail(r, MU_E_CSV, line, col, "text after closing quote");
		}

		if (nf == r->fields_cap) {
			struct csv_field *nfl = grow(r->fields, &r->fields_cap, nf + 1,
						     sizeof(*nfl));
			if (nfl == NULL)
				return fail(r, -ENOMEM, line, col, "out of memory");
			r->fields = nfl;
		}
		*out++ = '\0';
		r->fields[nf].ptr = f;
		r->fields[nf].len = (size_t)(out - 1 - f);
		r->fields[nf].quoted = quoted;
		nf++;
	}
	if ((size_t)(p - (r->buf + r->start)) > CSV_MAX_RECORD)
		return fail(r, MU_E_CSV, r->line, nf, "record longer than %u bytes",
			    CSV_MAX_RECORD);
	out_rec->line = r->line;
	out_rec->nfields = nf;
	out_rec->fields = r->fields;
	r->start = (size_t)(p - r->buf);
	r->line = line;
	return P_RECORD;
}

/*
 * One record, or P_NEED/P_EOF/an error. The record is parsed against at
 * most CSV_MAX_RECORD + 1 bytes, whatever is buffered beyond: reaching that
 * cap is the too-long error, so which error a long bad record gets does not
 * depend on how much happened to be read.
 */
static int parse(struct csv_reader *r, struct csv_record *rec)
{
	size_t len;
	char *e, *nrec, saved;
	int rc;

	if ((rc = skip_blank_lines(r)) != P_RECORD)
		return rc;
	len = r->end - r->start;
	r->capped = len > CSV_MAX_RECORD + 1;
	if (r->capped)
		len = CSV_MAX_RECORD + 1;
	if ((nrec = grow(r->rec, &r->rec_cap, len + 1, 1)) == NULL)
		return fail(r, -ENOMEM, 0, 0, "out of memory");
	r->rec = nrec;
	e = r->buf + r->start + len;
	saved = *e;  /* the sentinel, unless capped */
	*e = '\0';
	rc = parse_record(r, e, rec);
	*e = saved;
	r->capped = 0;
	return rc;
}

int csv_next(struct csv_reader *r, struct csv_record *rec)
{
	int rc;

	if (r->err != 0)
		return r->err;
	if (r->done)
		return 0;
	while ((rc = parse(r, rec)) == P_NEED)
		if ((rc = fill(r)) < 0)
			return rc;
	if (rc == P_EOF)
		r->done = 1;
	return rc;
}

static int open_common(struct csv_reader **out, struct csv_reader *r)
{
	int rc = 0;

	if (r == NULL)
		return -ENOMEM;
	r->cd = (iconv_t)-1;
	r->line = 1;
	if ((r->md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(r->md, EVP_sha256(), NULL) != 1) {
		rc = MU_E_CRYPTO;
		goto out;
	}
	if ((r->buf = grow(NULL, &r->cap, CSV_BLOCK + 1, 1)) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	r->buf[0] = '\0';
out:
	if (rc < 0)
		csv_close(&r);
	*out = r;
	return rc;
}

int csv_open_fd(int fd, struct csv_reader **out)
{
	struct csv_reader *r;

	if (out == NULL || fd < 0)
		return MU_E_USAGE;
	if ((r = calloc(1, sizeof(*r))) != NULL) {
		r->fd = fd;
		/* 3 spare bytes carry a UTF-8 or CP932 character cut by the block end */
		if ((r->raw = malloc(CSV_BLOCK + 3)) == NULL) {
			free(r);
			r = NULL;
		} else {
			r->in = r->raw;
		}
	}
	return open_common(out, r);
}

int csv_open_mem(const void *buf, size_t len, struct csv_reader **out)
{
	struct csv_reader *r;

	if (out == NULL || (buf == NULL && len > 0))
		return MU_E_USAGE;
	if ((r = calloc(1, sizeof(*r))) != NULL) {
		r->fd = -1;
		r->mem = len > 0 ? buf : (const void *)"";  /* no arithmetic on NULL */
		r->mem_len = len;
		r->in = r->mem;
	}
	return open_common(out, r);
}

void csv_close(struct csv_reader **rp)
{
	struct csv_reader *r;

	if (rp == NULL || (r = *rp) == NULL)
		return;
	if (r->cd != (iconv_t)-1)
		iconv_close(r->cd);
	EVP_MD_CTX_free(r->md);
	free(r->raw);
	free(r->buf);
	free(r->rec);
	free(r->fields);
	free(r);
	*rp = NULL;
}

enum csv_encoding csv_encoding(const struct csv_reader *r)
{
	return r->enc;
}

const char *csv_encoding_name(enum csv_encoding e)
{
	switch (e) {
	case CSV_ENC_UTF8:
		return "UTF-8";
	case CSV_ENC_UTF8_BOM:
		return "UTF-8 with BOM";
	case CSV_ENC_CP932:
		return "Shift_JIS (CP932)";
	}
	return "unknown";
}

uint64_t csv_bytes_read(const struct csv_reader *r)
{
	return r->bytes_read;
}

void csv_input_sha256(struct csv_reader *r, uint8_t out[32])
{
	EVP_MD_CTX *copy = EVP_MD_CTX_new();
	unsigned int n;

	/* finish a copy so that hashing can go on; all zero if OpenSSL fails */
	if (copy == NULL || EVP_MD_CTX_copy_ex(copy, r->md) != 1 ||
	    EVP_DigestFinal_ex(copy, out, &n) != 1)
		memset(out, 0, 32);
	EVP_MD_CTX_free(copy);
}

const char *csv_error(const struct csv_reader *r)
{
	return r->msg;
}
