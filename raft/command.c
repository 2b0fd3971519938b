/* Builders of packed raft commands: one per member of struct meta_cmd. */
#include "common/compat.h"

#include "raft/command.h"

#include "raft/settings.h"

/* see command.h */
uint64_t (*meta__cmd_clock)(void) = at_wall_ms;

/* see command.h: printable ASCII, 1..META_REQUEST_ID_MAX bytes */
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

static int build_put_manifest(const struct meta_cmd *mc,
                              proto_alloc_fn alloc,
                              void **out,
                              size_t *len,
                              char *errmsg)
{
    const struct meta_manifest_put *p = &mc->put_manifest;
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
    o.tag_guard = p->tag_guard;
    if (p->tag_guard && p->has_tag_expect)
        o.tag_expect = bin(&p->tag_expect);
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
    int rv = pack(&c, mc->request_id, alloc, out, len, errmsg);
    at_free(o.blobs);
    at_free(o.manifests);
    return rv;
}

static int build_blob_stored(const struct meta_cmd *mc,
                             const char *store,
                             proto_alloc_fn alloc,
                             void **out,
                             size_t *len,
                             char *errmsg)
{
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__BlobStored o = ATOLL__BLOB_STORED__INIT;
    o.repo = (char *)mc->blob_stored.repo;
    o.digest = bin(&mc->blob_stored.digest);
    o.size = mc->blob_stored.size;
    if (store != NULL && !mc->blob_stored.remote)
        o.store = (char *)store; /* else "": held by no node (fsm.c) */
    c.timestamp_ms = meta__cmd_clock();
    c.op_case = ATOLL__COMMAND__OP_BLOB_STORED;
    c.blob_stored = &o;
    return pack(&c, mc->request_id, alloc, out, len, errmsg);
}

static int build_blob_mount(const struct meta_cmd *mc,
                            proto_alloc_fn alloc,
                            void **out,
                            size_t *len,
                            char *errmsg)
{
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__BlobMount o = ATOLL__BLOB_MOUNT__INIT;
    o.repo = (char *)mc->blob_mount.repo;
    o.from_repo = (char *)mc->blob_mount.from_repo;
    o.digest = bin(&mc->blob_mount.digest);
    c.timestamp_ms = meta__cmd_clock();
    c.op_case = ATOLL__COMMAND__OP_BLOB_MOUNT;
    c.blob_mount = &o;
    return pack(&c, mc->request_id, alloc, out, len, errmsg);
}

static int build_blob_unlink(const struct meta_cmd *mc,
                             proto_alloc_fn alloc,
                             void **out,
                             size_t *len,
                             char *errmsg)
{
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__BlobUnlink o = ATOLL__BLOB_UNLINK__INIT;
    o.repo = (char *)mc->blob_unlink.repo;
    o.digest = bin(&mc->blob_unlink.digest);
    c.op_case = ATOLL__COMMAND__OP_BLOB_UNLINK;
    c.blob_unlink = &o;
    return pack(&c, mc->request_id, alloc, out, len, errmsg);
}

static int build_delete_manifest(const struct meta_cmd *mc,
                                 proto_alloc_fn alloc,
                                 void **out,
                                 size_t *len,
                                 char *errmsg)
{
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__DeleteManifest o = ATOLL__DELETE_MANIFEST__INIT;
    o.repo = (char *)mc->delete_manifest.repo;
    o.digest = bin(&mc->delete_manifest.digest);
    c.op_case = ATOLL__COMMAND__OP_DELETE_MANIFEST;
    c.delete_manifest = &o;
    return pack(&c, mc->request_id, alloc, out, len, errmsg);
}

static int build_delete_tag(const struct meta_cmd *mc,
                            proto_alloc_fn alloc,
                            void **out,
                            size_t *len,
                            char *errmsg)
{
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__DeleteTag o = ATOLL__DELETE_TAG__INIT;
    o.repo = (char *)mc->delete_tag.repo;
    o.tag = (char *)mc->delete_tag.tag;
    c.op_case = ATOLL__COMMAND__OP_DELETE_TAG;
    c.delete_tag = &o;
    return pack(&c, mc->request_id, alloc, out, len, errmsg);
}

static int build_node_upsert(const struct meta_cmd *mc,
                             proto_alloc_fn alloc,
                             void **out,
                             size_t *len,
                             char *errmsg)
{
    const struct meta_node *n = &mc->node_upsert.node;
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__NodeUpsert o = ATOLL__NODE_UPSERT__INIT;
    o.id = n->id;
    o.name = (char *)(n->name != NULL ? n->name : "");
    o.peer_address = (char *)(n->peer_address != NULL ? n->peer_address : "");
    o.api_address = (char *)(n->api_address != NULL ? n->api_address : "");
    o.region = (char *)(n->region != NULL ? n->region : "");
    o.standby = mc->node_upsert.standby;
    c.op_case = ATOLL__COMMAND__OP_NODE_UPSERT;
    c.node_upsert = &o;
    return pack(&c, mc->request_id, alloc, out, len, errmsg);
}

static int build_node_remove(const struct meta_cmd *mc,
                             proto_alloc_fn alloc,
                             void **out,
                             size_t *len,
                             char *errmsg)
{
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__NodeRemove o = ATOLL__NODE_REMOVE__INIT;
    o.id = mc->node_remove.id;
    c.op_case = ATOLL__COMMAND__OP_NODE_REMOVE;
    c.node_remove = &o;
    return pack(&c, mc->request_id, alloc, out, len, errmsg);
}

/* Blob digests and untagged manifests, each list bounded. */
static int build_gc_sweep(const struct meta_cmd *mc,
                          proto_alloc_fn alloc,
                          void **out,
                          size_t *len,
                          char *errmsg)
{
    const struct meta_gc_sweep *g = &mc->gc_sweep;
    size_t n = g->nmanifests;
    if (g->ndigests > PROTO_GC_BATCH_MAX ||
        (g->digests == NULL && g->ndigests != 0)) {
        at_errmsg_printf(errmsg, "gc sweep of %zu digests over %u", g->ndigests,
                         PROTO_GC_BATCH_MAX);
        return AT_EINVAL;
    }
    if (n > PROTO_GC_BATCH_MAX || (g->manifests == NULL && n != 0)) {
        at_errmsg_printf(errmsg, "gc sweep of %zu manifests over %u", n,
                         PROTO_GC_BATCH_MAX);
        return AT_EINVAL;
    }
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__GcSweep o = ATOLL__GC_SWEEP__INIT;
    Atoll__SweepManifest *sms = at_calloc(n + 1, sizeof(*sms));
    Atoll__SweepManifest **smp = at_calloc(n + 1, sizeof(*smp));
    for (size_t i = 0; i < n; i++) {
        const struct meta_gc_manifest *mf = &g->manifests[i];
        sms[i] = (Atoll__SweepManifest)ATOLL__SWEEP_MANIFEST__INIT;
        sms[i].repo = (char *)(mf->repo != NULL ? mf->repo : "");
        sms[i].digest = bin(&mf->digest);
        smp[i] = &sms[i];
    }
    o.grace_ms = g->grace_ms;
    o.n_digests = g->ndigests;
    o.digests = bins(g->digests, g->ndigests);
    o.n_manifests = n;
    o.manifests = smp;
    c.timestamp_ms = g->now_ms;
    c.op_case = ATOLL__COMMAND__OP_GC_SWEEP;
    c.gc_sweep = &o;
    int rv = pack(&c, mc->request_id, alloc, out, len, errmsg);
    at_free(o.digests);
    at_free(smp);
    at_free(sms);
    return rv;
}

static int build_set_setting(const struct meta_cmd *mc,
                             proto_alloc_fn alloc,
                             void **out,
                             size_t *len,
                             char *errmsg)
{
    const char *key = mc->set_setting.key;
    const char *value = mc->set_setting.value;
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__SetSetting o = ATOLL__SET_SETTING__INIT;
    if (key == NULL || value == NULL || !meta__setting_key_ok(key) ||
        strlen(value) > META_SETTING_VALUE_MAX) {
        at_errmsg_printf(errmsg, "bad setting key or value");
        return AT_EINVAL;
    }
    o.key = (char *)key;
    o.value = (char *)value;
    c.op_case = ATOLL__COMMAND__OP_SET_SETTING;
    c.set_setting = &o;
    return pack(&c, mc->request_id, alloc, out, len, errmsg);
}

/* The stored form of a put mode (PUT_PASSWORD is for users only). */
static Atoll__PutMode put_mode(enum meta_put_mode mode)
{
    switch (mode) {
    case META_PUT_CREATE:
        return ATOLL__PUT_MODE__PUT_CREATE;
    case META_PUT_PASSWORD:
        return ATOLL__PUT_MODE__PUT_PASSWORD;
    case META_PUT_UPSERT:
    default:
        return ATOLL__PUT_MODE__PUT_UPSERT;
    }
}

static int build_user_put(const struct meta_cmd *mc,
                          proto_alloc_fn alloc,
                          void **out,
                          size_t *len,
                          char *errmsg)
{
    const struct meta_user_put *u = &mc->user_put;
    bool ok = meta_user_name_ok(u->name) &&
              meta_account_hash_ok(u->password_hash) &&
              u->ngroups <= META_GROUPS_MAX &&
              (u->groups != NULL || u->ngroups == 0) &&
              (unsigned)u->mode <= META_PUT_PASSWORD;
    for (size_t i = 0; ok && i < u->ngroups; i++)
        ok = meta_user_name_ok(u->groups[i]);
    if (!ok) {
        at_errmsg_printf(errmsg, "bad user name, hash or groups");
        return AT_EINVAL;
    }
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__UserPut o = ATOLL__USER_PUT__INIT;
    o.name = (char *)u->name;
    o.password_hash = (char *)u->password_hash;
    o.n_groups = u->ngroups;
    o.groups = (char **)u->groups;
    o.admin = u->admin;
    o.created_ms = meta__cmd_clock();
    o.mode = put_mode(u->mode);
    c.op_case = ATOLL__COMMAND__OP_USER_PUT;
    c.user_put = &o;
    return pack(&c, mc->request_id, alloc, out, len, errmsg);
}

static int build_robot_put(const struct meta_cmd *mc,
                           proto_alloc_fn alloc,
                           void **out,
                           size_t *len,
                           char *errmsg)
{
    const struct meta_robot_put *r = &mc->robot_put;
    size_t n = r->nperms;
    bool ok = meta_robot_name_ok(r->name) &&
              meta_account_hash_ok(r->secret_hash) &&
              n <= META_ROBOT_PERMS_MAX && (r->perms != NULL || n == 0) &&
              (r->mode == META_PUT_UPSERT || r->mode == META_PUT_CREATE);
    for (size_t i = 0; ok && i < n; i++)
        ok = meta_repo_glob_ok(r->perms[i].repository) &&
             r->perms[i].actions != 0 &&
             (r->perms[i].actions & ~META_ACTIONS_ALL) == 0;
    if (!ok) {
        at_errmsg_printf(errmsg, "bad robot name, hash or permissions");
        return AT_EINVAL;
    }
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__RobotPut o = ATOLL__ROBOT_PUT__INIT;
    Atoll__RobotPermission *ps = at_calloc(n + 1, sizeof(*ps));
    Atoll__RobotPermission **pp = at_calloc(n + 1, sizeof(*pp));
    for (size_t i = 0; i < n; i++) {
        ps[i] = (Atoll__RobotPermission)ATOLL__ROBOT_PERMISSION__INIT;
        ps[i].repository = (char *)r->perms[i].repository;
        ps[i].actions = r->perms[i].actions;
        pp[i] = &ps[i];
    }
    o.name = (char *)r->name;
    o.secret_hash = (char *)r->secret_hash;
    o.expires_ms = r->expires_ms;
    o.n_permissions = n;
    o.permissions = pp;
    o.created_ms = meta__cmd_clock();
    o.mode = put_mode(r->mode);
    c.op_case = ATOLL__COMMAND__OP_ROBOT_PUT;
    c.robot_put = &o;
    int rv = pack(&c, mc->request_id, alloc, out, len, errmsg);
    at_free(pp);
    at_free(ps);
    return rv;
}

/* UserRemove and RobotRemove: a name of the account's kind. */
static int build_account_remove(const struct meta_cmd *mc,
                                proto_alloc_fn alloc,
                                void **out,
                                size_t *len,
                                char *errmsg)
{
    bool robot = mc->kind == META_CMD_ROBOT_REMOVE;
    const char *name = robot ? mc->robot_remove.name : mc->user_remove.name;
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__UserRemove u = ATOLL__USER_REMOVE__INIT;
    Atoll__RobotRemove r = ATOLL__ROBOT_REMOVE__INIT;
    if (robot ? !meta_robot_name_ok(name) : !meta_user_name_ok(name)) {
        at_errmsg_printf(errmsg, "bad %s name", robot ? "robot" : "user");
        return AT_EINVAL;
    }
    if (robot) {
        r.name = (char *)name;
        c.op_case = ATOLL__COMMAND__OP_ROBOT_REMOVE;
        c.robot_remove = &r;
    } else {
        u.name = (char *)name;
        c.op_case = ATOLL__COMMAND__OP_USER_REMOVE;
        c.user_remove = &u;
    }
    return pack(&c, mc->request_id, alloc, out, len, errmsg);
}

static int build_token_key_put(const struct meta_cmd *mc,
                               proto_alloc_fn alloc,
                               void **out,
                               size_t *len,
                               char *errmsg)
{
    const struct meta_token_key_put *k = &mc->token_key_put;
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__TokenKeyPut o = ATOLL__TOKEN_KEY_PUT__INIT;

    if (!meta_token_kid_ok(k->kid) || k->pem == NULL ||
        strlen(k->pem) > META_TOKEN_PEM_MAX) {
        at_errmsg_printf(errmsg, "bad token key id or PEM");
        return AT_EINVAL;
    }
    o.kid = (char *)k->kid;
    o.private_key_pem = (char *)k->pem;
    o.created_ms = meta__cmd_clock();
    o.if_none = k->if_none;
    c.op_case = ATOLL__COMMAND__OP_TOKEN_KEY_PUT;
    c.token_key_put = &o;
    return pack(&c, mc->request_id, alloc, out, len, errmsg);
}

static bool policy_rule_ok(const struct meta_policy_rule *r)
{
    bool ok =
        meta_repo_glob_ok(r->repository) &&
        r->nusers <= META_POLICY_SUBJECTS_MAX &&
        r->ngroups <= META_POLICY_SUBJECTS_MAX &&
        (r->users != NULL || r->nusers == 0) &&
        (r->groups != NULL || r->ngroups == 0) &&
        (r->actions & ~META_ACTIONS_ALL) == 0 &&
        (r->nusers > 0 || r->ngroups > 0 || r->anonymous || r->authenticated);
    for (size_t i = 0; ok && i < r->nusers; i++)
        ok = meta_user_name_ok(r->users[i]);
    for (size_t i = 0; ok && i < r->ngroups; i++)
        ok = meta_user_name_ok(r->groups[i]);
    return ok;
}

static int build_policy_set(const struct meta_cmd *mc,
                            proto_alloc_fn alloc,
                            void **out,
                            size_t *len,
                            char *errmsg)
{
    const struct meta_policy_set *p = &mc->policy_set;
    size_t n = p->reset ? 0 : p->nrules;
    bool ok = n <= META_POLICY_RULES_MAX && (p->rules != NULL || n == 0);
    for (size_t i = 0; ok && i < n; i++)
        ok = policy_rule_ok(&p->rules[i]);
    if (!ok) {
        at_errmsg_printf(errmsg, "bad policy rule (glob, names or actions)");
        return AT_EINVAL;
    }
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__PolicySet o = ATOLL__POLICY_SET__INIT;
    Atoll__PolicyRule *rs = at_calloc(n + 1, sizeof(*rs));
    Atoll__PolicyRule **rp = at_calloc(n + 1, sizeof(*rp));
    for (size_t i = 0; i < n; i++) {
        const struct meta_policy_rule *r = &p->rules[i];
        rs[i] = (Atoll__PolicyRule)ATOLL__POLICY_RULE__INIT;
        rs[i].repository = (char *)r->repository;
        rs[i].n_users = r->nusers;
        rs[i].users = (char **)r->users;
        rs[i].n_groups = r->ngroups;
        rs[i].groups = (char **)r->groups;
        rs[i].anonymous = r->anonymous;
        rs[i].authenticated = r->authenticated;
        rs[i].actions = r->actions;
        rp[i] = &rs[i];
    }
    o.n_rules = n;
    o.rules = rp;
    o.reset = p->reset;
    c.op_case = ATOLL__COMMAND__OP_POLICY_SET;
    c.policy_set = &o;
    int rv = pack(&c, mc->request_id, alloc, out, len, errmsg);
    at_free(rp);
    at_free(rs);
    return rv;
}

/* see command.h */
int meta__cmd_pack(const struct meta_cmd *c,
                   const char *store,
                   proto_alloc_fn alloc,
                   void **out,
                   size_t *len,
                   char *errmsg)
{
    switch (c->kind) {
    case META_CMD_PUT_MANIFEST:
        return build_put_manifest(c, alloc, out, len, errmsg);
    case META_CMD_BLOB_STORED:
        return build_blob_stored(c, store, alloc, out, len, errmsg);
    case META_CMD_BLOB_MOUNT:
        return build_blob_mount(c, alloc, out, len, errmsg);
    case META_CMD_BLOB_UNLINK:
        return build_blob_unlink(c, alloc, out, len, errmsg);
    case META_CMD_DELETE_MANIFEST:
        return build_delete_manifest(c, alloc, out, len, errmsg);
    case META_CMD_DELETE_TAG:
        return build_delete_tag(c, alloc, out, len, errmsg);
    case META_CMD_GC_SWEEP:
        return build_gc_sweep(c, alloc, out, len, errmsg);
    case META_CMD_SET_SETTING:
        return build_set_setting(c, alloc, out, len, errmsg);
    case META_CMD_NODE_UPSERT:
        return build_node_upsert(c, alloc, out, len, errmsg);
    case META_CMD_NODE_REMOVE:
        return build_node_remove(c, alloc, out, len, errmsg);
    case META_CMD_USER_PUT:
        return build_user_put(c, alloc, out, len, errmsg);
    case META_CMD_ROBOT_PUT:
        return build_robot_put(c, alloc, out, len, errmsg);
    case META_CMD_USER_REMOVE:
    case META_CMD_ROBOT_REMOVE:
        return build_account_remove(c, alloc, out, len, errmsg);
    case META_CMD_TOKEN_KEY_PUT:
        return build_token_key_put(c, alloc, out, len, errmsg);
    case META_CMD_POLICY_SET:
        return build_policy_set(c, alloc, out, len, errmsg);
    }
    at_errmsg_printf(errmsg, "unknown command kind %d", (int)c->kind);
    return AT_EINVAL;
}
