/* Snapshot files of our own (snapfile.c): the FSM's snapshot is a file in
 * the raft dir, and libraft's snapshot holds only a descriptor of it.
 *
 * libraft 0.15 keeps a snapshot as one buffer: it reads the whole file
 * into memory at start (then we decode it: both at once in RAM), holds
 * the whole encoding while it writes it, and sends it whole to a node
 * that fell behind (notes: raft-0.15 pitfalls 11 and 12). At a million
 * tags that is 800 MB of heap each time. So the snapshot child
 * (snapfork.c) writes the ATS2 encoding (snapflat.c) into
 *     <raft dir>/fsm-<index>-<hash>.ats2
 * (a temporary name, fsync, rename, fsync of the dir: a crash leaves the
 * old file or the new one, never half of one), and libraft stores a
 * 32-byte descriptor naming it: magic "ATSF", version, the raft index the
 * state is at, the file's length and a hash of its bytes. The name is
 * made from the numbers, never read from the wire, so a descriptor from a
 * peer cannot name any other path. A restore maps the file. A node that
 * fell behind gets the descriptor and fetches the file from the leader's
 * peer listener (snaprecv.h); a node that does not fetch gets the file's
 * bytes inside raft (snapsend.h) and restores them as any snapshot.
 *
 * A file lives while a snapshot of libraft's names it: after each
 * snapshot (and at start) the others are removed (prune). Older buffers
 * (ATS1, ATS2 whole in libraft's file) still restore. */
#ifndef META_SNAPFILE_H
#define META_SNAPFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define META_SNAPFILE_DESC_LEN  32
#define META_SNAPFILE_NAME_SIZE 64

struct meta_snapfile {
    uint64_t index; /* the raft index the state is at */
    uint64_t len;   /* bytes of the file (an ATS2 encoding) */
    uint64_t hash;  /* meta__snapfile_hash of them */
};

/* The file's name in the raft dir ("fsm-<index>-<hash>.ats2", hex). */
void meta__snapfile_name(const struct meta_snapfile *d,
                         char out[META_SNAPFILE_NAME_SIZE]);

/* The descriptor libraft stores, META_SNAPFILE_DESC_LEN bytes. */
void meta__snapfile_desc_encode(const struct meta_snapfile *d, uint8_t *out);

/* Is buf (len bytes) a descriptor? Fills d when it is. */
bool meta__snapfile_desc_decode(const void *buf,
                                size_t len,
                                struct meta_snapfile *d);

/* A fast 64-bit hash of n bytes (not cryptographic: it catches a torn or
 * damaged file, or a transfer gone wrong). */
uint64_t meta__snapfile_hash(const void *p, size_t n);

/* The same hash, fed in pieces of any size: init, update..., final gives
 * meta__snapfile_hash of the concatenation. */
struct meta_snaphash {
    uint64_t lane[4];
    uint64_t n;       /* bytes fed */
    uint8_t tail[32]; /* the last n % 32 bytes, not in a lane yet */
};
void meta__snaphash_init(struct meta_snaphash *h);
void meta__snaphash_update(struct meta_snaphash *h, const void *p, size_t n);
uint64_t meta__snaphash_final(const struct meta_snaphash *h);

/* In the snapshot child: write(fd, data, &hash) writes the encoding into
 * the temporary file of d->index in dir and hashes it; d's len and hash
 * are filled. Not synced: meta__snapfile_commit does that, after the child
 * (whose life is the parent's copy-on-write time) is gone. 0, or an AT_E*
 * with errmsg said; the temporary file is gone on failure. */
int meta__snapfile_create(const char *dir,
                          struct meta_snapfile *d,
                          int (*write)(int fd, void *data, uint64_t *hash),
                          void *data,
                          char *errmsg);

/* Make the temporary file of d->index in dir d's file: fsync, rename,
 * fsync of dir. 0, or AT_EIO with errmsg said (the temporary file is
 * removed). */
int meta__snapfile_commit(const char *dir,
                          const struct meta_snapfile *d,
                          char *errmsg);

/* ---- a file fetched from a peer (snaprecv.c) ----
 * tmp_open creates (truncates) the temporary file of d->index in dir, for
 * writing: the fd, or a negative AT_E* with errmsg said. tmp_remove
 * unlinks it. adopt checks its length and hash against d, then commits it
 * as meta__snapfile_commit does: 0, or AT_ECORRUPT / AT_EIO with errmsg
 * said and the temporary file removed. Blocking (reads the whole file,
 * fsync): call adopt off the loop. */
int meta__snapfile_tmp_open(const char *dir,
                            const struct meta_snapfile *d,
                            char *errmsg);
void meta__snapfile_tmp_remove(const char *dir, const struct meta_snapfile *d);
int meta__snapfile_adopt(const char *dir,
                         const struct meta_snapfile *d,
                         char *errmsg);

/* d's file in dir (by its index and hash; d->len is not used), opened for
 * reading, for a peer that fetches it: the fd with *len its length, or
 * AT_ENOTFOUND / AT_EIO (negative). */
int meta__snapfile_open(const char *dir,
                        const struct meta_snapfile *d,
                        uint64_t *len);

/* d's file is in dir with d's length (its bytes are not read). */
bool meta__snapfile_exists(const char *dir, const struct meta_snapfile *d);

/* d's file in dir, mapped read-only after its length and hash are
 * checked: 0 with *p, or AT_ENOTFOUND / AT_ECORRUPT / AT_EIO with errmsg
 * said. Unmap with meta__snapfile_unmap. */
int meta__snapfile_map(const char *dir,
                       const struct meta_snapfile *d,
                       const void **p,
                       char *errmsg);
void meta__snapfile_unmap(const void *p, const struct meta_snapfile *d);
/* meta__snapfile_map with the length checked and the hash not: the
 * caller checks meta__snapfile_hash of the bytes before it trusts what
 * it made of them (the restore hashes on another thread meanwhile). */
int meta__snapfile_map_unhashed(const char *dir,
                                const struct meta_snapfile *d,
                                const void **p,
                                char *errmsg);

/* Remove the files (and leftover temporary files) in dir whose index no
 * snapshot of libraft's has (its "snapshot-<term>-<index>-<ms>.meta"
 * files) and is below the newest of those: a file above it is one on its
 * way to libraft (written, its descriptor not stored yet) and stays.
 * Returns how many were removed; errors are logged, never fatal (a file
 * left is removed next time). Blocking (unlink of a big file): call it
 * off the loop. */
unsigned meta__snapfile_prune(const char *dir);

#endif /* META_SNAPFILE_H */
