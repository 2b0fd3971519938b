/* Framing, padding and bounded pack/unpack of raft commands and snapshots. */
#ifndef PROTO_H
#define PROTO_H

#include "common/common.h"
#include "proto/atoll.pb-c.h"

/* Every packed message is a 16-byte frame header followed by the protobuf
 * encoding, zero-padded to a multiple of 8 bytes (libraft 0.15 corrupts
 * entries whose length is not a multiple of 8):
 *   [4] magic "ATC1" (command) or "ATS1" (snapshot)
 *   [2] frame version, little endian (1)
 *   [2] flags (0)
 *   [4] encoded length, little endian
 *   [4] reserved (0) */
#define PROTO_FRAME_SIZE       16
#define PROTO_FRAME_VERSION    1
#define PROTO_COMMAND_VERSION  1
#define PROTO_SNAPSHOT_VERSION 1

#define PROTO_MANIFEST_MAX   (4u << 20) /* manifest bytes */
#define PROTO_COMMAND_MAX    (8u << 20) /* whole packed command */
#define PROTO_SNAPSHOT_MAX   (1u << 31) /* whole packed snapshot */
#define PROTO_REQUEST_ID_MAX 64
#define PROTO_NAME_MAX       4096  /* repo, tag, media type, store id */
#define PROTO_ADDRESS_MAX    255   /* node name, host:port, region */
#define PROTO_GC_BATCH_MAX   10000 /* digests in one GcSweep */
#define PROTO_ACCT_LIST_MAX  1024  /* groups or permissions of an account */

/* Allocator for packed buffers (e.g. raft_malloc); NULL means malloc. */
typedef void *(*proto_alloc_fn)(size_t n);

/* Pack a command: frame + encoding + padding, in a buffer from alloc that
 * the caller owns. Returns 0, or AT_ETOOBIG (over PROTO_COMMAND_MAX or a
 * manifest over PROTO_MANIFEST_MAX), AT_EINVAL (malformed fields),
 * AT_ENOMEM (alloc returned NULL). */
int proto_command_pack(const Atoll__Command *c,
                       proto_alloc_fn alloc,
                       void **out,
                       size_t *len,
                       char *errmsg);

/* Unpack and validate a packed command (digests are 32 bytes, subject 0 or
 * 32, request id bounded, op set). *out is freed with proto_command_free.
 * Returns 0, AT_ECORRUPT (bad frame), AT_EPROTO (bad encoding or fields),
 * AT_ETOOBIG. Never crashes on arbitrary bytes. */
int proto_command_unpack(const void *buf,
                         size_t len,
                         Atoll__Command **out,
                         char *errmsg);
void proto_command_free(Atoll__Command *c);

/* Same for the whole-state snapshot. */
int proto_snapshot_pack(const Atoll__Snapshot *s,
                        proto_alloc_fn alloc,
                        void **out,
                        size_t *len,
                        char *errmsg);
int proto_snapshot_unpack(const void *buf,
                          size_t len,
                          Atoll__Snapshot **out,
                          char *errmsg);
void proto_snapshot_free(Atoll__Snapshot *s);

#endif /* PROTO_H */
