/* mu_err.c - the table behind mu_strerror(). */
#include <lmdb.h>
#include <string.h>

#include "mu_err.h"

static const char *const mu_errors[] = {
	[-(MU_E_BADSIG - MU_E_BASE)] = "signature does not verify",
	[-(MU_E_SCHEMA - MU_E_BASE)] = "input does not satisfy the schema",
	[-(MU_E_CSV - MU_E_BASE)] = "malformed CSV",
	[-(MU_E_ENCODING - MU_E_BASE)] = "text is neither UTF-8 nor Shift_JIS",
	[-(MU_E_DECODE - MU_E_BASE)] = "bytes do not decode as the expected message",
	[-(MU_E_PROOF - MU_E_BASE)] = "Merkle proof does not verify",
	[-(MU_E_ROOT - MU_E_BASE)] = "recomputed root differs from the signed root",
	[-(MU_E_FORK - MU_E_BASE)] = "head does not extend the previous head",
	[-(MU_E_KEY - MU_E_BASE)] = "key file missing, unreadable or of the wrong type",
	[-(MU_E_CRYPTO - MU_E_BASE)] = "cryptographic operation failed",
	[-(MU_E_STORE - MU_E_BASE)] = "storage operation failed",
	[-(MU_E_CORRUPT - MU_E_BASE)] = "stored data is inconsistent",
	[-(MU_E_VERSION - MU_E_BASE)] = "unsupported format or protocol version",
	[-(MU_E_TRUST - MU_E_BASE)] = "not allowed by the trust list",
	[-(MU_E_INCOMPAT - MU_E_BASE)] = "schema versions are not compatible",
	[-(MU_E_EXISTS - MU_E_BASE)] = "already exists",
	[-(MU_E_USAGE - MU_E_BASE)] = "invalid argument",
	[-(MU_E_TOOBIG - MU_E_BASE)] = "input exceeds a size limit",
	[-(MU_E_MAPFULL - MU_E_BASE)] = "store cannot grow: it reached its maximum map size",
	[-(MU_E_LOCKED - MU_E_BASE)] = "data directory is in use by another process",
	[-(MU_E_TIMEOUT - MU_E_BASE)] = "timed out",
	[-(MU_E_PROTO - MU_E_BASE)] = "peer broke the wire protocol",
	[-(MU_E_DENIED - MU_E_BASE)] = "access denied",
};

const char *mu_strerror(int rc)
{
	if (rc >= 0)
		return "success";
	if (rc < MU_E_BASE && rc > MU_E_LAST) {
		const char *s = mu_errors[-(rc - MU_E_BASE)];
		return s != NULL ? s : "unknown musubi error";
	}
	if (rc <= -30799 && rc >= -30999)
		return mdb_strerror(rc);
	return strerror(-rc);
}
