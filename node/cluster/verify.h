/* Verification of local blob files before they are served.
 *
 * A blob file is verified when it is committed (the upload hashed it), but
 * the disk can change afterwards: an operator's mistake, a bad restore, a
 * corrupted file. A node never serves bytes whose sha256 differs from the
 * digest (DESIGN.md section 6, C3), so the first time a file is served after
 * any change to it (its device, inode, size or ctime differ from the last
 * verified ones, or this process has not verified it yet) it is hashed in
 * the thread pool before a byte goes out; later serves of the unchanged file
 * cost one fstat. Concurrent requests for the same blob share one hash.
 * Silent media errors that change no metadata are left to the filesystem. */
#ifndef NODE_VERIFY_H
#define NODE_VERIFY_H

#include "node/reply/context.h"

#define NODE_VERIFY_CACHE_MAX 65536 /* verified files remembered */

/* Is fd (a local blob file of d) known to be verified as it is now? */
bool node_verify_cached(struct node_api *api,
                        const struct at_digest *d,
                        int fd);

/* status: 0 (the content matches d), AT_EDIGEST (it does not), AT_EIO (read
 * error), AT_ESHUTDOWN (the node is stopping). */
typedef void (*node_verify_cb)(void *data, int status);

/* Hash fd (borrowed until cb; the job reads its own duplicate) and compare
 * it with d; cb runs exactly once, later, on the loop. A match is
 * remembered for node_verify_cached. */
void node_verify_blob(struct node_api *api,
                      const struct at_digest *d,
                      int fd,
                      node_verify_cb cb,
                      void *data);

/* Hashes of local blob files started so far (atoll_blob_verify_hashes_total:
 * a file served twice unchanged is hashed once). */
uint64_t node_verify_hashes(struct node_api *api);

/* Remember fd as verified (it was just hashed by an upload or a fetch). */
void node_verify_note(struct node_api *api, const struct at_digest *d, int fd);

/* Detach from api (v may be NULL): running hashes finish with AT_ESHUTDOWN
 * for their waiters and the state is freed with the last one. */
void node_verify_close(struct node_verify *v);

/* The GET path of a local blob (blobs.c, peer_blobs.c): verify fd, then call
 * serve(data, fd) to send it, or on a mismatch remove the local copy (it is
 * bad; the metadata still lists other holders) and call bad(data). fd is
 * owned: passed on to serve or closed. */
void node_verify_then(
    struct node_api *api,
    struct node_http_req *req,
    const struct at_digest *d,
    int fd,
    uint64_t size,
    void (*serve)(struct node_http_req *req, int fd, uint64_t size, void *data),
    void (*bad)(struct node_http_req *req, int status, void *data),
    void *data,
    void (*data_free)(void *data));

#endif /* NODE_VERIFY_H */
