/*
 * test_csv.c - the CSV reader: RFC 4180 quoting and line rules, encodings
 * (UTF-8, BOM, CP932 made from real files with iconv), records and
 * characters split across the reader's blocks, every kind of malformed
 * input with its exact code, line and column, and the input hash.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <iconv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "check.h"
#include "csv.h"
#include "testutil.h"

/* Larger than the reader's block (64 KiB), so that files span blocks. */
#define BIG_FILE (200u * 1024)

/* A fresh temporary directory for one case (tu_tmpdir); tu_rmrf() deletes it. */
static char tmpdir[TU_DIR_MAX];

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) != NULL &&
	    fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (buf != NULL)
		*len = (size_t)n;
	return buf;
}

/* Write data to tmpdir/name; returns the path in a static buffer. */
static const char *write_tmp(const char *name, const void *data, size_t len)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	if ((f = fopen(path, "wb")) == NULL)
		return NULL;
	if (fwrite(data, 1, len, f) != len) {
		fclose(f);
		return NULL;
	}
	return fclose(f) == 0 ? path : NULL;
}

/* Convert with glibc iconv; returns a malloc'd buffer or NULL. */
static char *convert(const char *to, const char *from, const char *in, size_t len,
		     size_t *out_len)
{
	iconv_t cd = iconv_open(to, from);
	size_t cap = len * 3 + 16, left = cap;
	char *out = malloc(cap), *ip = (char *)in, *op = out;

	if (cd == (iconv_t)-1 || out == NULL ||
	    iconv(cd, &ip, &len, &op, &left) == (size_t)-1) {
		free(out);
		out = NULL;
	} else {
		*out_len = cap - left;
	}
	if (cd != (iconv_t)-1)
		iconv_close(cd);
	return out;
}

/*
 * Read every record and write them as text that shows lines, field
 * lengths, quoting and bytes, so two readers can be compared exactly.
 * Returns the final csv_next() result; *dump is malloc'd.
 */
static int dump(struct csv_reader *r, char **out, size_t *nrec)
{
	struct csv_record rec;
	size_t len;
	FILE *f = open_memstream(out, &len);
	int rc;

	*nrec = 0;
	while ((rc = csv_next(r, &rec)) == 1) {
		fprintf(f, "L%llu", (unsigned long long)rec.line);
		for (size_t i = 0; i < rec.nfields; i++) {
			const struct csv_field *fl = &rec.fields[i];
			fprintf(f, " %zu%c", fl->len, fl->quoted ? 'q' : 'u');
			fwrite(fl->ptr, 1, fl->len, f);
			if (fl->ptr[fl->len] != '\0')
				fputs("(not NUL-terminated)", f);
		}
		fputc('\n', f);
		(*nrec)++;
	}
	fclose(f);
	return rc;
}

static int dump_mem(const void *data, size_t len, char **out, size_t *nrec)
{
	struct csv_reader *r = NULL;
	int rc = csv_open_mem(data, len, &r);

	if (rc < 0)
		return rc;
	rc = dump(r, out, nrec);
	csv_close(&r);
	return rc;
}

static int dump_path(const char *path, char **out, size_t *nrec,
		     enum csv_encoding *enc)
{
	struct csv_reader *r = NULL;
	int fd = open(path, O_RDONLY), rc;

	if (fd < 0)
		return -errno;
	if ((rc = csv_open_fd(fd, &r)) == 0) {
		rc = dump(r, out, nrec);
		*enc = csv_encoding(r);
		csv_close(&r);
	}
	close(fd);
	return rc;
}

/* Parse a string in memory and compare with the expected dump. */
static void expect_records(const char *input, size_t len, const char *want)
{
	char *got = NULL;
	size_t n;
	int rc = dump_mem(input, len, &got, &n);

	if (rc != 0 || strcmp(got, want) != 0)
		fprintf(stderr, "input \"%s\": rc %d\n", input, rc);
	CHECK_RC(rc, 0);
	CHECK_STREQ(got, want);
	free(got);
}
#define EXPECT(lit, want) expect_records(lit, sizeof(lit) - 1, want)

/* Read until an error: it must be `code` with exactly `msg`, and it must
 * stay: another csv_next() returns it again. Returns the records before. */
static size_t expect_error(const char *input, size_t len, int code, const char *msg)
{
	struct csv_reader *r = NULL;
	struct csv_record rec;
	size_t n = 0;
	int rc;

	if (csv_open_mem(input, len, &r) < 0) {
		CHECK(!"csv_open_mem");
		return 0;
	}
	CHECK_STREQ(csv_error(r), "");
	while ((rc = csv_next(r, &rec)) == 1)
		n++;
	if (rc != code || strcmp(csv_error(r), msg) != 0)
		fprintf(stderr, "input \"%.60s\": rc %d, \"%s\"\n", input, rc, csv_error(r));
	CHECK_RC(rc, code);
	CHECK_STREQ(csv_error(r), msg);
	CHECK_RC(csv_next(r, &rec), code);
	CHECK_STREQ(csv_error(r), msg);
	csv_close(&r);
	return n;
}
#define EXPECT_ERR(lit, code, msg) expect_error(lit, sizeof(lit) - 1, code, msg)

/* A valid UTF-8 prefix longer than the first block, so that what follows is
 * judged as UTF-8: `rows` lines of 20 bytes. */
static char *utf8_prefix(size_t rows, size_t *len)
{
	char *buf = malloc(rows * 20 + 1);

	for (size_t i = 0; i < rows; i++)
		memcpy(buf + i * 20, "012345678,焼津abc\n", 20);
	*len = rows * 20;
	return buf;
}

static void test_fields_and_quotes(void)
{
	EXPECT("a,b,c\n1,2,3\n", "L1 1ua 1ub 1uc\nL2 1u1 1u2 1u3\n");
	EXPECT("\"a,b\",\"say \"\"hi\"\"\",,\"\"\n",
	       "L1 3qa,b 8qsay \"hi\" 0u 0q\n");
	EXPECT("\"\"\"\"\n", "L1 1q\"\n");
	EXPECT("a,\n,\n", "L1 1ua 0u\nL2 0u 0u\n");
	EXPECT(" x , y \n", "L1 3u x  3u y \n");
	EXPECT("名前,ｶﾅ\n焼津,\"ﾔｲﾂﾞ\"\n",
	       "L1 6u名前 6uｶﾅ\nL2 6u焼津 12qﾔｲﾂﾞ\n");
}

static void test_newlines_in_quotes(void)
{
	/* the record keeps the line it starts on; the counter still advances */
	EXPECT("\"x\ny\",z\nnext,1\n", "L1 3qx\ny 1uz\nL3 4unext 1u1\n");
	EXPECT("\"a\r\nb\r\n\",c\r\nd\r\n", "L1 6qa\r\nb\r\n 1uc\nL4 1ud\n");
	EXPECT("\"a\rb\"\nc\n", "L1 3qa\rb\nL2 1uc\n");
	EXPECT("\"\n\n\n\"\nx\n", "L1 3q\n\n\n\nL5 1ux\n");
}

static void test_line_endings(void)
{
	EXPECT("a\r\nb\nc\r\n", "L1 1ua\nL2 1ub\nL3 1uc\n");
	/* no final newline, quoted or not */
	EXPECT("a,b\nc,d", "L1 1ua 1ub\nL2 1uc 1ud\n");
	EXPECT("a,\"b\"", "L1 1ua 1qb\n");
	EXPECT("a,", "L1 1ua 0u\n");
	/* blank lines, LF or CRLF, anywhere, are skipped but counted */
	EXPECT("\n\r\na\n\n\r\n\nb\r\n\n", "L3 1ua\nL7 1ub\n");
	/* a lone CR inside an unquoted field is data; at the very end it ends the record */
	EXPECT("a\rb,c\n", "L1 3ua\rb 1uc\n");
	EXPECT("\rx\n", "L1 2u\rx\n");
	EXPECT("a,b\r", "L1 1ua 1ub\n");
	EXPECT("\"a\"\r", "L1 1qa\n");
	EXPECT("a\n\r", "L1 1ua\n");
}

static void test_empty_inputs(void)
{
	struct csv_reader *r = NULL;
	struct csv_record rec;

	EXPECT("", "");
	EXPECT("\n\n\r\n", "");
	EXPECT("\xEF\xBB\xBF", "");
	REQUIRE(csv_open_mem(NULL, 0, &r) == 0);
	CHECK_RC(csv_next(r, &rec), 0);
	CHECK_RC(csv_next(r, &rec), 0);  /* the end stays the end */
	CHECK(csv_bytes_read(r) == 0);
	CHECK_STREQ(csv_error(r), "");
	csv_close(&r);
	CHECK(r == NULL);
	csv_close(&r);
	CHECK_RC(csv_open_fd(-1, &r), MU_E_USAGE);
	CHECK_RC(csv_open_mem(NULL, 3, &r), MU_E_USAGE);
}

static void test_encodings(void)
{
	static const char bom[] = "\xEF\xBB\xBFid,名前\r\n1,焼津\r\n";
	static const char plain[] = "id,名前\r\n1,焼津\r\n";
	struct csv_reader *r = NULL;
	struct csv_record rec;
	char *sjis;
	size_t len;

	REQUIRE(csv_open_mem(bom, sizeof(bom) - 1, &r) == 0);
	REQUIRE(csv_next(r, &rec) == 1);
	CHECK_STREQ(rec.fields[0].ptr, "id");
	CHECK(rec.fields[0].len == 2);
	CHECK(csv_encoding(r) == CSV_ENC_UTF8_BOM);
	csv_close(&r);

	REQUIRE(csv_open_mem(plain, sizeof(plain) - 1, &r) == 0);
	CHECK_RC(csv_next(r, &rec), 1);
	CHECK(csv_encoding(r) == CSV_ENC_UTF8);
	csv_close(&r);

	/* Shift_JIS bytes are not UTF-8: taken as CP932 and converted */
	REQUIRE((sjis = convert("CP932", "UTF-8", plain, sizeof(plain) - 1, &len)) != NULL);
	REQUIRE(csv_open_mem(sjis, len, &r) == 0);
	CHECK_RC(csv_next(r, &rec), 1);
	REQUIRE(csv_next(r, &rec) == 1);
	CHECK(csv_encoding(r) == CSV_ENC_CP932);
	CHECK_STREQ(rec.fields[1].ptr, "焼津");
	csv_close(&r);
	free(sjis);
	/* CP932, not plain Shift_JIS: 0x5C is a backslash, 0x87 0x40 is ① */
	EXPECT("\x82\xa0,C:\\dir,\x87\x40\n", "L1 3uあ 6uC:\\dir 3u①\n");

	CHECK_STREQ(csv_encoding_name(CSV_ENC_UTF8), "UTF-8");
	CHECK_STREQ(csv_encoding_name(CSV_ENC_UTF8_BOM), "UTF-8 with BOM");
	CHECK_STREQ(csv_encoding_name(CSV_ENC_CP932), "Shift_JIS (CP932)");
}

static void test_malformed_csv(void)
{
	CHECK(EXPECT_ERR("a,b\nc,\"open\nmore\n", MU_E_CSV,
			 "line 2, column 2: unterminated quoted field (opened here)") == 1);
	EXPECT_ERR("\"", MU_E_CSV, "line 1, column 1: unterminated quoted field (opened here)");
	EXPECT_ERR("id,name\n1,ab\"c\n", MU_E_CSV,
		   "line 2, column 2: stray quote in unquoted field");
	EXPECT_ERR("x,y,z\"\n", MU_E_CSV, "line 1, column 3: stray quote in unquoted field");
	EXPECT_ERR("\"a\"b,c\n", MU_E_CSV, "line 1, column 1: text after closing quote");
	/* the line counter went through the quoted newline of field 1 */
	CHECK(EXPECT_ERR("x,y,z\n\"m\nn\",\"p\" ,q\n", MU_E_CSV,
			 "line 3, column 2: text after closing quote") == 1);
	EXPECT_ERR("\"a\"\rb\n", MU_E_CSV, "line 1, column 1: text after closing quote");
	EXPECT_ERR("a,b\n1,2\0\n", MU_E_CSV, "line 2, column 2: NUL byte");
	EXPECT_ERR("a,\"x\ny\0\"\n", MU_E_CSV, "line 2, column 2: NUL byte");
	EXPECT_ERR("\0", MU_E_CSV, "line 1, column 1: NUL byte");
}

static void test_too_many_fields(void)
{
	char *buf = malloc(CSV_MAX_FIELDS + 3);
	struct csv_reader *r = NULL;
	struct csv_record rec;

	REQUIRE(buf != NULL);
	/* CSV_MAX_FIELDS - 1 commas: exactly the limit, accepted */
	memset(buf, ',', CSV_MAX_FIELDS - 1);
	buf[CSV_MAX_FIELDS - 1] = '\n';
	REQUIRE(csv_open_mem(buf, CSV_MAX_FIELDS, &r) == 0);
	CHECK_RC(csv_next(r, &rec), 1);
	CHECK(rec.nfields == CSV_MAX_FIELDS);
	csv_close(&r);
	/* one more is refused at the field past the limit */
	memcpy(buf, "h\n", 2);
	memset(buf + 2, ',', CSV_MAX_FIELDS);
	CHECK(expect_error(buf, CSV_MAX_FIELDS + 2, MU_E_CSV,
			   "line 2, column 4097: more than 4096 fields") == 1);
	free(buf);
}

static void test_record_too_long(void)
{
	size_t n = CSV_MAX_RECORD + 16;
	char *buf = malloc(n);
	struct csv_reader *r = NULL;
	struct csv_record rec;

	REQUIRE(buf != NULL);
	/* a record of exactly CSV_MAX_RECORD bytes with its newline is fine */
	memcpy(buf, "h\n", 2);
	memset(buf + 2, 'x', CSV_MAX_RECORD - 1);
	buf[CSV_MAX_RECORD + 1] = '\n';
	REQUIRE(csv_open_mem(buf, CSV_MAX_RECORD + 2, &r) == 0);
	CHECK_RC(csv_next(r, &rec), 1);
	CHECK_RC(csv_next(r, &rec), 1);
	CHECK(rec.fields[0].len == CSV_MAX_RECORD - 1);
	CHECK_RC(csv_next(r, &rec), 0);
	csv_close(&r);
	/* one byte more is refused, whether or not the record ends */
	buf[CSV_MAX_RECORD + 1] = 'x';
	buf[CSV_MAX_RECORD + 2] = '\n';
	CHECK(expect_error(buf, CSV_MAX_RECORD + 3, MU_E_CSV,
			   "line 2, column 1: record longer than 4194304 bytes") == 1);
	memset(buf + 2, 'x', n - 2);
	CHECK(expect_error(buf, n, MU_E_CSV,
			   "line 2, column 1: record longer than 4194304 bytes") == 1);
	/* quoted newlines count as the record's bytes too */
	buf[2] = '"';
	for (size_t i = 3; i < n; i += 7)
		buf[i] = '\n';
	CHECK(expect_error(buf, n, MU_E_CSV,
			   "line 2, column 1: record longer than 4194304 bytes") == 1);
	free(buf);
}

/* Invalid UTF-8 after a valid first block: MU_E_ENCODING at its place. */
static void test_invalid_utf8(void)
{
	static const char *const bad[] = {
		"\xC0\xAF",          /* overlong '/' */
		"\xE0\x80\xAF",      /* overlong, 3 bytes */
		"\xF0\x8F\xBF\xBF",  /* overlong, 4 bytes */
		"\xED\xA0\x80",      /* UTF-16 surrogate U+D800 */
		"\xF4\x90\x80\x80",  /* U+110000 */
		"\xF8\x88\x80\x80\x80",
		"\x80",              /* continuation without a lead */
		"\xE7\x84\x41",      /* lead cut short by an "A" */
		"\xFF",
	};
	size_t plen, rows = 4000;  /* 80,000 bytes */
	char *prefix = utf8_prefix(rows, &plen);
	char want[128];

	snprintf(want, sizeof(want), "line %zu, column 3: invalid UTF-8", rows + 1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t blen = strlen(bad[i]);
		char *buf = malloc(plen + blen + 16);
		memcpy(buf, prefix, plen);
		memcpy(buf + plen, "a,b,c", 5);
		memcpy(buf + plen + 5, bad[i], blen);
		memcpy(buf + plen + 5 + blen, "\nz\n", 3);
		/* every record before the bad one is delivered */
		CHECK(expect_error(buf, plen + blen + 8, MU_E_ENCODING, want) == rows);
		free(buf);
	}
	/* in the very first field of a record */
	char *buf = malloc(plen + 8);
	memcpy(buf, prefix, plen);
	memcpy(buf + plen, "\xED\xBF\xBF\n", 4);
	snprintf(want, sizeof(want), "line %zu, column 1: invalid UTF-8", rows + 1);
	CHECK(expect_error(buf, plen + 4, MU_E_ENCODING, want) == rows);
	free(buf);

	/* the edges of what is valid pass through unchanged */
	static const char edges[] = "\xC2\x80,\xED\x9F\xBF,\xEE\x80\x80,"
				    "\xF0\x90\x80\x80,\xF4\x8F\xBF\xBF\n";
	char *got = NULL;
	size_t n;
	buf = malloc(plen + sizeof(edges));
	memcpy(buf, prefix, plen);
	memcpy(buf + plen, edges, sizeof(edges));
	CHECK_RC(dump_mem(buf, plen + sizeof(edges) - 1, &got, &n), 0);
	CHECK(n == rows + 1);
	CHECK(got != NULL && strstr(got, " 2u\xC2\x80 3u\xED\x9F\xBF 3u\xEE\x80\x80"
				     " 4u\xF0\x90\x80\x80 4u\xF4\x8F\xBF\xBF\n") != NULL);
	free(got);
	free(buf);
	free(prefix);

	EXPECT_ERR("a,b\nc,\xE7\x84", MU_E_ENCODING,
		   "line 2, column 2: incomplete multibyte character at end of input");
}

static void test_invalid_cp932(void)
{
	/* "名前" in Shift_JIS first, so the input is taken as CP932 */
	EXPECT_ERR("\x96\xbc\x91\x4f,x\r\n1,\x85\x40\r\n", MU_E_ENCODING,
		   "line 2, column 2: invalid Shift_JIS (CP932) byte sequence");
	EXPECT_ERR("\x96\xbc\x91\x4f\r\n\"a\r\n\x81\x7f\"\r\n", MU_E_ENCODING,
		   "line 3, column 1: invalid Shift_JIS (CP932) byte sequence");
	EXPECT_ERR("\x96\xbc\x91\x4f,\xa0\r\n", MU_E_ENCODING,
		   "line 1, column 2: invalid Shift_JIS (CP932) byte sequence");
	EXPECT_ERR("\x96\xbc\x91\x4f\r\n\xfd\r\n", MU_E_ENCODING,
		   "line 2, column 1: invalid Shift_JIS (CP932) byte sequence");
	EXPECT_ERR("\x96\xbc\x91\x4f\r\nx,y,\x82", MU_E_ENCODING,
		   "line 2, column 3: incomplete multibyte character at end of input");
}

static void test_read_error(void)
{
	struct csv_reader *r = NULL;
	struct csv_record rec;
	int fd;

	REQUIRE(tu_tmpdir(tmpdir, "csv") == 0);
	fd = open(tmpdir, O_RDONLY | O_DIRECTORY);  /* read() gives EISDIR */
	REQUIRE(fd >= 0);
	REQUIRE(csv_open_fd(fd, &r) == 0);
	CHECK_RC(csv_next(r, &rec), -EISDIR);
	CHECK_RC(csv_next(r, &rec), -EISDIR);
	CHECK(strstr(csv_error(r), "read failed") != NULL);
	csv_close(&r);
	close(fd);
	tu_rmrf(tmpdir);
}

static void test_tourism_multiline_bom(void)
{
	const char *path = MU_TEST_DATA "/tourism/222127_yaizu.csv";
	struct csv_reader *r = NULL;
	struct csv_record rec;
	size_t n = 0, header = 0, multiline = 0;
	uint64_t prev_line = 0;
	int fd = open(path, O_RDONLY), rc;

	REQUIRE(fd >= 0);
	REQUIRE(csv_open_fd(fd, &r) == 0);
	while ((rc = csv_next(r, &rec)) == 1) {
		if (n++ == 0)
			header = rec.nfields;
		else
			multiline += rec.line > prev_line + 1;
		CHECK(rec.nfields == header);
		prev_line = rec.line;
	}
	CHECK_RC(rc, 0);
	CHECK(n == 205 + 1);
	CHECK(header == 50);
	CHECK(multiline > 0);  /* some record spans lines */
	CHECK(csv_encoding(r) == CSV_ENC_UTF8_BOM);
	CHECK(csv_bytes_read(r) == 116483);
	csv_close(&r);
	close(fd);
}

static void test_covid_raw(void)
{
	const char *path = MU_TEST_DATA "/covid19/010006_hokkaido_patients_raw_20200309.csv";
	struct csv_reader *r = NULL;
	struct csv_record rec;
	size_t n = 0, header = 0, with_newline = 0;
	int fd = open(path, O_RDONLY), rc;

	REQUIRE(fd >= 0);
	REQUIRE(csv_open_fd(fd, &r) == 0);
	while ((rc = csv_next(r, &rec)) == 1) {
		if (n++ == 0)
			header = rec.nfields;
		CHECK(rec.nfields == header);
		for (size_t i = 0; i < rec.nfields; i++)
			with_newline += rec.fields[i].quoted &&
					memchr(rec.fields[i].ptr, '\n', rec.fields[i].len) != NULL;
	}
	CHECK_RC(rc, 0);
	CHECK(n == 108 + 1);
	CHECK(header == 7);
	CHECK(with_newline > 0);
	CHECK(csv_encoding(r) == CSV_ENC_UTF8);
	csv_close(&r);
	close(fd);
}

/* A pipe delivers short reads; the records are those read from memory. */
static void test_pipe_short_reads(void)
{
	const char *path = MU_TEST_DATA "/tourism/222127_yaizu.csv";
	struct csv_reader *r = NULL;
	char *data, *want = NULL, *got = NULL;
	uint8_t hash[32], want_hash[32];
	size_t len, nwant, ngot;
	int fds[2], status;
	pid_t pid;

	REQUIRE((data = read_file(path, &len)) != NULL);
	REQUIRE(pipe(fds) == 0);
	REQUIRE((pid = fork()) >= 0);
	if (pid == 0) {
		int rc = 0;
		close(fds[0]);
		for (size_t off = 0; off < len && rc == 0; off += 1000)
			rc = write(fds[1], data + off, len - off < 1000 ? len - off : 1000) < 0;
		free(data);
		_exit(rc);
	}
	close(fds[1]);
	REQUIRE(csv_open_fd(fds[0], &r) == 0);
	CHECK_RC(dump(r, &got, &ngot), 0);
	csv_input_sha256(r, hash);
	csv_close(&r);
	close(fds[0]);
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	      WEXITSTATUS(status) == 0);
	CHECK_RC(dump_mem(data, len, &want, &nwant), 0);
	CHECK(ngot == 206 && ngot == nwant);
	CHECK(got != NULL && want != NULL && strcmp(got, want) == 0);
	REQUIRE(EVP_Digest(data, len, want_hash, NULL, EVP_sha256(), NULL) == 1);
	CHECK(memcmp(hash, want_hash, 32) == 0);
	free(got);
	free(want);
	free(data);
}

/* A real UTF-8 file converted to Shift_JIS reads back field for field. */
static void test_sjis_real_file(void)
{
	const char *path = MU_TEST_DATA "/evacuation_sites/222127_yaizu.csv";
	char *utf8 = NULL, *sjis = NULL, *want = NULL, *got = NULL;
	size_t len, slen, nwant = 0, ngot = 0;
	enum csv_encoding enc;
	const char *spath;

	REQUIRE(tu_tmpdir(tmpdir, "csv") == 0);
	REQUIRE((utf8 = read_file(path, &len)) != NULL);
	REQUIRE((sjis = convert("CP932", "UTF-8", utf8, len, &slen)) != NULL);
	CHECK(slen < len);  /* really converted: kanji take 2 bytes, not 3 */
	REQUIRE((spath = write_tmp("yaizu_sjis.csv", sjis, slen)) != NULL);
	CHECK_RC(dump_path(path, &want, &nwant, &enc), 0);
	CHECK(enc == CSV_ENC_UTF8);
	CHECK_RC(dump_path(spath, &got, &ngot, &enc), 0);
	CHECK(enc == CSV_ENC_CP932);
	CHECK(nwant == 31 + 1);
	CHECK(ngot == nwant);
	CHECK_STREQ(got, want);
	free(got);
	CHECK_RC(dump_mem(sjis, slen, &got, &ngot), 0);
	CHECK_STREQ(got, want);
	free(got);
	free(want);
	free(sjis);
	free(utf8);
	tu_rmrf(tmpdir);
}

/*
 * Records far longer than a block, full of doubled quotes and CRLF/LF
 * inside quotes, then many short CRLF records. The pattern is shifted by
 * 0..9 bytes so that over the runs a block boundary falls on every byte of
 * it: inside "", between CR and LF, right after a quote.
 */
static void test_split_across_blocks(void)
{
	static const char unit[] = "ab\"\"c\r\nd\ne";  /* value ab"c CRLF d LF e */
	const size_t units = BIG_FILE / (sizeof(unit) - 1), shorts = 3000;

	REQUIRE(tu_tmpdir(tmpdir, "csv") == 0);
	for (size_t shift = 0; shift < sizeof(unit) - 1; shift++) {
		char *in, *out, *got = NULL, *got_mem = NULL;
		size_t in_len, out_len, n = 0, n_mem = 0;
		FILE *fi = open_memstream(&in, &in_len), *fo = open_memstream(&out, &out_len);
		uint64_t line = 2 + 2 * units;
		enum csv_encoding enc;
		const char *path;

		fprintf(fi, "%.*s,\"", (int)shift, "pppppppppp");
		fprintf(fo, "L1 %zuu%.*s %zuq", shift, (int)shift, "pppppppppp",
			units * (sizeof(unit) - 2));
		for (size_t i = 0; i < units; i++) {
			fputs(unit, fi);
			fputs("ab\"c\r\nd\ne", fo);
		}
		fputs("\",end\r\n", fi);
		fputs(" 3uend\n", fo);
		for (size_t i = 0; i < shorts; i++) {
			fprintf(fi, "r%zu,\"q\"\"x\",z\r\n", i);
			fprintf(fo, "L%llu %zuur%zu 3qq\"x 1uz\n", (unsigned long long)line++,
				(size_t)snprintf(NULL, 0, "r%zu", i), i);
		}
		fclose(fi);
		fclose(fo);
		REQUIRE((path = write_tmp("split.csv", in, in_len)) != NULL);
		CHECK_RC(dump_path(path, &got, &n, &enc), 0);
		CHECK_RC(dump_mem(in, in_len, &got_mem, &n_mem), 0);
		CHECK(n == shorts + 1);
		CHECK(got != NULL && strcmp(got, out) == 0);
		CHECK(got_mem != NULL && strcmp(got_mem, out) == 0);
		free(got);
		free(got_mem);
		free(in);
		free(out);
	}
	tu_rmrf(tmpdir);
}

/*
 * Multibyte characters cut by a block boundary, in Shift_JIS (iconv's
 * EINVAL path) and in UTF-8: a long quoted field of "焼津市ｱ\n" (8 bytes
 * in CP932, 13 in UTF-8) shifted by 0..12 bytes.
 */
static void test_multibyte_split_across_blocks(void)
{
	static const char unit[] = "焼津市ｱ\n";
	const size_t units = BIG_FILE / 8;

	REQUIRE(tu_tmpdir(tmpdir, "csv") == 0);
	for (size_t shift = 0; shift < sizeof(unit) - 1; shift++) {
		char *text, *sjis, *want = NULL, *got = NULL, *value;
		size_t len, slen, nwant, ngot;
		FILE *f = open_memstream(&text, &len);
		enum csv_encoding enc;
		const char *path;
		struct csv_reader *r = NULL;
		struct csv_record rec;

		fprintf(f, "名前,値\r\n%.*s,\"", (int)shift, "xxxxxxxxxxxxx");
		for (size_t i = 0; i < units; i++)
			fputs(unit, f);
		fputs("\"\r\nｶﾀｶﾅ,全角\r\n", f);
		fclose(f);
		value = strndup(strchr(text, '"') + 1, units * (sizeof(unit) - 1));

		REQUIRE((sjis = convert("CP932", "UTF-8", text, len, &slen)) != NULL);
		REQUIRE((path = write_tmp("mb.csv", sjis, slen)) != NULL);
		CHECK_RC(dump_path(path, &got, &ngot, &enc), 0);
		CHECK(enc == CSV_ENC_CP932);
		REQUIRE((path = write_tmp("mb_utf8.csv", text, len)) != NULL);
		CHECK_RC(dump_path(path, &want, &nwant, &enc), 0);
		CHECK(enc == CSV_ENC_UTF8);
		CHECK(nwant == 3 && ngot == 3);
		CHECK(got != NULL && want != NULL && strcmp(got, want) == 0);

		/* and the value is the very text that was written */
		REQUIRE(csv_open_mem(sjis, slen, &r) == 0);
		CHECK_RC(csv_next(r, &rec), 1);
		CHECK_RC(csv_next(r, &rec), 1);
		CHECK(rec.nfields == 2 && rec.fields[1].len == strlen(value));
		CHECK_STREQ(rec.fields[1].ptr, value);
		CHECK(rec.line == 2);
		CHECK_RC(csv_next(r, &rec), 1);
		CHECK(rec.line == 3 + units);
		CHECK_STREQ(rec.fields[0].ptr, "ｶﾀｶﾅ");
		csv_close(&r);
		free(value);
		free(got);
		free(want);
		free(sjis);
		free(text);
	}
	tu_rmrf(tmpdir);
}

/* Every bundled file: fd and memory give the same records; bytes_read is
 * the file size and the SHA-256 that of a one-shot hash of the file. */
static void check_same_and_hash(const char *path)
{
	struct csv_reader *rf = NULL, *rm = NULL;
	char *data, *a = NULL, *b = NULL;
	uint8_t want[32], hf[32], hm[32];
	size_t len, na, nb;
	int fd, before = check_failures;

	REQUIRE((data = read_file(path, &len)) != NULL);
	REQUIRE((fd = open(path, O_RDONLY)) >= 0);
	REQUIRE(csv_open_fd(fd, &rf) == 0);
	REQUIRE(csv_open_mem(data, len, &rm) == 0);
	CHECK_RC(dump(rf, &a, &na), 0);
	CHECK_RC(dump(rm, &b, &nb), 0);
	CHECK(na > 1 && na == nb);
	CHECK(a != NULL && b != NULL && strcmp(a, b) == 0);
	CHECK(csv_encoding(rf) == csv_encoding(rm));
	REQUIRE(EVP_Digest(data, len, want, NULL, EVP_sha256(), NULL) == 1);
	csv_input_sha256(rf, hf);
	csv_input_sha256(rm, hm);
	CHECK(memcmp(hf, want, 32) == 0);
	CHECK(memcmp(hm, want, 32) == 0);
	CHECK(csv_bytes_read(rf) == len && csv_bytes_read(rm) == len);
	if (check_failures != before)
		fprintf(stderr, "  file %s\n", path);
	csv_close(&rf);
	csv_close(&rm);
	close(fd);
	free(a);
	free(b);
	free(data);
}

static void test_fd_mem_sha256_real_files(void)
{
	glob_t g;

	REQUIRE(glob(MU_TEST_DATA "/*/*.csv", 0, NULL, &g) == 0);
	CHECK(g.gl_pathc >= 30);
	for (size_t i = 0; i < g.gl_pathc; i++)
		check_same_and_hash(g.gl_pathv[i]);
	globfree(&g);
}

/* The hash covers the raw bytes, not the decoded text, and grows with
 * reading: after the first record of a big file only a block is in it. */
static void test_sha256_raw_and_progress(void)
{
	const char *path = MU_TEST_DATA "/evacuation_sites/222127_yaizu.csv";
	char *utf8, *sjis;
	size_t len, slen, plen;
	uint8_t want[32], got[32];
	struct csv_reader *r = NULL;
	struct csv_record rec;
	char *big = utf8_prefix(10000, &plen);

	REQUIRE((utf8 = read_file(path, &len)) != NULL);
	REQUIRE((sjis = convert("CP932", "UTF-8", utf8, len, &slen)) != NULL);
	REQUIRE(csv_open_mem(sjis, slen, &r) == 0);
	while (csv_next(r, &rec) == 1)
		;
	csv_input_sha256(r, got);
	REQUIRE(EVP_Digest(sjis, slen, want, NULL, EVP_sha256(), NULL) == 1);
	CHECK(memcmp(got, want, 32) == 0);
	CHECK(csv_bytes_read(r) == slen);
	csv_close(&r);

	REQUIRE(csv_open_mem(big, plen, &r) == 0);
	CHECK(csv_bytes_read(r) == 0);
	CHECK_RC(csv_next(r, &rec), 1);
	CHECK(csv_bytes_read(r) > 0 && csv_bytes_read(r) < plen);
	while (csv_next(r, &rec) == 1)
		;
	CHECK(csv_bytes_read(r) == plen);
	csv_close(&r);
	free(big);
	free(sjis);
	free(utf8);
}

CHECK_TESTS = {
	{ "fields and quotes", test_fields_and_quotes },
	{ "newlines in quotes", test_newlines_in_quotes },
	{ "line endings and blank lines", test_line_endings },
	{ "empty inputs", test_empty_inputs },
	{ "encodings", test_encodings },
	{ "malformed csv", test_malformed_csv },
	{ "too many fields", test_too_many_fields },
	{ "record too long", test_record_too_long },
	{ "invalid utf-8", test_invalid_utf8 },
	{ "invalid cp932", test_invalid_cp932 },
	{ "read error", test_read_error },
	{ "tourism multi-line with bom", test_tourism_multiline_bom },
	{ "covid raw newlines in quotes", test_covid_raw },
	{ "pipe with short reads", test_pipe_short_reads },
	{ "shift_jis real file", test_sjis_real_file },
	{ "records split across blocks", test_split_across_blocks },
	{ "multibyte split across blocks", test_multibyte_split_across_blocks },
	{ "fd and mem, sha-256, real files", test_fd_mem_sha256_real_files },
	{ "sha-256 raw and progress", test_sha256_raw_and_progress },
	{ NULL, NULL }
};
