/*
 * fuzz_envelope.c - libFuzzer target for a whole received frame: the
 * Envelope, then the payload its type names, then every record the
 * payload carries, as the node reads them one inside the other.
 * Invariants: the envelope re-encodes to a fixed point (so to the same
 * fields), its payload is bytes of the input, and everything inside it
 * passes its own checks (fuzz_check_payload).
 */
#include "fuzz.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Musubi__Envelope *env = (Musubi__Envelope *)fuzz_unpack(&musubi__envelope__descriptor,
								 data, size);

	if (env == NULL)
		return 0;
	FUZZ_CHECK(env->payload.len == 0 || (env->payload.data != NULL &&
					     env->payload.len <= size));
	fuzz_check_payload(env->type, env->payload.data, env->payload.len);
	musubi__envelope__free_unpacked(env, NULL);
	return 0;
}
