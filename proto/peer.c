/* The peer endpoint table, the version checks and bounded pack/unpack of the
 * peer messages (protobuf-c stays in here). */
#include "common/compat.h"

#include <inttypes.h>
#include <stdio.h>
#include <strings.h>

#include "proto/peer.h"
#include "proto/proto.h"

/* a PeerPropose around the largest command: tag, length and version */
_Static_assert(PROTO_PEER_PROPOSE_MAX >= PROTO_COMMAND_MAX + 16,
               "propose bound fits a command");

#define JSON_BODY(n, p, max)                           \
    {                                                  \
        n, p, false, "POST", PROTO_PEER_BODY_JSON, max \
    }
#define PB_BODY(n, p, max)                                 \
    {                                                      \
        n, p, false, "POST", PROTO_PEER_BODY_PROTOBUF, max \
    }

/* see peer.h */
const struct proto_peer_endpoint proto_peer_endpoints[PROTO_PEER_EP_COUNT] = {
    [PROTO_PEER_RAFT] = { "raft", "/_atoll/raft", false, "POST",
                          PROTO_PEER_BODY_NONE, 0 },
    [PROTO_PEER_PROPOSE] =
        PB_BODY("propose", "/_atoll/propose", PROTO_PEER_PROPOSE_MAX),
    [PROTO_PEER_READ_INDEX] =
        PB_BODY("read-index", "/_atoll/read-index", PROTO_PEER_SMALL_MAX),
    [PROTO_PEER_TERM] = PB_BODY("term", "/_atoll/term", PROTO_PEER_SMALL_MAX),
    [PROTO_PEER_JOIN] = PB_BODY("join", "/_atoll/join", PROTO_PEER_JOIN_MAX),
    [PROTO_PEER_REMOVED] =
        PB_BODY("removed", "/_atoll/removed", PROTO_PEER_SMALL_MAX),
    [PROTO_PEER_REPLICATE] =
        PB_BODY("replicate", "/_atoll/replicate", PROTO_PEER_JOIN_MAX),
    [PROTO_PEER_REMOVE] = JSON_BODY("members/remove",
                                    "/_atoll/members/remove",
                                    PROTO_PEER_JSON_MAX),
    [PROTO_PEER_TRANSFER] =
        JSON_BODY("transfer", "/_atoll/transfer", PROTO_PEER_JSON_MAX),
    [PROTO_PEER_MEMBERS] = { "members", "/_atoll/members", false, "GET",
                             PROTO_PEER_BODY_NONE, 0 },
    [PROTO_PEER_BLOB] = { "blobs", "/_atoll/blobs/", true, "GET",
                          PROTO_PEER_BODY_NONE, 0 },
    [PROTO_PEER_RELAY] = { "relay", "/v2/", true, NULL, PROTO_PEER_BODY_STREAM,
                           0 },
    [PROTO_PEER_GOSSIP] = { "gossip", "/_atoll/gossip", false, "POST",
                            PROTO_PEER_BODY_BYTES, PROTO_PEER_GOSSIP_MAX },
    [PROTO_PEER_HANDOFF] = JSON_BODY("members/handoff",
                                     "/_atoll/members/handoff",
                                     PROTO_PEER_JSON_MAX),
    [PROTO_PEER_SNAPSHOT] = { "snapshots", "/_atoll/snapshots/", true, "GET",
                              PROTO_PEER_BODY_NONE, 0 },
    [PROTO_PEER_PULLTHROUGH] = { "pullthrough", "/_atoll/pullthrough/", true,
                                 "GET", PROTO_PEER_BODY_NONE, 0 },
};

/* see peer.h */
void proto_peer_snapshot_path(uint64_t index,
                              uint64_t hash,
                              char out[PROTO_PEER_SNAPSHOT_PATH_SIZE])
{
    snprintf(out, PROTO_PEER_SNAPSHOT_PATH_SIZE, "%s%016" PRIx64 "-%016" PRIx64,
             proto_peer_endpoints[PROTO_PEER_SNAPSHOT].path, index, hash);
}

/* 16 lower-case hex digits at p into *v. */
static bool hex16(const char *p, uint64_t *v)
{
    *v = 0;
    for (int i = 0; i < 16; i++) {
        char c = p[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            return false;
        *v = *v << 4 | d;
    }
    return true;
}

/* see peer.h */
bool proto_peer_snapshot_parse(const char *rest,
                               uint64_t *index,
                               uint64_t *hash)
{
    return strlen(rest) == 33 && rest[16] == '-' && hex16(rest, index) &&
           hex16(rest + 17, hash);
}

/* see peer.h */
const char *proto_peer_path(enum proto_peer_ep ep)
{
    AT_ASSERT((unsigned)ep < PROTO_PEER_EP_COUNT);
    return proto_peer_endpoints[ep].path;
}

/* see peer.h */
enum proto_peer_ep proto_peer_find(const char *path, const char **rest)
{
    const struct proto_peer_endpoint *e;
    unsigned i;

    for (i = 0; i < PROTO_PEER_EP_COUNT; i++) {
        e = &proto_peer_endpoints[i];
        if (!e->prefix && strcmp(path, e->path) == 0) {
            if (rest != NULL)
                *rest = "";
            return (enum proto_peer_ep)i;
        }
    }
    for (i = 0; i < PROTO_PEER_EP_COUNT; i++) {
        e = &proto_peer_endpoints[i];
        if (e->prefix && strncmp(path, e->path, strlen(e->path)) == 0) {
            if (rest != NULL)
                *rest = path + strlen(e->path);
            return (enum proto_peer_ep)i;
        }
    }
    return PROTO_PEER_EP_COUNT;
}

/* see peer.h */
bool proto_peer_method_ok(enum proto_peer_ep ep, const char *method)
{
    const char *want = proto_peer_endpoints[ep].method;

    if (want == NULL)
        return true;
    return strcmp(method, want) == 0 ||
           (strcmp(want, "GET") == 0 && strcmp(method, "HEAD") == 0);
}

/* see peer.h */
unsigned proto_peer_version_of(const char *value)
{
    uint64_t v;

    if (value == NULL)
        return PROTO_PEER_VERSION_OLD;
    if (value[0] < '0' || value[0] > '9' ||
        at_parse_u64(value, strlen(value), &v) != 0 || v == 0 || v > 65535)
        return 0;
    return (unsigned)v;
}

/* see peer.h */
bool proto_peer_version_line(const char *line, size_t n, unsigned *v)
{
    static const char name[] = PROTO_PEER_VERSION_HEADER ":";
    size_t nlen = sizeof(name) - 1;
    char value[16];
    size_t vlen = 0;

    if (n <= nlen || strncasecmp(line, name, nlen) != 0)
        return false;
    for (size_t i = nlen; i < n; i++) {
        if (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' ||
            line[i] == '\n')
            continue;
        if (vlen + 1 >= sizeof(value)) {
            *v = 0; /* too long: malformed */
            return true;
        }
        value[vlen++] = line[i];
    }
    value[vlen] = '\0';
    *v = proto_peer_version_of(value);
    return true;
}

/* see peer.h */
bool proto_peer_version_ok(unsigned v)
{
    return v >= PROTO_PEER_VERSION_MIN && v <= PROTO_PEER_VERSION_MAX;
}

/* ---- field checks, shared by pack and unpack ---- */

/* At most max bytes, no control characters; NULL counts as "". */
static bool text_ok(const char *s, size_t max, bool empty_ok)
{
    size_t n = 0;

    if (s == NULL)
        return empty_ok;
    for (; s[n] != '\0'; n++) {
        if (n >= max || (unsigned char)s[n] < ' ' || s[n] == 127)
            return false;
    }
    return n > 0 || empty_ok;
}

static bool join_ok(const struct proto_peer_join *j)
{
    return text_ok(j->name, PROTO_PEER_NAME_MAX, false) &&
           text_ok(j->peer_address, PROTO_ADDRESS_MAX, false) &&
           text_ok(j->api_address, PROTO_ADDRESS_MAX, true) &&
           text_ok(j->region, PROTO_PEER_NAME_MAX, true);
}

static int msg_check(const struct proto_peer_msg *m, char *errmsg)
{
    bool ok;

    switch (m->ep) {
    case PROTO_PEER_PROPOSE:
        ok = m->u.propose.command != NULL && m->u.propose.len > 0 &&
             m->u.propose.len <= PROTO_COMMAND_MAX;
        break;
    case PROTO_PEER_READ_INDEX:
    case PROTO_PEER_TERM:
        ok = true;
        break;
    case PROTO_PEER_JOIN:
        ok = join_ok(&m->u.join);
        break;
    case PROTO_PEER_REPLICATE:
        ok = text_ok(m->u.replicate.repo, PROTO_PEER_REPO_MAX, false);
        break;
    case PROTO_PEER_REMOVED:
        ok = m->u.removed.id != 0;
        break;
    default:
        at_errmsg_printf(errmsg, "no protobuf body on endpoint %d", (int)m->ep);
        return AT_EINVAL;
    }
    if (!ok) {
        at_errmsg_printf(errmsg, "malformed %s body",
                         proto_peer_endpoints[m->ep].name);
        return AT_EINVAL;
    }
    return 0;
}

/* ---- pack ---- */

/* Append the encoding of msg to out. */
static int pack_into(const ProtobufCMessage *msg,
                     struct at_buf *out,
                     char *errmsg)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    int rv = at_buf_reserve(out, n);

    if (rv != 0) {
        at_errmsg_printf(errmsg, "encoded message of %zu bytes too big", n);
        return rv;
    }
    size_t w = protobuf_c_message_pack(msg, (uint8_t *)out->data + out->len);
    AT_ASSERT(w == n);
    out->len += n;
    out->data[out->len] = '\0';
    return 0;
}

static char *text(const char *s)
{
    return (char *)(s != NULL ? s : "");
}

static int pack_join(const struct proto_peer_join *j,
                     struct at_buf *out,
                     char *errmsg)
{
    Atoll__PeerJoin pj = ATOLL__PEER_JOIN__INIT;
    Atoll__NodeUpsert n = ATOLL__NODE_UPSERT__INIT;

    pj.version = PROTO_PEER_VERSION;
    pj.node = &n;
    n.id = j->id;
    n.name = text(j->name);
    n.peer_address = text(j->peer_address);
    n.api_address = text(j->api_address);
    n.region = text(j->region);
    n.standby = j->standby;
    return pack_into(&pj.base, out, errmsg);
}

/* see peer.h */
int proto_peer_msg_pack(const struct proto_peer_msg *m,
                        struct at_buf *out,
                        char *errmsg)
{
    int rv = msg_check(m, errmsg);

    if (rv != 0)
        return rv;
    switch (m->ep) {
    case PROTO_PEER_PROPOSE: {
        Atoll__PeerPropose p = ATOLL__PEER_PROPOSE__INIT;
        p.version = PROTO_PEER_VERSION;
        p.command.data = (uint8_t *)m->u.propose.command;
        p.command.len = m->u.propose.len;
        return pack_into(&p.base, out, errmsg);
    }
    case PROTO_PEER_READ_INDEX: {
        Atoll__PeerReadIndex p = ATOLL__PEER_READ_INDEX__INIT;
        p.version = PROTO_PEER_VERSION;
        p.from_id = m->u.read_index.from_id;
        p.from_term = m->u.read_index.from_term;
        return pack_into(&p.base, out, errmsg);
    }
    case PROTO_PEER_TERM: {
        Atoll__PeerTerm p = ATOLL__PEER_TERM__INIT;
        p.version = PROTO_PEER_VERSION;
        return pack_into(&p.base, out, errmsg);
    }
    case PROTO_PEER_JOIN:
        return pack_join(&m->u.join, out, errmsg);
    case PROTO_PEER_REPLICATE: {
        Atoll__PeerReplicate p = ATOLL__PEER_REPLICATE__INIT;
        p.version = PROTO_PEER_VERSION;
        p.repo = text(m->u.replicate.repo);
        p.digest.data = (uint8_t *)m->u.replicate.digest.bytes;
        p.digest.len = AT_DIGEST_LEN;
        p.size = m->u.replicate.size;
        return pack_into(&p.base, out, errmsg);
    }
    default: { /* PROTO_PEER_REMOVED; msg_check refused the others */
        Atoll__PeerRemoved p = ATOLL__PEER_REMOVED__INIT;
        p.version = PROTO_PEER_VERSION;
        p.id = m->u.removed.id;
        return pack_into(&p.base, out, errmsg);
    }
    }
}

/* ---- unpack ---- */

static const ProtobufCMessageDescriptor *msg_desc(enum proto_peer_ep ep)
{
    switch (ep) {
    case PROTO_PEER_PROPOSE:
        return &atoll__peer_propose__descriptor;
    case PROTO_PEER_READ_INDEX:
        return &atoll__peer_read_index__descriptor;
    case PROTO_PEER_TERM:
        return &atoll__peer_term__descriptor;
    case PROTO_PEER_JOIN:
        return &atoll__peer_join__descriptor;
    case PROTO_PEER_REPLICATE:
        return &atoll__peer_replicate__descriptor;
    case PROTO_PEER_REMOVED:
        return &atoll__peer_removed__descriptor;
    default:
        return NULL;
    }
}

/* The decoded fields into m->u; returns the message's version, or 0 when
 * a field cannot be represented (a digest that is not 32 bytes, no node). */
static unsigned msg_fill(struct proto_peer_msg *m, const ProtobufCMessage *pb)
{
    switch (m->ep) {
    case PROTO_PEER_PROPOSE: {
        const Atoll__PeerPropose *p = (const void *)pb;
        m->u.propose.command = p->command.data;
        m->u.propose.len = p->command.len;
        return p->version;
    }
    case PROTO_PEER_READ_INDEX: {
        const Atoll__PeerReadIndex *p = (const void *)pb;
        m->u.read_index.from_id = p->from_id;
        m->u.read_index.from_term = p->from_term;
        return p->version;
    }
    case PROTO_PEER_TERM:
        return ((const Atoll__PeerTerm *)(const void *)pb)->version;
    case PROTO_PEER_JOIN: {
        const Atoll__PeerJoin *p = (const void *)pb;
        if (p->node == NULL)
            return 0;
        m->u.join.id = p->node->id;
        m->u.join.name = p->node->name;
        m->u.join.peer_address = p->node->peer_address;
        m->u.join.api_address = p->node->api_address;
        m->u.join.region = p->node->region;
        m->u.join.standby = p->node->standby;
        return p->version;
    }
    case PROTO_PEER_REPLICATE: {
        const Atoll__PeerReplicate *p = (const void *)pb;
        if (p->digest.len != AT_DIGEST_LEN)
            return 0;
        m->u.replicate.repo = p->repo;
        memcpy(m->u.replicate.digest.bytes, p->digest.data, AT_DIGEST_LEN);
        m->u.replicate.size = p->size;
        return p->version;
    }
    default: {
        const Atoll__PeerRemoved *p = (const void *)pb;
        m->u.removed.id = p->id;
        return p->version;
    }
    }
}

/* The version of a decoded message, checked; errmsg names both sides. */
static int version_check(unsigned v, const char *what, char *errmsg)
{
    if (proto_peer_version_ok(v))
        return 0;
    at_errmsg_printf(errmsg,
                     "%s in peer protocol version %u, this node accepts "
                     "%u..%u",
                     what, v, PROTO_PEER_VERSION_MIN, PROTO_PEER_VERSION_MAX);
    return AT_EPROTO;
}

/* Decode len bytes (at most max) as a message of d; 0 and *pb, or
 * AT_ETOOBIG / AT_EPROTO with errmsg naming what. */
static int decode(const ProtobufCMessageDescriptor *d,
                  const char *what,
                  size_t max,
                  const void *buf,
                  size_t len,
                  ProtobufCMessage **pb,
                  char *errmsg)
{
    if (len > max) {
        at_errmsg_printf(errmsg, "%s of %zu bytes over %zu", what, len, max);
        return AT_ETOOBIG;
    }
    *pb = protobuf_c_message_unpack(d, NULL, len, buf);
    if (*pb == NULL) {
        at_errmsg_printf(errmsg, "undecodable %s of %zu bytes", what, len);
        return AT_EPROTO;
    }
    return 0;
}

/* After the checks (rv): keep pb in *decoded, or free it and clear out. */
static int keep(ProtobufCMessage *pb,
                int rv,
                void **decoded,
                void *out,
                size_t size)
{
    if (rv != 0) {
        protobuf_c_message_free_unpacked(pb, NULL);
        memset(out, 0, size);
        return rv;
    }
    *decoded = pb;
    return 0;
}

static void free_decoded(void **decoded)
{
    if (*decoded != NULL)
        protobuf_c_message_free_unpacked(*decoded, NULL);
    *decoded = NULL;
}

/* see peer.h */
int proto_peer_msg_unpack(enum proto_peer_ep ep,
                          const void *buf,
                          size_t len,
                          struct proto_peer_msg *out,
                          char *errmsg)
{
    const ProtobufCMessageDescriptor *d = msg_desc(ep);
    ProtobufCMessage *pb = NULL;
    char what[64];
    int rv;

    memset(out, 0, sizeof(*out));
    if (d == NULL) {
        at_errmsg_printf(errmsg, "no protobuf body on endpoint %d", (int)ep);
        return AT_EPROTO;
    }
    out->ep = ep;
    snprintf(what, sizeof(what), "%s body", proto_peer_endpoints[ep].name);
    rv = decode(d, what, proto_peer_endpoints[ep].body_max, buf, len, &pb,
                errmsg);
    if (rv != 0)
        return rv;
    rv = version_check(msg_fill(out, pb), what, errmsg);
    if (rv == 0 && msg_check(out, errmsg) != 0)
        rv = AT_EPROTO;
    return keep(pb, rv, &out->decoded, out, sizeof(*out));
}

/* see peer.h */
void proto_peer_msg_release(struct proto_peer_msg *m)
{
    free_decoded(&m->decoded);
}

/* ---- answers ---- */

static bool reply_ok(const struct proto_peer_reply *r)
{
    return r->status <= 0 && text_ok(r->role, PROTO_PEER_ROLE_MAX, true);
}

/* see peer.h */
int proto_peer_reply_pack(const struct proto_peer_reply *r,
                          struct at_buf *out,
                          char *errmsg)
{
    Atoll__PeerReply p = ATOLL__PEER_REPLY__INIT;

    if (!reply_ok(r)) {
        at_errmsg_printf(errmsg, "malformed peer answer");
        return AT_EINVAL;
    }
    p.version = PROTO_PEER_VERSION;
    p.status = r->status;
    p.result = r->result;
    p.index = r->index;
    p.term = r->term;
    p.id = r->id;
    p.role = text(r->role);
    return pack_into(&p.base, out, errmsg);
}

/* see peer.h */
int proto_peer_reply_unpack(const void *buf,
                            size_t len,
                            struct proto_peer_reply *out,
                            char *errmsg)
{
    ProtobufCMessage *pb = NULL;
    const Atoll__PeerReply *p;
    int rv;

    memset(out, 0, sizeof(*out));
    rv = decode(&atoll__peer_reply__descriptor, "peer answer",
                PROTO_PEER_REPLY_MAX, buf, len, &pb, errmsg);
    if (rv != 0)
        return rv;
    p = (const void *)pb;
    out->status = p->status;
    out->result = p->result;
    out->index = p->index;
    out->term = p->term;
    out->id = p->id;
    out->role = p->role;
    rv = version_check(p->version, "peer answer", errmsg);
    if (rv == 0 && !reply_ok(out)) {
        at_errmsg_printf(errmsg, "malformed peer answer");
        rv = AT_EPROTO;
    }
    return keep(pb, rv, &out->decoded, out, sizeof(*out));
}

/* see peer.h */
void proto_peer_reply_release(struct proto_peer_reply *r)
{
    free_decoded(&r->decoded);
}
