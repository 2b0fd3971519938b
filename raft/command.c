/* Builders of packed raft commands, one per write in meta.h. */
#include "common/compat.h"

#include "raft/internal.h"

/* see internal.h */
uint64_t (*meta__cmd_clock)(void) = at_wall_ms;

/* see internal.h: printable ASCII, 1..META_REQUEST_ID_MAX bytes */
bool meta__request_id_ok(const char *id)
{
    size_t n = 0;
    for (; id[n] != '\0'; n++) {
        if (n >= META_REQUEST_ID_MAX || id[n] <= ' ' || id[n] > '~')
            return false;
    }
    return n > 0;
}

static ProtobufCBinaryData bin(const struct at_digest *d)
{
    ProtobufCBinaryData b = { AT_DIGEST_LEN, (uint8_t *)d->bytes };
    return b;
}

static int pack(Atoll__Command *c,
                const char *request_id,
                proto_alloc_fn alloc,
                void **out,
                size_t *len,
                char *errmsg)
{
    c->version = PROTO_COMMAND_VERSION;
    c->request_id = (char *)(request_id != NULL ? request_id : "");
    return proto_command_pack(c, alloc, out, len, errmsg);
}

static ProtobufCBinaryData *bins(const struct at_digest *d, size_t n)
{
    ProtobufCBinaryData *b = at_calloc(n + 1, sizeof(*b));
    for (size_t i = 0; i < n; i++)
        b[i] = bin(&d[i]);
    return b;
}

/* see internal.h */
int meta__cmd_put_manifest(const char *request_id,
                           const struct meta_manifest_put *p,
                           proto_alloc_fn alloc,
                           void **out,
                           size_t *len,
                           char *errmsg)
{
    if (p->repo == NULL || p->media_type == NULL ||
        (p->bytes == NULL && p->len != 0)) {
        at_errmsg_printf(errmsg, "put manifest: missing field");
        return AT_EINVAL;
    }
    if (p->len > PROTO_MANIFEST_MAX) {
        at_errmsg_printf(errmsg, "manifest of %zu bytes over %u", p->len,
                         PROTO_MANIFEST_MAX);
        return AT_ETOOBIG;
    }
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__PutManifest o = ATOLL__PUT_MANIFEST__INIT;
    o.repo = (char *)p->repo;
    o.digest = bin(&p->digest);
    o.media_type = (char *)p->media_type;
    o.bytes.data = (uint8_t *)p->bytes;
    o.bytes.len = p->len;
    if (p->tag != NULL)
        o.tag = (char *)p->tag;
    o.n_blobs = p->nblobs;
    o.blobs = bins(p->blobs, p->nblobs);
    o.n_manifests = p->nmanifests;
    o.manifests = bins(p->manifests, p->nmanifests);
    if (p->has_subject)
        o.subject = bin(&p->subject);
    if (p->artifact_type != NULL)
        o.artifact_type = (char *)p->artifact_type;
    if (p->annotations_json != NULL)
        o.annotations_json = (char *)p->annotations_json;
    c.timestamp_ms = meta__cmd_clock(); /* GC age of untagged manifests */
    c.op_case = ATOLL__COMMAND__OP_PUT_MANIFEST;
    c.put_manifest = &o;
    int rv = pack(&c, request_id, alloc, out, len, errmsg);
    at_free(o.blobs);
    at_free(o.manifests);
    return rv;
}

/* see internal.h */
int meta__cmd_blob_stored(const char *request_id,
                          const char *repo,
                          const struct at_digest *d,
                          uint64_t size,
                          const char *store,
                          proto_alloc_fn alloc,
                          void **out,
                          size_t *len,
                          char *errmsg)
{
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__BlobStored o = ATOLL__BLOB_STORED__INIT;
    o.repo = (char *)repo;
    o.digest = bin(d);
    o.size = size;
    if (store != NULL)
        o.store = (char *)store;
    c.timestamp_ms = meta__cmd_clock();
    c.op_case = ATOLL__COMMAND__OP_BLOB_STORED;
    c.blob_stored = &o;
    return pack(&c, request_id, alloc, out, len, errmsg);
}

/* see internal.h */
int meta__cmd_blob_mount(const char *request_id,
                         const char *repo,
                         const char *from_repo,
                         const struct at_digest *d,
                         proto_alloc_fn alloc,
                         void **out,
                         size_t *len,
                         char *errmsg)
{
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__BlobMount o = ATOLL__BLOB_MOUNT__INIT;
    o.repo = (char *)repo;
    o.from_repo = (char *)from_repo;
    o.digest = bin(d);
    c.timestamp_ms = meta__cmd_clock();
    c.op_case = ATOLL__COMMAND__OP_BLOB_MOUNT;
    c.blob_mount = &o;
    return pack(&c, request_id, alloc, out, len, errmsg);
}

/* see internal.h */
int meta__cmd_blob_unlink(const char *request_id,
                          const char *repo,
                          const struct at_digest *d,
                          proto_alloc_fn alloc,
                          void **out,
                          size_t *len,
                          char *errmsg)
{
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__BlobUnlink o = ATOLL__BLOB_UNLINK__INIT;
    o.repo = (char *)repo;
    o.digest = bin(d);
    c.op_case = ATOLL__COMMAND__OP_BLOB_UNLINK;
    c.blob_unlink = &o;
    return pack(&c, request_id, alloc, out, len, errmsg);
}

/* see internal.h */
int meta__cmd_delete_manifest(const char *request_id,
                              const char *repo,
                              const struct at_digest *d,
                              proto_alloc_fn alloc,
                              void **out,
                              size_t *len,
                              char *errmsg)
{
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__DeleteManifest o = ATOLL__DELETE_MANIFEST__INIT;
    o.repo = (char *)repo;
    o.digest = bin(d);
    c.op_case = ATOLL__COMMAND__OP_DELETE_MANIFEST;
    c.delete_manifest = &o;
    return pack(&c, request_id, alloc, out, len, errmsg);
}

/* see internal.h */
int meta__cmd_delete_tag(const char *request_id,
                         const char *repo,
                         const char *tag,
                         proto_alloc_fn alloc,
                         void **out,
                         size_t *len,
                         char *errmsg)
{
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__DeleteTag o = ATOLL__DELETE_TAG__INIT;
    o.repo = (char *)repo;
    o.tag = (char *)tag;
    c.op_case = ATOLL__COMMAND__OP_DELETE_TAG;
    c.delete_tag = &o;
    return pack(&c, request_id, alloc, out, len, errmsg);
}

/* see internal.h */
int meta__cmd_node_upsert(const char *request_id,
                          const struct meta_node *n,
                          bool standby,
                          proto_alloc_fn alloc,
                          void **out,
                          size_t *len,
                          char *errmsg)
{
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__NodeUpsert o = ATOLL__NODE_UPSERT__INIT;
    o.id = n->id;
    o.name = (char *)(n->name != NULL ? n->name : "");
    o.peer_address = (char *)(n->peer_address != NULL ? n->peer_address : "");
    o.api_address = (char *)(n->api_address != NULL ? n->api_address : "");
    o.region = (char *)(n->region != NULL ? n->region : "");
    o.standby = standby;
    c.op_case = ATOLL__COMMAND__OP_NODE_UPSERT;
    c.node_upsert = &o;
    return pack(&c, request_id, alloc, out, len, errmsg);
}

/* see internal.h */
int meta__cmd_node_remove(const char *request_id,
                          uint64_t id,
                          proto_alloc_fn alloc,
                          void **out,
                          size_t *len,
                          char *errmsg)
{
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__NodeRemove o = ATOLL__NODE_REMOVE__INIT;
    o.id = id;
    c.op_case = ATOLL__COMMAND__OP_NODE_REMOVE;
    c.node_remove = &o;
    return pack(&c, request_id, alloc, out, len, errmsg);
}

/* see internal.h */
int meta__cmd_gc_sweep(const char *request_id,
                       uint64_t now_ms,
                       uint64_t grace_ms,
                       const struct at_digest *d,
                       size_t n,
                       proto_alloc_fn alloc,
                       void **out,
                       size_t *len,
                       char *errmsg)
{
    if (n > PROTO_GC_BATCH_MAX || (d == NULL && n != 0)) {
        at_errmsg_printf(errmsg, "gc sweep of %zu digests over %u", n,
                         PROTO_GC_BATCH_MAX);
        return AT_EINVAL;
    }
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__GcSweep o = ATOLL__GC_SWEEP__INIT;
    o.grace_ms = grace_ms;
    o.n_digests = n;
    o.digests = bins(d, n);
    c.timestamp_ms = now_ms;
    c.op_case = ATOLL__COMMAND__OP_GC_SWEEP;
    c.gc_sweep = &o;
    int rv = pack(&c, request_id, alloc, out, len, errmsg);
    at_free(o.digests);
    return rv;
}

/* see internal.h */
int meta__cmd_set_setting(const char *request_id,
                          const char *key,
                          const char *value,
                          proto_alloc_fn alloc,
                          void **out,
                          size_t *len,
                          char *errmsg)
{
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__SetSetting o = ATOLL__SET_SETTING__INIT;
    if (!meta__setting_key_ok(key) || strlen(value) > META_SETTING_VALUE_MAX) {
        at_errmsg_printf(errmsg, "bad setting key or value");
        return AT_EINVAL;
    }
    o.key = (char *)key;
    o.value = (char *)value;
    c.op_case = ATOLL__COMMAND__OP_SET_SETTING;
    c.set_setting = &o;
    return pack(&c, request_id, alloc, out, len, errmsg);
}
