"""A test PKI made with the openssl CLI (a CA and the server certificates
it signs) and a node that serves HTTPS with them, for the integration tests
of TLS, logins and peer TLS."""
import http.client
import os
import shutil
import ssl

import harness

OPENSSL = shutil.which("openssl")


class Pki:
    """A test CA and server certificates it signs (P-256 keys), for
    localhost and 127.0.0.1, made with the openssl CLI under dir."""

    def __init__(self, dir):
        self.dir = dir
        self.ca = self.path("ca.pem")
        self.ca_key = self.path("ca.key")
        self.openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                     "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                     self.ca_key, "-out", self.ca, "-days", "2", "-subj",
                     "/CN=atoll test CA", "-addext",
                     "basicConstraints=critical,CA:TRUE", "-addext",
                     "keyUsage=critical,keyCertSign,cRLSign")
        self.ext = self.path("leaf.ext")
        with open(self.ext, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                    "extendedKeyUsage=serverAuth\n")

    def extfile(self, ips):
        if not ips:
            return self.ext
        path = self.path("leaf-" + "-".join(ips) + ".ext")
        with open(path, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1," +
                    ",".join(f"IP:{ip}" for ip in ips) +
                    "\nextendedKeyUsage=serverAuth\n")
        return path

    def path(self, name):
        return os.path.join(self.dir, name)

    def openssl(self, *args):
        harness.run_tool([OPENSSL] + list(args), timeout=60)

    def issue(self, serial, ips=()):
        """A server certificate of this serial, for localhost, 127.0.0.1
        and ips: (chain file: the certificate then the CA, key file)."""
        key = self.path(f"s{serial}.key")
        csr = self.path(f"s{serial}.csr")
        crt = self.path(f"s{serial}.crt")
        chain = self.path(f"s{serial}.chain.pem")
        self.openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
                     "ec_paramgen_curve:P-256", "-out", key)
        self.openssl("req", "-new", "-key", key, "-subj", "/CN=localhost",
                     "-out", csr)
        self.openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey",
                     self.ca_key, "-set_serial", str(serial), "-days", "2",
                     "-sha256", "-extfile", self.extfile(ips), "-out", crt)
        with open(chain, "wb") as out:
            for p in (crt, self.ca):
                with open(p, "rb") as f:
                    out.write(f.read())
        return chain, key


def install(src, dst):
    """Replace dst by a copy of src atomically (a rename, as secret
    volumes and most rotation tools do)."""
    tmp = dst + ".new"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


class TlsNode(harness.Node):
    """A node serving HTTPS with cert and key (paths it keeps reading);
    requests go over TLS, trusting the CA."""

    def __init__(self, pki, cert, key, args=(), **kw):
        super().__init__(args=["--tls-cert", cert, "--tls-key", key] +
                         list(args), **kw)
        self.pki = pki
        self.ctx = ssl.create_default_context(cafile=pki.ca)

    @property
    def url(self):
        return f"https://{self.addr}"

    def connection(self, timeout=30):
        return http.client.HTTPSConnection("127.0.0.1", self.port,
                                           timeout=timeout, context=self.ctx)

    def request(self, method, path, body=None, headers=None, timeout=30):
        if path.startswith("https://"):
            path = path[len("https://") + len(self.addr):]
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            r = conn.getresponse()
            data = r.read()
            return harness.Response(
                r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            conn.close()
