"""skopeo against the registry: push an OCI layout, pull it back byte-exact,
inspect, list-tags, delete, shared layers, chunked uploads (--dest-compress),
and (atoll only) referrers through raw HTTP."""
import json
import os
import unittest

import harness
import ocilayout
from clients import (assert_same_image, docker_ref, needs_skopeo, skopeo,
                     skopeo_pull, skopeo_push)


@needs_skopeo
class SkopeoTest(harness.NodeTestCase):
    def setUp(self):
        self.tmp = self.temp_dir("atoll-skopeo-")

    def tearDown(self):
        self.assert_running(self.node)

    # ---- helpers ----
    def ref(self, repo, tag=None, digest=None):
        return docker_ref(self.node.addr, repo, tag, digest)

    def dir(self, name):
        return os.path.join(self.tmp, name)

    def push(self, layout, tag, repo, rtag=None, extra=()):
        skopeo_push(layout, tag, self.ref(repo, rtag or tag), extra=extra)

    def pull(self, repo, tag, name, digest=None):
        return skopeo_pull(self.ref(repo, tag, digest), self.dir(name),
                           tag or "pulled")

    def assert_blobs_served(self, repo, img):
        for d, data in img.blobs().items():
            r = self.node.request("GET", f"/v2/{repo}/blobs/{d}")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, data, f"blob {d} differs over HTTP")
            self.assertIsNone(r.header("content-encoding"))

    def inspect(self, repo, tag, *extra, check=True):
        return skopeo("inspect", "--tls-verify=false", *extra,
                      self.ref(repo, tag), check=check)

    def list_tags(self, repo):
        p = skopeo("list-tags", "--tls-verify=false", self.ref(repo))
        return json.loads(p.stdout)["Tags"] or []

    # ---- tests ----
    def test_copy_roundtrip_byte_identical(self):
        src = self.dir("src")
        img = ocilayout.build_layout(src, sizes=(1024, 5 * 1024 * 1024, 4096))
        self.push(src, "v1", "skopeo/roundtrip")
        back = self.pull("skopeo/roundtrip", "v1", "back")
        assert_same_image(self, img, back)
        self.assertEqual(back.files(), {p: b for la in img.layers
                                        for p, b in la.files.items()})
        self.assert_blobs_served("skopeo/roundtrip", img)

        # by digest as well
        back2 = self.pull("skopeo/roundtrip", None, "bydigest", digest=img.digest)
        assert_same_image(self, img, back2)

        # manifest over HTTP: exact bytes and media type
        r = self.node.request("GET", "/v2/skopeo/roundtrip/manifests/v1",
                              headers={"Accept": ocilayout.MT_MANIFEST})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, img.manifest)
        self.assertEqual(r.header("content-type"), ocilayout.MT_MANIFEST)
        self.assertEqual(r.header("docker-content-digest"), img.digest)

    def test_inspect(self):
        src = self.dir("src")
        img = ocilayout.build_layout(src, sizes=(2048, 100000))
        self.push(src, "v1", "skopeo/inspect")
        info = json.loads(self.inspect("skopeo/inspect", "v1").stdout)
        self.assertEqual(info["Digest"], img.digest)
        self.assertEqual(info["Layers"], [la.digest for la in img.layers])
        self.assertEqual(info["Architecture"], "amd64")
        self.assertEqual(info["Os"], "linux")
        raw = self.inspect("skopeo/inspect", "v1", "--raw").stdout
        self.assertEqual(raw.encode(), img.manifest)
        cfg = self.inspect("skopeo/inspect", "v1", "--config", "--raw").stdout
        self.assertEqual(cfg.encode(), img.config)
        p = self.inspect("skopeo/inspect", "nosuchtag", check=False)
        self.assertNotEqual(p.returncode, 0)

    def test_list_tags_and_delete(self):
        repo = "skopeo/tags"
        src1, src2 = self.dir("src1"), self.dir("src2")
        img1 = ocilayout.build_layout(src1, sizes=(1000,), tag="v1")
        img2 = ocilayout.build_layout(src2, sizes=(2000,), tag="v2")
        self.push(src1, "v1", repo)
        self.push(src2, "v2", repo)
        self.assertEqual(sorted(self.list_tags(repo)), ["v1", "v2"])

        skopeo("delete", "--tls-verify=false", self.ref(repo, "v1"))
        p = self.inspect(repo, "v1", check=False)
        self.assertNotEqual(p.returncode, 0, "v1 still inspectable after delete")
        self.assertEqual(self.list_tags(repo), ["v2"])
        r = self.node.request("GET", f"/v2/{repo}/manifests/{img1.digest}")
        self.assertEqual(r.status, 404, r)
        self.assertIn("MANIFEST_UNKNOWN", r.error_codes())
        info = json.loads(self.inspect(repo, "v2").stdout)
        self.assertEqual(info["Digest"], img2.digest)

        skopeo("delete", "--tls-verify=false", self.ref(repo, "v2"))
        self.assertEqual(self.list_tags(repo), [])

    def test_second_image_shares_layer(self):
        src_a = self.dir("a")
        img_a = ocilayout.build_layout(src_a, sizes=(3000, 2 * 1024 * 1024))
        self.push(src_a, "v1", "skopeo/share-a")
        shared = img_a.layers[1]
        src_b = self.dir("b")
        img_b = ocilayout.build_layout(src_b, sizes=(5000,), layers=[shared])
        # another repo: skopeo mounts from share-a (blob info cache) or
        # uploads again; the same repo: the layer already exists (HEAD 200)
        self.push(src_b, "v1", "skopeo/share-b")
        self.push(src_b, "v1", "skopeo/share-a", rtag="v2")
        for repo, tag in (("skopeo/share-b", "v1"), ("skopeo/share-a", "v2")):
            back = self.pull(repo, tag, f"back-{repo.replace('/', '_')}")
            assert_same_image(self, img_b, back)
            self.assert_blobs_served(repo, img_b)
        back_a = self.pull("skopeo/share-a", "v1", "back-a-v1")
        assert_same_image(self, img_a, back_a)

    def test_dest_compress_chunked_upload(self):
        # An uncompressed layout pushed with --dest-compress: the registry
        # receives PATCHes with Transfer-Encoding: chunked of unknown size.
        src = self.dir("plain")
        img = ocilayout.build_layout(src, sizes=(3 * 1024 * 1024, 700),
                                     compress=False)
        self.push(src, "v1", "skopeo/compressed", extra=("--dest-compress",))
        back = self.pull("skopeo/compressed", "v1", "back")
        self.assertEqual(back.config, img.config)
        self.assertEqual(back.config_json["rootfs"]["diff_ids"], img.diff_ids)
        self.assertEqual(back.diff_ids(), img.diff_ids)
        for desc in back.layer_descs:
            self.assertIn("gzip", desc["mediaType"])
        self.assertNotEqual(back.layer_digests, [la.digest for la in img.layers])
        self.assertEqual(back.files(), {p: b for la in img.layers
                                        for p, b in la.files.items()})

    def test_sync_between_repos_by_copy(self):
        # registry -> registry copy (pull and push in one skopeo run).
        src = self.dir("src")
        img = ocilayout.build_layout(src, sizes=(4000, 300000))
        self.push(src, "v1", "skopeo/copy-src")
        skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false",
               self.ref("skopeo/copy-src", "v1"), self.ref("skopeo/copy-dst", "v9"))
        back = self.pull("skopeo/copy-dst", "v9", "back")
        assert_same_image(self, img, back)

    def test_referrers_raw_http(self):
        harness.skip_unless_atoll(self)
        n = self.node
        repo = "skopeo/referrers"
        subj_digest, subj_body = n.push_image(repo, "v1", layers=(b"subject-layer",))
        empty = b"{}"
        empty_d = n.push_blob(repo, empty)
        art_layer = n.push_blob(repo, b"signature payload")
        subject = {"mediaType": ocilayout.MT_MANIFEST, "digest": subj_digest,
                   "size": len(subj_body)}

        def artifact(atype, note):
            return {"schemaVersion": 2, "mediaType": ocilayout.MT_MANIFEST,
                    "artifactType": atype,
                    "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                               "digest": empty_d, "size": 2},
                    "layers": [{"mediaType": "application/octet-stream",
                                "digest": art_layer, "size": 17}],
                    "subject": subject,
                    "annotations": {"org.example.note": note}}

        arts = {}
        for atype, note in (("application/vnd.example.sig", "one"),
                            ("application/vnd.example.sbom", "two")):
            body = json.dumps(artifact(atype, note)).encode()
            r, d = n.push_manifest(repo, harness.sha256_digest(body), body,
                                   ocilayout.MT_MANIFEST)
            self.assertEqual(r.status, 201, r)
            self.assertEqual(r.header("oci-subject"), subj_digest)
            self.assertEqual(r.header("docker-content-digest"), d)
            arts[d] = (atype, note, len(body))

        r = n.request("GET", f"/v2/{repo}/referrers/{subj_digest}")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("content-type", "").startswith(ocilayout.MT_INDEX), r)
        idx = r.json()
        self.assertEqual(idx["schemaVersion"], 2)
        self.assertEqual(idx.get("mediaType"), ocilayout.MT_INDEX)
        got = {m["digest"]: m for m in idx["manifests"]}
        self.assertEqual(set(got), set(arts))
        for d, (atype, note, size) in arts.items():
            self.assertEqual(got[d]["artifactType"], atype)
            self.assertEqual(got[d]["size"], size)
            self.assertEqual(got[d]["mediaType"], ocilayout.MT_MANIFEST)
            self.assertEqual(got[d]["annotations"]["org.example.note"], note)

        r = n.request("GET", f"/v2/{repo}/referrers/{subj_digest}"
                             "?artifactType=application/vnd.example.sbom")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("oci-filters-applied"), "artifactType")
        self.assertEqual([m["artifactType"] for m in r.json()["manifests"]],
                         ["application/vnd.example.sbom"])

        unknown = harness.sha256_digest(b"nothing refers to this")
        r = n.request("GET", f"/v2/{repo}/referrers/{unknown}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["manifests"], [])
        r = n.request("GET", f"/v2/{repo}/referrers/sha256:totallywrong")
        self.assertEqual(r.status, 400, r)
        self.assertIn("DIGEST_INVALID", r.error_codes())

        # skopeo still sees the subject image untouched (a copy to an OCI
        # layout would re-serialize this minimal manifest: compare raw bytes)
        raw = self.inspect(repo, "v1", "--raw").stdout
        self.assertEqual(raw.encode(), subj_body)


if __name__ == "__main__":
    unittest.main()
