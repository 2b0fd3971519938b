/* Framing, padding and bounded pack/unpack of raft commands and snapshots. */
#include "common/compat.h"

#include "proto/proto.h"

static const char cmd_magic[4] = { 'A', 'T', 'C', '1' };
static const char snap_magic[4] = { 'A', 'T', 'S', '1' };

_Static_assert(PROTO_FRAME_SIZE % 8 == 0, "frame keeps 8-byte alignment");

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* Frame and encode any message; max bounds the whole frame. */
static int pack_framed(const ProtobufCMessage *msg,
                       const char magic[4],
                       size_t max,
                       proto_alloc_fn alloc,
                       void **out,
                       size_t *len,
                       char *errmsg)
{
    size_t enc = protobuf_c_message_get_packed_size(msg);
    if (enc > max - PROTO_FRAME_SIZE - 8) {
        at_errmsg_printf(errmsg, "encoded message of %zu bytes over %zu", enc,
                         max);
        return AT_ETOOBIG;
    }
    size_t total = pad8(PROTO_FRAME_SIZE + enc);
    uint8_t *p = alloc != NULL ? alloc(total) : malloc(total);
    if (p == NULL) {
        at_errmsg_printf(errmsg, "allocate %zu bytes", total);
        return AT_ENOMEM;
    }
    memset(p, 0, total);
    memcpy(p, magic, 4);
    put_le16(p + 4, PROTO_FRAME_VERSION);
    put_le16(p + 6, 0);
    put_le32(p + 8, (uint32_t)enc);
    put_le32(p + 12, 0);
    size_t w = protobuf_c_message_pack(msg, p + PROTO_FRAME_SIZE);
    AT_ASSERT(w == enc);
    *out = p;
    *len = total;
    return 0;
}

/* Check the frame; on success payload and plen give the protobuf encoding. */
static int unframe(const void *buf,
                   size_t len,
                   const char magic[4],
                   size_t max,
                   const uint8_t **payload,
                   size_t *plen,
                   char *errmsg)
{
    const uint8_t *p = buf;
    if (len > max) {
        at_errmsg_printf(errmsg, "message of %zu bytes over %zu", len, max);
        return AT_ETOOBIG;
    }
    if (len < PROTO_FRAME_SIZE || len % 8 != 0) {
        at_errmsg_printf(errmsg, "bad frame length %zu", len);
        return AT_ECORRUPT;
    }
    if (memcmp(p, magic, 4) != 0) {
        at_errmsg_printf(errmsg, "bad frame magic");
        return AT_ECORRUPT;
    }
    if (get_le16(p + 4) != PROTO_FRAME_VERSION || get_le16(p + 6) != 0 ||
        get_le32(p + 12) != 0) {
        at_errmsg_printf(errmsg, "unsupported frame version %u flags %u",
                         get_le16(p + 4), get_le16(p + 6));
        return AT_EPROTO;
    }
    size_t enc = get_le32(p + 8);
    if (enc > len - PROTO_FRAME_SIZE || len - PROTO_FRAME_SIZE - enc >= 8) {
        at_errmsg_printf(errmsg, "frame length %zu does not fit %zu", enc, len);
        return AT_ECORRUPT;
    }
    for (size_t i = PROTO_FRAME_SIZE + enc; i < len; i++) {
        if (p[i] != 0) {
            at_errmsg_printf(errmsg, "nonzero frame padding");
            return AT_ECORRUPT;
        }
    }
    *payload = p + PROTO_FRAME_SIZE;
    *plen = enc;
    return 0;
}

static bool digest_ok(ProtobufCBinaryData b)
{
    return b.len == AT_DIGEST_LEN;
}

static bool digests_ok(size_t n, const ProtobufCBinaryData *b)
{
    for (size_t i = 0; i < n; i++) {
        if (!digest_ok(b[i]))
            return false;
    }
    return true;
}

static bool name_ok(const char *s)
{
    return s != NULL && strlen(s) <= PROTO_NAME_MAX;
}

static bool addr_ok(const char *s)
{
    return s != NULL && strlen(s) <= PROTO_ADDRESS_MAX;
}

/* A node record: non-zero id, a non-empty bounded name, bounded fields. */
static bool node_ok(const Atoll__NodeUpsert *n)
{
    return n != NULL && n->id != 0 && n->name != NULL && n->name[0] != '\0' &&
           strlen(n->name) <= PROTO_ADDRESS_MAX && addr_ok(n->peer_address) &&
           addr_ok(n->api_address) && addr_ok(n->region);
}

/* Accounts: every string present and bounded (raft/ checks names,
 * hashes and counts against the tighter limits of its own). */
static bool strs_ok(size_t n, char *const *s)
{
    if (n > PROTO_ACCT_LIST_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!name_ok(s[i]))
            return false;
    }
    return true;
}

static bool account_ok(const Atoll__Command *c)
{
    switch (c->op_case) {
    case ATOLL__COMMAND__OP_USER_PUT: {
        const Atoll__UserPut *o = c->user_put;
        return o != NULL && name_ok(o->name) && name_ok(o->password_hash) &&
               strs_ok(o->n_groups, o->groups);
    }
    case ATOLL__COMMAND__OP_USER_REMOVE:
        return c->user_remove != NULL && name_ok(c->user_remove->name);
    case ATOLL__COMMAND__OP_ROBOT_PUT: {
        const Atoll__RobotPut *o = c->robot_put;
        if (o == NULL || !name_ok(o->name) || !name_ok(o->secret_hash) ||
            o->n_permissions > PROTO_ACCT_LIST_MAX)
            return false;
        for (size_t i = 0; i < o->n_permissions; i++) {
            if (o->permissions[i] == NULL ||
                !name_ok(o->permissions[i]->repository))
                return false;
        }
        return true;
    }
    case ATOLL__COMMAND__OP_ROBOT_REMOVE:
        return c->robot_remove != NULL && name_ok(c->robot_remove->name);
    default:
        return false;
    }
}

/* PolicySet: every string present and bounded (raft/ checks globs,
 * names and counts against its own limits). */
static bool policy_ok(const Atoll__PolicySet *o)
{
    if (o == NULL || o->n_rules > PROTO_ACCT_LIST_MAX * 16)
        return false;
    for (size_t i = 0; i < o->n_rules; i++) {
        const Atoll__PolicyRule *r = o->rules[i];
        if (r == NULL || !name_ok(r->repository) ||
            !strs_ok(r->n_users, r->users) || !strs_ok(r->n_groups, r->groups))
            return false;
    }
    return true;
}

/* Field checks shared by pack and unpack: a well-formed op. */
static int command_check(const Atoll__Command *c, char *errmsg)
{
    if (c->version != PROTO_COMMAND_VERSION) {
        at_errmsg_printf(errmsg, "unsupported command version %u", c->version);
        return AT_EPROTO;
    }
    if (c->request_id == NULL || strlen(c->request_id) > PROTO_REQUEST_ID_MAX) {
        at_errmsg_printf(errmsg, "bad request id");
        return AT_EPROTO;
    }
    bool ok = false;
    switch (c->op_case) {
    case ATOLL__COMMAND__OP_PUT_MANIFEST: {
        const Atoll__PutManifest *o = c->put_manifest;
        ok = o != NULL && name_ok(o->repo) && digest_ok(o->digest) &&
             name_ok(o->media_type) && name_ok(o->tag) &&
             o->bytes.len <= PROTO_MANIFEST_MAX &&
             (o->subject.len == 0 || digest_ok(o->subject)) &&
             digests_ok(o->n_blobs, o->blobs) &&
             digests_ok(o->n_manifests, o->manifests) &&
             name_ok(o->artifact_type) && o->annotations_json != NULL &&
             (o->tag_expect.len == 0 || digest_ok(o->tag_expect));
        if (o != NULL && o->bytes.len > PROTO_MANIFEST_MAX) {
            at_errmsg_printf(errmsg, "manifest of %zu bytes over %u",
                             o->bytes.len, PROTO_MANIFEST_MAX);
            return AT_ETOOBIG;
        }
        break;
    }
    case ATOLL__COMMAND__OP_BLOB_STORED: {
        const Atoll__BlobStored *o = c->blob_stored;
        ok = o != NULL && name_ok(o->repo) && digest_ok(o->digest) &&
             name_ok(o->store);
        break;
    }
    case ATOLL__COMMAND__OP_BLOB_MOUNT: {
        const Atoll__BlobMount *o = c->blob_mount;
        ok = o != NULL && name_ok(o->repo) && name_ok(o->from_repo) &&
             digest_ok(o->digest);
        break;
    }
    case ATOLL__COMMAND__OP_BLOB_UNLINK: {
        const Atoll__BlobUnlink *o = c->blob_unlink;
        ok = o != NULL && name_ok(o->repo) && digest_ok(o->digest);
        break;
    }
    case ATOLL__COMMAND__OP_DELETE_MANIFEST: {
        const Atoll__DeleteManifest *o = c->delete_manifest;
        ok = o != NULL && name_ok(o->repo) && digest_ok(o->digest);
        break;
    }
    case ATOLL__COMMAND__OP_DELETE_TAG: {
        const Atoll__DeleteTag *o = c->delete_tag;
        ok = o != NULL && name_ok(o->repo) && name_ok(o->tag);
        break;
    }
    case ATOLL__COMMAND__OP_NODE_UPSERT:
        ok = node_ok(c->node_upsert);
        break;
    case ATOLL__COMMAND__OP_NODE_REMOVE:
        ok = c->node_remove != NULL && c->node_remove->id != 0;
        break;
    case ATOLL__COMMAND__OP_GC_SWEEP: {
        const Atoll__GcSweep *o = c->gc_sweep;
        ok = o != NULL && o->n_digests <= PROTO_GC_BATCH_MAX &&
             digests_ok(o->n_digests, o->digests) &&
             o->n_manifests <= PROTO_GC_BATCH_MAX;
        for (size_t i = 0; ok && i < o->n_manifests; i++)
            ok = o->manifests[i] != NULL && name_ok(o->manifests[i]->repo) &&
                 digest_ok(o->manifests[i]->digest);
        break;
    }
    case ATOLL__COMMAND__OP_SET_SETTING: {
        const Atoll__SetSetting *o = c->set_setting;
        ok = o != NULL && name_ok(o->key) && o->value != NULL &&
             strlen(o->key) <= 64 && strlen(o->value) <= 64 * 1024;
        break;
    }
    case ATOLL__COMMAND__OP_USER_PUT:
    case ATOLL__COMMAND__OP_USER_REMOVE:
    case ATOLL__COMMAND__OP_ROBOT_PUT:
    case ATOLL__COMMAND__OP_ROBOT_REMOVE:
        ok = account_ok(c);
        break;
    case ATOLL__COMMAND__OP_TOKEN_KEY_PUT:
        ok = c->token_key_put != NULL && name_ok(c->token_key_put->kid) &&
             name_ok(c->token_key_put->private_key_pem);
        break;
    case ATOLL__COMMAND__OP_POLICY_SET:
        ok = policy_ok(c->policy_set);
        break;
    default:
        at_errmsg_printf(errmsg, "unknown command op %d", (int)c->op_case);
        return AT_EPROTO;
    }
    if (!ok) {
        at_errmsg_printf(errmsg, "malformed command op %d", (int)c->op_case);
        return AT_EPROTO;
    }
    return 0;
}

/* see proto.h */
int proto_command_pack(const Atoll__Command *c,
                       proto_alloc_fn alloc,
                       void **out,
                       size_t *len,
                       char *errmsg)
{
    int rv = command_check(c, errmsg);
    if (rv != 0)
        return rv == AT_EPROTO ? AT_EINVAL : rv;
    return pack_framed(&c->base, cmd_magic, PROTO_COMMAND_MAX, alloc, out, len,
                       errmsg);
}

/* see proto.h */
int proto_command_unpack(const void *buf,
                         size_t len,
                         Atoll__Command **out,
                         char *errmsg)
{
    const uint8_t *payload;
    size_t plen;
    int rv = unframe(buf, len, cmd_magic, PROTO_COMMAND_MAX, &payload, &plen,
                     errmsg);
    if (rv != 0)
        return rv;
    Atoll__Command *c = atoll__command__unpack(NULL, plen, payload);
    if (c == NULL) {
        at_errmsg_printf(errmsg, "undecodable command of %zu bytes", plen);
        return AT_EPROTO;
    }
    rv = command_check(c, errmsg);
    if (rv != 0) {
        atoll__command__free_unpacked(c, NULL);
        return rv;
    }
    *out = c;
    return 0;
}

/* see proto.h */
void proto_command_free(Atoll__Command *c)
{
    if (c != NULL)
        atoll__command__free_unpacked(c, NULL);
}

static int snapshot_check(const Atoll__Snapshot *s, char *errmsg)
{
    if (s->version != PROTO_SNAPSHOT_VERSION) {
        at_errmsg_printf(errmsg, "unsupported snapshot version %u", s->version);
        return AT_EPROTO;
    }
    for (size_t i = 0; i < s->n_repos; i++) {
        const Atoll__SnapRepo *r = s->repos[i];
        if (!name_ok(r->name) || !digests_ok(r->n_blobs, r->blobs) ||
            !digests_ok(r->n_manifests, r->manifests))
            goto bad;
        for (size_t j = 0; j < r->n_tags; j++) {
            if (!name_ok(r->tags[j]->name) || !digest_ok(r->tags[j]->digest))
                goto bad;
        }
    }
    for (size_t i = 0; i < s->n_manifests; i++) {
        const Atoll__SnapManifest *m = s->manifests[i];
        if (!digest_ok(m->digest) || !name_ok(m->media_type) ||
            m->bytes.len > PROTO_MANIFEST_MAX ||
            !digests_ok(m->n_blobs, m->blobs) ||
            !digests_ok(m->n_manifests, m->manifests) ||
            (m->subject.len != 0 && !digest_ok(m->subject)) ||
            !name_ok(m->artifact_type) || m->annotations_json == NULL)
            goto bad;
    }
    for (size_t i = 0; i < s->n_blobs; i++) {
        const Atoll__SnapBlob *b = s->blobs[i];
        if (!digest_ok(b->digest))
            goto bad;
        for (size_t j = 0; j < b->n_stores; j++) {
            if (!name_ok(b->stores[j]))
                goto bad;
        }
    }
    for (size_t i = 0; i < s->n_requests; i++) {
        const char *id = s->requests[i]->id;
        if (id == NULL || strlen(id) > PROTO_REQUEST_ID_MAX)
            goto bad;
    }
    for (size_t i = 0; i < s->n_nodes; i++) {
        if (!node_ok(s->nodes[i]))
            goto bad;
    }
    return 0;
bad:
    at_errmsg_printf(errmsg, "malformed snapshot record");
    return AT_EPROTO;
}

/* see proto.h */
int proto_snapshot_pack(const Atoll__Snapshot *s,
                        proto_alloc_fn alloc,
                        void **out,
                        size_t *len,
                        char *errmsg)
{
    return pack_framed(&s->base, snap_magic, PROTO_SNAPSHOT_MAX, alloc, out,
                       len, errmsg);
}

/* see proto.h */
int proto_snapshot_unpack(const void *buf,
                          size_t len,
                          Atoll__Snapshot **out,
                          char *errmsg)
{
    const uint8_t *payload;
    size_t plen;
    int rv = unframe(buf, len, snap_magic, PROTO_SNAPSHOT_MAX, &payload, &plen,
                     errmsg);
    if (rv != 0)
        return rv;
    Atoll__Snapshot *s = atoll__snapshot__unpack(NULL, plen, payload);
    if (s == NULL) {
        at_errmsg_printf(errmsg, "undecodable snapshot of %zu bytes", plen);
        return AT_EPROTO;
    }
    rv = snapshot_check(s, errmsg);
    if (rv != 0) {
        atoll__snapshot__free_unpacked(s, NULL);
        return rv;
    }
    *out = s;
    return 0;
}

/* see proto.h */
void proto_snapshot_free(Atoll__Snapshot *s)
{
    if (s != NULL)
        atoll__snapshot__free_unpacked(s, NULL);
}
