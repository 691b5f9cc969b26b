/*
 * fuzz_envelope.c - libFuzzer target for a whole received frame: the
 * Envelope, then the payload its type names, then every record the
 * payload carries, as the node reads them one inside the other.
 * Invariants: the envelope re-encodes to a fixed point with the same
 * fields, and so does everything inside it (fuzz_check_payload).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Musubi__Envelope *env = musubi__envelope__unpack(NULL, size, data), *env2;
	uint8_t *buf;
	size_t n;

	if (env == NULL)
		return 0;
	/* the decoder invents no bytes */
	FUZZ_CHECK(env->payload.len <= size);
	n = musubi__envelope__get_packed_size(env);
	FUZZ_CHECK((buf = malloc(n + 1)) != NULL);
	FUZZ_CHECK(musubi__envelope__pack(env, buf) == n);
	FUZZ_CHECK((env2 = musubi__envelope__unpack(NULL, n, buf)) != NULL);
	FUZZ_CHECK(env2->version == env->version && env2->type == env->type &&
		   env2->request_id == env->request_id && env2->payload.len == env->payload.len);
	FUZZ_CHECK(env->payload.len == 0 ||
		   memcmp(env2->payload.data, env->payload.data, env->payload.len) == 0);
	fuzz_check_payload(env->type, env->payload.data, env->payload.len);
	musubi__envelope__free_unpacked(env2, NULL);
	musubi__envelope__free_unpacked(env, NULL);
	free(buf);
	return 0;
}
