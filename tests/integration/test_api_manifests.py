"""OCI API: manifest PUT/GET/HEAD/DELETE for every supported media type,
validation errors, subject/OCI-Subject."""
import json
import unittest

import harness
from harness import ApiTestCase, assert_error, location_path
from images import (DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LIST, DOCKER_MANIFEST, OCI_CONFIG,
                    OCI_INDEX, OCI_LAYER, OCI_MANIFEST, descriptor, manifest_bytes, oci_manifest,
                    sha256_digest)

MISSING = "sha256:" + "0" * 64


class ManifestTestCase(ApiTestCase):
    def image(self, repo, config=b'{"architecture":"amd64","os":"linux"}', layers=(b"layer",),
              docker=False, **kw):
        """Push blobs and return the manifest dict (not pushed)."""
        self.node.push_blob(repo, config)
        for layer in layers:
            self.node.push_blob(repo, layer)
        if docker:
            return oci_manifest(descriptor(DOCKER_CONFIG, config),
                                [descriptor(DOCKER_LAYER, x) for x in layers],
                                media_type=DOCKER_MANIFEST, **kw)
        return oci_manifest(descriptor(OCI_CONFIG, config),
                            [descriptor(OCI_LAYER, x) for x in layers], **kw)

    def put(self, repo, ref, body, media_type):
        if isinstance(body, dict):
            body = manifest_bytes(body)
        return self.req("PUT", f"/v2/{repo}/manifests/{ref}", body=body,
                        headers={"Content-Type": media_type})

    def assert_created(self, r, repo, body):
        d = sha256_digest(body)
        self.assertEqual(r.status, 201, repr(r))
        self.assertEqual(r.header("docker-content-digest"), d, repr(r))
        self.assertEqual(location_path(r.header("location") or ""), f"/v2/{repo}/manifests/{d}",
                         repr(r))
        return d

    def assert_manifest(self, repo, ref, body, media_type):
        d = sha256_digest(body)
        r = self.req("GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": media_type})
        self.assertEqual(r.status, 200, repr(r))
        self.assertEqual(r.body, body, "stored manifest bytes differ")
        self.assertEqual(r.header("content-type"), media_type, repr(r))
        self.assertEqual(r.header("docker-content-digest"), d, repr(r))
        self.assertEqual(r.header("content-length"), str(len(body)), repr(r))
        h = self.req("HEAD", f"/v2/{repo}/manifests/{ref}", headers={"Accept": media_type})
        self.assertEqual(h.status, 200, repr(h))
        self.assertEqual(h.body, b"", repr(h))
        self.assertEqual(h.header("content-type"), media_type, repr(h))
        self.assertEqual(h.header("docker-content-digest"), d, repr(h))
        self.assertEqual(h.header("content-length"), str(len(body)), repr(h))


class ManifestPushPullTest(ManifestTestCase):
    def test_oci_manifest_by_tag(self):
        repo = self.repo()
        body = manifest_bytes(self.image(repo))
        r = self.put(repo, "v1", body, OCI_MANIFEST)
        d = self.assert_created(r, repo, body)
        self.assert_manifest(repo, "v1", body, OCI_MANIFEST)
        self.assert_manifest(repo, d, body, OCI_MANIFEST)

    def test_oci_manifest_by_digest(self):
        repo = self.repo()
        body = manifest_bytes(self.image(repo))
        d = sha256_digest(body)
        r = self.put(repo, d, body, OCI_MANIFEST)
        self.assert_created(r, repo, body)
        self.assert_manifest(repo, d, body, OCI_MANIFEST)

    def test_bytes_stored_exactly(self):
        # Odd whitespace and key order survive: the digest is of the bytes.
        repo = self.repo()
        m = self.image(repo)
        body = (b'{\n   "schemaVersion" : 2,\t"mediaType":"' + OCI_MANIFEST.encode() +
                b'",\n "layers": ' + json.dumps(m["layers"], indent=3).encode() +
                b',  "config":' + json.dumps(m["config"]).encode() + b'}\n\n')
        r = self.put(repo, "pretty", body, OCI_MANIFEST)
        self.assert_created(r, repo, body)
        self.assert_manifest(repo, "pretty", body, OCI_MANIFEST)

    def test_manifest_without_media_type_field(self):
        repo = self.repo()
        m = self.image(repo)
        del m["mediaType"]
        body = manifest_bytes(m)
        r = self.put(repo, "nomt", body, OCI_MANIFEST)
        self.assert_created(r, repo, body)
        self.assert_manifest(repo, "nomt", body, OCI_MANIFEST)

    def test_manifest_with_no_layers(self):
        repo = self.repo()
        body = manifest_bytes(self.image(repo, layers=()))
        self.assert_created(self.put(repo, "empty", body, OCI_MANIFEST), repo, body)

    def test_docker_schema2_manifest(self):
        repo = self.repo()
        body = manifest_bytes(self.image(repo, docker=True))
        r = self.put(repo, "docker", body, DOCKER_MANIFEST)
        self.assert_created(r, repo, body)
        self.assert_manifest(repo, "docker", body, DOCKER_MANIFEST)

    def test_oci_index(self):
        repo = self.repo()
        m1 = manifest_bytes(self.image(repo, layers=(b"amd64",)))
        m2 = manifest_bytes(self.image(repo, layers=(b"arm64",)))
        d1 = self.assert_created(self.put(repo, sha256_digest(m1), m1, OCI_MANIFEST), repo, m1)
        d2 = self.assert_created(self.put(repo, sha256_digest(m2), m2, OCI_MANIFEST), repo, m2)
        idx = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": d1, "size": len(m1),
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": d2, "size": len(m2),
             "platform": {"architecture": "arm64", "os": "linux"}}]}
        body = manifest_bytes(idx)
        self.assert_created(self.put(repo, "multi", body, OCI_INDEX), repo, body)
        self.assert_manifest(repo, "multi", body, OCI_INDEX)

    def test_docker_manifest_list(self):
        repo = self.repo()
        m1 = manifest_bytes(self.image(repo, docker=True, layers=(b"d-amd64",)))
        d1 = self.assert_created(self.put(repo, sha256_digest(m1), m1, DOCKER_MANIFEST), repo, m1)
        lst = {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
            {"mediaType": DOCKER_MANIFEST, "digest": d1, "size": len(m1),
             "platform": {"architecture": "amd64", "os": "linux"}}]}
        body = manifest_bytes(lst)
        self.assert_created(self.put(repo, "list", body, DOCKER_LIST), repo, body)
        self.assert_manifest(repo, "list", body, DOCKER_LIST)

    def test_tag_overwrite(self):
        repo = self.repo()
        a = manifest_bytes(self.image(repo, layers=(b"a",)))
        b = manifest_bytes(self.image(repo, layers=(b"b",)))
        self.assert_created(self.put(repo, "latest", a, OCI_MANIFEST), repo, a)
        self.assert_created(self.put(repo, "latest", b, OCI_MANIFEST), repo, b)
        self.assert_manifest(repo, "latest", b, OCI_MANIFEST)
        self.assert_manifest(repo, sha256_digest(a), a, OCI_MANIFEST)

    def test_same_manifest_two_tags(self):
        repo = self.repo()
        body = manifest_bytes(self.image(repo))
        self.assert_created(self.put(repo, "one", body, OCI_MANIFEST), repo, body)
        self.assert_created(self.put(repo, "two", body, OCI_MANIFEST), repo, body)
        self.assert_manifest(repo, "one", body, OCI_MANIFEST)
        self.assert_manifest(repo, "two", body, OCI_MANIFEST)

    def test_put_same_manifest_twice_idempotent(self):
        repo = self.repo()
        body = manifest_bytes(self.image(repo))
        self.assert_created(self.put(repo, "t", body, OCI_MANIFEST), repo, body)
        self.assert_created(self.put(repo, "t", body, OCI_MANIFEST), repo, body)

    def test_tag_charset(self):
        repo = self.repo()
        body = manifest_bytes(self.image(repo))
        for tag in ("A", "_x", "v1.2.3-rc_1", "9" * 128):
            self.assert_created(self.put(repo, tag, body, OCI_MANIFEST), repo, body)
            self.assert_manifest(repo, tag, body, OCI_MANIFEST)

    def test_push_chunked_manifest(self):
        repo = self.repo()
        body = manifest_bytes(self.image(repo))
        r = self.req("PUT", f"/v2/{repo}/manifests/chunked",
                     body=iter([body[:10], body[10:]]), headers={"Content-Type": OCI_MANIFEST})
        self.assert_created(r, repo, body)

    def test_manifest_with_foreign_layer_media_type(self):
        # Artifacts: arbitrary config/layer media types are accepted.
        repo = self.repo()
        cfg, blob = b"{}", b"artifact payload"
        self.node.push_blob(repo, cfg)
        self.node.push_blob(repo, blob)
        m = oci_manifest(descriptor("application/vnd.oci.empty.v1+json", cfg),
                         [descriptor("application/vnd.example.thing", blob)],
                         artifact_type="application/vnd.example.artifact")
        body = manifest_bytes(m)
        self.assert_created(self.put(repo, "art", body, OCI_MANIFEST), repo, body)


class ManifestSubjectTest(ManifestTestCase):
    def test_oci_subject_header(self):
        # distribution 2.8.2 predates OCI 1.1: no OCI-Subject header.
        repo = self.repo()
        subject_body = manifest_bytes(self.image(repo))
        sd = self.assert_created(self.put(repo, "base", subject_body, OCI_MANIFEST), repo,
                                 subject_body)
        m = self.image(repo, layers=(b"signature",),
                       subject={"mediaType": OCI_MANIFEST, "digest": sd, "size": len(subject_body)},
                       artifact_type="application/vnd.example.sig")
        body = manifest_bytes(m)
        r = self.put(repo, sha256_digest(body), body, OCI_MANIFEST)
        self.assert_created(r, repo, body)
        if harness.is_atoll():
            self.assertEqual(r.header("oci-subject"), sd, repr(r))

    def test_subject_may_not_exist_yet(self):
        repo = self.repo()
        m = self.image(repo, subject={"mediaType": OCI_MANIFEST, "digest": MISSING, "size": 123})
        body = manifest_bytes(m)
        r = self.put(repo, sha256_digest(body), body, OCI_MANIFEST)
        self.assert_created(r, repo, body)
        if harness.is_atoll():
            self.assertEqual(r.header("oci-subject"), MISSING, repr(r))

    def test_no_subject_no_header(self):
        repo = self.repo()
        body = manifest_bytes(self.image(repo))
        r = self.put(repo, "plain", body, OCI_MANIFEST)
        self.assert_created(r, repo, body)
        self.assertIsNone(r.header("oci-subject"), repr(r))


class ManifestErrorTest(ManifestTestCase):
    def test_put_digest_mismatch(self):
        repo = self.repo()
        body = manifest_bytes(self.image(repo))
        other = sha256_digest(body + b" ")
        assert_error(self, self.put(repo, other, body, OCI_MANIFEST), 400, "DIGEST_INVALID")
        self.assertEqual(self.req("HEAD", f"/v2/{repo}/manifests/{other}").status, 404)

    def test_missing_layer(self):
        repo = self.repo()
        m = self.image(repo)
        m["layers"].append(descriptor(OCI_LAYER, b"never pushed"))
        assert_error(self, self.put(repo, "x", m, OCI_MANIFEST), 400, "MANIFEST_BLOB_UNKNOWN")
        self.assertEqual(self.req("HEAD", f"/v2/{repo}/manifests/x").status, 404)

    def test_missing_config(self):
        repo = self.repo()
        m = self.image(repo)
        m["config"] = descriptor(OCI_CONFIG, b'{"never":"pushed"}')
        assert_error(self, self.put(repo, "x", m, OCI_MANIFEST), 400, "MANIFEST_BLOB_UNKNOWN")

    def test_layer_only_in_other_repo(self):
        repo, other = self.repo("a"), self.repo("b")
        m = self.image(repo)
        self.node.push_blob(other, b"elsewhere layer")
        m["layers"].append(descriptor(OCI_LAYER, b"elsewhere layer"))
        assert_error(self, self.put(repo, "x", m, OCI_MANIFEST), 400, "MANIFEST_BLOB_UNKNOWN")

    def test_docker_manifest_missing_layer(self):
        repo = self.repo()
        m = self.image(repo, docker=True)
        m["layers"].append(descriptor(DOCKER_LAYER, b"never pushed docker"))
        assert_error(self, self.put(repo, "x", m, DOCKER_MANIFEST), 400, "MANIFEST_BLOB_UNKNOWN")

    def test_index_child_missing(self):
        # The spec leaves this open ("MAY"); distribution and atoll answer
        # MANIFEST_BLOB_UNKNOWN.
        repo = self.repo()
        self.node.push_blob(repo, b"repo exists")
        idx = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": MISSING, "size": 100}]}
        assert_error(self, self.put(repo, "idx", idx, OCI_INDEX), 400, "MANIFEST_BLOB_UNKNOWN")

    def test_manifest_list_child_missing(self):
        repo = self.repo()
        self.node.push_blob(repo, b"repo exists")
        lst = {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
            {"mediaType": DOCKER_MANIFEST, "digest": MISSING, "size": 100,
             "platform": {"architecture": "amd64", "os": "linux"}}]}
        assert_error(self, self.put(repo, "lst", lst, DOCKER_LIST), 400, "MANIFEST_BLOB_UNKNOWN")

    def test_bad_json(self):
        repo = self.repo()
        for body in (b"{not json", b"", b"[]", b"null", b'"string"', b"{}" + b"\x00",
                     b'{"schemaVersion":2,"mediaType":"' + OCI_MANIFEST.encode() + b'"'):
            r = self.put(repo, "bad", body, OCI_MANIFEST)
            if harness.is_atoll():
                assert_error(self, r, 400, "MANIFEST_INVALID")
            else:
                # distribution 2.8.2 answers 500 UNKNOWN for some of these
                self.assertIn(r.status, (400, 500), f"{body!r}: {r!r}")
        self.assertEqual(self.req("HEAD", f"/v2/{repo}/manifests/bad").status, 404)

    def test_wrong_shape(self):
        repo = self.repo()
        good = self.image(repo)
        variants = []
        m = dict(good); m["layers"] = "not a list"; variants.append(m)  # noqa: E702
        m = dict(good); m["config"] = ["x"]; variants.append(m)  # noqa: E702
        m = dict(good); m["layers"] = [{"mediaType": OCI_LAYER, "digest": "nope", "size": 1}]; variants.append(m)  # noqa: E501,E702
        m = dict(good); m["schemaVersion"] = 1; variants.append(m)  # noqa: E702
        m = dict(good); m["config"] = {"mediaType": OCI_CONFIG, "digest": good["config"]["digest"], "size": "big"}; variants.append(m)  # noqa: E501,E702
        for m in variants:
            r = self.put(repo, "shape", m, OCI_MANIFEST)
            if harness.is_atoll():
                assert_error(self, r, 400, "MANIFEST_INVALID")
            else:
                # distribution's decoder sometimes reports these as
                # MANIFEST_BLOB_UNKNOWN/DIGEST_INVALID, 500 UNKNOWN for
                # schemaVersion 1, or accepts them
                self.assertIn(r.status, (201, 400, 500), f"{m}: {r!r}")

    def test_index_wrong_shape(self):
        repo = self.repo()
        idx = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": "nope"}
        assert_error(self, self.put(repo, "idx", idx, OCI_INDEX), 400, "MANIFEST_INVALID")

    def test_media_type_differs_from_content_type(self):
        repo = self.repo()
        m = self.image(repo)
        r = self.put(repo, "mt", m, DOCKER_MANIFEST)  # body says OCI manifest
        assert_error(self, r, 400, "MANIFEST_INVALID")
        idx = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        r = self.put(repo, "mt2", idx, OCI_MANIFEST)
        assert_error(self, r, 400, "MANIFEST_INVALID")

    def test_unsupported_content_type(self):
        repo = self.repo()
        m = self.image(repo)
        del m["mediaType"]
        r = self.put(repo, "ct", m, "application/x-not-a-manifest")
        # distribution falls back to schema1 parsing (400 MANIFEST_INVALID);
        # atoll may also say UNSUPPORTED.
        self.assertEqual(r.status, 400, repr(r))
        assert_error(self, r, 400, ("MANIFEST_INVALID", "UNSUPPORTED"))

    def test_too_large(self):
        # OCI 1.1: registries SHOULD accept up to 4 MiB and MAY answer 413
        # beyond; the spec names no error code. distribution 2.8.2 answers
        # 400 MANIFEST_INVALID ("payload too large"), hence the guard.
        repo = self.repo()
        m = self.image(repo, annotations={"pad": "x" * (4 * 1024 * 1024 + 100)})
        r = self.put(repo, "big", m, OCI_MANIFEST)
        if harness.is_atoll():
            assert_error(self, r, 413, ("SIZE_INVALID", "MANIFEST_INVALID"))
        else:
            self.assertIn(r.status, (400, 413), repr(r))
        self.assertEqual(self.req("HEAD", f"/v2/{repo}/manifests/big").status, 404)

    def test_just_under_limit_accepted(self):
        repo = self.repo()
        m = self.image(repo, annotations={"pad": ""})
        base = len(manifest_bytes(m))
        m["annotations"]["pad"] = "x" * (4 * 1024 * 1024 - base - 1024)
        body = manifest_bytes(m)
        self.assertLess(len(body), 4 * 1024 * 1024)
        self.assert_created(self.put(repo, "nearly", body, OCI_MANIFEST), repo, body)


class ManifestGetDeleteTest(ManifestTestCase):
    def test_unknown_tag(self):
        repo = self.repo()
        body = manifest_bytes(self.image(repo))
        self.assert_created(self.put(repo, "exists", body, OCI_MANIFEST), repo, body)
        assert_error(self, self.req("GET", f"/v2/{repo}/manifests/nope"), 404, "MANIFEST_UNKNOWN")
        r = self.req("HEAD", f"/v2/{repo}/manifests/nope")
        self.assertEqual(r.status, 404, repr(r))
        self.assertEqual(r.body, b"")

    def test_unknown_digest(self):
        repo = self.repo()
        body = manifest_bytes(self.image(repo))
        self.assert_created(self.put(repo, "exists", body, OCI_MANIFEST), repo, body)
        assert_error(self, self.req("GET", f"/v2/{repo}/manifests/{MISSING}"), 404,
                     "MANIFEST_UNKNOWN")

    def test_unknown_repo(self):
        assert_error(self, self.req("GET", f"/v2/{self.repo()}/manifests/latest"), 404,
                     ("MANIFEST_UNKNOWN", "NAME_UNKNOWN"))

    def test_manifest_not_visible_in_other_repo(self):
        a, b = self.repo("a"), self.repo("b")
        body = manifest_bytes(self.image(a))
        d = self.assert_created(self.put(a, "t", body, OCI_MANIFEST), a, body)
        self.node.push_blob(b, b"b exists")
        assert_error(self, self.req("GET", f"/v2/{b}/manifests/{d}"), 404,
                     ("MANIFEST_UNKNOWN", "NAME_UNKNOWN"))

    def test_invalid_reference(self):
        # conformance: ".INVALID_MANIFEST_NAME" -> 404 MANIFEST_UNKNOWN
        repo = self.repo()
        self.node.push_blob(repo, b"exists")
        r = self.req("GET", f"/v2/{repo}/manifests/.INVALID_MANIFEST_NAME")
        if harness.is_atoll():
            assert_error(self, r, 404, "MANIFEST_UNKNOWN")
        else:
            self.assertEqual(r.status, 404, repr(r))  # distribution: plain router 404

    def test_tag_too_long(self):
        repo = self.repo()
        self.node.push_blob(repo, b"exists")
        r = self.req("GET", f"/v2/{repo}/manifests/{'a' * 129}")
        if harness.is_atoll():
            assert_error(self, r, 404, "MANIFEST_UNKNOWN")
        else:
            self.assertEqual(r.status, 404, repr(r))

    def test_malformed_digest_reference(self):
        repo = self.repo()
        self.node.push_blob(repo, b"exists")
        r = self.req("GET", f"/v2/{repo}/manifests/sha256:totallywrong")
        if harness.is_atoll():
            assert_error(self, r, 400, "DIGEST_INVALID")
        else:
            # distribution 2.8.2 looks it up as a tag and answers 500 UNKNOWN
            self.assertIn(r.status, (400, 404, 500), repr(r))

    def test_put_invalid_reference(self):
        repo = self.repo()
        body = manifest_bytes(self.image(repo))
        r = self.put(repo, ".bad-tag", body, OCI_MANIFEST)
        self.assertIn(r.status, (400, 404), repr(r))
        if harness.is_atoll() and r.status == 400:
            assert_error(self, r, 400, ("MANIFEST_INVALID", "NAME_INVALID", "TAG_INVALID"))

    def test_delete_by_digest_removes_tags(self):
        repo = self.repo()
        body = manifest_bytes(self.image(repo))
        d = self.assert_created(self.put(repo, "t1", body, OCI_MANIFEST), repo, body)
        self.assert_created(self.put(repo, "t2", body, OCI_MANIFEST), repo, body)
        r = self.req("DELETE", f"/v2/{repo}/manifests/{d}")
        self.assertEqual(r.status, 202, repr(r))
        for ref in (d, "t1", "t2"):
            assert_error(self, self.req("GET", f"/v2/{repo}/manifests/{ref}"), 404,
                         "MANIFEST_UNKNOWN")
        t = self.req("GET", f"/v2/{repo}/tags/list")
        if t.status == 200:
            self.assertEqual(t.json().get("tags") or [], [], repr(t))

    def test_delete_by_tag_removes_only_tag(self):
        # distribution 2.8.2 cannot delete by tag (400 DIGEST_INVALID; the
        # spec allows 400/405 when tag deletion is disabled).
        harness.skip_unless_atoll(self)
        repo = self.repo()
        body = manifest_bytes(self.image(repo))
        d = self.assert_created(self.put(repo, "keep", body, OCI_MANIFEST), repo, body)
        self.assert_created(self.put(repo, "drop", body, OCI_MANIFEST), repo, body)
        r = self.req("DELETE", f"/v2/{repo}/manifests/drop")
        self.assertEqual(r.status, 202, repr(r))
        assert_error(self, self.req("GET", f"/v2/{repo}/manifests/drop"), 404, "MANIFEST_UNKNOWN")
        self.assert_manifest(repo, "keep", body, OCI_MANIFEST)
        self.assert_manifest(repo, d, body, OCI_MANIFEST)
        t = self.req("GET", f"/v2/{repo}/tags/list")
        self.assertEqual(t.json()["tags"], ["keep"], repr(t))

    def test_delete_unknown(self):
        repo = self.repo()
        body = manifest_bytes(self.image(repo))
        self.assert_created(self.put(repo, "exists", body, OCI_MANIFEST), repo, body)
        assert_error(self, self.req("DELETE", f"/v2/{repo}/manifests/{MISSING}"), 404,
                     "MANIFEST_UNKNOWN")
        if harness.is_atoll():  # distribution: no tag deletion (see above)
            assert_error(self, self.req("DELETE", f"/v2/{repo}/manifests/nosuchtag"), 404,
                         "MANIFEST_UNKNOWN")

    def test_delete_twice(self):
        repo = self.repo()
        body = manifest_bytes(self.image(repo))
        d = self.assert_created(self.put(repo, "t", body, OCI_MANIFEST), repo, body)
        self.assertEqual(self.req("DELETE", f"/v2/{repo}/manifests/{d}").status, 202)
        assert_error(self, self.req("DELETE", f"/v2/{repo}/manifests/{d}"), 404,
                     "MANIFEST_UNKNOWN")

    def test_repush_after_delete(self):
        repo = self.repo()
        body = manifest_bytes(self.image(repo))
        d = self.assert_created(self.put(repo, "t", body, OCI_MANIFEST), repo, body)
        self.assertEqual(self.req("DELETE", f"/v2/{repo}/manifests/{d}").status, 202)
        self.assert_created(self.put(repo, "t", body, OCI_MANIFEST), repo, body)
        self.assert_manifest(repo, "t", body, OCI_MANIFEST)

    def test_blobs_survive_manifest_delete(self):
        repo = self.repo()
        m = self.image(repo)
        body = manifest_bytes(m)
        d = self.assert_created(self.put(repo, "t", body, OCI_MANIFEST), repo, body)
        self.assertEqual(self.req("DELETE", f"/v2/{repo}/manifests/{d}").status, 202)
        r = self.req("GET", f"/v2/{repo}/blobs/{m['layers'][0]['digest']}")
        self.assertEqual(r.status, 200, repr(r))

    def test_manifest_readable_as_blob_is_not_required(self):
        # GET /blobs/<manifest digest> may be 200 (distribution) or 404.
        repo = self.repo()
        body = manifest_bytes(self.image(repo))
        d = self.assert_created(self.put(repo, "t", body, OCI_MANIFEST), repo, body)
        r = self.req("GET", f"/v2/{repo}/blobs/{d}")
        self.assertIn(r.status, (200, 404), repr(r))
        if r.status == 200:
            self.assertEqual(r.body, body)


if __name__ == "__main__":
    unittest.main()
