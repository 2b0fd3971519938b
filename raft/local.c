/* Reads of this node's applied state, without a consistency step (the
 * node layer calls meta_read_barrier first when it needs one), and the
 * local queues the FSM fills for the node: GC removals, tagged pushes. */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include "raft/events.h"
#include "raft/gc.h"
#include "raft/internal.h"
#include "raft/nodes.h"
#include "raft/policy.h"
#include "raft/settings.h"
#include "raft/token_keys.h"
#include "raft/users.h"

/* see meta.h */
void meta_gc_candidates(struct meta *m,
                        uint64_t now_ms,
                        uint64_t grace_ms,
                        meta_blob_cb each,
                        void *data)
{
    meta_fsm_gc_candidates(&m->fsm, now_ms, grace_ms, each, data);
}

/* see meta.h */
void meta_gc_manifest_candidates(struct meta *m,
                                 uint64_t now_ms,
                                 uint64_t grace_ms,
                                 size_t max,
                                 meta_gc_manifest_cb each,
                                 void *data)
{
    meta_fsm_gc_manifest_candidates(&m->fsm, now_ms, grace_ms, max, each, data);
}

/* see meta.h */
size_t meta_gc_take_removed(struct meta *m, struct meta_gc_removed **out)
{
    return meta_fsm_gc_take_removed(&m->fsm, out);
}

/* see meta.h */
bool meta_gc_take_scan(struct meta *m)
{
    bool want = m->fsm.gc_scan_wanted;
    m->fsm.gc_scan_wanted = false;
    return want;
}

/* see meta.h */
const char *meta_setting_get(struct meta *m, const char *key, uint64_t *index)
{
    return meta__setting_get(&m->fsm, key, index);
}

/* see meta.h */
const struct meta_user *meta_user_get(struct meta *m, const char *name)
{
    return meta__user_find(&m->fsm, name);
}

/* see meta.h */
const struct meta_robot *meta_robot_get(struct meta *m, const char *name)
{
    return meta__robot_find(&m->fsm, name);
}

/* see meta.h */
const struct meta_policy *meta_policy_get(struct meta *m)
{
    return meta__policy_find(&m->fsm);
}

/* see meta.h */
bool meta_access_defined(struct meta *m)
{
    return m->fsm.users.len > 0 || m->fsm.robots.len > 0 ||
           m->fsm.policy != NULL;
}

/* see meta.h */
void meta_users_list(struct meta *m, meta_user_cb each, void *data)
{
    meta__users_each(&m->fsm, true, each, data);
}

/* see meta.h */
void meta_robots_list(struct meta *m, meta_robot_cb each, void *data)
{
    meta__robots_each(&m->fsm, true, each, data);
}

/* see meta.h */
size_t meta_token_keys_list(struct meta *m, meta_token_key_cb each, void *data)
{
    meta__token_keys_each(&m->fsm, each, data);
    return m->fsm.ntkeys;
}

/* see meta.h */
uint64_t meta_token_keys_version(struct meta *m)
{
    const struct meta_fsm *f = &m->fsm;
    return f->ntkeys > 0 ? f->tkeys[f->ntkeys - 1].pub.index : 0;
}

/* see meta.h */
bool meta_blob_held_here(struct meta *m, const struct at_digest *d)
{
    return meta__blob_held_by(&m->fsm, d, m->store_id);
}

/* see meta.h */
void meta_pushes_record(struct meta *m, bool on)
{
    m->fsm.pushes_record = on;
}

/* see meta.h */
size_t meta_pushes_take(struct meta *m, struct meta_push **out)
{
    return meta__pushes_take(&m->fsm, out);
}

/* see meta.h */
void meta_events_record(struct meta *m, bool on)
{
    meta__events_record(&m->fsm, on);
}

/* see meta.h */
size_t meta_events_take(struct meta *m,
                        struct meta_event **out,
                        uint64_t *dropped)
{
    return meta__events_take(&m->fsm, out, dropped);
}

/* see meta.h */
void meta_manifest_blobs(struct meta *m,
                         const char *repo,
                         const struct at_digest *d,
                         void (*each)(void *data,
                                      const struct at_digest *blob,
                                      uint64_t size),
                         void *data)
{
    meta__manifest_blobs(&m->fsm, repo, d, each, data);
}

/* see meta.h */
bool meta_repo_exists(struct meta *m, const char *repo)
{
    return meta_fsm_repo_exists(&m->fsm, repo);
}

/* see meta.h */
int meta_tag_resolve(struct meta *m,
                     const char *repo,
                     const char *tag,
                     struct at_digest *out)
{
    return meta_fsm_tag_resolve(&m->fsm, repo, tag, out);
}

/* see meta.h */
const struct meta_manifest *meta_manifest_find(struct meta *m,
                                               const char *repo,
                                               const struct at_digest *d)
{
    return meta_fsm_manifest_find(&m->fsm, repo, d);
}

/* see meta.h */
int meta_manifest_read(struct meta *m,
                       const struct meta_manifest *mf,
                       void *buf)
{
    return meta__mf_body(&m->fsm, AT_CONTAINER_OF(mf, struct meta_mf, pub),
                         buf);
}

/* see meta.h */
bool meta_blob_linked(struct meta *m,
                      const char *repo,
                      const struct at_digest *d,
                      uint64_t *size)
{
    return meta_fsm_blob_linked(&m->fsm, repo, d, size);
}

/* see meta.h */
bool meta_blob_used(struct meta *m,
                    const char *repo,
                    const struct at_digest *d,
                    struct at_digest *by)
{
    return meta_fsm_blob_used(&m->fsm, repo, d, by);
}

/* see meta.h */
const char *meta_blob_source(struct meta *m,
                             const struct at_digest *d,
                             bool (*ok)(void *data, const char *repo),
                             void *data)
{
    return meta_fsm_blob_source(&m->fsm, d, ok, data);
}

/* see meta.h */
bool meta_blob_known(struct meta *m, const struct at_digest *d, uint64_t *size)
{
    return meta_fsm_blob_known(&m->fsm, d, size);
}

/* see meta.h */
int meta_tags_list(struct meta *m,
                   const char *repo,
                   const char *last,
                   size_t limit,
                   meta_name_cb each,
                   void *data,
                   bool *more)
{
    return meta_fsm_tags_list(&m->fsm, repo, last, limit, each, data, more);
}

/* see meta.h */
void meta_catalog_list(struct meta *m,
                       const char *last,
                       size_t limit,
                       meta_name_cb each,
                       void *data,
                       bool *more)
{
    meta_fsm_catalog_list(&m->fsm, last, limit, each, data, more);
}

/* see meta.h */
void meta_referrers(struct meta *m,
                    const char *repo,
                    const struct at_digest *subject,
                    meta_manifest_cb each,
                    void *data)
{
    meta_fsm_referrers(&m->fsm, repo, subject, each, data);
}

/* see meta.h */
void meta_status_get(struct meta *m, struct meta_status *st)
{
    raft_id leader = 0;
    const char *addr = NULL;
    memset(st, 0, sizeof(*st));
    st->id = m->id;
    st->name = m->name;
    if (m->raft_closing) /* raft's state is being freed: unavailable */
        return;
    st->state = raft_state(&m->raft);
    raft_leader(&m->raft, &leader, &addr);
    st->leader_id = leader;
    st->term = m->raft.current_term;
    st->commit_index = m->raft.commit_index;
    st->last_index = raft_last_index(&m->raft);
    st->applied_index = raft_last_applied(&m->raft);
    st->repos = m->fsm.repos.len;
    st->tags = m->fsm.ntags;
    st->manifests = m->fsm.manifests.len;
    st->blobs = m->fsm.blobs.len;
    st->body_live = m->fsm.bodies.live;
    st->body_dead = m->fsm.bodies.dead;
    st->body_in_file = m->fsm.bodies.fd >= 0;
    st->removed = meta_removed(m);
    st->leader_changes = m->leader_changes;
    st->guard_held = m->guard.held_total;
    st->guard_dropped = m->guard.dropped_total;
    st->guard_barriers = m->guard.barriers_total;
    st->leader_fresh =
        st->state == RAFT_LEADER ||
        (leader != 0 && st->state == RAFT_FOLLOWER &&
         m->raft.io->time(m->raft.io) - m->raft.election_timer_start <=
             m->raft.election_timeout);
}

/* see meta.h */
bool meta_is_leader(struct meta *m)
{
    return !m->raft_closing && raft_state(&m->raft) == RAFT_LEADER;
}

/* see meta.h */
void meta_peer_progress_each(struct meta *m,
                             meta_peer_progress_cb each,
                             void *data)
{
    raft_index last = raft_last_index(&m->raft);

    if (raft_state(&m->raft) != RAFT_LEADER ||
        m->raft.leader_state.progress == NULL)
        return;
    /* the leader's progress array follows the configuration's order */
    for (unsigned i = 0; i < m->raft.configuration.n; i++) {
        const struct raft_server *s = &m->raft.configuration.servers[i];
        const struct meta_noderec *r = meta__node_find(&m->fsm, s->id);
        struct meta_peer_progress p;

        if (s->id == m->id)
            continue;
        p.id = s->id;
        p.name = r != NULL ? r->name : s->address;
        p.match_index = m->raft.leader_state.progress[i].match_index;
        p.lag = p.match_index < last ? last - p.match_index : 0;
        each(data, &p);
    }
}

/* see meta.h */
bool meta_referenced_blobs_step(struct meta *m,
                                struct meta_blob_walk *w,
                                size_t budget,
                                meta_ref_blob_cb each,
                                void *data)
{
    const char *rk;
    void *rv, *bv;
    size_t spent = 0;

    for (;;) {
        size_t next = w->repo;
        if (!at_map_next(&m->fsm.repos, &next, &rk, &rv)) {
            *w = (struct meta_blob_walk){ 0, 0 };
            return true;
        }
        const struct meta_repo *repo = rv;
        while (at_dmap_next(&repo->blobs, &w->link, &bv)) {
            const struct meta_blob *b = bv;
            if (b->mrefs > 0)
                each(data, repo->name, &b->digest, b->size);
            if (++spent >= budget)
                return false; /* this repository again, from w->link */
        }
        w->repo = next;
        w->link = 0;
        if (++spent >= budget)
            return false;
    }
}
