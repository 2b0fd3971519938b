"""Placement rules (issue 4): rules set through the log on any node; when a
tag is pushed in a matching repository, the nodes of the named regions copy
its blobs at once (before anyone pulls there); other repositories and other
regions stay lazy. Bad rules get 400, a missing cluster secret 401."""
import json
import time
import unittest

import images
from cluster import ClusterTestCase, get_tag, note, wait_for
from harness import sha256_digest


def local_blob(node, digest):
    """Does node hold the blob in its own store (peer endpoint: 200 only
    for local blobs)?"""
    return node.peer_request("HEAD", f"/_atoll/blobs/{digest}").status == 200


class PlacementTest(ClusterTestCase):
    def setUp(self):
        # min_copies 1: copies made here come from placement alone
        self.start_cluster(3, prefix="place", extra=["--min-copies", "1"],
                           per_node={0: ["--region", "home"],
                                     1: ["--region", "home"],
                                     2: ["--region", "edge"]})

    def put_rules(self, node, doc, secret=True):
        hdrs = {"Content-Type": "application/json"}
        if secret:
            hdrs["Authorization"] = f"Bearer {self.cluster.secret}"
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        return node.request("PUT", "/_atoll/placement", body=body,
                            headers=hdrs)

    def push(self, node, repo, tag):
        img = images.small(tag)
        images.push(node, repo, tag, img)
        return list(img.blobs()), img.digest

    def test_rules_prefetch_to_named_region(self):
        c = self.cluster
        home, other_home, edge = c.nodes
        rules = {"rules": [{"repositories": "prod/*", "regions": ["edge"]}]}
        # no secret: refused; bad documents: 400; nothing stored
        self.assertEqual(self.put_rules(home, rules, secret=False).status, 401)
        for bad in (b"{", b"[]", b'{"rules":[{"repositories":"prod/*"}]}',
                    b'{"rules":[{"repositories":"a b","regions":["x"]}]}'):
            r = self.put_rules(home, bad)
            self.assertEqual(r.status, 400, bad)
            self.assertIn(b"errors", r.body)
        r = edge.request("GET", "/_atoll/placement")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), {"rules": []})

        # set on a follower: replicated to every node
        r = self.put_rules(other_home, rules)
        self.assertEqual(r.status, 200, r)
        for n in c.nodes:
            wait_for(lambda: n.request("GET", "/_atoll/placement").json() ==
                     rules, 10, what=f"rules on {n.name}")

        # a tag in a matching repo: the edge node holds every blob without
        # anyone pulling there
        blobs, _ = self.push(home, "prod/web", "v1")
        t0 = time.time()
        for d in blobs:
            wait_for(lambda: local_blob(edge, d), 20,
                     what=f"edge prefetched {d}")
        note(f"placement: blobs of a 2-blob image on the edge node "
             f"{time.time() - t0:.2f}s after the manifest PUT")
        # the home region is not named: the other home node stays lazy
        for d in blobs:
            self.assertFalse(local_blob(other_home, d))

        # a repository no rule matches: nothing is copied
        blobs2, _ = self.push(home, "dev/web", "v1")
        time.sleep(1.5)
        for d in blobs2:
            self.assertFalse(local_blob(edge, d), d)

        # the edge node serves the prefetched image even with the pushing
        # node gone
        home.kill()
        # blobs by digest are local reads: no leader needed
        for d in blobs:
            r = edge.request("GET", f"/v2/prod/web/blobs/{d}")
            self.assertEqual(r.status, 200)
            self.assertEqual(sha256_digest(r.body), d)
        # tag reads need a leader: two of three voters are still up
        c.wait_leader(exclude=[home])
        r = get_tag(edge, "prod/web", "v1")
        self.assertEqual(r.status, 200, r)
        for d in blobs:
            r = edge.request("GET", f"/v2/prod/web/blobs/{d}")
            self.assertEqual(r.status, 200)
            self.assertEqual(sha256_digest(r.body), d)

        # clearing the rules stops prefetching
        r = self.put_rules(other_home, {"rules": []})
        self.assertEqual(r.status, 200, r)
        blobs3, _ = self.push(other_home, "prod/web", "v2")
        time.sleep(1.5)
        for d in blobs3:
            self.assertFalse(local_blob(edge, d), d)


if __name__ == "__main__":
    unittest.main()
