/* PUT of a JSON cluster setting (setting_put.c): the body read (bounded),
 * checked by the caller's parser, stored compact with sorted keys through
 * the log (SetSetting), audited, and answered with what was stored.
 * Placement rules and replication rules are set this way.
 *
 * Who may: an admin user the gate let in, or the cluster secret (without
 * a cluster secret and without access control, anyone: a lone node).
 * Failure modes: no body or one over max: 400/413; the parser's refusal:
 * 400 UNSUPPORTED with its reason; no leader or a failed write: as every
 * write (node_reply_write_failed). */
#ifndef NODE_SETTING_PUT_H
#define NODE_SETTING_PUT_H

#include "node/reply/context.h"

struct node_setting_put {
    const char *key;  /* the setting, e.g. "placement" */
    const char *what; /* for messages and the audit line, e.g. "placement
                         rules" */
    size_t max;       /* body bytes */
    /* check a document: 0, or AT_EINVAL with errmsg */
    int (*check)(const char *json, size_t len, char *errmsg);
};

/* May this request change settings? Else answers 401 and says false. */
bool node_setting_admin(struct node_api *api, struct node_http_req *req);

/* Take over req (a PUT) per s (static: borrowed for the request). */
void node_setting_put(struct node_api *api,
                      struct node_http_req *req,
                      const struct node_setting_put *s);

/* Answer 200 with a stored JSON setting (v NULL or "": empty). */
void node_setting_reply(struct node_http_req *req,
                        const char *v,
                        const char *empty);

#endif /* NODE_SETTING_PUT_H */
