/*
 * mu_err.h - musubi's one error style.
 *
 * Every fallible function returns int: 0 on success, negative on failure.
 * System errors pass through as -errno. musubi's own codes live in a band
 * of their own below -31000 (LMDB uses -30799..-30999, so we stay clear).
 * mu_strerror() turns any of them into a short English phrase.
 */
#ifndef MU_ERR_H
#define MU_ERR_H

enum mu_error {
	MU_E_BASE = -31000,
	MU_E_BADSIG = -31001,     /* a signature does not verify */
	MU_E_SCHEMA = -31002,     /* input does not satisfy the schema */
	MU_E_CSV = -31003,        /* malformed CSV */
	MU_E_ENCODING = -31004,   /* text is not valid UTF-8 / Shift_JIS */
	MU_E_DECODE = -31005,     /* bytes do not decode as the expected message */
	MU_E_PROOF = -31006,      /* a Merkle proof does not verify */
	MU_E_ROOT = -31007,       /* recomputed root differs from the signed one */
	MU_E_FORK = -31008,       /* a head does not extend the previous one */
	MU_E_KEY = -31009,        /* a key file is missing, unreadable or wrong */
	MU_E_CRYPTO = -31010,     /* OpenSSL failed (details are logged) */
	MU_E_STORE = -31011,      /* LMDB failed (details are logged) */
	MU_E_CORRUPT = -31012,    /* stored data is inconsistent */
	MU_E_VERSION = -31013,    /* unsupported format or protocol version */
	MU_E_TRUST = -31014,      /* not allowed by the trust list */
	MU_E_INCOMPAT = -31015,   /* schema versions are not compatible */
	MU_E_EXISTS = -31016,     /* already exists */
	MU_E_USAGE = -31017,      /* a caller passed a bad argument */
	MU_E_TOOBIG = -31018,     /* input exceeds a hard size limit */
	MU_E_MAPFULL = -31019,    /* the store cannot grow any further */
	MU_E_LOCKED = -31020,     /* the data directory is in use */
	MU_E_TIMEOUT = -31021,
	MU_E_PROTO = -31022,      /* a peer broke the wire protocol */
	MU_E_DENIED = -31023,     /* access refused */
	MU_E_LAST = -31024
};

/* A static string describing rc (a -errno or an MU_E_* code). Never NULL. */
const char *mu_strerror(int rc);

#endif
