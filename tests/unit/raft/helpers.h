/* Shared helpers of the raft/ unit tests: a real single node on a libuv
 * loop, and (from fixture.h) commands applied to a bare FSM, listings and
 * a raft dir's files. Linked into every tests/unit/raft binary
 * (tests/module.mk); they fail the running cmocka test when something they
 * do not expect happens. */
#ifndef TESTS_RAFT_HELPERS_H
#define TESTS_RAFT_HELPERS_H

#include <uv.h>

#include "tests/unit/raft/fixture.h"

/* ---- a real single node on libuv ---- */

struct node_ctx {
    uv_loop_t loop;
    struct meta *m;
    unsigned acked, failed; /* writes answered META_OK, or not */
    int last_status;        /* of the last read */
    bool read_done, closed;
    char tmp[32];         /* a fresh temporary directory */
    char *before, *after; /* owned, STATE_SIZE bytes, for snapshot_state */
};
#define STATE_SIZE 65536
/* A node_ctx with its loop, an empty temporary directory and the state
 * buffers; no node open yet. */
struct node_ctx *node_ctx_new(void);
/* Close c's loop (its node closed), remove c->tmp with all below it and
 * free c. */
void node_ctx_free(struct node_ctx *c);
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
/* Open the node in dir again (node_open) and check that its state is the
 * one saved in c->before. */
void node_reopen_same(struct node_ctx *c, const char *dir, unsigned threshold);

#endif /* TESTS_RAFT_HELPERS_H */
