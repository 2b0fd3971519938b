/* libFuzzer target: arbitrary bytes into the command, snapshot and peer
 * message unpackers and the FSM's apply and restore. */
#include "common/compat.h"

#include "proto/peer.h"
#include "proto/proto.h"
#include "raft/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every peer body and answer unpacker; what one accepts packs again (pack
 * and unpack share their checks). */
static void peer_unpack(const uint8_t *data, size_t size)
{
    char errmsg[AT_ERRMSG_SIZE];
    struct proto_peer_msg m;
    struct proto_peer_reply r;
    struct at_buf b;

    at_buf_init(&b, 0);
    for (int ep = 0; ep < PROTO_PEER_EP_COUNT; ep++) {
        if (proto_peer_msg_unpack((enum proto_peer_ep)ep, data, size, &m,
                                  errmsg) != 0)
            continue;
        at_buf_reset(&b);
        if (proto_peer_msg_pack(&m, &b, errmsg) != 0)
            abort();
        proto_peer_msg_release(&m);
    }
    if (proto_peer_reply_unpack(data, size, &r, errmsg) == 0) {
        at_buf_reset(&b);
        if (proto_peer_reply_pack(&r, &b, errmsg) != 0)
            abort();
        proto_peer_reply_release(&r);
    }
    at_buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char errmsg[AT_ERRMSG_SIZE];
    static bool quiet;
    if (!quiet) {
        at_log_configure("off");
        quiet = true;
    }
    /* the frame wants 8-byte multiples: also try the input padded */
    size_t padded = (size + 7) & ~(size_t)7;
    uint8_t *buf = calloc(1, padded + 8);
    if (buf == NULL)
        return 0;
    if (size > 0)
        memcpy(buf, data, size);
    peer_unpack(data, size);
    /* a snapshot file's name on the peer port (buf is NUL-terminated):
     * what parses prints back the same */
    uint64_t index, hash;
    if (proto_peer_snapshot_parse((const char *)buf, &index, &hash)) {
        char path[PROTO_PEER_SNAPSHOT_PATH_SIZE];
        proto_peer_snapshot_path(index, hash, path);
        if (strcmp(path + strlen(proto_peer_path(PROTO_PEER_SNAPSHOT)),
                   (const char *)buf) != 0)
            abort();
    }

    for (int pass = 0; pass < 2; pass++) {
        size_t n = pass == 0 ? size : padded;
        Atoll__Command *c = NULL;
        if (proto_command_unpack(buf, n, &c, errmsg) == 0)
            proto_command_free(c);
        Atoll__Snapshot *s = NULL;
        if (proto_snapshot_unpack(buf, n, &s, errmsg) == 0)
            proto_snapshot_free(s);

        struct meta_fsm f;
        int res;
        meta_fsm_init(&f, 4);
        meta_fsm_apply(&f, 1, buf, n, &res);
        (void)meta_fsm_restore(&f, buf, n, errmsg);
        meta_fsm_apply(&f, 2, buf, n, &res);
        meta_fsm_release(&f);
    }
    /* a valid frame around the raw bytes reaches protobuf-c decoding */
    if (size <= 1 << 16) {
        uint8_t *fr = calloc(1, PROTO_FRAME_SIZE + padded + 8);
        if (fr != NULL) {
            for (int kind = 0; kind < 2; kind++) {
                memcpy(fr, kind == 0 ? "ATC1" : "ATS1", 4);
                fr[4] = 1;
                fr[8] = (uint8_t)size;
                fr[9] = (uint8_t)(size >> 8);
                fr[10] = (uint8_t)(size >> 16);
                if (size > 0)
                    memcpy(fr + PROTO_FRAME_SIZE, data, size);
                size_t n = PROTO_FRAME_SIZE + padded;
                struct meta_fsm f;
                int res;
                meta_fsm_init(&f, 4);
                if (kind == 0) {
                    meta_fsm_apply(&f, 1, fr, n, &res);
                    meta_fsm_apply(&f, 2, fr, n, &res);
                } else {
                    (void)meta_fsm_restore(&f, fr, n, errmsg);
                }
                meta_fsm_release(&f);
            }
            free(fr);
        }
    }
    free(buf);
    return 0;
}
