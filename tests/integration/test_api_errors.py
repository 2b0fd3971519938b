"""OCI API: error format, name validation, unknown paths and methods, and
HTTP-level robustness (malformed requests, pipelining, keep-alive)."""
import http.client
import os
import time
import unittest

import harness
from harness import ApiTestCase, RawConn, assert_error, sha256_digest

MISSING = "sha256:" + "0" * 64

INVALID_NAMES = [
    "UPPER", "a..b", "-lead", "trail-", "a//b", "a/", "_x", "a___b", "a.-b", "a/.b",
    "a" * 256, "%C3%A9", "a%20b",
]
VALID_NAMES = ["a", "a0", "a.b", "a_b", "a__b", "a-b", "a---b", "a/b/c", "0/1",
               "x" * 255, ("ab/" * 85)[:254] + "c"]


class ErrorFormatTest(ApiTestCase):
    def test_error_body_shape(self):
        r = self.req("GET", f"/v2/{self.repo()}/blobs/{MISSING}")
        assert_error(self, r, 404, ("BLOB_UNKNOWN", "NAME_UNKNOWN"))
        e = r.json()["errors"][0]
        self.assertIsInstance(e.get("message", ""), str, repr(r))
        self.assertEqual(r.header("docker-distribution-api-version"), "registry/2.0", repr(r))

    def test_api_version_header_everywhere(self):
        repo = self.repo()
        d = self.node.push_blob(repo, b"x")
        checks = [("GET", "/v2/"), ("GET", f"/v2/{repo}/blobs/{d}"),
                  ("GET", f"/v2/{repo}/blobs/{MISSING}"), ("POST", f"/v2/{repo}/blobs/uploads/"),
                  ("GET", f"/v2/{repo}/manifests/nope"), ("GET", "/v2/_catalog")]
        if harness.is_atoll():
            # distribution omits it on router-level 404/405 answers
            checks += [("GET", "/v2/UPPER/tags/list"), ("GET", "/v2/x/nonsense"),
                       ("PUT", f"/v2/{repo}/tags/list")]
        for method, path in checks:
            r = self.req(method, path)
            self.assertEqual(r.header("docker-distribution-api-version"), "registry/2.0",
                             f"{method} {path}: {r!r}")


class NameValidationTest(ApiTestCase):
    def test_invalid_names(self):
        for name in INVALID_NAMES:
            for method, path in (("GET", f"/v2/{name}/tags/list"),
                                 ("POST", f"/v2/{name}/blobs/uploads/"),
                                 ("GET", f"/v2/{name}/manifests/latest"),
                                 ("GET", f"/v2/{name}/blobs/{MISSING}")):
                r = self.req(method, path)
                if harness.is_atoll():
                    assert_error(self, r, 400, "NAME_INVALID")
                else:
                    # distribution: the router does not match (plain 404,
                    # or 301 for dot segments); names > 255 chars give 400
                    # or 500 UNKNOWN depending on the endpoint.
                    self.assertIn(r.status, (301, 400, 404, 500), f"{method} {path}: {r!r}")

    def test_valid_names(self):
        for name in VALID_NAMES:
            r = self.req("POST", f"/v2/{name}/blobs/uploads/")
            self.assertEqual(r.status, 202, f"{name!r}: {r!r}")

    def test_name_length_limit(self):
        name = "n" * 255
        self.assertEqual(self.req("POST", f"/v2/{name}/blobs/uploads/").status, 202)
        r = self.req("POST", f"/v2/{name}n/blobs/uploads/")
        if harness.is_atoll():
            assert_error(self, r, 400, "NAME_INVALID")
        else:
            self.assertIn(r.status, (400, 500), repr(r))  # distribution: 500 UNKNOWN

    def test_mixed_case_never_creates(self):
        r = self.req("POST", "/v2/Mixed/Case/blobs/uploads/")
        self.assertIn(r.status, (400, 404), repr(r))


class RoutingTest(ApiTestCase):
    def test_unknown_paths(self):
        repo = self.repo()
        self.node.push_blob(repo, b"exists")
        for path in (f"/v2/{repo}/nonsense", f"/v2/{repo}/blobs", f"/v2/{repo}/tags",
                     f"/v2/{repo}/tags/other", "/v2/_catalog/x", "/v3/", "/v2/-/x"):
            r = self.req("GET", path)
            self.assertEqual(r.status, 404, f"{path}: {r!r}")
            if harness.is_atoll() and path.startswith("/v2/") and path != "/v2/-/x":
                # distribution answers "404 page not found" in text/plain
                assert_error(self, r, 404, ("NAME_UNKNOWN", "UNSUPPORTED"))

    def test_wrong_methods(self):
        repo = self.repo()
        d = self.node.push_blob(repo, b"exists")
        cases = [("POST", "/v2/"), ("PUT", f"/v2/{repo}/tags/list"),
                 ("DELETE", f"/v2/{repo}/tags/list"), ("POST", f"/v2/{repo}/manifests/latest"),
                 ("PATCH", f"/v2/{repo}/manifests/latest"), ("PUT", f"/v2/{repo}/blobs/{d}"),
                 ("POST", f"/v2/{repo}/blobs/{d}"), ("PUT", f"/v2/{repo}/blobs/uploads/"),
                 ("DELETE", "/v2/_catalog"), ("POST", "/v2/_catalog")]
        for method, path in cases:
            r = self.req(method, path, body=b"" if method in ("PUT", "POST", "PATCH") else None)
            if harness.is_atoll():
                assert_error(self, r, 405, "UNSUPPORTED")
            else:
                # distribution: 405 without body, 404 from the router, or
                # 200 for any method on /v2/
                self.assertIn(r.status, (200, 404, 405) if path == "/v2/" else (404, 405),
                              f"{method} {path}: {r!r}")

    def test_unknown_method(self):
        r = self.req("BREW", "/v2/")
        # distribution answers 200 to any method on /v2/
        self.assertIn(r.status, (400, 405, 501) if harness.is_atoll() else (200, 400, 405, 501),
                      repr(r))
        self.assert_node_alive()

    def test_query_string_on_base(self):
        r = self.req("GET", "/v2/?foo=bar&baz")
        self.assertEqual(r.status, 200, repr(r))

    def test_percent_encoded_digest(self):
        repo = self.repo()
        d = self.node.push_blob(repo, b"pct")
        r = self.req("GET", f"/v2/{repo}/blobs/{d.replace(':', '%3A')}")
        # Percent-decoding the path is allowed but not required.
        self.assertIn(r.status, (200, 400, 404), repr(r))


class HttpRobustnessTest(ApiTestCase):
    def assert_bad_request_closed(self, data, statuses=(400,), distribution_statuses=()):
        """distribution_statuses: extra statuses tolerated from distribution
        2.8.2 (each caller says why)."""
        if not harness.is_atoll():
            statuses = tuple(statuses) + tuple(distribution_statuses)
        send_failed = False
        with RawConn(self.node) as c:
            try:
                c.send(data)
            except (BrokenPipeError, ConnectionResetError):
                # the server answered and closed before reading everything
                send_failed = True
            try:
                r = c.read_response()
                closed = c.is_closed(timeout=3)
            except (EOFError, ConnectionResetError) as e:
                # a reset can destroy an answer already sent when we were
                # still sending; distribution also closes some connections
                # without an answer
                if harness.is_atoll() and not send_failed:
                    self.fail(f"connection closed without a 400 JSON answer ({e!r}) "
                              f"for {data[:120]!r}")
                self.assert_node_alive()
                return
        self.assertIn(r.status, statuses, f"{data[:80]!r}: {r!r}")
        if harness.is_atoll() and r.status >= 400:
            # The contract asks for a JSON error body but names no code for
            # HTTP-level errors (the spec's codes do not cover them), so any
            # well-formed code is accepted. distribution (Go net/http)
            # answers text/plain.
            self.assert_json_error(r)
        if harness.is_atoll() or r.status == 400:  # (200 only for HTTP/0.9)
            # distribution keeps the connection after its 200/500 answers
            self.assertTrue(closed, f"connection left open after {r!r}")
        self.assert_node_alive()

    def assert_json_error(self, r):
        ct = (r.header("content-type") or "").split(";")[0].strip()
        self.assertEqual(ct, "application/json", repr(r))
        errs = r.json().get("errors")
        self.assertTrue(isinstance(errs, list) and errs, repr(r))
        self.assertRegex(errs[0].get("code", ""), r"^[A-Z_]+$", repr(r))

    def test_garbage_request_line(self):
        self.assert_bad_request_closed(b"\x00\x01\x02garbage\r\n\r\n")

    def test_missing_version(self):
        # An HTTP/0.9-style request line: rejecting it (400/505) or answering
        # it and closing (llhttp parses it as HTTP/0.9) are both fine.
        self.assert_bad_request_closed(b"GET /v2/\r\n\r\n", statuses=(200, 400, 505))

    def test_bad_header_line(self):
        self.assert_bad_request_closed(
            b"GET /v2/ HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n")

    def test_bad_content_length(self):
        self.assert_bad_request_closed(
            b"PATCH /v2/a/blobs/uploads/x HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")

    def test_conflicting_content_length(self):
        self.assert_bad_request_closed(
            b"PUT /v2/a/manifests/t HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
            b"Content-Length: 4\r\n\r\nabcd")

    def test_bad_chunk_size(self):
        repo = self.repo()
        loc = harness.location_path(self.start_upload(repo))
        self.assert_bad_request_closed(
            (f"PATCH {loc} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
             "zz\r\nabc\r\n0\r\n\r\n").encode(),
            distribution_statuses=(500,))  # distribution: 500 UNKNOWN

    def test_overflowing_content_length(self):
        repo = self.repo()
        loc = harness.location_path(self.start_upload(repo))
        self.assert_bad_request_closed(
            (f"PATCH {loc} HTTP/1.1\r\nHost: x\r\n"
             "Content-Length: 99999999999999999999999\r\n\r\nabc").encode(),
            statuses=(400, 413))

    def test_overflowing_chunk_size(self):
        repo = self.repo()
        loc = harness.location_path(self.start_upload(repo))
        self.assert_bad_request_closed(
            (f"PATCH {loc} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
             "fffffffffffffffffffff\r\nabc\r\n").encode(),
            statuses=(400, 413),
            distribution_statuses=(500,))  # distribution: 500 UNKNOWN

    def test_huge_manifest_content_length_not_buffered(self):
        # A 1 TiB Content-Length on a manifest PUT is refused up front.
        # distribution 2.8.2 waits for the body (a timeout here).
        harness.skip_unless_atoll(self)
        repo = self.repo()
        with RawConn(self.node) as c:
            c.send((f"PUT /v2/{repo}/manifests/t HTTP/1.1\r\nHost: x\r\n"
                    "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n"
                    f"Content-Length: {1 << 40}\r\n\r\n").encode() + b"{" * 1000)
            try:
                r = c.read_response()
            except (EOFError, ConnectionResetError):
                r = None
        self.assertIsNotNone(r, "no answer to an oversized manifest PUT")
        assert_error(self, r, 413, ("SIZE_INVALID", "MANIFEST_INVALID"))
        self.assert_node_alive()

    def test_huge_header(self):
        self.assert_bad_request_closed(
            b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1024 * 1024) + b"\r\n\r\n",
            statuses=(400, 413, 431),
            distribution_statuses=(200,))  # Go allows 1 MiB of headers

    def test_huge_url(self):
        self.assert_bad_request_closed(
            b"GET /v2/" + b"a/" * (128 * 1024) + b"tags/list HTTP/1.1\r\nHost: x\r\n\r\n",
            statuses=(400, 404, 414, 431),
            distribution_statuses=(500,))  # distribution: 500 on long names

    def test_many_headers(self):
        hdrs = b"".join(b"X-H%d: v\r\n" % i for i in range(20000))
        self.assert_bad_request_closed(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n" + hdrs + b"\r\n",
                                       statuses=(400, 413, 431),
                                       distribution_statuses=(200,))  # under Go's 1 MiB

    def test_half_request_then_close(self):
        with RawConn(self.node) as c:
            c.send(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Partial: ")
        time.sleep(0.1)
        self.assert_node_alive()

    def test_connect_and_close(self):
        for _ in range(20):
            RawConn(self.node).close()
        self.assert_node_alive()

    def test_http10(self):
        with RawConn(self.node) as c:
            c.send(b"GET /v2/ HTTP/1.0\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200, repr(r))
            self.assertTrue(c.is_closed(), "HTTP/1.0 connection left open")

    def test_connection_close(self):
        with RawConn(self.node) as c:
            c.send(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200, repr(r))
            self.assertTrue(c.is_closed(), "Connection: close ignored")

    def test_pipelining(self):
        repo = self.repo()
        data = b"pipelined blob"
        d = self.node.push_blob(repo, data)
        req = (f"GET /v2/{repo}/blobs/{d} HTTP/1.1\r\nHost: x\r\n\r\n"
               f"HEAD /v2/{repo}/blobs/{MISSING} HTTP/1.1\r\nHost: x\r\n\r\n"
               f"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"
               f"GET /v2/{repo}/blobs/{d} HTTP/1.1\r\nHost: x\r\nRange: bytes=0-8\r\n\r\n").encode()
        with RawConn(self.node) as c:
            c.send(req)
            r1 = c.read_response()
            r2 = c.read_response(head=True)
            r3 = c.read_response()
            r4 = c.read_response()
        self.assertEqual((r1.status, r1.body), (200, data), repr(r1))
        self.assertEqual(r2.status, 404, repr(r2))
        self.assertEqual(r3.status, 200, repr(r3))
        self.assertEqual(r3.body.strip(), b"{}", repr(r3))
        self.assertEqual((r4.status, r4.body), (206, data[:9]), repr(r4))

    def test_pipelined_upload(self):
        # POST then a pipelined GET /v2/ after a PATCH with a body.
        repo = self.repo()
        loc = harness.location_path(self.start_upload(repo))
        body = b"pipelined patch body"
        req = (f"PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n").encode() \
            + body + b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"
        with RawConn(self.node) as c:
            c.send(req)
            r1 = c.read_response()
            r2 = c.read_response()
        self.assertEqual(r1.status, 202, repr(r1))
        self.assertEqual(r1.header("range"), f"0-{len(body) - 1}", repr(r1))
        self.assertEqual(r2.status, 200, repr(r2))

    def test_keepalive_many_requests(self):
        repo = self.repo()
        d = self.node.push_blob(repo, b"keepalive")
        conn = http.client.HTTPConnection("127.0.0.1", self.node.port, timeout=10)
        try:
            for i in range(50):
                path = "/v2/" if i % 2 else f"/v2/{repo}/blobs/{d}"
                conn.request("GET", path)
                r = conn.getresponse()
                body = r.read()
                self.assertEqual(r.status, 200, f"request {i}: {r.status} {body!r}")
                if i % 2 == 0:
                    self.assertEqual(body, b"keepalive")
                # error responses keep the connection too
                conn.request("GET", f"/v2/{repo}/blobs/{MISSING}")
                r = conn.getresponse()
                r.read()
                self.assertEqual(r.status, 404)
        finally:
            conn.close()

    def test_error_with_unread_body_then_next_request(self):
        # A 4xx answered before the body is consumed must not desync.
        repo = self.repo()
        body = b"{not json" + b" " * 10000
        with RawConn(self.node) as c:
            c.send((f"PUT /v2/{repo}/manifests/t HTTP/1.1\r\nHost: x\r\n"
                    f"Content-Type: application/vnd.oci.image.manifest.v1+json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode() + body +
                   b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            r1 = c.read_response()
            self.assertGreaterEqual(r1.status, 400, repr(r1))
            try:
                r2 = c.read_response()
            except (EOFError, ConnectionResetError):
                r2 = None  # closing after an error is acceptable
            if r2 is not None:
                self.assertEqual(r2.status, 200, repr(r2))
        self.assert_node_alive()

    def test_parallel_connections(self):
        conns = [RawConn(self.node) for _ in range(30)]
        try:
            for c in conns:
                c.send(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            for c in conns:
                self.assertEqual(c.read_response().status, 200)
        finally:
            for c in conns:
                c.close()

    def test_slow_sender(self):
        # Headers dribbled a few bytes at a time still parse.
        req = b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"
        with RawConn(self.node) as c:
            for i in range(0, len(req), 5):
                c.send(req[i:i + 5])
                time.sleep(0.01)
            self.assertEqual(c.read_response().status, 200)

    def test_node_survives_everything(self):
        # Run last-ish: a normal push and pull still work.
        repo = self.repo()
        data = os.urandom(4096)
        d = self.node.push_blob(repo, data)
        self.assertEqual(d, sha256_digest(data))
        self.assertEqual(self.req("GET", f"/v2/{repo}/blobs/{d}").body, data)


if __name__ == "__main__":
    unittest.main()
