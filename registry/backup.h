/*
 * backup.h - a consistent copy of a node's data directory, taken while
 * musubid and publishes keep writing to it.
 *
 * A backup OUT is laid out as a data directory (store.h), so every tool that
 * reads one reads a backup as it is:
 *   OUT/store/data.mdb   a compacted copy of the LMDB environment, written
 *                        from one read transaction: one committed state,
 *                        whatever writers do meanwhile
 *   OUT/keys/            the key files, modes kept (private keys 0600)
 *   OUT/MANIFEST.json    written last, so a backup without it is incomplete:
 *     { "musubi_backup": BACKUP_FORMAT, "software", "created", "source",
 *       "store": { "member", "format", "trust_version",
 *                  "datasets": { NAME: { "entries", "rows", "head_size",
 *                                        "root" } } },
 *       "keys": { FILE: SHA-256 hex } }
 *     "store" describes the copy (not the source, which moves on), so it
 *     can be checked against the copy at any later time.
 *
 * Restoring is putting OUT in place of the data directory: the node then
 * fetches from its peers what was published after the backup.
 */
#ifndef MU_BACKUP_H
#define MU_BACKUP_H

#include <stddef.h>
#include <stdint.h>

#define BACKUP_FORMAT 1
#define BACKUP_MANIFEST "MANIFEST.json"

/* What a backup holds, filled by both calls below. */
struct backup_info {
	char member[64];
	uint64_t datasets;        /* datasets in the copy */
	uint64_t entries;         /* log entries, summed over them */
	uint64_t trust_version;   /* newest trust list; 0 when there is none */
	uint64_t store_bytes;     /* size of OUT/store/data.mdb */
	unsigned keys;            /* key files */
};

/*
 * Copy DATADIR into OUT, which must not exist (MU_E_EXISTS): the store
 * snapshot, the keys, then the manifest; then check the copy as
 * backup_check() does. On failure OUT is removed and why says what went
 * wrong. Needs write access to DATADIR/store/lock.mdb (LMDB records its
 * readers there): run it as the user musubid runs as.
 * Returns 0, -ENOENT (no store in DATADIR), MU_E_VERSION (a store format
 * this musubi does not read), MU_E_EXISTS, or another negative code.
 */
int backup_create(const char *datadir, const char *out, struct backup_info *info, char *why,
		  size_t whylen);

/*
 * Check that OUT is a whole backup: the manifest reads, the store opens
 * and is of this musubi's format, and it and the key files are exactly
 * what the manifest names. Does not recompute roots or check signatures
 * (verify_store() does that on the opened backup).
 * Returns 0, MU_E_CORRUPT with why naming the first difference, -ENOENT
 * (no manifest: not a backup, or an interrupted one), MU_E_VERSION, or
 * another negative code.
 */
int backup_check(const char *out, struct backup_info *info, char *why, size_t whylen);

/*
 * The restore guard. A backup's store carries a mark, "restored from a
 * backup taken at WHEN", in its meta. A node put back from a backup holds
 * an older state of its own logs than its peers may hold: a publish from
 * it before it has fetched them back signs a head that forks its own
 * history, evidence kept against it forever (docs/OPERATIONS.md). So
 * `musubi publish` refuses while the mark is there, and musubid removes it
 * once a peer has listed its heads and every dataset this member publishes
 * is at least at the size its peers hold.
 */
#define BACKUP_RESTORED_KEY "restored_from_backup"

/* The mark's time into when (UTC text): 1 when marked, 0 when not, or a
 * negative code. */
struct store_txn;
int backup_restored(struct store_txn *t, char *when, size_t cap);
/* Set (when != NULL) or clear (when == NULL) the mark. */
int backup_mark_restored(struct store_txn *t, const char *when);
/* Clear the mark in its own write transaction. */
struct store;
int backup_clear_restored(struct store *st);

#endif
