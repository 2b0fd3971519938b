/* Cluster settings replicated through the log (SetSetting: a small map of
 * key -> value, e.g. "placement"), and the local queue of tagged pushes
 * that the node's placement prefetcher drains. */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include "raft/settings.h"

/* One setting: the value and the log index of its last change. */
struct meta_setting {
    char *value; /* owned */
    uint64_t index;
};

/* see settings.h */
bool meta__setting_key_ok(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > META_SETTING_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!((key[i] >= 'a' && key[i] <= 'z') || key[i] == '_'))
            return false;
    }
    return true;
}

static void setting_free(struct meta_setting *s)
{
    if (s == NULL)
        return;
    at_free(s->value);
    at_free(s);
}

/* see settings.h */
int meta__setting_set(struct meta_fsm *f,
                      uint64_t index,
                      const char *key,
                      const char *value,
                      size_t len)
{
    if (!meta__setting_key_ok(key) || len > META_SETTING_VALUE_MAX ||
        memchr(value, '\0', len) != NULL)
        return META_INVALID;
    struct meta_setting *old = at_map_gets(&f->settings, key);
    if (len == 0) { /* an empty value removes the key */
        if (old != NULL) {
            at_map_del(&f->settings, key, strlen(key));
            setting_free(old);
        }
        return META_OK;
    }
    if (old == NULL) {
        old = at_calloc(1, sizeof(*old));
        at_map_put(&f->settings, key, strlen(key), old);
    }
    at_free(old->value);
    old->value = at_malloc(len + 1);
    memcpy(old->value, value, len);
    old->value[len] = '\0';
    old->index = index;
    return META_OK;
}

/* see settings.h */
const char *meta__setting_get(struct meta_fsm *f,
                              const char *key,
                              uint64_t *index)
{
    struct meta_setting *s = at_map_gets(&f->settings, key);
    if (index != NULL)
        *index = s != NULL ? s->index : 0;
    return s != NULL ? s->value : NULL;
}

/* see settings.h */
void meta__settings_each(struct meta_fsm *f,
                         void (*each)(void *data,
                                      const char *key,
                                      const char *value,
                                      uint64_t index),
                         void *data)
{
    const char *k;
    void *v;
    for (size_t i = 0; at_map_next(&f->settings, &i, &k, &v);) {
        struct meta_setting *s = v;
        each(data, k, s->value, s->index);
    }
}

/* see settings.h */
void meta__settings_release(struct meta_fsm *f)
{
    const char *k;
    void *v;
    for (size_t i = 0; at_map_next(&f->settings, &i, &k, &v);)
        setting_free(v);
    at_map_release(&f->settings);
}

/* ---- tagged pushes (local, not replicated, not in snapshots) ---- */

/* see settings.h */
void meta__push_record(struct meta_fsm *f,
                       const char *repo,
                       const struct at_digest *manifest)
{
    if (!f->pushes_record)
        return;
    if (f->npushes >= META_PUSHES_MAX) {
        f->pushes_dropped++;
        return;
    }
    if (f->npushes == f->pushes_cap) {
        f->pushes_cap = f->pushes_cap != 0 ? 2 * f->pushes_cap : 16;
        f->pushes = at_realloc(f->pushes, f->pushes_cap * sizeof(*f->pushes));
    }
    f->pushes[f->npushes].repo = at_strdup(repo);
    f->pushes[f->npushes].manifest = *manifest;
    f->npushes++;
}

/* see settings.h */
size_t meta__pushes_take(struct meta_fsm *f, struct meta_push **out)
{
    size_t n = f->npushes;
    *out = f->pushes;
    f->pushes = NULL;
    f->npushes = f->pushes_cap = 0;
    return n;
}

/* see meta.h */
void meta_pushes_free(struct meta_push *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        at_free(p[i].repo);
    at_free(p);
}
