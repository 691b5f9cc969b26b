/*
 * csv.h - a streaming CSV reader for the files municipalities publish.
 *
 * RFC 4180 (quoted fields, doubled quotes, newlines inside quotes, CRLF or
 * LF), tolerant of a UTF-8 BOM and a missing final newline. Input that is
 * not valid UTF-8 is taken as Shift_JIS (CP932) and converted to UTF-8 with
 * iconv; the choice is made from the first block read and reported by
 * csv_encoding(). Memory stays bounded by the longest record, which is
 * itself capped (CSV_MAX_RECORD bytes) so hostile input cannot grow it.
 *
 * Positions are 1-based: `line` is the physical line in the input where a
 * record starts (a quoted newline advances it), `column` the 1-based field.
 *
 * Errors (negative, with csv_error() giving a sentence naming line and
 * column):
 *   MU_E_CSV       unterminated quote, a stray quote inside an unquoted
 *                  field, text after a closing quote, a NUL byte, a record
 *                  longer than CSV_MAX_RECORD, more than CSV_MAX_FIELDS fields
 *   MU_E_ENCODING  bytes that are neither UTF-8 nor CP932
 *   -errno         read errors
 */
#ifndef MU_CSV_H
#define MU_CSV_H

#include <stddef.h>
#include <stdint.h>

#define CSV_MAX_RECORD (4u << 20)  /* bytes of one record after decoding */
#define CSV_MAX_FIELDS 4096

enum csv_encoding { CSV_ENC_UTF8 = 0, CSV_ENC_UTF8_BOM, CSV_ENC_CP932 };

struct csv_field {
	const char *ptr;  /* UTF-8, NUL-terminated, valid until the next csv_next() */
	size_t len;
	int quoted;       /* the field was written in quotes */
};

struct csv_record {
	uint64_t line;             /* input line where the record starts */
	size_t nfields;
	const struct csv_field *fields;  /* valid until the next csv_next() */
};

struct csv_reader;

/* Read from an open file descriptor (not closed by the reader). */
int csv_open_fd(int fd, struct csv_reader **out);
/* Read from a memory buffer, which must outlive the reader (fuzz entry). */
int csv_open_mem(const void *buf, size_t len, struct csv_reader **out);
void csv_close(struct csv_reader **r);

/* Next record: returns 1 with *rec filled, 0 at end of input, or a negative
 * error. Blank lines (an empty physical line outside quotes) are skipped. */
int csv_next(struct csv_reader *r, struct csv_record *rec);

/* The encoding detected (meaningful after the first csv_next()). */
enum csv_encoding csv_encoding(const struct csv_reader *r);
const char *csv_encoding_name(enum csv_encoding e);
/* Bytes of raw input consumed so far (for progress bars). */
uint64_t csv_bytes_read(const struct csv_reader *r);
/* SHA-256 of all raw input bytes consumed so far; complete once csv_next()
 * has returned 0. */
void csv_input_sha256(struct csv_reader *r, uint8_t out[32]);
/* The last error as a sentence, e.g. "line 12, column 3: unterminated quoted
 * field". Borrowed; "" when there was no error. */
const char *csv_error(const struct csv_reader *r);

#endif
