/*
 * rec.c - encoding and decoding of musubi's stored records with protobuf-c.
 *
 * protobuf-c messages are built on the stack around borrowed pointers for
 * encoding (nothing is copied), and unpacked with the default allocator for
 * decoding, kept alive inside the *_decoded wrapper until it is freed; or,
 * for entries decoded in bulk, into a reused arena (rec_entry_decode_in).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "musubi.pb-c.h"
#include "mu_err.h"
#include "rec.h"

void rec_buf_fini(struct rec_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

int rec_buf_reserve(struct rec_buf *b, size_t n)
{
	if (b->cap - b->len >= n)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len < n) {
		if (cap > SIZE_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	uint8_t *p = realloc(b->data, cap);
	if (p == NULL)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

/* Pack any message into out, replacing its contents. */
static int pack_into(const ProtobufCMessage *m, struct rec_buf *out)
{
	size_t need = protobuf_c_message_get_packed_size(m);
	int rc;

	out->len = 0;
	if ((rc = rec_buf_reserve(out, need)) < 0)
		return rc;
	out->len = protobuf_c_message_pack(m, out->data);
	return 0;
}

#define ROW_STACK 256

int rec_row_encode(const struct mu_value *values, size_t n, struct rec_buf *out)
{
	Musubi__Value vs_stack[ROW_STACK], *vs = vs_stack;
	Musubi__Value *ptrs_stack[ROW_STACK], **ptrs = ptrs_stack;
	Musubi__Row row = MUSUBI__ROW__INIT;
	int rc;

	if (n > ROW_STACK) {
		vs = calloc(n, sizeof(*vs));
		ptrs = calloc(n, sizeof(*ptrs));
		if (vs == NULL || ptrs == NULL) {
			rc = -ENOMEM;
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		musubi__value__init(&vs[i]);
		switch (values[i].kind) {
		case MU_VAL_NULL:
			break;
		case MU_VAL_TEXT:
			/* protobuf-c strings are NUL-terminated C strings; cells
			 * from the CSV reader and schema_convert always are. */
			vs[i].kind_case = MUSUBI__VALUE__KIND_TEXT;
			vs[i].text = (char *)values[i].text;
			break;
		case MU_VAL_INT:
			vs[i].kind_case = MUSUBI__VALUE__KIND_INTEGER;
			vs[i].integer = values[i].i;
			break;
		case MU_VAL_NUM:
			vs[i].kind_case = MUSUBI__VALUE__KIND_NUMBER;
			vs[i].number = values[i].d;
			break;
		case MU_VAL_BOOL:
			vs[i].kind_case = MUSUBI__VALUE__KIND_BOOLEAN;
			vs[i].boolean = values[i].i != 0;
			break;
		}
		ptrs[i] = &vs[i];
	}
	row.n_values = n;
	row.values = ptrs;
	rc = pack_into(&row.base, out);
out:
	if (vs != vs_stack)
		free(vs);
	if (ptrs != ptrs_stack)
		free(ptrs);
	return rc;
}

/* Fill out->values from a decoded Row (values already allocated). */
static void row_from_msg(const Musubi__Row *m, struct mu_value *values)
{
	for (size_t i = 0; i < m->n_values; i++) {
		const Musubi__Value *v = m->values[i];
		struct mu_value *o = &values[i];
		memset(o, 0, sizeof(*o));
		switch (v->kind_case) {
		case MUSUBI__VALUE__KIND_TEXT:
			o->kind = MU_VAL_TEXT;
			o->text = v->text;
			o->len = strlen(v->text);
			break;
		case MUSUBI__VALUE__KIND_INTEGER:
			o->kind = MU_VAL_INT;
			o->i = v->integer;
			break;
		case MUSUBI__VALUE__KIND_NUMBER:
			o->kind = MU_VAL_NUM;
			o->d = v->number;
			break;
		case MUSUBI__VALUE__KIND_BOOLEAN:
			o->kind = MU_VAL_BOOL;
			o->i = v->boolean ? 1 : 0;
			break;
		default:
			o->kind = MU_VAL_NULL;
			break;
		}
	}
}

int rec_row_decode(const uint8_t *buf, size_t len, struct rec_row **out)
{
	Musubi__Row *m = musubi__row__unpack(NULL, len, buf);
	struct rec_row *r = NULL;

	*out = NULL;
	if (m == NULL)
		return MU_E_DECODE;
	r = calloc(1, sizeof(*r));
	if (r == NULL || (m->n_values > 0 &&
			  (r->values = calloc(m->n_values, sizeof(*r->values))) == NULL)) {
		free(r);
		musubi__row__free_unpacked(m, NULL);
		return -ENOMEM;
	}
	r->n = m->n_values;
	r->msg_ = m;
	row_from_msg(m, r->values);
	*out = r;
	return 0;
}

void rec_row_free(struct rec_row **r)
{
	if (*r == NULL)
		return;
	musubi__row__free_unpacked((*r)->msg_, NULL);
	free((*r)->values);
	free(*r);
	*r = NULL;
}

int rec_entry_encode(const struct rec_entry *e, struct rec_buf *out)
{
	Musubi__Entry m = MUSUBI__ENTRY__INIT;
	Musubi__SchemaRef sref = MUSUBI__SCHEMA_REF__INIT;
	Musubi__Provenance prov = MUSUBI__PROVENANCE__INIT;

	m.dataset = (char *)e->dataset;
	m.seq = e->seq;
	m.op = e->op == REC_DELETE ? MUSUBI__OP__OP_DELETE : MUSUBI__OP__OP_UPSERT;
	m.key = (char *)e->key;
	if (e->schema_id != NULL) {
		sref.id = (char *)e->schema_id;
		sref.version = e->schema_version;
		if (e->schema_digest != NULL) {
			sref.digest.data = (uint8_t *)e->schema_digest;
			sref.digest.len = 32;
		}
		m.schema = &sref;
	}
	if (e->row != NULL) {
		m.row.data = (uint8_t *)e->row;
		m.row.len = e->row_len;
	}
	m.time_us = e->time_us;
	if (e->prov.has_source) {
		prov.source_sha256.data = (uint8_t *)e->prov.source_sha256;
		prov.source_sha256.len = 32;
	}
	if (e->prov.has_mapping) {
		prov.mapping_sha256.data = (uint8_t *)e->prov.mapping_sha256;
		prov.mapping_sha256.len = 32;
	}
	if (e->prov.source_name != NULL)
		prov.source_name = (char *)e->prov.source_name;
	if (e->prov.tool != NULL)
		prov.tool = (char *)e->prov.tool;
	prov.source_line = e->prov.source_line;
	m.provenance = &prov;
	return pack_into(&m.base, out);
}

/* The fields of an unpacked Entry as a rec_entry (pointers into m). */
static void entry_from_msg(const Musubi__Entry *m, struct rec_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->dataset = m->dataset;
	e->seq = m->seq;
	e->op = m->op == MUSUBI__OP__OP_DELETE ? REC_DELETE : REC_UPSERT;
	e->key = m->key;
	e->key_len = strlen(m->key);
	if (m->schema != NULL) {
		e->schema_id = m->schema->id;
		e->schema_version = m->schema->version;
		if (m->schema->digest.len == 32)
			e->schema_digest = m->schema->digest.data;
	}
	if (m->row.len > 0) {
		e->row = m->row.data;
		e->row_len = m->row.len;
	}
	e->time_us = m->time_us;
	if (m->provenance != NULL) {
		const Musubi__Provenance *p = m->provenance;
		if (p->source_sha256.len == 32) {
			memcpy(e->prov.source_sha256, p->source_sha256.data, 32);
			e->prov.has_source = 1;
		}
		if (p->mapping_sha256.len == 32) {
			memcpy(e->prov.mapping_sha256, p->mapping_sha256.data, 32);
			e->prov.has_mapping = 1;
		}
		e->prov.source_name = p->source_name;
		e->prov.tool = p->tool;
		e->prov.source_line = p->source_line;
	}
}

#define ARENA_ALIGN 16

struct arena_block {
	struct arena_block *next;
	max_align_t data[];
};

/* protobuf-c's allocator over the arena: bump allocation, nothing freed
 * one by one. What does not fit gets a block of its own, and the next reset
 * grows the arena so that it fits next time. */
static void *arena_alloc(void *ctx, size_t size)
{
	struct rec_arena *a = ctx;
	size_t need = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);

	if (need < size)
		return NULL;
	if (a->cap - a->used >= need) {
		void *p = a->buf + a->used;
		a->used += need;
		return p;
	}
	struct arena_block *b = malloc(sizeof(*b) + size);
	if (b == NULL)
		return NULL;
	b->next = a->extra;
	a->extra = b;
	a->spilled += need;
	return b->data;
}

static void arena_free(void *ctx, void *p)
{
	(void)ctx;
	(void)p;
}

static void arena_reset(struct rec_arena *a)
{
	for (struct arena_block *b = a->extra, *next; b != NULL; b = next) {
		next = b->next;
		free(b);
	}
	a->extra = NULL;
	if (a->spilled > 0 || a->buf == NULL) {
		size_t cap = a->cap + a->spilled < 2048 ? 4096 : 2 * (a->cap + a->spilled);
		uint8_t *p = malloc(cap);   /* nothing in the arena is alive: no realloc copy */
		if (p != NULL) {
			free(a->buf);
			a->buf = p;
			a->cap = cap;
		}
		a->spilled = 0;
	}
	a->used = 0;
}

int rec_entry_decode_in(struct rec_arena *a, const uint8_t *buf, size_t len, struct rec_entry *out)
{
	ProtobufCAllocator alloc = { arena_alloc, arena_free, a };
	Musubi__Entry *m;

	arena_reset(a);
	if ((m = musubi__entry__unpack(&alloc, len, buf)) == NULL)
		return MU_E_DECODE;
	entry_from_msg(m, out);
	return 0;
}

int rec_row_decode_in(struct rec_arena *a, const uint8_t *buf, size_t len, struct rec_row *out)
{
	ProtobufCAllocator alloc = { arena_alloc, arena_free, a };
	Musubi__Row *m;

	memset(out, 0, sizeof(*out));
	arena_reset(a);
	if ((m = musubi__row__unpack(&alloc, len, buf)) == NULL)
		return MU_E_DECODE;
	if (m->n_values > 0 &&
	    (out->values = arena_alloc(a, m->n_values * sizeof(*out->values))) == NULL)
		return -ENOMEM;
	row_from_msg(m, out->values);
	out->n = m->n_values;
	return 0;
}

void rec_arena_fini(struct rec_arena *a)
{
	arena_reset(a);
	free(a->buf);
	memset(a, 0, sizeof(*a));
}

int rec_entry_decode(const uint8_t *buf, size_t len, struct rec_entry_decoded **out)
{
	Musubi__Entry *m = musubi__entry__unpack(NULL, len, buf);
	struct rec_entry_decoded *d;

	*out = NULL;
	if (m == NULL)
		return MU_E_DECODE;
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		musubi__entry__free_unpacked(m, NULL);
		return -ENOMEM;
	}
	d->msg_ = m;
	entry_from_msg(m, &d->e);
	*out = d;
	return 0;
}

void rec_entry_free(struct rec_entry_decoded **d)
{
	if (*d == NULL)
		return;
	musubi__entry__free_unpacked((*d)->msg_, NULL);
	free(*d);
	*d = NULL;
}

int rec_head_encode(const struct rec_head *h, struct rec_buf *out)
{
	Musubi__TreeHead m = MUSUBI__TREE_HEAD__INIT;

	m.dataset = (char *)h->dataset;
	m.size = h->size;
	m.root.data = (uint8_t *)h->root;
	m.root.len = 32;
	m.time_us = h->time_us;
	m.trust_version = h->trust_version;
	m.publisher = (char *)h->publisher;
	m.key_id.data = (uint8_t *)h->key_id;
	m.key_id.len = 32;
	m.members_only = h->members_only != 0;
	if (h->license != NULL)
		m.license = (char *)h->license;
	return pack_into(&m.base, out);
}

int rec_head_decode(const uint8_t *buf, size_t len, struct rec_head_decoded **out)
{
	Musubi__TreeHead *m = musubi__tree_head__unpack(NULL, len, buf);
	struct rec_head_decoded *d;

	*out = NULL;
	if (m == NULL)
		return MU_E_DECODE;
	if (m->root.len != 32 || m->key_id.len != 32 || m->dataset[0] == '\0') {
		musubi__tree_head__free_unpacked(m, NULL);
		return MU_E_DECODE;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		musubi__tree_head__free_unpacked(m, NULL);
		return -ENOMEM;
	}
	d->msg_ = m;
	d->h.dataset = m->dataset;
	d->h.size = m->size;
	memcpy(d->h.root, m->root.data, 32);
	d->h.time_us = m->time_us;
	d->h.trust_version = m->trust_version;
	d->h.publisher = m->publisher;
	memcpy(d->h.key_id, m->key_id.data, 32);
	d->h.members_only = m->members_only;
	d->h.license = m->license;
	*out = d;
	return 0;
}

void rec_head_free(struct rec_head_decoded **d)
{
	if (*d == NULL)
		return;
	musubi__tree_head__free_unpacked((*d)->msg_, NULL);
	free(*d);
	*d = NULL;
}

int rec_signed_head_encode(const uint8_t *head, size_t head_len, const uint8_t sig[64],
			   struct rec_buf *out)
{
	Musubi__SignedHead m = MUSUBI__SIGNED_HEAD__INIT;

	m.head.data = (uint8_t *)head;
	m.head.len = head_len;
	m.signature.data = (uint8_t *)sig;
	m.signature.len = 64;
	return pack_into(&m.base, out);
}

int rec_signed_head_decode(const uint8_t *buf, size_t len, struct rec_signed_head_decoded **out)
{
	Musubi__SignedHead *m = musubi__signed_head__unpack(NULL, len, buf);
	struct rec_signed_head_decoded *d;

	*out = NULL;
	if (m == NULL)
		return MU_E_DECODE;
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		musubi__signed_head__free_unpacked(m, NULL);
		return -ENOMEM;
	}
	d->msg_ = m;
	d->head = m->head.data;
	d->head_len = m->head.len;
	d->sig = m->signature.data;
	d->sig_len = m->signature.len;
	*out = d;
	return 0;
}

void rec_signed_head_free(struct rec_signed_head_decoded **d)
{
	if (*d == NULL)
		return;
	musubi__signed_head__free_unpacked((*d)->msg_, NULL);
	free(*d);
	*d = NULL;
}
