/* Unit tests of gossip/wire.c: round trips of every message type and of a
 * push-pull table, the byte budget, every refusal of the decoder, the
 * seal around it, and the round-trip time two members measure over it. */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>

#include "gossip/swim.h"
#include "gossip/wire.h"
#include "proto/gossip.pb-c.h"

#define SECRET_A "cluster secret number one, long enough"
#define SECRET_B "the rotation secret, also long enough"
#define NOW      1700000000000ULL

static void fill_meta(struct gossip_meta *m, unsigned i)
{
    snprintf(m->region, sizeof(m->region), "eu-west-%u", i);
    snprintf(m->zone, sizeof(m->zone), "eu-west-%ua", i);
    snprintf(m->role, sizeof(m->role), "%s", i % 2 ? "voter" : "edge");
    snprintf(m->api_addr, sizeof(m->api_addr), "10.0.0.%u:5000", i);
    snprintf(m->peer_addr, sizeof(m->peer_addr), "10.0.0.%u:5001", i);
    snprintf(m->version, sizeof(m->version), "0.13.%u", i);
    m->free_bytes = (1ULL << 40) + i;
    m->load = 1000 + i;
    m->flags = GOSSIP_META_IN_CLUSTER | (i << 4);
    m->raft_id = 0x8000000000000000ULL + i;
}

static void fill_update(struct gossip_update *u, unsigned i)
{
    memset(u, 0, sizeof(*u));
    u->kind = (enum gossip_update_kind)(GOSSIP_UPDATE_ALIVE + i % 4);
    u->incarnation = 1000000000000ULL + i;
    snprintf(u->name, sizeof(u->name), "node-%u", i);
    if (u->kind == GOSSIP_UPDATE_ALIVE)
        snprintf(u->addr, sizeof(u->addr), "10.0.0.%u:7946", i % 250);
    if (u->kind == GOSSIP_UPDATE_SUSPECT || u->kind == GOSSIP_UPDATE_DEAD)
        snprintf(u->from, sizeof(u->from), "accuser-%u", i);
    fill_meta(&u->meta, i);
}

static void fill_msg(struct gossip_msg *m,
                     enum gossip_msg_type type,
                     unsigned n)
{
    memset(m, 0, sizeof(*m));
    m->type = type;
    m->seq = 0xfffffff0u + type;
    snprintf(m->from, sizeof(m->from), "sender");
    snprintf(m->target, sizeof(m->target), "target");
    snprintf(m->target_addr, sizeof(m->target_addr), "10.1.2.3:7946");
    m->n_updates = n;
    for (unsigned i = 0; i < n; i++)
        fill_update(&m->updates[i], i);
}

static void roundtrip(void **state)
{
    (void)state;
    for (int t = GOSSIP_MSG_PING; t <= GOSSIP_MSG_UPDATES; t++) {
        struct gossip_msg m, back;
        uint8_t buf[GOSSIP_SEAL_PLAIN_MAX];
        size_t len = 0;
        uint32_t sent = 0;
        fill_msg(&m, (enum gossip_msg_type)t, GOSSIP_MSG_UPDATES_MAX);
        assert_int_equal(gossip_wire_encode(&m, buf, sizeof(buf), &len, &sent),
                         0);
        assert_int_equal(sent, GOSSIP_MSG_UPDATES_MAX);
        assert_true(len <= GOSSIP_SEAL_PLAIN_MAX);
        assert_int_equal(gossip_wire_decode(buf, len, &back), 0);
        assert_memory_equal(&m, &back, sizeof(m));
    }
    /* Nothing but the required fields. */
    struct gossip_msg m = { .type = GOSSIP_MSG_ACK }, back;
    uint8_t buf[GOSSIP_SEAL_PLAIN_MAX];
    size_t len = 0;
    snprintf(m.from, sizeof(m.from), "a");
    assert_int_equal(gossip_wire_encode(&m, buf, sizeof(buf), &len, NULL), 0);
    assert_int_equal(gossip_wire_decode(buf, len, &back), 0);
    assert_memory_equal(&m, &back, sizeof(m));
}

/* Every string at its longest. */
static void fill_long(struct gossip_update *u, unsigned i)
{
    memset(u, 0, sizeof(*u));
    u->kind = GOSSIP_UPDATE_ALIVE;
    u->incarnation = UINT64_MAX - i;
    memset(u->name, 'n', sizeof(u->name) - 1);
    u->name[0] = (char)('a' + i);
    memset(u->addr, 'a', sizeof(u->addr) - 1);
    memset(u->from, 'f', sizeof(u->from) - 1);
    memset(u->meta.region, 'r', sizeof(u->meta.region) - 1);
    memset(u->meta.zone, 'z', sizeof(u->meta.zone) - 1);
    memset(u->meta.role, 'o', sizeof(u->meta.role) - 1);
    memset(u->meta.api_addr, 'p', sizeof(u->meta.api_addr) - 1);
    memset(u->meta.peer_addr, 'q', sizeof(u->meta.peer_addr) - 1);
    memset(u->meta.version, 'v', sizeof(u->meta.version) - 1);
    u->meta.free_bytes = UINT64_MAX;
    u->meta.load = UINT32_MAX;
    u->meta.flags = UINT32_MAX;
    u->meta.raft_id = UINT64_MAX;
}

static void budget(void **state)
{
    (void)state;
    struct gossip_msg m, back;
    uint8_t buf[GOSSIP_SEAL_PLAIN_MAX];
    size_t len = 0;
    uint32_t sent = 99;
    fill_msg(&m, GOSSIP_MSG_PING_REQ, GOSSIP_MSG_UPDATES_MAX);
    for (unsigned i = 0; i < GOSSIP_MSG_UPDATES_MAX; i++)
        fill_long(&m.updates[i], i);
    assert_int_equal(gossip_wire_encode(&m, buf, sizeof(buf), &len, &sent), 0);
    assert_true(len <= GOSSIP_SEAL_PLAIN_MAX);
    assert_true(sent > 0 && sent < GOSSIP_MSG_UPDATES_MAX);
    printf("budget: %u of %u longest updates fit in %zu bytes\n", sent,
           GOSSIP_MSG_UPDATES_MAX, len);
    assert_int_equal(gossip_wire_decode(buf, len, &back), 0);
    assert_int_equal(back.n_updates, sent);
    /* The first ones went, in order; the trailing ones were left out. */
    struct gossip_msg want = m;
    want.n_updates = sent;
    memset(&want.updates[sent], 0,
           sizeof(want.updates[0]) * (GOSSIP_MSG_UPDATES_MAX - sent));
    assert_memory_equal(&want, &back, sizeof(want));

    /* One more update would not have fit. */
    struct gossip_msg more = want;
    more.n_updates = sent + 1;
    more.updates[sent] = m.updates[sent];
    uint8_t big[4096];
    size_t big_len = 0;
    uint32_t big_sent = 0;
    assert_int_equal(
        gossip_wire_encode(&more, big, sizeof(big), &big_len, &big_sent), 0);
    assert_int_equal(big_sent, sent);

    /* A small output buffer, an invalid message. */
    assert_int_equal(gossip_wire_encode(&m, buf, 10, &len, &sent), AT_ETOOBIG);
    m.from[0] = '\0';
    assert_int_equal(gossip_wire_encode(&m, buf, sizeof(buf), &len, &sent),
                     AT_EINVAL);
}

/* ---- refusals: packets built field by field with protobuf-c ---- */

struct pb {
    Atoll__GossipPacket p;
    Atoll__GossipUpdate u[GOSSIP_MSG_UPDATES_MAX + 1];
    Atoll__GossipUpdate *ptrs[GOSSIP_MSG_UPDATES_MAX + 1];
    Atoll__GossipMeta meta;
    char s[8][200];
};

/* A text field (bytes on the wire) holding s; packing only reads it. */
static ProtobufCBinaryData S(const char *s)
{
    return (ProtobufCBinaryData){ .len = strlen(s), .data = (uint8_t *)s };
}

/* A valid packet of n updates, each with meta. */
static void pb_init(struct pb *b, size_t n)
{
    memset(b, 0, sizeof(*b));
    atoll__gossip_packet__init(&b->p);
    atoll__gossip_meta__init(&b->meta);
    b->p.version = 1;
    b->p.type = ATOLL__GOSSIP_TYPE__GOSSIP_TYPE_PING;
    b->p.from = S("from");
    for (size_t i = 0; i < n; i++) {
        atoll__gossip_update__init(&b->u[i]);
        b->u[i].kind = ATOLL__GOSSIP_UPDATE_KIND__GOSSIP_UPDATE_KIND_ALIVE;
        b->u[i].name = S("name");
        b->u[i].addr = S("addr");
        b->u[i].meta = &b->meta;
        b->ptrs[i] = &b->u[i];
    }
    b->p.updates = b->ptrs;
    b->p.n_updates = n;
}

static int pb_decode(struct pb *b)
{
    uint8_t buf[8192];
    struct gossip_msg m;
    size_t len = atoll__gossip_packet__get_packed_size(&b->p);
    assert_true(len <= sizeof(buf));
    atoll__gossip_packet__pack(&b->p, buf);
    return gossip_wire_decode(buf, len, &m);
}

/* A string of n characters in slot i of b. */
static ProtobufCBinaryData pb_str(struct pb *b, int i, size_t n)
{
    assert_true(n < sizeof(b->s[i]));
    memset(b->s[i], 'x', n);
    b->s[i][n] = '\0';
    return S(b->s[i]);
}

static void refuse_strings(void **state)
{
    (void)state;
    struct pb b;
    /* Each string field at its longest fits; one byte more is refused. */
    for (int f = 0; f < 11; f++) {
        for (int extra = 0; extra <= 1; extra++) {
            pb_init(&b, 1);
            size_t name = GOSSIP_NAME_MAX - 1 + extra;
            size_t addr = GOSSIP_ADDR_MAX - 1 + extra;
            size_t region = GOSSIP_REGION_MAX - 1 + extra;
            switch (f) {
            case 0:
                b.p.from = pb_str(&b, 0, name);
                break;
            case 1:
                b.p.target = pb_str(&b, 0, name);
                break;
            case 2:
                b.p.target_addr = pb_str(&b, 0, addr);
                break;
            case 3:
                b.u[0].name = pb_str(&b, 0, name);
                break;
            case 4:
                b.u[0].addr = pb_str(&b, 0, addr);
                break;
            case 5:
                b.u[0].from = pb_str(&b, 0, name);
                break;
            case 6:
                b.meta.region = pb_str(&b, 0, region);
                break;
            case 7:
                b.meta.zone = pb_str(&b, 0, region);
                break;
            case 8:
                b.meta.role = pb_str(&b, 0, GOSSIP_ROLE_MAX - 1 + extra);
                break;
            case 9:
                b.meta.api_addr = pb_str(&b, 0, addr);
                break;
            case 10:
                b.meta.version = pb_str(&b, 0, GOSSIP_VERSION_MAX - 1 + extra);
                break;
            }
            assert_int_equal(pb_decode(&b), extra ? AT_EPROTO : 0);
        }
    }
    pb_init(&b, 1);
    b.meta.peer_addr = pb_str(&b, 0, GOSSIP_ADDR_MAX);
    assert_int_equal(pb_decode(&b), AT_EPROTO);
    /* A NUL inside a string would cut it: refused, in any field. */
    pb_init(&b, 1);
    b.p.from = (ProtobufCBinaryData){ .len = 3, .data = (uint8_t *)"a\0b" };
    assert_int_equal(pb_decode(&b), AT_EPROTO);
    pb_init(&b, 1);
    b.meta.role = (ProtobufCBinaryData){ .len = 2, .data = (uint8_t *)"v\0" };
    assert_int_equal(pb_decode(&b), AT_EPROTO);
    /* Empty names: the sender's, an update's. */
    pb_init(&b, 1);
    b.p.from = S("");
    assert_int_equal(pb_decode(&b), AT_EPROTO);
    pb_init(&b, 1);
    b.u[0].name = S("");
    assert_int_equal(pb_decode(&b), AT_EPROTO);
    /* A ping-req without a target. */
    pb_init(&b, 0);
    b.p.type = ATOLL__GOSSIP_TYPE__GOSSIP_TYPE_PING_REQ;
    assert_int_equal(pb_decode(&b), AT_EPROTO);
    b.p.target = S("t");
    b.p.target_addr = S("t:1");
    assert_int_equal(pb_decode(&b), 0);
}

static void refuse_enums_counts_versions(void **state)
{
    (void)state;
    struct pb b;
    int types[] = { 0, 6, -1, 1000 };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        pb_init(&b, 1);
        b.p.type = (Atoll__GossipType)types[i];
        assert_int_equal(pb_decode(&b), AT_EPROTO);
        pb_init(&b, 1);
        b.u[0].kind = (Atoll__GossipUpdateKind)types[i];
        assert_int_equal(pb_decode(&b), AT_EPROTO);
    }
    pb_init(&b, GOSSIP_MSG_UPDATES_MAX);
    assert_int_equal(pb_decode(&b), 0);
    pb_init(&b, GOSSIP_MSG_UPDATES_MAX + 1);
    assert_int_equal(pb_decode(&b), AT_EPROTO);
    unsigned versions[] = { 0, 2, 0xffffffffu };
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        pb_init(&b, 1);
        b.p.version = versions[i];
        assert_int_equal(pb_decode(&b), AT_EPROTO);
    }
}

static void refuse_truncated_garbage(void **state)
{
    (void)state;
    struct gossip_msg m, back;
    uint8_t buf[GOSSIP_SEAL_PLAIN_MAX + 100];
    size_t len = 0;
    fill_msg(&m, GOSSIP_MSG_PING, 4);
    assert_int_equal(gossip_wire_encode(&m, buf, sizeof(buf), &len, NULL), 0);
    /* Cut anywhere: a clean cut between fields may still decode (fewer
     * updates), but whatever decodes is valid; a cut inside the last
     * update is refused. */
    for (size_t cut = 0; cut < len; cut++) {
        int rc = gossip_wire_decode(buf, cut, &back);
        assert_true(rc == 0 || rc == AT_EPROTO);
        if (rc == 0)
            assert_true(gossip_msg_valid(&back));
    }
    assert_int_equal(gossip_wire_decode(buf, len - 1, &back), AT_EPROTO);
    assert_int_equal(gossip_wire_decode(buf, 0, &back), AT_EPROTO);
    assert_int_equal(gossip_wire_decode(NULL, 0, &back), AT_EPROTO);

    /* Garbage: fixed patterns and pseudo-random bytes. */
    uint8_t g[GOSSIP_SEAL_PLAIN_MAX + 1];
    memset(g, 0xff, sizeof(g));
    assert_int_equal(gossip_wire_decode(g, 16, &back), AT_EPROTO);
    memset(g, 0, sizeof(g));
    assert_int_equal(gossip_wire_decode(g, 16, &back), AT_EPROTO);
    uint64_t x = 88172645463325252ULL;
    unsigned ok = 0;
    for (int round = 0; round < 20000; round++) {
        size_t n = 1 + (size_t)(x % 64);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            g[i] = (uint8_t)x;
        }
        int rc = gossip_wire_decode(g, n, &back);
        assert_true(rc == 0 || rc == AT_EPROTO);
        ok += rc == 0;
    }
    assert_true(ok < 100);
    /* Too long for a datagram, whatever it holds. */
    memcpy(g, buf, len);
    memset(g + len, 0, sizeof(g) - len);
    assert_int_equal(gossip_wire_decode(g, sizeof(g), &back), AT_EPROTO);
}

static void ring_with(struct gossip_keyring *r, const char *secret)
{
    char errmsg[AT_ERRMSG_SIZE];
    assert_int_equal(gossip_keyring_init(r, errmsg), 0);
    assert_int_equal(
        gossip_keyring_add(r, secret, strlen(secret), NULL, errmsg), 0);
}

static void seal_open(void **state)
{
    (void)state;
    struct gossip_keyring a, b, empty;
    char errmsg[AT_ERRMSG_SIZE];
    ring_with(&a, SECRET_A);
    ring_with(&b, SECRET_B);
    assert_int_equal(gossip_keyring_init(&empty, errmsg), 0);
    struct gossip_msg m, back;
    uint8_t pkt[GOSSIP_SEAL_PACKET_MAX];
    size_t len = 0;
    uint32_t sent = 0;
    uint64_t seq = 0, drops = 0;
    fill_msg(&m, GOSSIP_MSG_UPDATES, GOSSIP_MSG_UPDATES_MAX);
    assert_int_equal(
        gossip_wire_seal(&a, NOW, &m, pkt, sizeof(pkt), &len, &sent), 0);
    assert_int_equal(sent, GOSSIP_MSG_UPDATES_MAX);
    assert_true(len <= GOSSIP_SEAL_PACKET_MAX);
    assert_int_equal(gossip_wire_open(&a, pkt, len, &back, &seq, &drops), 0);
    assert_memory_equal(&m, &back, sizeof(m));
    assert_true(seq >= NOW);
    assert_int_equal(drops, 0);

    /* Under another key: refused and counted by the seal. */
    assert_int_equal(gossip_wire_open(&b, pkt, len, &back, &seq, &drops),
                     AT_EPROTO);
    assert_int_equal(b.stats.drop_unknown_key + b.stats.drop_auth, 1);
    assert_int_equal(drops, 0);
    /* Tampered. */
    pkt[len / 2] ^= 1;
    assert_int_equal(gossip_wire_open(&a, pkt, len, &back, &seq, &drops),
                     AT_EPROTO);
    assert_int_equal(a.stats.drop_auth, 1);

    /* Opens, but is no GossipPacket: counted as a decode drop. */
    size_t n = 0;
    assert_int_equal(
        gossip_seal(&a, NOW, "\xff\xff\xff", 3, pkt, sizeof(pkt), &n), 0);
    assert_int_equal(gossip_wire_open(&a, pkt, n, &back, &seq, &drops),
                     AT_EPROTO);
    assert_int_equal(drops, 1);

    /* No key, no room. */
    assert_int_equal(
        gossip_wire_seal(&empty, NOW, &m, pkt, sizeof(pkt), &len, &sent),
        AT_EINVAL);
    assert_int_equal(gossip_wire_seal(&a, NOW, &m, pkt, 100, &len, &sent),
                     AT_ETOOBIG);
    gossip_keyring_release(&a);
    gossip_keyring_release(&b);
    gossip_keyring_release(&empty);
}

/* ---- push-pull state ---- */

static void state_roundtrip(void **state)
{
    (void)state;
    size_t n = 1000;
    struct gossip_update *u = calloc(n, sizeof(*u));
    assert_non_null(u);
    for (size_t i = 0; i < n; i++)
        fill_update(&u[i], (unsigned)i);
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(gossip_wire_state_encode("me", u, n, &buf, &len), 0);
    printf("state: %zu members in %zu bytes (%.0f per member)\n", n, len,
           (double)len / (double)n);
    char from[GOSSIP_NAME_MAX];
    struct gossip_update *back = NULL;
    size_t nback = 0;
    assert_int_equal(gossip_wire_state_decode(buf, len, from, &back, &nback),
                     0);
    assert_string_equal(from, "me");
    assert_int_equal(nback, n);
    assert_memory_equal(u, back, n * sizeof(*u));
    free(back);
    /* Truncated: refused or a valid prefix, never a crash. */
    assert_int_equal(
        gossip_wire_state_decode(buf, len - 1, from, &back, &nback), AT_EPROTO);
    assert_null(back);
    free(buf);

    /* An empty table. */
    assert_int_equal(gossip_wire_state_encode("me", NULL, 0, &buf, &len), 0);
    assert_int_equal(gossip_wire_state_decode(buf, len, from, &back, &nback),
                     0);
    assert_int_equal(nback, 0);
    free(back);
    free(buf);

    /* Encoder refusals. */
    u[500].name[0] = '\0';
    assert_int_equal(gossip_wire_state_encode("me", u, n, &buf, &len),
                     AT_EINVAL);
    assert_int_equal(gossip_wire_state_encode("", u, 1, &buf, &len), AT_EINVAL);
    assert_int_equal(
        gossip_wire_state_encode("me", u, GOSSIP_STATE_MAX + 1, &buf, &len),
        AT_EINVAL);
    free(u);
}

static int state_pb_decode(Atoll__GossipState *st)
{
    size_t len = atoll__gossip_state__get_packed_size(st);
    uint8_t *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    atoll__gossip_state__pack(st, buf);
    char from[GOSSIP_NAME_MAX];
    struct gossip_update *u = NULL;
    size_t n = 0;
    int rc = gossip_wire_state_decode(buf, len, from, &u, &n);
    free(u);
    free(buf);
    return rc;
}

static void state_refusals(void **state)
{
    (void)state;
    size_t n = GOSSIP_STATE_MAX + 1;
    Atoll__GossipUpdate *u = calloc(n, sizeof(*u));
    Atoll__GossipUpdate **ptrs = calloc(n, sizeof(*ptrs));
    assert_non_null(u);
    assert_non_null(ptrs);
    for (size_t i = 0; i < n; i++) {
        atoll__gossip_update__init(&u[i]);
        u[i].kind = ATOLL__GOSSIP_UPDATE_KIND__GOSSIP_UPDATE_KIND_DEAD;
        u[i].name = S("x");
        ptrs[i] = &u[i];
    }
    Atoll__GossipState st = ATOLL__GOSSIP_STATE__INIT;
    st.version = 1;
    st.from = S("peer");
    st.updates = ptrs;
    st.n_updates = 3;
    assert_int_equal(state_pb_decode(&st), 0);
    /* One bad member spoils the lot. */
    char longname[GOSSIP_NAME_MAX + 1];
    memset(longname, 'n', GOSSIP_NAME_MAX);
    longname[GOSSIP_NAME_MAX] = '\0';
    u[1].name = S(longname);
    assert_int_equal(state_pb_decode(&st), AT_EPROTO);
    u[1].name = S("x");
    u[2].kind = (Atoll__GossipUpdateKind)9;
    assert_int_equal(state_pb_decode(&st), AT_EPROTO);
    u[2].kind = ATOLL__GOSSIP_UPDATE_KIND__GOSSIP_UPDATE_KIND_LEAVE;
    st.version = 2;
    assert_int_equal(state_pb_decode(&st), AT_EPROTO);
    st.version = 1;
    st.from = S("");
    assert_int_equal(state_pb_decode(&st), AT_EPROTO);
    st.from = S(longname);
    assert_int_equal(state_pb_decode(&st), AT_EPROTO);
    st.from = S("peer");
    /* The table's cap, and one more. */
    st.n_updates = GOSSIP_STATE_MAX;
    assert_int_equal(state_pb_decode(&st), 0);
    st.n_updates = GOSSIP_STATE_MAX + 1;
    assert_int_equal(state_pb_decode(&st), AT_EPROTO);
    free(ptrs);
    free(u);
    /* Over the byte limit, garbage. */
    char from[GOSSIP_NAME_MAX];
    struct gossip_update *out = NULL;
    size_t nout = 0;
    uint8_t junk[64];
    memset(junk, 0xff, sizeof(junk));
    assert_int_equal(gossip_wire_state_decode(junk, GOSSIP_STATE_BYTES_MAX + 1,
                                              from, &out, &nout),
                     AT_EPROTO);
    assert_int_equal(
        gossip_wire_state_decode(junk, sizeof(junk), from, &out, &nout),
        AT_EPROTO);
    assert_null(out);
}

/* ---- two members over the wire with a fake clock: the RTT ---- */

#define HOP_MS 5 /* one-way delay of every packet */

struct wnet;

struct wnode {
    struct wnet *net;
    int idx;
    struct gossip *g;
};

struct wpkt {
    uint64_t at;
    int to;
    size_t len;
    uint8_t b[GOSSIP_SEAL_PACKET_MAX];
};

struct wnet {
    uint64_t now;
    struct gossip_keyring ring;
    struct wnode nodes[2];
    struct wpkt q[256];
    size_t nq;
    unsigned sent, opened;
};

static uint64_t wnow(void *data)
{
    return ((struct wnode *)data)->net->now;
}

static void wsend(void *data, const char *addr, const struct gossip_msg *m)
{
    struct wnode *nd = data;
    struct wnet *net = nd->net;
    assert_true(net->nq < sizeof(net->q) / sizeof(net->q[0]));
    struct wpkt *p = &net->q[net->nq++];
    p->at = net->now + HOP_MS;
    p->to = strcmp(addr, "b:1") == 0;
    assert_int_equal(gossip_wire_seal(&net->ring, NOW + net->now, m, p->b,
                                      sizeof(p->b), &p->len, NULL),
                     0);
    net->sent++;
}

static void wstep(struct wnet *net)
{
    net->now++;
    for (size_t i = 0; i < net->nq;) {
        struct wpkt *p = &net->q[i];
        if (p->at > net->now) {
            i++;
            continue;
        }
        struct gossip_msg m;
        uint64_t seq = 0;
        assert_int_equal(
            gossip_wire_open(&net->ring, p->b, p->len, &m, &seq, NULL), 0);
        net->opened++;
        const char *from = p->to ? "a:1" : "b:1";
        assert_int_equal(gossip_receive(net->nodes[p->to].g, from, &m), 0);
        net->q[i] = net->q[--net->nq]; /* order among due ones is free */
    }
    for (int i = 0; i < 2; i++)
        gossip_tick(net->nodes[i].g);
}

static void rtt(void **state)
{
    (void)state;
    struct wnet *net = calloc(1, sizeof(*net));
    assert_non_null(net);
    net->now = 1000;
    ring_with(&net->ring, SECRET_A);
    const char *names[2] = { "a", "b" }, *addrs[2] = { "a:1", "b:1" };
    struct gossip_update ups[2];
    for (int i = 0; i < 2; i++) {
        char errmsg[AT_ERRMSG_SIZE];
        net->nodes[i] = (struct wnode){ .net = net, .idx = i };
        struct gossip_config c = { .name = names[i],
                                   .addr = addrs[i],
                                   .seed = 7 + (uint64_t)i,
                                   .now_ms = wnow,
                                   .send = wsend,
                                   .data = &net->nodes[i] };
        fill_meta(&c.meta, (unsigned)i);
        net->nodes[i].g = gossip_new(&c, errmsg);
        assert_non_null(net->nodes[i].g);
        memset(&ups[i], 0, sizeof(ups[i]));
        ups[i].kind = GOSSIP_UPDATE_ALIVE;
        ups[i].incarnation = 1;
        snprintf(ups[i].name, sizeof(ups[i].name), "%s", names[i]);
        snprintf(ups[i].addr, sizeof(ups[i].addr), "%s", addrs[i]);
        fill_meta(&ups[i].meta, (unsigned)i);
    }
    struct gossip_member_info info;
    for (int i = 0; i < 2; i++) {
        gossip_merge(net->nodes[i].g, ups, 2, false);
        assert_int_equal(
            gossip_member_get(net->nodes[i].g, names[1 - i], &info), 0);
        assert_int_equal(info.rtt_us, 0);
    }
    for (int t = 0; t < 2000; t++)
        wstep(net);
    /* New metadata (a flag) spreads over the wire with an incarnation. */
    struct gossip_meta meta = ups[1].meta;
    meta.flags ^= 0x100;
    ups[1].meta = meta;
    gossip_set_meta(net->nodes[1].g, &meta);
    for (int t = 0; t < 3000; t++)
        wstep(net);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(
            gossip_member_get(net->nodes[i].g, names[1 - i], &info), 0);
        assert_int_equal(info.state, GOSSIP_ALIVE);
        assert_int_equal(info.rtt_us, 2 * HOP_MS * 1000);
        /* The metadata (flags included) came over the wire intact. */
        assert_int_equal(info.meta.flags, ups[1 - i].meta.flags);
        assert_memory_equal(&info.meta, &ups[1 - i].meta, sizeof(info.meta));
        gossip_free(net->nodes[i].g);
    }
    printf("rtt: %u packets sealed and opened, rtt %u us (two %d ms hops)\n",
           net->opened, 2 * HOP_MS * 1000, HOP_MS);
    assert_true(net->sent > 0 && net->opened > 0);
    gossip_keyring_release(&net->ring);
    free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(roundtrip),
        cmocka_unit_test(budget),
        cmocka_unit_test(refuse_strings),
        cmocka_unit_test(refuse_enums_counts_versions),
        cmocka_unit_test(refuse_truncated_garbage),
        cmocka_unit_test(seal_open),
        cmocka_unit_test(state_roundtrip),
        cmocka_unit_test(state_refusals),
        cmocka_unit_test(rtt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
