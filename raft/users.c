/* Users and robot accounts: the records the FSM keeps for them, the apply
 * of their four commands (deterministic: the proposer hashed the secrets
 * and read the clock), lookups and sorted listings, and their restore from
 * a snapshot. Every bound of meta.h is checked here, in apply, so a
 * command from an older or hostile proposer cannot grow the state past
 * them. */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include "raft/users.h"

/* One user; pub borrows the owned fields. */
struct user_rec {
    struct meta_user pub;
    char *name;    /* owned */
    char *hash;    /* owned */
    char **groups; /* owned array of owned names */
};

/* One robot account; pub borrows the owned fields. */
struct robot_rec {
    struct meta_robot pub;
    char *name;                    /* owned */
    char *hash;                    /* owned */
    struct meta_robot_perm *perms; /* owned, each repository owned */
};

/* ---- bounds ---- */

static bool name_chars_ok(const char *s, bool robot)
{
    size_t n = strlen(s);
    if (n == 0 || n > META_ACCOUNT_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     (!robot && c >= 'A' && c <= 'Z');
        bool punct = c == '.' || c == '_' || c == '-' || (!robot && c == '@');
        if (!alnum && (i == 0 || !punct))
            return false;
    }
    return true;
}

/* see meta.h */
bool meta_user_name_ok(const char *name)
{
    return name != NULL && name_chars_ok(name, false);
}

/* see meta.h */
bool meta_robot_name_ok(const char *name)
{
    return name != NULL && name_chars_ok(name, true);
}

/* see meta.h */
bool meta_account_hash_ok(const char *hash)
{
    size_t n = hash != NULL ? strlen(hash) : 0;
    if (n < 20 || n > META_ACCOUNT_HASH_MAX || hash[0] != '$')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = hash[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '/' || c == '$'))
            return false;
    }
    return true;
}

/* see meta.h */
bool meta_repo_glob_ok(const char *glob)
{
    size_t n = glob != NULL ? strlen(glob) : 0;
    if (n == 0 || n > META_GLOB_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = glob[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-' || c == '/' || c == '*'))
            return false;
    }
    return true;
}

static bool user_ok(const Atoll__UserPut *o)
{
    if (!meta_user_name_ok(o->name) || !meta_account_hash_ok(o->password_hash))
        return false;
    if (o->n_groups > META_GROUPS_MAX)
        return false;
    for (size_t i = 0; i < o->n_groups; i++) {
        if (!meta_user_name_ok(o->groups[i]))
            return false;
    }
    return true;
}

static bool robot_ok(const Atoll__RobotPut *o)
{
    if (!meta_robot_name_ok(o->name) || !meta_account_hash_ok(o->secret_hash))
        return false;
    if (o->n_permissions > META_ROBOT_PERMS_MAX)
        return false;
    for (size_t i = 0; i < o->n_permissions; i++) {
        const Atoll__RobotPermission *p = o->permissions[i];
        if (p == NULL || !meta_repo_glob_ok(p->repository) || p->actions == 0 ||
            (p->actions & ~META_ACTIONS_ALL) != 0)
            return false;
    }
    return true;
}

/* ---- users ---- */

static void user_fields_free(struct user_rec *u)
{
    at_free(u->name);
    at_free(u->hash);
    for (size_t i = 0; i < u->pub.ngroups; i++)
        at_free(u->groups[i]);
    at_free(u->groups);
}

/* Create or replace the record of a checked UserPut. */
static int user_set(struct meta_fsm *f, uint64_t index, const Atoll__UserPut *o)
{
    struct user_rec *u = at_map_gets(&f->users, o->name);
    if (u == NULL) {
        if (f->users.len >= META_USERS_MAX)
            return META_ACCOUNT_LIMIT;
        u = at_calloc(1, sizeof(*u));
        at_map_put(&f->users, o->name, strlen(o->name), u);
    } else {
        user_fields_free(u);
    }
    u->name = at_strdup(o->name);
    u->hash = at_strdup(o->password_hash);
    u->groups = at_calloc(o->n_groups + 1, sizeof(*u->groups));
    for (size_t i = 0; i < o->n_groups; i++)
        u->groups[i] = at_strdup(o->groups[i]);
    u->pub.name = u->name;
    u->pub.password_hash = u->hash;
    u->pub.groups = (const char *const *)u->groups;
    u->pub.ngroups = o->n_groups;
    u->pub.admin = o->admin;
    u->pub.created_ms = o->created_ms;
    u->pub.index = index;
    return META_OK;
}

/* see users.h */
int meta__user_put(struct meta_fsm *f, uint64_t index, const Atoll__UserPut *o)
{
    if (!user_ok(o))
        return META_INVALID;
    struct user_rec *u = at_map_gets(&f->users, o->name);
    switch (o->mode) {
    case ATOLL__PUT_MODE__PUT_UPSERT:
        return user_set(f, index, o);
    case ATOLL__PUT_MODE__PUT_CREATE:
        return u != NULL ? META_ACCOUNT_EXISTS : user_set(f, index, o);
    case ATOLL__PUT_MODE__PUT_PASSWORD:
        if (u == NULL)
            return META_ACCOUNT_UNKNOWN;
        at_free(u->hash);
        u->hash = at_strdup(o->password_hash);
        u->pub.password_hash = u->hash;
        u->pub.index = index;
        return META_OK;
    default:
        return META_INVALID;
    }
}

/* see users.h */
int meta__user_remove(struct meta_fsm *f, const char *name)
{
    struct user_rec *u = at_map_del(&f->users, name, strlen(name));
    if (u == NULL)
        return META_ACCOUNT_UNKNOWN;
    user_fields_free(u);
    at_free(u);
    return META_OK;
}

/* see users.h */
const struct meta_user *meta__user_find(const struct meta_fsm *f,
                                        const char *name)
{
    const struct user_rec *u = at_map_gets(&f->users, name);
    return u != NULL ? &u->pub : NULL;
}

/* ---- robots ---- */

static void robot_fields_free(struct robot_rec *r)
{
    at_free(r->name);
    at_free(r->hash);
    for (size_t i = 0; i < r->pub.nperms; i++)
        at_free((char *)r->perms[i].repository);
    at_free(r->perms);
}

static int robot_set(struct meta_fsm *f,
                     uint64_t index,
                     const Atoll__RobotPut *o)
{
    struct robot_rec *r = at_map_gets(&f->robots, o->name);
    if (r == NULL) {
        if (f->robots.len >= META_ROBOTS_MAX)
            return META_ACCOUNT_LIMIT;
        r = at_calloc(1, sizeof(*r));
        at_map_put(&f->robots, o->name, strlen(o->name), r);
    } else {
        robot_fields_free(r);
    }
    r->name = at_strdup(o->name);
    r->hash = at_strdup(o->secret_hash);
    r->perms = at_calloc(o->n_permissions + 1, sizeof(*r->perms));
    for (size_t i = 0; i < o->n_permissions; i++) {
        r->perms[i].repository = at_strdup(o->permissions[i]->repository);
        r->perms[i].actions = o->permissions[i]->actions;
    }
    r->pub.name = r->name;
    r->pub.secret_hash = r->hash;
    r->pub.expires_ms = o->expires_ms;
    r->pub.perms = r->perms;
    r->pub.nperms = o->n_permissions;
    r->pub.created_ms = o->created_ms;
    r->pub.index = index;
    return META_OK;
}

/* see users.h */
int meta__robot_put(struct meta_fsm *f,
                    uint64_t index,
                    const Atoll__RobotPut *o)
{
    if (!robot_ok(o))
        return META_INVALID;
    switch (o->mode) {
    case ATOLL__PUT_MODE__PUT_UPSERT:
        return robot_set(f, index, o);
    case ATOLL__PUT_MODE__PUT_CREATE:
        if (at_map_gets(&f->robots, o->name) != NULL)
            return META_ACCOUNT_EXISTS;
        return robot_set(f, index, o);
    default:
        return META_INVALID;
    }
}

/* see users.h */
int meta__robot_remove(struct meta_fsm *f, const char *name)
{
    struct robot_rec *r = at_map_del(&f->robots, name, strlen(name));
    if (r == NULL)
        return META_ACCOUNT_UNKNOWN;
    robot_fields_free(r);
    at_free(r);
    return META_OK;
}

/* see users.h */
const struct meta_robot *meta__robot_find(const struct meta_fsm *f,
                                          const char *name)
{
    const struct robot_rec *r = at_map_gets(&f->robots, name);
    return r != NULL ? &r->pub : NULL;
}

/* ---- listings ---- */

static int user_cmp(const void *a, const void *b)
{
    const struct user_rec *x = *(const struct user_rec *const *)a;
    const struct user_rec *y = *(const struct user_rec *const *)b;
    return strcmp(x->name, y->name);
}

static int robot_cmp(const void *a, const void *b)
{
    const struct robot_rec *x = *(const struct robot_rec *const *)a;
    const struct robot_rec *y = *(const struct robot_rec *const *)b;
    return strcmp(x->name, y->name);
}

/* The records of map m, sorted with cmp unless NULL; the caller frees the
 * array. */
static void **values(const struct at_map *m,
                     int (*cmp)(const void *, const void *))
{
    void **v = at_calloc(m->len + 1, sizeof(*v));
    const char *k;
    size_t n = 0;
    for (size_t i = 0; at_map_next(m, &i, &k, &v[n]);)
        n++;
    if (cmp != NULL)
        qsort(v, n, sizeof(*v), cmp);
    return v;
}

/* see users.h */
void meta__users_each(const struct meta_fsm *f,
                      bool sorted,
                      meta_user_cb each,
                      void *data)
{
    void **v = values(&f->users, sorted ? user_cmp : NULL);
    for (size_t i = 0; i < f->users.len; i++)
        each(data, &((const struct user_rec *)v[i])->pub);
    at_free(v);
}

/* see users.h */
void meta__robots_each(const struct meta_fsm *f,
                       bool sorted,
                       meta_robot_cb each,
                       void *data)
{
    void **v = values(&f->robots, sorted ? robot_cmp : NULL);
    for (size_t i = 0; i < f->robots.len; i++)
        each(data, &((const struct robot_rec *)v[i])->pub);
    at_free(v);
}

/* ---- snapshots and release ---- */

/* see users.h */
int meta__accounts_restore(struct meta_fsm *f,
                           const Atoll__Snapshot *s,
                           char *errmsg)
{
    for (size_t i = 0; i < s->n_users; i++) {
        const Atoll__SnapUser *su = s->users[i];
        if (su == NULL || su->user == NULL || !user_ok(su->user) ||
            at_map_gets(&f->users, su->user->name) != NULL ||
            user_set(f, su->index, su->user) != META_OK)
            goto bad;
    }
    for (size_t i = 0; i < s->n_robots; i++) {
        const Atoll__SnapRobot *sr = s->robots[i];
        if (sr == NULL || sr->robot == NULL || !robot_ok(sr->robot) ||
            at_map_gets(&f->robots, sr->robot->name) != NULL ||
            robot_set(f, sr->index, sr->robot) != META_OK)
            goto bad;
    }
    return 0;
bad:
    at_errmsg_printf(errmsg, "snapshot: malformed or duplicate account");
    return AT_ECORRUPT;
}

/* see users.h */
void meta__accounts_release(struct meta_fsm *f)
{
    const char *k;
    void *v;
    for (size_t i = 0; at_map_next(&f->users, &i, &k, &v);) {
        user_fields_free(v);
        at_free(v);
    }
    for (size_t i = 0; at_map_next(&f->robots, &i, &k, &v);) {
        robot_fields_free(v);
        at_free(v);
    }
    at_map_release(&f->users);
    at_map_release(&f->robots);
}
