/* The access policy: its record in the FSM, the apply of PolicySet
 * (deterministic: the rules as proposed, checked against the bounds of
 * meta.h), the glob matcher and the longest-match decision, and its part
 * of snapshots. */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include "raft/policy.h"

#define NAME_MAX_LEN 1024 /* repository names matched: longer never match */

/* The policy; pub borrows rules, which own their strings. */
struct policy_rec {
    struct meta_policy pub;
    struct meta_policy_rule *rules; /* owned */
};

/* ---- matching and deciding ---- */

/* see meta.h */
bool meta_repo_glob_match(const char *glob, const char *repo)
{
    /* can[j]: the glob so far matches the first j bytes of repo */
    bool a[NAME_MAX_LEN + 1], b[NAME_MAX_LEN + 1];
    bool *can = a, *next = b, *t;
    size_t rn = strlen(repo);

    if (rn > NAME_MAX_LEN || strlen(glob) > META_GLOB_MAX)
        return false;
    memset(a, 0, sizeof(a));
    can[0] = true;
    for (const char *g = glob; *g != '\0'; g++) {
        bool deep = g[0] == '*' && g[1] == '*';
        if (deep) {
            while (g[1] == '*')
                g++; /* a run of stars is one "**" */
        }
        next[0] = *g == '*' && can[0];
        for (size_t j = 1; j <= rn; j++) {
            char c = repo[j - 1];
            if (*g != '*')
                next[j] = can[j - 1] && c == *g;
            else
                next[j] = can[j] || (next[j - 1] && (deep || c != '/'));
        }
        t = can;
        can = next;
        next = t;
    }
    return can[rn];
}

static bool has_name(const char *const *list, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i], name) == 0)
            return true;
    }
    return false;
}

static bool names_caller(const struct meta_policy_rule *r,
                         const struct meta_caller *c)
{
    if (c->user == NULL)
        return r->anonymous;
    if (r->authenticated || has_name(r->users, r->nusers, c->user))
        return true;
    for (size_t i = 0; i < c->ngroups; i++) {
        if (has_name(r->groups, r->ngroups, c->groups[i]))
            return true;
    }
    return false;
}

/* see meta.h */
unsigned meta_policy_decide(const struct meta_policy_rule *rules,
                            size_t n,
                            const struct meta_caller *c,
                            const char *repo)
{
    size_t best = 0;
    bool found = false;
    unsigned actions = 0;

    for (size_t i = 0; i < n; i++) {
        const struct meta_policy_rule *r = &rules[i];
        size_t len = strlen(r->repository);
        if ((found && len < best) || !names_caller(r, c) ||
            !meta_repo_glob_match(r->repository, repo))
            continue;
        if (!found || len > best)
            actions = 0; /* a more specific rule: the others no longer
                            count */
        found = true;
        best = len;
        actions |= r->actions;
    }
    return actions;
}

/* ---- the record ---- */

static char **strs_dup(const char *const *s, size_t n)
{
    char **out = at_calloc(n + 1, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = at_strdup(s[i]);
    return out;
}

static void strs_free(const char *const *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        at_free((char *)s[i]);
    at_free((void *)s);
}

static void rec_free(struct policy_rec *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->pub.nrules; i++) {
        struct meta_policy_rule *r = &p->rules[i];
        at_free((char *)r->repository);
        strs_free(r->users, r->nusers);
        strs_free(r->groups, r->ngroups);
    }
    at_free(p->rules);
    at_free(p);
}

/* A deep copy of n rules (any source), logged at index. */
static struct policy_rec *rec_new(const struct meta_policy_rule *src,
                                  size_t n,
                                  uint64_t index)
{
    struct policy_rec *p = at_calloc(1, sizeof(*p));
    p->rules = at_calloc(n + 1, sizeof(*p->rules));
    for (size_t i = 0; i < n; i++) {
        struct meta_policy_rule *r = &p->rules[i];
        *r = src[i];
        r->repository = at_strdup(src[i].repository);
        r->users = (const char *const *)strs_dup(src[i].users, src[i].nusers);
        r->groups =
            (const char *const *)strs_dup(src[i].groups, src[i].ngroups);
    }
    p->pub.rules = p->rules;
    p->pub.nrules = n;
    p->pub.index = index;
    return p;
}

static bool names_ok(char *const *s, size_t n)
{
    if (n > META_POLICY_SUBJECTS_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!meta_user_name_ok(s[i]))
            return false;
    }
    return true;
}

/* The rules of o as borrowed meta rules (caller frees the array), or
 * NULL when o is out of bounds. */
static struct meta_policy_rule *rules_of(const Atoll__PolicySet *o)
{
    struct meta_policy_rule *v;

    if (o->n_rules > META_POLICY_RULES_MAX)
        return NULL;
    v = at_calloc(o->n_rules + 1, sizeof(*v));
    for (size_t i = 0; i < o->n_rules; i++) {
        const Atoll__PolicyRule *r = o->rules[i];
        if (r == NULL || !meta_repo_glob_ok(r->repository) ||
            !names_ok(r->users, r->n_users) ||
            !names_ok(r->groups, r->n_groups) ||
            (r->actions & ~META_ACTIONS_ALL) != 0 ||
            (r->n_users == 0 && r->n_groups == 0 && !r->anonymous &&
             !r->authenticated)) {
            at_free(v);
            return NULL;
        }
        v[i].repository = r->repository;
        v[i].users = (const char *const *)r->users;
        v[i].nusers = r->n_users;
        v[i].groups = (const char *const *)r->groups;
        v[i].ngroups = r->n_groups;
        v[i].anonymous = r->anonymous;
        v[i].authenticated = r->authenticated;
        v[i].actions = r->actions;
    }
    return v;
}

/* see policy.h */
int meta__policy_set(struct meta_fsm *f,
                     uint64_t index,
                     const Atoll__PolicySet *o)
{
    struct meta_policy_rule *v;

    if (o->reset) {
        rec_free(f->policy);
        f->policy = NULL;
        return META_OK;
    }
    v = rules_of(o);
    if (v == NULL)
        return META_INVALID;
    rec_free(f->policy);
    f->policy = rec_new(v, o->n_rules, index);
    at_free(v);
    return META_OK;
}

/* see policy.h */
const struct meta_policy *meta__policy_find(const struct meta_fsm *f)
{
    return f->policy != NULL ? &f->policy->pub : NULL;
}

/* ---- snapshots ---- */

struct meta_policy_snap {
    struct policy_rec *copy; /* owned */
    Atoll__SnapPolicy msg;
    Atoll__PolicySet set;
    Atoll__PolicyRule *rules;  /* owned */
    Atoll__PolicyRule **rulep; /* owned */
};

/* see policy.h */
struct meta_policy_snap *meta__policy_snap_take(const struct meta_fsm *f)
{
    const struct policy_rec *p = f->policy;
    struct meta_policy_snap *s;
    size_t n;

    if (p == NULL)
        return NULL;
    n = p->pub.nrules;
    s = at_calloc(1, sizeof(*s));
    s->copy = rec_new(p->rules, n, p->pub.index);
    s->rules = at_calloc(n + 1, sizeof(*s->rules));
    s->rulep = at_calloc(n + 1, sizeof(*s->rulep));
    for (size_t i = 0; i < n; i++) {
        const struct meta_policy_rule *r = &s->copy->rules[i];
        Atoll__PolicyRule *o = &s->rules[i];
        *o = (Atoll__PolicyRule)ATOLL__POLICY_RULE__INIT;
        o->repository = (char *)r->repository;
        o->n_users = r->nusers;
        o->users = (char **)r->users;
        o->n_groups = r->ngroups;
        o->groups = (char **)r->groups;
        o->anonymous = r->anonymous;
        o->authenticated = r->authenticated;
        o->actions = r->actions;
        s->rulep[i] = o;
    }
    s->set = (Atoll__PolicySet)ATOLL__POLICY_SET__INIT;
    s->set.n_rules = n;
    s->set.rules = s->rulep;
    s->msg = (Atoll__SnapPolicy)ATOLL__SNAP_POLICY__INIT;
    s->msg.policy = &s->set;
    s->msg.index = p->pub.index;
    return s;
}

/* see policy.h */
Atoll__SnapPolicy *meta__policy_snap_msg(struct meta_policy_snap *p)
{
    return &p->msg;
}

/* see policy.h */
void meta__policy_snap_free(struct meta_policy_snap *p)
{
    if (p == NULL)
        return;
    rec_free(p->copy);
    at_free(p->rules);
    at_free(p->rulep);
    at_free(p);
}

/* see policy.h */
int meta__policy_restore(struct meta_fsm *f,
                         const Atoll__Snapshot *s,
                         char *errmsg)
{
    const Atoll__SnapPolicy *sp = s->policy;

    if (sp == NULL)
        return 0; /* none set, or a snapshot from before policies */
    if (sp->policy == NULL || sp->policy->reset ||
        meta__policy_set(f, sp->index, sp->policy) != META_OK) {
        at_errmsg_printf(errmsg, "snapshot: malformed policy");
        return AT_ECORRUPT;
    }
    return 0;
}

/* see policy.h */
void meta__policy_release(struct meta_fsm *f)
{
    rec_free(f->policy);
    f->policy = NULL;
}
