/* Cluster settings replicated through the log and the local queue of
 * tagged pushes (settings.c). */
#ifndef META_SETTINGS_H
#define META_SETTINGS_H

#include "raft/state.h"

#define META_SETTING_KEY_MAX   64
#define META_SETTING_VALUE_MAX (64 * 1024)
#define META_PUSHES_MAX        10000 /* queued tagged pushes, then dropped */
bool meta__setting_key_ok(const char *key);
/* Apply a SetSetting (empty value: remove); an enum meta_result. */
int meta__setting_set(struct meta_fsm *f,
                      uint64_t index,
                      const char *key,
                      const char *value,
                      size_t len);
const char *meta__setting_get(struct meta_fsm *f,
                              const char *key,
                              uint64_t *index);
void meta__settings_each(struct meta_fsm *f,
                         void (*each)(void *data,
                                      const char *key,
                                      const char *value,
                                      uint64_t index),
                         void *data);
void meta__settings_release(struct meta_fsm *f);
/* Queue a tagged push when f->pushes_record (bounded). */
void meta__push_record(struct meta_fsm *f,
                       const char *repo,
                       const struct at_digest *manifest);
size_t meta__pushes_take(struct meta_fsm *f, struct meta_push **out);

#endif /* META_SETTINGS_H */
