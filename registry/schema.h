/*
 * schema.h - versioned table schemas (Frictionless Table Schema), pure logic.
 *
 * A schema is a Table Schema JSON document with three musubi properties at
 * the top level: "name" (the schema id, e.g. "evacuation_space"),
 * "version" (a positive integer) and "title". Fields carry "name" (the
 * column name as the standard writes it, usually Japanese), "type"
 * (string, integer, number, boolean, date, datetime, time, year, geopoint),
 * an optional "format", "constraints" (required, unique, minimum, maximum,
 * minLength, maxLength, pattern, enum) and optional "x-aliases": other
 * header spellings accepted for the column. "primaryKey" names one or more
 * fields. "missingValues" defaults to [""]: such a cell is NULL.
 *
 * Valid time: a date or datetime field may carry "x-valid": "from" (the
 * row is in force from that day on, e.g. the address registry's 効力発生日)
 * or "until" (in force before that day, e.g. 廃止日); one of each at most.
 * A NULL bound is open. qry.h's valid_at option reads them.
 *
 * "foreignKeys" (Table Schema): [{"fields": F, "reference": {"resource":
 * R, "fields": G}}] where R names a dataset ("address" for every
 * publisher's, or "<member>/<name>"); publish checks them (publish.h).
 *
 * Built-in schemas (the standard municipal datasets and the real layouts
 * that have no standard) are compiled into the program; schema_resolve()
 * takes "id@version" for those, or a path to a JSON file.
 *
 * Ownership: every struct schema is the caller's, freed by schema_destroy().
 * `why` strings returned through char ** are the caller's to free().
 */
#ifndef MU_SCHEMA_H
#define MU_SCHEMA_H

#include <regex.h>
#include <stddef.h>
#include <stdint.h>

enum schema_type {
	SCHEMA_STRING = 0,
	SCHEMA_INTEGER,
	SCHEMA_NUMBER,
	SCHEMA_BOOLEAN,
	SCHEMA_DATE,      /* stored as text YYYY-MM-DD */
	SCHEMA_DATETIME,  /* stored as text YYYY-MM-DDTHH:MM:SS[Z|±HH:MM] */
	SCHEMA_TIME,      /* stored as text HH:MM:SS */
	SCHEMA_YEAR,      /* stored as integer */
	SCHEMA_GEOPOINT,  /* stored as text "lat,lon" (format "default") */
};

/* A typed value. NULL is kind MU_VAL_NULL. */
enum mu_val_kind { MU_VAL_NULL = 0, MU_VAL_TEXT, MU_VAL_INT, MU_VAL_NUM, MU_VAL_BOOL };
struct mu_value {
	enum mu_val_kind kind;
	const char *text;   /* MU_VAL_TEXT: points into the input or into buf */
	size_t len;
	int64_t i;          /* MU_VAL_INT (and MU_VAL_BOOL as 0/1) */
	double d;           /* MU_VAL_NUM */
	char buf[48];       /* canonical text for dates and times; do not copy
			     * a struct mu_value by value while text points here */
};

struct schema_field {
	char *name;
	char *title;
	char *description;
	enum schema_type type;
	char **aliases;
	size_t naliases;
	int required;
	int unique;
	int has_minimum, has_maximum;
	double minimum, maximum;
	long min_length, max_length;   /* -1 when absent; counted in characters */
	char *pattern;                 /* NULL when absent */
	regex_t pattern_re;            /* compiled, anchored; valid iff pattern */
	char **enum_values;            /* NULL when absent */
	size_t nenum;
	char **true_values, **false_values;  /* boolean spellings */
	size_t ntrue, nfalse;
	enum { SCHEMA_VALID_NONE = 0, SCHEMA_VALID_FROM, SCHEMA_VALID_UNTIL } valid;  /* "x-valid" */
};

/* A foreign key: fields of this schema whose values must be a key of the
 * referenced dataset's fields ref_fields (as many, in order). */
struct schema_fkey {
	size_t *fields;     /* indexes into the schema's fields */
	size_t nfields;
	char *resource;     /* "name" or "<member>/<name>" */
	char **ref_fields;
};

struct schema {
	char *id;
	unsigned version;
	char *title;
	char *description;
	struct schema_field *fields;
	size_t nfields;
	size_t *pk;         /* indexes into fields */
	size_t npk;
	struct schema_fkey *fkeys;
	size_t nfkeys;
	char *json;         /* the document as registered (NUL-terminated) */
	size_t json_len;
	uint8_t digest[32]; /* SHA-256 of json */
};

/* Parse a Table Schema document. On failure returns MU_E_SCHEMA and sets
 * *why (when why != NULL) to a sentence saying what is wrong and where. */
int schema_parse(const char *json, size_t len, struct schema **out, char **why);
void schema_destroy(struct schema **s);

/* "id@version" of a built-in schema, or a path to a Table Schema JSON file
 * (anything containing '/' or ending in ".json"). */
int schema_resolve(const char *spec, struct schema **out, char **why);

/* Built-in schemas: how many, and the JSON of the i-th (borrowed, static). */
size_t schema_builtin_count(void);
const char *schema_builtin_json(size_t i);

/* Index of the field a CSV header cell names (exact name, then aliases,
 * then after trimming spaces and folding full-width ASCII), or -1. */
long schema_field_index(const struct schema *s, const char *header, size_t len);

/*
 * Convert one cell to its typed value and check the field's constraints
 * (all but "unique", which needs the whole column). Returns 0, or
 * MU_E_SCHEMA with `why` (a buffer of whylen bytes) naming the rule and
 * the value, e.g. `"abc" is not an integer` or `value is required`.
 */
int schema_convert(const struct schema_field *f, const char *text, size_t len,
		   struct mu_value *out, char *why, size_t whylen);

/* Format a typed value as the canonical CSV text (the inverse of
 * schema_convert for valid input). Writes at most cap bytes, NUL-terminated;
 * returns the length it needed (like snprintf). */
size_t schema_format(const struct mu_value *v, char *out, size_t cap);

/*
 * Is `next` a compatible evolution of `prev`? Compatible: same id, higher
 * version, same primary key, every old field kept with the same type, no
 * constraint tightened, new fields not required. Returns 0, or
 * MU_E_INCOMPAT with *why listing every reason, one per line.
 */
int schema_compat(const struct schema *prev, const struct schema *next, char **why);

const char *schema_type_name(enum schema_type t);

#endif
