/* see wire.h: struct gossip_msg <-> GossipPacket, member table <->
 * GossipState (proto/gossip.proto), and the seal around packets.
 *
 * Decoding trusts nothing: the buffer's top-level fields are counted
 * before protobuf-c allocates anything (so a small buffer of many empty
 * updates cannot make it allocate millions of them), every string must
 * fit its fixed array whole, enums must be known, and the result passes
 * gossip_msg_valid. The C structs are zeroed first, so two decodings of
 * the same member compare equal with memcmp (receive.c does). */
#include "gossip/wire.h"

#include "common/common.h"
#include "proto/gossip.pb-c.h"

#define WIRE_VERSION         1
#define PACKET_UPDATES_FIELD 7 /* GossipPacket.updates */
#define STATE_UPDATES_FIELD  3 /* GossipState.updates */

/* ---- bounds before unpacking ---- */

static bool varint(const uint8_t *b, size_t len, size_t *i, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*i >= len)
            return false;
        uint8_t c = b[(*i)++];
        *v |= (uint64_t)(c & 0x7f) << shift;
        if ((c & 0x80) == 0)
            return true;
    }
    return false;
}

/* Walk b's top-level fields (without descending into any) and count the
 * occurrences of field number field; false for malformed wire format. */
static bool count_field(const uint8_t *b,
                        size_t len,
                        uint64_t field,
                        size_t *count)
{
    size_t i = 0;
    *count = 0;
    while (i < len) {
        uint64_t key, v;
        if (!varint(b, len, &i, &key))
            return false;
        switch (key & 7) {
        case 0: /* varint */
            if (!varint(b, len, &i, &v))
                return false;
            break;
        case 1: /* 64-bit */
            if (len - i < 8)
                return false;
            i += 8;
            break;
        case 2: /* length-delimited */
            if (!varint(b, len, &i, &v) || v > len - i)
                return false;
            i += (size_t)v;
            break;
        case 5: /* 32-bit */
            if (len - i < 4)
                return false;
            i += 4;
            break;
        default: /* groups: not in our messages */
            return false;
        }
        if ((key >> 3) == field)
            (*count)++;
    }
    return true;
}

/* ---- C -> protobuf ---- */

/* The protobuf-c structs borrow the C strings: packing only reads them. */
static ProtobufCBinaryData str(const char *s)
{
    return (ProtobufCBinaryData){ .len = strlen(s), .data = (uint8_t *)s };
}

static bool meta_empty(const struct gossip_meta *m)
{
    return m->region[0] == '\0' && m->zone[0] == '\0' && m->role[0] == '\0' &&
           m->api_addr[0] == '\0' && m->peer_addr[0] == '\0' &&
           m->version[0] == '\0' && m->free_bytes == 0 && m->load == 0 &&
           m->flags == 0 && m->raft_id == 0;
}

/* Fill pu (and pm, which it may point to) from u; borrows u's strings. */
static void update_to_pb(const struct gossip_update *u,
                         Atoll__GossipUpdate *pu,
                         Atoll__GossipMeta *pm)
{
    atoll__gossip_update__init(pu);
    pu->kind = (Atoll__GossipUpdateKind)u->kind;
    pu->incarnation = u->incarnation;
    pu->name = str(u->name);
    pu->addr = str(u->addr);
    pu->from = str(u->from);
    if (meta_empty(&u->meta))
        return; /* the decoder zeroes an absent meta */
    atoll__gossip_meta__init(pm);
    pm->region = str(u->meta.region);
    pm->zone = str(u->meta.zone);
    pm->role = str(u->meta.role);
    pm->api_addr = str(u->meta.api_addr);
    pm->peer_addr = str(u->meta.peer_addr);
    pm->version = str(u->meta.version);
    pm->free_bytes = u->meta.free_bytes;
    pm->load = u->meta.load;
    pm->flags = u->meta.flags;
    pm->raft_id = u->meta.raft_id;
    pu->meta = pm;
}

/* see wire.h */
int gossip_wire_encode(const struct gossip_msg *m,
                       uint8_t *out,
                       size_t outsize,
                       size_t *outlen,
                       uint32_t *n_sent)
{
    Atoll__GossipUpdate pu[GOSSIP_MSG_UPDATES_MAX];
    Atoll__GossipMeta pm[GOSSIP_MSG_UPDATES_MAX];
    Atoll__GossipUpdate *ptrs[GOSSIP_MSG_UPDATES_MAX];
    Atoll__GossipPacket p = ATOLL__GOSSIP_PACKET__INIT;

    if (m == NULL || !gossip_msg_valid(m))
        return AT_EINVAL;
    p.version = WIRE_VERSION;
    p.type = (Atoll__GossipType)m->type;
    p.seq = m->seq;
    p.from = str(m->from);
    p.target = str(m->target);
    p.target_addr = str(m->target_addr);
    for (uint32_t i = 0; i < m->n_updates; i++) {
        update_to_pb(&m->updates[i], &pu[i], &pm[i]);
        ptrs[i] = &pu[i];
    }
    p.updates = ptrs;
    p.n_updates = m->n_updates;
    size_t size = atoll__gossip_packet__get_packed_size(&p);
    while (size > GOSSIP_SEAL_PLAIN_MAX && p.n_updates > 0) {
        p.n_updates--; /* the last ones wait for the next packet */
        size = atoll__gossip_packet__get_packed_size(&p);
    }
    if (size > GOSSIP_SEAL_PLAIN_MAX || size > outsize)
        return AT_ETOOBIG;
    *outlen = atoll__gossip_packet__pack(&p, out);
    if (n_sent != NULL)
        *n_sent = (uint32_t)p.n_updates;
    return 0;
}

/* see wire.h */
int gossip_wire_seal(struct gossip_keyring *r,
                     uint64_t now_ms,
                     const struct gossip_msg *m,
                     uint8_t *out,
                     size_t outsize,
                     size_t *outlen,
                     uint32_t *n_sent)
{
    uint8_t plain[GOSSIP_SEAL_PLAIN_MAX];
    size_t len = 0;
    uint32_t sent = 0;
    int rc = gossip_wire_encode(m, plain, sizeof(plain), &len, &sent);
    if (rc == 0)
        rc = gossip_seal(r, now_ms, plain, len, out, outsize, outlen);
    if (rc == 0 && n_sent != NULL)
        *n_sent = sent;
    return rc;
}

/* ---- protobuf -> C ---- */

/* Copy src whole into dst (size bytes, zeroed) or refuse: never cut a
 * string, whether too long or holding a NUL. */
static bool copy_str(char *dst, size_t size, ProtobufCBinaryData src)
{
    if (src.len == 0)
        return true;
    if (src.len >= size || memchr(src.data, '\0', src.len) != NULL)
        return false;
    memcpy(dst, src.data, src.len);
    dst[src.len] = '\0';
    return true;
}

#define COPY(dst, src) copy_str((dst), sizeof(dst), (src))

static bool meta_from_pb(const Atoll__GossipMeta *pm, struct gossip_meta *m)
{
    if (pm == NULL)
        return true;
    m->free_bytes = pm->free_bytes;
    m->load = pm->load;
    m->flags = pm->flags;
    m->raft_id = pm->raft_id;
    return COPY(m->region, pm->region) && COPY(m->zone, pm->zone) &&
           COPY(m->role, pm->role) && COPY(m->api_addr, pm->api_addr) &&
           COPY(m->peer_addr, pm->peer_addr) && COPY(m->version, pm->version);
}

/* u must be zeroed. */
static bool update_from_pb(const Atoll__GossipUpdate *pu,
                           struct gossip_update *u)
{
    if (pu == NULL || pu->kind < (int)GOSSIP_UPDATE_ALIVE ||
        pu->kind > (int)GOSSIP_UPDATE_LEAVE)
        return false;
    u->kind = (enum gossip_update_kind)pu->kind;
    u->incarnation = pu->incarnation;
    return COPY(u->name, pu->name) && COPY(u->addr, pu->addr) &&
           COPY(u->from, pu->from) && meta_from_pb(pu->meta, &u->meta) &&
           gossip_update_valid(u);
}

static bool packet_from_pb(const Atoll__GossipPacket *p, struct gossip_msg *m)
{
    if (p->version != WIRE_VERSION || p->type < (int)GOSSIP_MSG_PING ||
        p->type > (int)GOSSIP_MSG_UPDATES ||
        p->n_updates > GOSSIP_MSG_UPDATES_MAX)
        return false;
    m->type = (enum gossip_msg_type)p->type;
    m->seq = p->seq;
    if (!COPY(m->from, p->from) || !COPY(m->target, p->target) ||
        !COPY(m->target_addr, p->target_addr))
        return false;
    m->n_updates = (uint32_t)p->n_updates;
    for (size_t i = 0; i < p->n_updates; i++)
        if (!update_from_pb(p->updates[i], &m->updates[i]))
            return false;
    return gossip_msg_valid(m);
}

/* see wire.h */
int gossip_wire_decode(const uint8_t *buf, size_t len, struct gossip_msg *m)
{
    size_t n = 0;
    memset(m, 0, sizeof(*m));
    if (buf == NULL || len > GOSSIP_SEAL_PLAIN_MAX ||
        !count_field(buf, len, PACKET_UPDATES_FIELD, &n) ||
        n > GOSSIP_MSG_UPDATES_MAX)
        return AT_EPROTO;
    Atoll__GossipPacket *p = atoll__gossip_packet__unpack(NULL, len, buf);
    if (p == NULL)
        return AT_EPROTO;
    bool ok = packet_from_pb(p, m);
    protobuf_c_message_free_unpacked(&p->base, NULL);
    if (!ok) {
        memset(m, 0, sizeof(*m));
        return AT_EPROTO;
    }
    return 0;
}

/* see wire.h */
int gossip_wire_open(struct gossip_keyring *r,
                     const uint8_t *packet,
                     size_t len,
                     struct gossip_msg *m,
                     uint64_t *seq,
                     uint64_t *drop_decode)
{
    uint8_t plain[GOSSIP_SEAL_PLAIN_MAX];
    size_t plen = 0;
    uint64_t s = 0;
    memset(m, 0, sizeof(*m));
    if (gossip_open(r, packet, len, plain, sizeof(plain), &plen, &s) != 0)
        return AT_EPROTO; /* counted in r->stats */
    if (gossip_wire_decode(plain, plen, m) != 0) {
        if (drop_decode != NULL)
            (*drop_decode)++;
        return AT_EPROTO;
    }
    if (seq != NULL)
        *seq = s;
    return 0;
}

/* ---- push-pull state ---- */

/* see wire.h */
int gossip_wire_state_encode(const char *from,
                             const struct gossip_update *u,
                             size_t n,
                             uint8_t **out,
                             size_t *outlen)
{
    if (from == NULL || from[0] == '\0' || strlen(from) >= GOSSIP_NAME_MAX ||
        n > GOSSIP_STATE_MAX || (n > 0 && u == NULL))
        return AT_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!gossip_update_valid(&u[i]))
            return AT_EINVAL;
    Atoll__GossipUpdate *pu = at_calloc(n ? n : 1, sizeof(*pu));
    Atoll__GossipMeta *pm = at_calloc(n ? n : 1, sizeof(*pm));
    Atoll__GossipUpdate **ptrs = at_calloc(n ? n : 1, sizeof(*ptrs));
    Atoll__GossipState st = ATOLL__GOSSIP_STATE__INIT;
    st.version = WIRE_VERSION;
    st.from = str(from);
    for (size_t i = 0; i < n; i++) {
        update_to_pb(&u[i], &pu[i], &pm[i]);
        ptrs[i] = &pu[i];
    }
    st.updates = ptrs;
    st.n_updates = n;
    int rc = 0;
    size_t size = atoll__gossip_state__get_packed_size(&st);
    if (size > GOSSIP_STATE_BYTES_MAX) {
        rc = AT_ETOOBIG;
    } else {
        *out = at_malloc(size ? size : 1);
        *outlen = atoll__gossip_state__pack(&st, *out);
    }
    at_free(ptrs);
    at_free(pm);
    at_free(pu);
    return rc;
}

static bool state_from_pb(const Atoll__GossipState *st,
                          char *from,
                          struct gossip_update *u)
{
    if (st->version != WIRE_VERSION || st->from.len == 0 ||
        !copy_str(from, GOSSIP_NAME_MAX, st->from))
        return false;
    for (size_t i = 0; i < st->n_updates; i++)
        if (!update_from_pb(st->updates[i], &u[i]))
            return false;
    return true;
}

/* see wire.h */
int gossip_wire_state_decode(const uint8_t *buf,
                             size_t len,
                             char *from,
                             struct gossip_update **u,
                             size_t *n)
{
    size_t count = 0;
    *u = NULL;
    *n = 0;
    if (buf == NULL || len > GOSSIP_STATE_BYTES_MAX ||
        !count_field(buf, len, STATE_UPDATES_FIELD, &count) ||
        count > GOSSIP_STATE_MAX)
        return AT_EPROTO;
    Atoll__GossipState *st = atoll__gossip_state__unpack(NULL, len, buf);
    if (st == NULL)
        return AT_EPROTO;
    struct gossip_update *ups = NULL;
    bool ok = st->n_updates <= GOSSIP_STATE_MAX;
    if (ok) {
        char name[GOSSIP_NAME_MAX] = { 0 };
        ups = at_calloc(st->n_updates ? st->n_updates : 1, sizeof(*ups));
        ok = state_from_pb(st, name, ups);
        if (ok) {
            memcpy(from, name, GOSSIP_NAME_MAX);
            *n = st->n_updates;
        }
    }
    protobuf_c_message_free_unpacked(&st->base, NULL);
    if (!ok) {
        at_free(ups);
        return AT_EPROTO;
    }
    *u = ups;
    return 0;
}
