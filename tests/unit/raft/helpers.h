/* Shared helpers of the raft/ unit tests: commands applied to a bare FSM,
 * name listings, and a real single node on a libuv loop. Linked into every
 * tests/unit/raft binary (tests/module.mk); they fail the running cmocka
 * test when something they do not expect happens. */
#ifndef TESTS_RAFT_HELPERS_H
#define TESTS_RAFT_HELPERS_H

#include <uv.h>

#include "raft/fsm.h"

/* The sha256 of s. */
struct at_digest dg(const char *s);

/* ---- commands applied to a bare FSM ----
 * Each packs one command as a node with store id "store1" would, applies
 * it at index next_index (then incremented) and returns its result
 * (enum meta_result). rid: the request id, NULL for none. */
extern uint64_t next_index;
/* Apply a packed buf (freed) of len bytes, a multiple of 8. */
int apply_buf(struct meta_fsm *f, void *buf, size_t len);
/* Pack c with request id rid and apply it. */
int apply_cmd(struct meta_fsm *f, const char *rid, struct meta_cmd *c);
int blob_stored(struct meta_fsm *f,
                const char *rid,
                const char *repo,
                const char *blob,
                uint64_t size);
/* A manifest whose bytes are content in repo, with the blobs and children
 * named (digests of the names), and a subject (then with an artifact type
 * and annotations) unless NULL. */
int put_mf(struct meta_fsm *f,
           const char *rid,
           const char *repo,
           const char *content,
           const char *tag,
           const char **blobs,
           size_t nblobs,
           const char **children,
           size_t nchildren,
           const char *subject);
int del_tag(struct meta_fsm *f,
            const char *rid,
            const char *repo,
            const char *tag);
int del_mf(struct meta_fsm *f,
           const char *rid,
           const char *repo,
           const char *content);
int mount_blob(struct meta_fsm *f,
               const char *rid,
               const char *repo,
               const char *from,
               const char *blob);
int unlink_blob(struct meta_fsm *f,
                const char *rid,
                const char *repo,
                const char *blob);
/* A NodeUpsert (API address 127.0.0.1:5000, region eu); an AT_E* when the
 * builder refuses it. */
int node_up(struct meta_fsm *f,
            uint64_t id,
            const char *name,
            const char *peer,
            bool standby);

/* ---- listings ---- */

/* Names joined with commas. */
struct names {
    char text[65536];
    size_t n;
};
/* A meta_name_cb adding name to the struct names at data. */
void collect(void *data, const char *name);
/* The tags of repo ("<none>" for an unknown repo), the repositories. */
const char *tags_of(struct meta_fsm *f, const char *repo, struct names *ns);
const char *catalog_of(struct meta_fsm *f, struct names *ns);

/* ---- a real single node on libuv ---- */

struct node_ctx {
    uv_loop_t loop;
    struct meta *m;
    unsigned acked, failed; /* writes answered META_OK, or not */
    int last_status;        /* of the last read */
    bool read_done, closed;
};
/* Callbacks counting into the struct node_ctx at data. */
void on_write(void *data, int status, int result, uint64_t index);
void on_read(void *data, int status);
void on_closed(void *data);
/* Run c's loop until done(c) (fails the test after 100,000 turns). */
void run_until(struct node_ctx *c, bool (*done)(struct node_ctx *));
bool is_leader(struct node_ctx *c);
bool read_done(struct node_ctx *c);
bool closed(struct node_ctx *c);
/* acked + failed reached want_acks */
extern unsigned want_acks;
bool acks_done(struct node_ctx *c);
/* Open a node named "atoll" in dir (snapshot threshold threshold, 0: the
 * default), wait until it leads and a read barrier passed. */
void node_open(struct node_ctx *c, const char *dir, unsigned threshold);
void node_close(struct node_ctx *c);
/* n writes numbered from base in repo0..2 (a BlobStored every tenth, else
 * a tagged PutManifest), waited for. */
void node_write_batch(struct node_ctx *c, int base, int n);
/* The catalog and the tags of repo0..2, as text. */
void snapshot_state(struct node_ctx *c, char *out, size_t size);
bool has_snapshot(const char *dir);
void rm_rf(const char *dir);

#endif /* TESTS_RAFT_HELPERS_H */
