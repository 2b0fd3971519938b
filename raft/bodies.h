/* Manifest bodies off the heap: one unnamed, append-only file per FSM.
 *
 * The FSM keeps each manifest's digest, size, types and references in RAM
 * and its bytes here, at an offset it remembers: at a million tiny
 * manifests that is about 420 of the 760 bytes a tag cost on the heap.
 *
 * The file is a cache, never a source of truth: it is created unnamed
 * (O_TMPFILE) in the raft dir when the FSM is set up, so a crash or a
 * restart simply drops it, and the FSM fills a new one from what rebuilds
 * the state anyway (the snapshot, which still carries every body, then the
 * log). Nothing here is fsynced, nothing is ever read back after a
 * restart, and no name exists that a stale file could be found under.
 *
 * A body of a deleted manifest stays in the file as dead bytes until the
 * next restart or snapshot install starts a new file (counted: dead). */
#ifndef META_BODIES_H
#define META_BODIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct meta_bodies {
    int fd;        /* -1: none (bodies stay on the heap) */
    uint64_t end;  /* bytes written (or staged) */
    uint64_t live; /* bytes of bodies still referenced */
    uint64_t dead; /* bytes of bodies dropped */
    /* a batch (meta_bodies_batch): puts are staged here and written a
     * MiB at a time; failed: a write of the batch failed */
    char *stage;
    size_t staged;
    bool failed;
};

/* No file: every put fails, so records keep their bodies on the heap. */
void meta_bodies_init(struct meta_bodies *b);

/* Open a new unnamed file in dir. 0, or an AT_E* code with errmsg set;
 * b stays without a file then (usable: puts fail). */
int meta_bodies_open(struct meta_bodies *b, const char *dir, char *errmsg);

/* Close the file (its space is freed) and reset b. */
void meta_bodies_close(struct meta_bodies *b);

/* Append len bytes; *off is where they start. 0, or AT_EIO / AT_ENOSPC /
 * AT_EINVAL (no file): the caller keeps the body elsewhere, nothing in the
 * file counts (a torn write is overwritten by the next put). */
int meta_bodies_put(struct meta_bodies *b,
                    const void *p,
                    size_t len,
                    uint64_t *off);

/* Start a batch: puts are staged and written a MiB at a time (a restore
 * puts a million bodies: one write each was a second of syscalls). Reads
 * must wait for meta_bodies_batch_end. */
void meta_bodies_batch(struct meta_bodies *b);
/* Write what is staged and end the batch: 0, or AT_EIO / AT_ENOSPC when
 * any write of the batch failed (bodies put in it are not all in the
 * file: the caller starts over without a file). */
int meta_bodies_batch_end(struct meta_bodies *b);

/* Read len bytes at off into buf: 0, or AT_EIO (errno or a short file).
 * Safe from any thread or a forked child (pread, no shared offset). */
int meta_bodies_read(const struct meta_bodies *b,
                     uint64_t off,
                     void *buf,
                     size_t len);

/* A body of len bytes is no longer referenced. */
void meta_bodies_drop(struct meta_bodies *b, size_t len);

#endif /* META_BODIES_H */
