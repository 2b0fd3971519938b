"""OCI API: tag listing, catalog and referrers, with pagination."""
import re
import unittest
import urllib.parse

import harness
from harness import ApiTestCase, assert_error
from images import (OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, descriptor, manifest_bytes,
                    oci_manifest, sha256_digest)

MISSING = "sha256:" + "0" * 64
LINK_RE = re.compile(r'^<([^>]+)>;\s*rel="next"$')


def parse_link(r):
    """The path of a Link: <...>; rel="next" header, or None."""
    link = r.header("link")
    if link is None:
        return None
    m = LINK_RE.match(link.strip())
    return m.group(1) if m else link


class ListingTestCase(ApiTestCase):
    def tag_all(self, repo, tags):
        """Push one image and tag it with every tag."""
        d, body = self.node.push_image(repo, tags[0])
        for t in tags[1:]:
            r, _ = self.node.push_manifest(repo, t, body, OCI_MANIFEST)
            self.assertEqual(r.status, 201, repr(r))
        return d, body

    def get_json(self, path):
        r = self.req("GET", path)
        self.assertEqual(r.status, 200, repr(r))
        ct = (r.header("content-type") or "").split(";")[0]
        self.assertEqual(ct, "application/json", repr(r))
        return r, r.json()


class TagsListTest(ListingTestCase):
    # All lowercase: OCI says "lexical order (i.e. case-insensitive
    # alphanumeric order)" while byte order puts "B" before "a"; the mixed
    # case is checked separately in test_mixed_case_order.
    TAGS = ["v1", "latest", "a", "b-", "v10", "v2", "0.1", "z_z", "_u", "x.y"]

    def test_list_sorted(self):
        repo = self.repo()
        self.tag_all(repo, self.TAGS)
        r, doc = self.get_json(f"/v2/{repo}/tags/list")
        self.assertEqual(doc["name"], repo, repr(r))
        self.assertEqual(sorted(doc["tags"]), sorted(self.TAGS), repr(r))
        # distribution 2.8.2 returns directory order (unsorted).
        if harness.is_atoll():
            self.assertEqual(doc["tags"], sorted(self.TAGS), repr(r))
        self.assertIsNone(r.header("link"), repr(r))

    def test_mixed_case_order(self):
        # byte order ("B" < "a") or the spec's case-insensitive order.
        repo = self.repo()
        tags = ["b", "A", "a", "C"]
        self.tag_all(repo, tags)
        r, doc = self.get_json(f"/v2/{repo}/tags/list")
        self.assertEqual(sorted(doc["tags"]), sorted(tags), repr(r))
        if harness.is_atoll():  # distribution: unsorted
            self.assertIn(doc["tags"], (sorted(tags), sorted(tags, key=lambda t: (t.lower(), t))),
                          repr(r))

    def test_paginate_with_n(self):
        # distribution 2.8.2 neither sorts nor paginates tags (n and last
        # are ignored), so tag pagination is checked on atoll only.
        harness.skip_unless_atoll(self)
        repo = self.repo()
        self.tag_all(repo, self.TAGS)
        want = sorted(self.TAGS)
        r, doc = self.get_json(f"/v2/{repo}/tags/list?n=3")
        self.assertEqual(doc["tags"], want[:3], repr(r))
        link = parse_link(r)
        self.assertIsNotNone(link, f"no Link header: {r!r}")
        if harness.is_atoll():
            # distribution 2.8.2 answers an absolute URL with n before last
            self.assertEqual(link, f"/v2/{repo}/tags/list?last={want[2]}&n=3", repr(r))

    def test_follow_links_to_the_end(self):
        # distribution 2.8.2 neither sorts nor paginates tags (n and last
        # are ignored), so tag pagination is checked on atoll only.
        harness.skip_unless_atoll(self)
        repo = self.repo()
        self.tag_all(repo, self.TAGS)
        got, path, pages = [], f"/v2/{repo}/tags/list?n=3", 0
        while path:
            r, doc = self.get_json(path)
            got += doc["tags"]
            pages += 1
            self.assertLessEqual(len(doc["tags"]), 3, repr(r))
            path = parse_link(r)
            self.assertLess(pages, 10, "pagination does not end")
        self.assertEqual(got, sorted(self.TAGS))

    def test_last(self):
        # distribution 2.8.2 neither sorts nor paginates tags (n and last
        # are ignored), so tag pagination is checked on atoll only.
        harness.skip_unless_atoll(self)
        repo = self.repo()
        self.tag_all(repo, self.TAGS)
        want = sorted(self.TAGS)
        r, doc = self.get_json(f"/v2/{repo}/tags/list?last={want[3]}")
        self.assertEqual(doc["tags"], want[4:], repr(r))
        r, doc = self.get_json(f"/v2/{repo}/tags/list?n=2&last={want[3]}")
        self.assertEqual(doc["tags"], want[4:6], repr(r))

    def test_last_not_a_tag(self):
        # distribution 2.8.2 neither sorts nor paginates tags (n and last
        # are ignored), so tag pagination is checked on atoll only.
        harness.skip_unless_atoll(self)
        repo = self.repo()
        self.tag_all(repo, ["a", "c", "e"])
        r, doc = self.get_json(f"/v2/{repo}/tags/list?last=b")
        self.assertEqual(doc["tags"], ["c", "e"], repr(r))
        r, doc = self.get_json(f"/v2/{repo}/tags/list?last=zzz")
        self.assertEqual(doc["tags"], [], repr(r))
        self.assertIsNone(r.header("link"), repr(r))

    def test_n_exact_count_no_link(self):
        # distribution 2.8.2 neither sorts nor paginates tags (n and last
        # are ignored), so tag pagination is checked on atoll only.
        harness.skip_unless_atoll(self)
        repo = self.repo()
        self.tag_all(repo, ["a", "b", "c"])
        r, doc = self.get_json(f"/v2/{repo}/tags/list?n=3")
        self.assertEqual(doc["tags"], ["a", "b", "c"], repr(r))
        if harness.is_atoll():
            # distribution adds a Link whenever n results were returned
            self.assertIsNone(r.header("link"), repr(r))
        r, doc = self.get_json(f"/v2/{repo}/tags/list?n=100")
        self.assertEqual(doc["tags"], ["a", "b", "c"], repr(r))
        self.assertIsNone(r.header("link"), repr(r))

    def test_n_zero(self):
        repo = self.repo()
        self.tag_all(repo, ["a", "b"])
        r = self.req("GET", f"/v2/{repo}/tags/list?n=0")
        # distribution 2.8.2 treats n=0 as "no limit"; OCI 1.1 says empty.
        harness.skip_unless_atoll(self)
        self.assertEqual(r.status, 200, repr(r))
        self.assertEqual(r.json()["tags"], [], repr(r))
        self.assertIsNone(r.header("link"), repr(r))

    def test_bad_n(self):
        repo = self.repo()
        self.tag_all(repo, ["a"])
        for n in ("-1", "abc", "99999999999999999999999"):
            r = self.req("GET", f"/v2/{repo}/tags/list?n={n}")
            self.assertIn(r.status, (200, 400), f"n={n}: {r!r}")
            if r.status == 400 and harness.is_atoll():
                assert_error(self, r, 400, ("PAGINATION_NUMBER_INVALID", "UNSUPPORTED",
                                            "NAME_INVALID", "SIZE_INVALID"))

    def test_unknown_repo(self):
        assert_error(self, self.req("GET", f"/v2/{self.repo()}/tags/list"), 404, "NAME_UNKNOWN")

    def test_repo_with_only_blobs(self):
        # A repo with blobs but no tags lists no tags (or is unknown).
        repo = self.repo()
        self.node.push_blob(repo, b"just a blob")
        r = self.req("GET", f"/v2/{repo}/tags/list")
        self.assertIn(r.status, (200, 404), repr(r))
        if r.status == 200:
            self.assertEqual(r.json().get("tags") or [], [], repr(r))

    def test_all_tags_deleted(self):
        # distribution 2.8.2 cannot delete tags; deleting the manifest leaves
        # it answering 404 NAME_UNKNOWN. The contract says 200 with [].
        harness.skip_unless_atoll(self)
        repo = self.repo()
        self.tag_all(repo, ["a", "b"])
        for t in ("a", "b"):
            self.assertEqual(self.req("DELETE", f"/v2/{repo}/manifests/{t}").status, 202)
        r, doc = self.get_json(f"/v2/{repo}/tags/list")
        self.assertEqual(doc["tags"], [], repr(r))

    def test_delete_manifest_drops_its_tags(self):
        repo = self.repo()
        d, _ = self.tag_all(repo, ["x", "y"])
        d2, _ = self.node.push_image(repo, "z", layers=(b"other",))
        self.assertEqual(self.req("DELETE", f"/v2/{repo}/manifests/{d}").status, 202)
        r, doc = self.get_json(f"/v2/{repo}/tags/list")
        self.assertEqual(doc["tags"], ["z"], repr(r))

    def test_nested_repo_name(self):
        repo = self.repo("deeper/still")
        self.tag_all(repo, ["t"])
        r, doc = self.get_json(f"/v2/{repo}/tags/list")
        self.assertEqual(doc, {"name": repo, "tags": ["t"]}, repr(r))


class CatalogTest(ListingTestCase):
    """A private node: the catalog holds exactly the repos made here."""

    REPOS = ["cat/a", "cat/b", "cat/c/d", "cat-x", "cat.y", "cat_z", "zeta"]

    @staticmethod
    def order():
        """atoll sorts names by byte value ("cat-x" < "cat/a"); distribution
        2.8.2 walks directories, i.e. sorts by path component."""
        if harness.is_atoll():
            return sorted(CatalogTest.REPOS)
        return sorted(CatalogTest.REPOS, key=lambda s: s.split("/"))

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for name in cls.REPOS:
            cls.node.push_image(name, "t")

    def test_catalog_sorted(self):
        r, doc = self.get_json("/v2/_catalog")
        self.assertEqual(doc["repositories"], self.order(), repr(r))
        self.assertIsNone(r.header("link"), repr(r))

    def test_catalog_paginate(self):
        want = self.order()
        r, doc = self.get_json("/v2/_catalog?n=2")
        self.assertEqual(doc["repositories"], want[:2], repr(r))
        link = parse_link(r)
        self.assertIsNotNone(link, repr(r))
        if harness.is_atoll():
            # distribution 2.8.2 answers an absolute URL with n before last
            self.assertEqual(link, f"/v2/_catalog?last={urllib.parse.quote(want[1], safe='')}&n=2",
                             repr(r))

    def test_catalog_follow_links(self):
        got, path, pages = [], "/v2/_catalog?n=3", 0
        while path:
            r, doc = self.get_json(path)
            got += doc["repositories"]
            path = parse_link(r)
            pages += 1
            self.assertLess(pages, 10, "pagination does not end")
        self.assertEqual(got, self.order())

    def test_catalog_last(self):
        want = self.order()
        r, doc = self.get_json(f"/v2/_catalog?last={want[2]}")
        self.assertEqual(doc["repositories"], want[3:], repr(r))
        r, doc = self.get_json(f"/v2/_catalog?n=1&last={want[2]}")
        self.assertEqual(doc["repositories"], want[3:4], repr(r))

    def test_catalog_n_zero(self):
        # distribution 2.8.2 treats n=0 as the default page size
        harness.skip_unless_atoll(self)
        r, doc = self.get_json("/v2/_catalog?n=0")
        self.assertEqual(doc["repositories"], [], repr(r))
        self.assertIsNone(r.header("link"), repr(r))


class CatalogEmptiedTest(ListingTestCase):
    """A repository is in the catalog while it holds a manifest: not with
    blobs alone (a push under way), not once its last manifest is deleted
    (issue 15). distribution lists both."""

    def test_catalog_drops_emptied_repos(self):
        harness.skip_unless_atoll(self)
        d, _ = self.node.push_image("gone/app", "v1")
        self.node.push_image("kept/app", "v1")
        self.node.push_blob("blobs/only", b"just a layer")
        _, doc = self.get_json("/v2/_catalog")
        self.assertEqual(doc["repositories"], ["gone/app", "kept/app"])
        r = self.req("DELETE", f"/v2/gone/app/manifests/{d}")
        self.assertEqual(r.status, 202, repr(r))
        _, doc = self.get_json("/v2/_catalog")
        self.assertEqual(doc["repositories"], ["kept/app"])
        # pushed again, it is back
        self.node.push_image("gone/app", "v2")
        _, doc = self.get_json("/v2/_catalog?n=1")
        self.assertEqual(doc["repositories"], ["gone/app"])


class ReferrersTest(ListingTestCase):
    """OCI 1.1 referrers API; distribution 2.8.2 has none (atoll only)."""

    def setUp(self):
        harness.skip_unless_atoll(self)

    def push_referrer(self, repo, subject_digest, subject_size, artifact_type=None,
                      annotations=None, payload=b"sig", config_type=OCI_CONFIG):
        cfg = b"{}"
        self.node.push_blob(repo, cfg)
        self.node.push_blob(repo, payload)
        m = oci_manifest(descriptor(config_type, cfg), [descriptor(OCI_LAYER, payload)],
                         subject={"mediaType": OCI_MANIFEST, "digest": subject_digest,
                                  "size": subject_size},
                         artifact_type=artifact_type, annotations=annotations)
        body = manifest_bytes(m)
        r, d = self.node.push_manifest(repo, sha256_digest(body), body, OCI_MANIFEST)
        self.assertEqual(r.status, 201, repr(r))
        self.assertEqual(r.header("oci-subject"), subject_digest, repr(r))
        return d, body

    def referrers(self, repo, digest, query=""):
        r = self.req("GET", f"/v2/{repo}/referrers/{digest}{query}")
        self.assertEqual(r.status, 200, repr(r))
        self.assertEqual((r.header("content-type") or "").split(";")[0], OCI_INDEX, repr(r))
        doc = r.json()
        self.assertEqual(doc.get("schemaVersion"), 2, repr(r))
        self.assertEqual(doc.get("mediaType"), OCI_INDEX, repr(r))
        self.assertIsInstance(doc.get("manifests"), list, repr(r))
        return r, doc

    def test_referrers_list(self):
        repo = self.repo()
        sd, sbody = self.node.push_image(repo, "base")
        d1, b1 = self.push_referrer(repo, sd, len(sbody), "application/vnd.example.sig",
                                    {"org.example.k": "v1"}, payload=b"sig1")
        d2, b2 = self.push_referrer(repo, sd, len(sbody), "application/vnd.example.sbom",
                                    payload=b"sbom")
        r, doc = self.referrers(repo, sd)
        by_digest = {m["digest"]: m for m in doc["manifests"]}
        self.assertEqual(set(by_digest), {d1, d2}, repr(r))
        m1 = by_digest[d1]
        self.assertEqual(m1["mediaType"], OCI_MANIFEST, repr(r))
        self.assertEqual(m1["size"], len(b1), repr(r))
        self.assertEqual(m1["artifactType"], "application/vnd.example.sig", repr(r))
        self.assertEqual(m1.get("annotations"), {"org.example.k": "v1"}, repr(r))
        self.assertEqual(by_digest[d2]["artifactType"], "application/vnd.example.sbom", repr(r))
        self.assertEqual(by_digest[d2]["size"], len(b2), repr(r))
        self.assertIsNone(r.header("oci-filters-applied"), repr(r))

    def test_artifact_type_from_config(self):
        # Without artifactType, the descriptor carries config.mediaType.
        repo = self.repo()
        sd, sbody = self.node.push_image(repo, "base")
        d, _ = self.push_referrer(repo, sd, len(sbody), config_type="application/vnd.example.cfg")
        r, doc = self.referrers(repo, sd)
        self.assertEqual(len(doc["manifests"]), 1, repr(r))
        self.assertEqual(doc["manifests"][0]["digest"], d, repr(r))
        self.assertEqual(doc["manifests"][0]["artifactType"], "application/vnd.example.cfg", repr(r))

    def test_filter_artifact_type(self):
        repo = self.repo()
        sd, sbody = self.node.push_image(repo, "base")
        d1, _ = self.push_referrer(repo, sd, len(sbody), "application/vnd.example.sig", payload=b"1")
        self.push_referrer(repo, sd, len(sbody), "application/vnd.example.sbom", payload=b"2")
        at = urllib.parse.quote("application/vnd.example.sig", safe="")
        r, doc = self.referrers(repo, sd, f"?artifactType={at}")
        self.assertEqual([m["digest"] for m in doc["manifests"]], [d1], repr(r))
        self.assertEqual(r.header("oci-filters-applied"), "artifactType", repr(r))
        r, doc = self.referrers(repo, sd, "?artifactType=application/vnd.none")
        self.assertEqual(doc["manifests"], [], repr(r))
        self.assertEqual(r.header("oci-filters-applied"), "artifactType", repr(r))

    def test_unknown_subject_empty(self):
        repo = self.repo()
        self.node.push_image(repo, "base")
        r, doc = self.referrers(repo, MISSING)
        self.assertEqual(doc["manifests"], [], repr(r))

    def test_unknown_repo_empty_or_404(self):
        r = self.req("GET", f"/v2/{self.repo()}/referrers/{MISSING}")
        self.assertIn(r.status, (200, 404), repr(r))
        if r.status == 200:
            self.assertEqual(r.json()["manifests"], [], repr(r))
        else:
            assert_error(self, r, 404, "NAME_UNKNOWN")

    def test_referrer_pushed_before_subject(self):
        repo = self.repo()
        self.node.push_blob(repo, b"exists")
        d, _ = self.push_referrer(repo, MISSING, 321, "application/vnd.example.early")
        r, doc = self.referrers(repo, MISSING)
        self.assertEqual([m["digest"] for m in doc["manifests"]], [d], repr(r))

    def test_index_as_referrer(self):
        repo = self.repo()
        sd, sbody = self.node.push_image(repo, "base")
        idx = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [],
               "artifactType": "application/vnd.example.idx",
               "subject": {"mediaType": OCI_MANIFEST, "digest": sd, "size": len(sbody)}}
        body = manifest_bytes(idx)
        r, d = self.node.push_manifest(repo, sha256_digest(body), body, OCI_INDEX)
        self.assertEqual(r.status, 201, repr(r))
        self.assertEqual(r.header("oci-subject"), sd, repr(r))
        r, doc = self.referrers(repo, sd)
        self.assertEqual([(m["digest"], m["mediaType"]) for m in doc["manifests"]],
                         [(d, OCI_INDEX)], repr(r))

    def test_deleted_referrer_disappears(self):
        repo = self.repo()
        sd, sbody = self.node.push_image(repo, "base")
        d, _ = self.push_referrer(repo, sd, len(sbody), "application/vnd.example.sig")
        self.assertEqual(self.req("DELETE", f"/v2/{repo}/manifests/{d}").status, 202)
        r, doc = self.referrers(repo, sd)
        self.assertEqual(doc["manifests"], [], repr(r))

    def test_referrers_scoped_to_repo(self):
        a, b = self.repo("a"), self.repo("b")
        sd, sbody = self.node.push_image(a, "base")
        self.push_referrer(a, sd, len(sbody), "application/vnd.example.sig")
        self.node.push_image(b, "base")  # same subject bytes in b
        r, doc = self.referrers(b, sd)
        self.assertEqual(doc["manifests"], [], repr(r))

    def test_malformed_digest(self):
        repo = self.repo()
        self.node.push_image(repo, "base")
        for bad in ("sha256:totallywrong", "latest", "sha256:" + "0" * 63):
            assert_error(self, self.req("GET", f"/v2/{repo}/referrers/{bad}"), 400,
                         "DIGEST_INVALID")


if __name__ == "__main__":
    unittest.main()
