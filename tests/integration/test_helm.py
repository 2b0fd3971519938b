"""The Helm chart (deploy/helm/atoll): `helm lint --strict` of every CI
scenario (deploy/helm/atoll/ci/*.yaml), renders that are byte-identical
twice over and contain nothing random, a render that fails without any
source for the cluster secret, and table-driven assertions on the rendered
objects (StatefulSet arguments, headless Service, PDB, probes, security
context, Secrets, Ingress). No cluster: helm runs offline
(build/tools/helm from .ci/install-deps, or $HELM); PyYAML parses the
renders (python3-yaml)."""
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import harness

try:
    import yaml
except ImportError:  # python3-yaml is in .ci/install-deps
    yaml = None

CHART = os.path.join(harness.ROOT, "deploy", "helm", "atoll")
CI = os.path.join(CHART, "ci")
HELM = os.environ.get("HELM", os.path.join(harness.ROOT, "build", "tools", "helm"))
SCENARIOS = sorted(glob.glob(os.path.join(CI, "*.yaml")))
SECRET = ["--set", "cluster.secret.existingSecret=atoll-cluster"]
FILES = os.path.join(CHART, "files")
PROMTOOL = shutil.which("promtool")  # Debian's prometheus package
MONITORING = ["--set", "monitoring.prometheusRule.enabled=true",
              "--set", "monitoring.dashboard.enabled=true"]
# Kubernetes 1.30 with the custom resources the chart can render.
KUBE = ["--kube-version", "1.30.0",
        "--api-versions", "monitoring.coreos.com/v1",
        "--api-versions", "gateway.networking.k8s.io/v1",
        "--api-versions", "cert-manager.io/v1",
        "--api-versions", "external-secrets.io/v1beta1"]
NODE = shutil.which("node")
VALIDATE = os.path.join(harness.ROOT, "tests", "helm", "validate.mjs")
SCHEMA_MODULES = os.environ.get(
    "ATOLL_K8S_SCHEMA_MODULES",
    os.path.join(harness.ROOT, "build", "tools", "k8s-schema", "node_modules"))


def helm(*args, check=True):
    """Run helm offline; the CompletedProcess (text)."""
    env = dict(os.environ, HELM_CACHE_HOME="/nonexistent/cache",
               HELM_CONFIG_HOME="/nonexistent/config",
               HELM_DATA_HOME="/nonexistent/data")
    p = subprocess.run([HELM, *args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60, env=env)
    if check and p.returncode != 0:
        raise AssertionError("helm %s: rc %d\n%s%s" % (" ".join(args), p.returncode,
                                                       p.stdout, p.stderr))
    return p


def template(*args, release="reg", namespace="ns1"):
    """The render's text."""
    return helm("template", release, CHART, "--namespace", namespace, *args).stdout


def objects(*args, **kw):
    """The rendered objects, by (kind, name)."""
    out = {}
    for doc in yaml.safe_load_all(template(*args, **kw)):
        if doc:
            out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


def kinds(objs, kind):
    return [o for (k, _), o in sorted(objs.items()) if k == kind]


def one(objs, kind):
    found = kinds(objs, kind)
    assert len(found) == 1, "%d %s objects" % (len(found), kind)
    return found[0]


def container(objs):
    return one(objs, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]


def flags(objs):
    """The atoll serve flags as a dict (flag -> value, "" without one)."""
    args = container(objs)["args"]
    assert args[0] == "serve", args
    out = {}
    for a in args[1:]:
        k, _, v = a.partition("=")
        assert k not in out, "flag %s given twice" % k
        out[k] = v
    return out


def needs_helm(test):
    if not os.access(HELM, os.X_OK):
        return unittest.skip("no helm at %s (.ci/install-deps fetches it; or set HELM)"
                             % HELM)(test)
    if yaml is None:
        return unittest.skip("no PyYAML (Debian python3-yaml)")(test)
    return test


@needs_helm
class ChartLintTest(unittest.TestCase):
    def test_scenarios_exist(self):
        names = {os.path.basename(p) for p in SCENARIOS}
        for want in ("default-values.yaml", "tls-values.yaml", "auth-values.yaml",
                     "edge-values.yaml", "ingress-values.yaml",
                     "external-secrets-values.yaml", "monitoring-values.yaml"):
            self.assertIn(want, names)
        for want in ("cert-manager-values.yaml", "gateway-values.yaml"):
            self.assertIn(want, names)

    def test_lint_strict_every_scenario(self):
        for path in SCENARIOS:
            with self.subTest(values=os.path.basename(path)):
                p = helm("lint", "--strict", CHART, "-f", path, check=False)
                out = p.stdout + p.stderr
                self.assertEqual(p.returncode, 0, out)
                self.assertNotRegex(out, r"\[(WARNING|ERROR)\]")
                self.assertNotIn("Fail:", out)

    def test_render_twice_identical(self):
        for path in SCENARIOS:
            with self.subTest(values=os.path.basename(path)):
                a = template("-f", path)
                b = template("-f", path)
                self.assertEqual(a, b)
                self.assertGreater(len(a), 1000)

    def test_nothing_random(self):
        """No template calls a function whose result changes between
        renders, and no render differs between two releases other than in
        the release's name."""
        pat = re.compile(r"(?<![.$\w])(rand\w*|uuidv4|now|genCA|genPrivateKey|genSelfSigned\w*|"
                         r"genSigned\w*|htpasswd|lookup|derivePassword)\b")
        for path in glob.glob(os.path.join(CHART, "templates", "*")):
            with open(path) as f:
                text = f.read()
            text = re.sub(r"\{\{-?\s*/\*.*?\*/\s*-?\}\}", "", text, flags=re.S)
            code = " ".join(re.findall(r"\{\{(.*?)\}\}", text, re.S))
            code = re.sub(r'"(\\.|[^"\\])*"', '""', code)  # string literals
            self.assertIsNone(pat.search(code), "%s: %s" % (path, pat.search(code)))
        for path in SCENARIOS:
            with self.subTest(values=os.path.basename(path)):
                # checksums cover objects that name the release: mask them
                def norm(text, rel):
                    text = re.sub(r"(checksum/\w+): [0-9a-f]{64}", r"\1: H", text)
                    return text.replace(rel, "X")
                a = norm(template("-f", path, release="rqq"), "rqq")
                b = norm(template("-f", path, release="rzz"), "rzz")
                self.assertEqual(a, b)

    def test_readme_install_is_the_docs_install(self):
        """The three commands of README.md are those of docs/kubernetes.md,
        and the helm install among them renders."""
        def commands(path):
            with open(os.path.join(harness.ROOT, path)) as f:
                text = f.read()
            m = re.search(r"\n( {4}kubectl create secret generic atoll-cluster.*?"
                          r"kubectl rollout status statefulset/reg-atoll)\n", text, re.S)
            self.assertIsNotNone(m, path)
            return [" ".join(line.split()) for line in m.group(1).splitlines()]
        readme = commands("README.md")
        self.assertEqual(readme, commands(os.path.join("docs", "kubernetes.md")))
        install = " ".join(readme).split("helm install ")[1].split(" kubectl ")[0]
        args = install.replace("\\", " ").split()
        self.assertEqual(args[:2], ["reg", "deploy/helm/atoll"])
        objs = objects(*args[2:])
        self.assertEqual(one(objs, "StatefulSet")["metadata"]["name"], "reg-atoll")
        self.assertEqual(container(objs)["image"], "REGISTRY/atoll/atoll:0.1.0")

    def test_render_fails_without_secret_source(self):
        p = helm("template", "reg", CHART, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("no cluster secret", p.stderr)
        self.assertIn("never generates", p.stderr)

    def test_bad_values_fail(self):
        cases = [
            (["--set", "cluster.voters=2"], "voters"),
            (["--set", "cluster.voters=5"], "exceeds replicas"),
            (["--set", "cluster.role=edge"], "needs cluster.join"),
            (["--set", "cluster.role=observer"], "role"),
            (["--set", "tls.enabled=true"], "tls.existingSecret"),
            (["--set", "cluster.secret.existingSecret=", "--set",
              "cluster.secret.value=short"], "value"),
            (["--set", "typo=1"], "typo"),
        ]
        for args, want in cases:
            with self.subTest(args=args):
                p = helm("template", "reg", CHART, *SECRET, *args, check=False)
                self.assertNotEqual(p.returncode, 0, p.stdout[:200])
                self.assertIn(want, p.stderr)


@needs_helm
class ChartObjectsTest(unittest.TestCase):
    def test_statefulset_forms_the_cluster(self):
        for voters, replicas in ((3, 3), (3, 5), (5, 5), (1, 1)):
            with self.subTest(voters=voters, replicas=replicas):
                objs = objects(*SECRET, "--set", "cluster.voters=%d" % voters,
                               "--set", "replicas=%d" % replicas)
                sts = one(objs, "StatefulSet")
                self.assertEqual(sts["spec"]["podManagementPolicy"], "Parallel")
                self.assertEqual(sts["spec"]["replicas"], replicas)
                self.assertEqual(sts["spec"]["serviceName"], "reg-atoll-headless")
                f = flags(objs)
                want = ["reg-atoll-%d.reg-atoll-headless.ns1.svc.cluster.local:5001" % i
                        for i in range(voters)]
                self.assertEqual(f["--join"].split(","), want)
                self.assertEqual(f["--bootstrap-expect"], str(voters))
                self.assertEqual(f["--target-voters"], str(voters))
                self.assertEqual(f["--name"], "$(POD_NAME)")
                self.assertEqual(f["--advertise"],
                                 "$(POD_NAME).reg-atoll-headless.ns1.svc.cluster.local")
                self.assertEqual(f["--listen"], "0.0.0.0:5000")
                self.assertEqual(f["--peer-listen"], "0.0.0.0:5001")
                self.assertEqual(f["--data-dir"], "/data")
                self.assertEqual(f["--log-format"], "json")
                self.assertEqual(f["--cluster-secret-file"],
                                 "/etc/atoll/cluster/cluster-secret")
                self.assertNotIn("--role", f)

    def test_pod_security_and_lifecycle(self):
        objs = objects(*SECRET)
        pod = one(objs, "StatefulSet")["spec"]["template"]["spec"]
        c = container(objs)
        self.assertEqual(c["command"], ["/usr/bin/atoll"])
        self.assertEqual(pod["terminationGracePeriodSeconds"], 90)
        # preStop: leadership, then the vote, handed over before SIGTERM
        self.assertEqual(c["lifecycle"]["preStop"]["exec"]["command"],
                         ["/usr/bin/atoll", "members", "handoff", "--peer",
                          "127.0.0.1:5001", "--cluster-secret-file",
                          "/etc/atoll/cluster/cluster-secret"])
        env = {e["name"]: e for e in c["env"]}
        self.assertEqual(env["ATOLL_REGION"]["valueFrom"]["fieldRef"]["fieldPath"],
                         "metadata.labels['topology.kubernetes.io/region']")
        self.assertIn("--auto-rejoin=true", c["args"])
        self.assertIn("--autopilot-reap-after=30m", c["args"])
        psc, csc = pod["securityContext"], c["securityContext"]
        self.assertTrue(psc["runAsNonRoot"])
        self.assertEqual((psc["runAsUser"], psc["fsGroup"]), (65532, 65532))
        self.assertTrue(csc["readOnlyRootFilesystem"])
        self.assertFalse(csc["allowPrivilegeEscalation"])
        self.assertEqual(csc["capabilities"]["drop"], ["ALL"])
        for probe, path in (("startupProbe", "/livez"), ("readinessProbe", "/readyz"),
                            ("livenessProbe", "/livez")):
            self.assertEqual(c[probe]["httpGet"]["path"], path)
            self.assertEqual(c[probe]["httpGet"]["port"], "http")
            self.assertEqual(c[probe]["httpGet"]["scheme"], "HTTP")
        ports = {(p["containerPort"], p["protocol"]) for p in c["ports"]}
        self.assertEqual(ports, {(5000, "TCP"), (5001, "TCP"), (5001, "UDP")})
        spread = pod["topologySpreadConstraints"][0]
        self.assertEqual(spread["topologyKey"], "topology.kubernetes.io/zone")
        claims = one(objs, "StatefulSet")["spec"]["volumeClaimTemplates"]
        self.assertEqual([v["metadata"]["name"] for v in claims], ["data"])
        self.assertEqual(claims[0]["spec"]["resources"]["requests"]["storage"], "50Gi")
        self.assertEqual(one(objs, "StatefulSet")["spec"]
                         ["persistentVolumeClaimRetentionPolicy"]["whenScaled"], "Retain")

    def test_extra_volumes(self):
        # a dockerconfigjson Secret for replication rules (auth scenario)
        objs = objects("-f", os.path.join(CI, "auth-values.yaml"))
        self.assertEqual(volumes(objs)["hub-creds"]["secret"]["secretName"],
                         "hub-pull")
        mounts = {m["name"]: m for m in container(objs)["volumeMounts"]}
        self.assertEqual(mounts["hub-creds"]["mountPath"],
                         "/etc/atoll/registries/hub")
        self.assertTrue(mounts["hub-creds"]["readOnly"])
        # none by default
        objs = objects(*SECRET)
        self.assertNotIn("hub-creds", volumes(objs))

    def test_services_and_pdb(self):
        objs = objects(*SECRET)
        headless = objs[("Service", "reg-atoll-headless")]["spec"]
        self.assertEqual(headless["clusterIP"], "None")
        self.assertIs(headless["publishNotReadyAddresses"], True)
        ports = {(p["port"], p["protocol"]) for p in headless["ports"]}
        self.assertEqual(ports, {(5000, "TCP"), (5001, "TCP"), (5001, "UDP")})
        client = objs[("Service", "reg-atoll")]["spec"]
        self.assertEqual([(p["port"], p["protocol"]) for p in client["ports"]],
                         [(5000, "TCP")])
        self.assertNotIn("publishNotReadyAddresses", client)
        pdb = one(objs, "PodDisruptionBudget")["spec"]
        self.assertEqual(pdb["maxUnavailable"], 1)
        self.assertNotIn("minAvailable", pdb)

    def test_scenarios(self):
        """values file -> what its render must hold."""
        def tls(objs):
            f, c = flags(objs), container(objs)
            self.assertEqual(f["--tls-cert"], "/etc/atoll/tls/tls.crt")
            self.assertEqual(f["--peer-tls-ca"], "/etc/atoll/peer-tls/ca.crt")
            self.assertEqual(f["--raft-dir"], "/raft")
            self.assertEqual(f["--bootstrap-expect"], "5")
            self.assertEqual(f["--region"], "eu-west")
            self.assertEqual(len(f["--join"].split(",")), 5)
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                self.assertEqual(c[probe]["httpGet"]["scheme"], "HTTPS")
            claims = one(objs, "StatefulSet")["spec"]["volumeClaimTemplates"]
            self.assertEqual([v["metadata"]["name"] for v in claims], ["data", "raft"])
            self.assertEqual(claims[1]["spec"]["storageClassName"], "fast-ssd")
            self.assertEqual(one(objs, "ServiceMonitor")["spec"]["podTargetLabels"],
                             ["app.kubernetes.io/component"])
            sm = one(objs, "ServiceMonitor")["spec"]["endpoints"][0]
            self.assertEqual(sm["scheme"], "https")
            self.assertEqual(kinds(objs, "Secret"), [])

        def auth(objs):
            f = flags(objs)
            self.assertEqual(f["--htpasswd"], "/etc/atoll/htpasswd/htpasswd")
            self.assertEqual(f["--auth"], "auto")
            self.assertEqual(f["--config"], "/etc/atoll/config/atoll.yaml")
            conf = yaml.safe_load(one(objs, "ConfigMap")["data"]["atoll.yaml"])
            self.assertEqual(conf["gc_interval"], "24h")
            vols = {v["name"]: v for v in
                    one(objs, "StatefulSet")["spec"]["template"]["spec"]["volumes"]}
            self.assertEqual(vols["htpasswd"]["secret"]["secretName"], "atoll-htpasswd")
            self.assertEqual(kinds(objs, "Secret"), [])

        def edge(objs):
            f = flags(objs)
            self.assertEqual(f["--role"], "edge")
            self.assertNotIn("--bootstrap-expect", f)
            self.assertNotIn("--target-voters", f)
            self.assertEqual(f["--join"], "core-0.registry.example.net:5001,"
                             "core-1.registry.example.net:5001,"
                             "core-2.registry.example.net:5001")
            self.assertEqual(f["--leave-on-terminate"], "true")
            self.assertEqual(f["--advertise"], "$(POD_NAME).edge.ship.example.net")
            np = one(objs, "NetworkPolicy")["spec"]["ingress"][0]
            self.assertEqual({(p["port"], p["protocol"]) for p in np["ports"]},
                             {(5001, "TCP"), (5001, "UDP")})

        def ingress(objs):
            ann = one(objs, "Ingress")["metadata"]["annotations"]
            self.assertEqual(ann["nginx.ingress.kubernetes.io/proxy-body-size"], "0")
            self.assertEqual(ann["nginx.ingress.kubernetes.io/proxy-read-timeout"], "1800")
            self.assertEqual(ann["nginx.ingress.kubernetes.io/proxy-request-buffering"],
                             "off")
            secret = one(objs, "Secret")
            self.assertEqual(secret["metadata"]["name"], "reg-atoll-cluster-secret")
            self.assertIn("cluster-secret", secret["data"])

        def external(objs):
            self.assertEqual(kinds(objs, "Secret"), [])
            es = kinds(objs, "ExternalSecret")
            self.assertEqual([e["spec"]["target"]["name"] for e in es],
                             ["reg-atoll-cluster-secret", "reg-atoll-htpasswd"])
            self.assertEqual(flags(objs)["--htpasswd"], "/etc/atoll/htpasswd/htpasswd")

        def default(objs):
            self.assertEqual(kinds(objs, "Secret"), [])
            for kind in ("Ingress", "NetworkPolicy", "ServiceMonitor", "ConfigMap",
                         "ExternalSecret"):
                self.assertEqual(kinds(objs, kind), [], kind)
            vols = {v["name"]: v for v in
                    one(objs, "StatefulSet")["spec"]["template"]["spec"]["volumes"]}
            self.assertEqual(vols["cluster-secret"]["secret"]["secretName"], "atoll-cluster")

        table = {"default-values.yaml": default, "tls-values.yaml": tls,
                 "auth-values.yaml": auth, "edge-values.yaml": edge,
                 "ingress-values.yaml": ingress,
                 "external-secrets-values.yaml": external}
        for name, check in table.items():
            with self.subTest(values=name):
                check(objects("-f", os.path.join(CI, name)))

    def test_image(self):
        c = container(objects(*SECRET))
        self.assertEqual(c["image"], "atoll/atoll:0.1.0")
        c = container(objects(*SECRET, "--set", "image.digest=sha256:" + "ab" * 32))
        self.assertEqual(c["image"], "atoll/atoll@sha256:" + "ab" * 32)


def volumes(objs):
    return {v["name"]: v for v in
            one(objs, "StatefulSet")["spec"]["template"]["spec"]["volumes"]}


CM_API = ["--set", "tls.enabled=true", "--set", "tls.certManager.enabled=true",
          "--set", "tls.certManager.issuerRef.name=ca"]
CM_PEER = ["--set", "tls.peer.enabled=true", "--set", "tls.peer.certManager.enabled=true",
           "--set", "tls.peer.certManager.issuerRef.name=peer-ca"]


@needs_helm
class ChartCertManagerTest(unittest.TestCase):
    """tls.certManager / tls.peer.certManager: values in, Certificates and
    the Secrets the StatefulSet mounts out."""

    HEADLESS = "*.reg-atoll-headless.ns1.svc.cluster.local"
    CLIENT = ["reg-atoll", "reg-atoll.ns1", "reg-atoll.ns1.svc",
              "reg-atoll.ns1.svc.cluster.local"]

    def test_table(self):
        # (values, {certificate name: (secretName, issuer, dnsNames, usages)},
        #  tls volume secret, peer-tls volume secret)
        api_usages = ["server auth", "digital signature", "key encipherment"]
        peer_usages = ["server auth", "client auth", "digital signature",
                       "key encipherment"]
        table = [
            ([], {}, None, None),
            (["--set", "tls.enabled=true", "--set", "tls.existingSecret=mine"], {},
             "mine", None),
            (CM_API, {"reg-atoll-tls": ("reg-atoll-tls", ("ca", "ClusterIssuer"),
                                        self.CLIENT + [self.HEADLESS], api_usages)},
             "reg-atoll-tls", None),
            (CM_API + ["--set", "tls.certManager.dnsNames={r.example.com,reg-atoll}",
                       "--set", "tls.certManager.issuerRef.kind=Issuer"],
             {"reg-atoll-tls": ("reg-atoll-tls", ("ca", "Issuer"),
                                self.CLIENT + [self.HEADLESS, "r.example.com"],
                                api_usages)},
             "reg-atoll-tls", None),
            (CM_PEER, {"reg-atoll-peer-tls": ("reg-atoll-peer-tls", ("peer-ca", "Issuer"),
                                              [self.HEADLESS, "localhost"], peer_usages)},
             None, "reg-atoll-peer-tls"),
            (CM_PEER + ["--set", "cluster.advertiseDomain=edge.example.net",
                        "--set", "tls.peer.certManager.dnsNames={core.example.net}"],
             {"reg-atoll-peer-tls": ("reg-atoll-peer-tls", ("peer-ca", "Issuer"),
                                     [self.HEADLESS, "*.edge.example.net", "localhost",
                                      "core.example.net"], peer_usages)},
             None, "reg-atoll-peer-tls"),
            (CM_API + ["--set", "tls.peer.enabled=true",
                       "--set", "tls.peer.existingSecret=peer"],
             {"reg-atoll-tls": ("reg-atoll-tls", ("ca", "ClusterIssuer"),
                                self.CLIENT + [self.HEADLESS], api_usages)},
             "reg-atoll-tls", "peer"),
        ]
        for args, certs, tls_secret, peer_secret in table:
            with self.subTest(args=args):
                objs = objects(*SECRET, *args)
                got = {c["metadata"]["name"]: c for c in kinds(objs, "Certificate")}
                self.assertEqual(sorted(got), sorted(certs))
                for name, (secret, issuer, dns, usages) in certs.items():
                    spec = got[name]["spec"]
                    self.assertEqual(got[name]["apiVersion"], "cert-manager.io/v1")
                    self.assertEqual(spec["secretName"], secret)
                    self.assertEqual((spec["issuerRef"]["name"], spec["issuerRef"]["kind"],
                                      spec["issuerRef"]["group"]),
                                     issuer + ("cert-manager.io",))
                    self.assertEqual(spec["dnsNames"], dns)
                    self.assertEqual(spec["usages"], usages)
                    self.assertEqual((spec["duration"], spec["renewBefore"]),
                                     ("2160h", "360h"))
                vols = volumes(objs)
                for vol, want in (("tls", tls_secret), ("peer-tls", peer_secret)):
                    if want is None:
                        self.assertNotIn(vol, vols)
                    else:
                        self.assertEqual(vols[vol]["secret"]["secretName"], want)
                f = flags(objs)
                self.assertEqual("--tls-cert" in f, tls_secret is not None)
                self.assertEqual("--peer-tls-ca" in f, peer_secret is not None)

    def test_scenario(self):
        objs = objects("-f", os.path.join(CI, "cert-manager-values.yaml"))
        certs = {c["metadata"]["name"]: c["spec"] for c in kinds(objs, "Certificate")}
        self.assertEqual(sorted(certs), ["reg-atoll-peer-tls", "reg-atoll-tls"])
        self.assertEqual(certs["reg-atoll-tls"]["renewBefore"], "720h")
        self.assertIn("registry.example.com", certs["reg-atoll-tls"]["dnsNames"])
        self.assertEqual(certs["reg-atoll-peer-tls"]["privateKey"],
                         {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"})
        c = container(objs)
        self.assertEqual(c["readinessProbe"]["httpGet"]["scheme"], "HTTPS")
        self.assertEqual(kinds(objs, "Secret"), [])
        # the preStop handoff dials a name the peer certificate holds
        cmd = c["lifecycle"]["preStop"]["exec"]["command"]
        peer = cmd[cmd.index("--peer") + 1]
        host = re.match(r"https://([^:/]+):5001$", peer).group(1)
        self.assertIn(host, certs["reg-atoll-peer-tls"]["dnsNames"])
        # and the advertised names of the pods match the wildcard
        adv = flags(objs)["--advertise"].replace("$(POD_NAME)", "reg-atoll-0")
        self.assertIn("*." + adv.split(".", 1)[1], certs["reg-atoll-peer-tls"]["dnsNames"])

    def test_bad_values_fail(self):
        cases = [
            (["--set", "tls.enabled=true"], "tls.certManager.enabled"),
            (["--set", "tls.certManager.enabled=true"], "needs tls.enabled"),
            (["--set", "tls.enabled=true", "--set", "tls.certManager.enabled=true"],
             "tls.certManager.issuerRef.name"),
            (CM_API + ["--set", "tls.existingSecret=x"], "not both"),
            (["--set", "tls.peer.enabled=true"], "tls.peer.certManager.enabled"),
            (["--set", "tls.peer.certManager.enabled=true"], "needs tls.peer.enabled"),
            (["--set", "tls.peer.enabled=true", "--set", "tls.peer.certManager.enabled=true"],
             "tls.peer.certManager.issuerRef.name"),
            (CM_PEER + ["--set", "tls.peer.existingSecret=x"], "not both"),
            (CM_API + ["--set", "tls.certManager.duration=90d"], "duration"),
            (CM_API + ["--set", "tls.certManager.issuerRef.kind=Vault"], "kind"),
        ]
        for args, want in cases:
            with self.subTest(args=args):
                p = helm("template", "reg", CHART, *SECRET, *args, check=False)
                self.assertNotEqual(p.returncode, 0, p.stdout[:200])
                self.assertIn(want, p.stderr)


ROUTE = ["--set", "httpRoute.enabled=true", "--set", "httpRoute.parentRefs[0].name=eg"]


@needs_helm
class ChartHTTPRouteTest(unittest.TestCase):
    """httpRoute: values in, the HTTPRoute out."""

    def route(self, *args):
        objs = objects(*SECRET, *args)
        routes = kinds(objs, "HTTPRoute")
        return routes[0] if routes else None

    def test_table(self):
        # (values, hostnames, path, timeouts or None for no field)
        table = [
            ([], None, None, None),
            (ROUTE, None, "/", {"request": "0s", "backendRequest": "0s"}),
            (ROUTE + ["--set", "httpRoute.hostnames={r.example.com}",
                      "--set", "httpRoute.path=/v2/"],
             ["r.example.com"], "/v2/", {"request": "0s", "backendRequest": "0s"}),
            (ROUTE + ["--set", "httpRoute.timeouts.request=2h",
                      "--set", "httpRoute.timeouts.backendRequest=1h30m"],
             None, "/", {"request": "2h", "backendRequest": "1h30m"}),
            (ROUTE + ["--set", "httpRoute.timeouts.request=",
                      "--set", "httpRoute.timeouts.backendRequest=45m"],
             None, "/", {"backendRequest": "45m"}),
            (ROUTE + ["--set", "httpRoute.timeouts.request=",
                      "--set", "httpRoute.timeouts.backendRequest="], None, "/", None),
            (ROUTE + ["--set", "service.port=443"], None, "/",
             {"request": "0s", "backendRequest": "0s"}),
        ]
        for args, hostnames, path, timeouts in table:
            with self.subTest(args=args):
                r = self.route(*args)
                if path is None:
                    self.assertIsNone(r)
                    continue
                self.assertEqual(r["apiVersion"], "gateway.networking.k8s.io/v1")
                spec = r["spec"]
                self.assertEqual(spec["parentRefs"], [{"name": "eg"}])
                self.assertEqual(spec.get("hostnames"), hostnames)
                [rule] = spec["rules"]
                self.assertEqual(rule["matches"],
                                 [{"path": {"type": "PathPrefix", "value": path}}])
                port = 443 if "service.port=443" in args else 5000
                self.assertEqual(rule["backendRefs"], [{"name": "reg-atoll", "port": port}])
                self.assertEqual(rule.get("timeouts"), timeouts)

    def test_scenario(self):
        objs = objects("-f", os.path.join(CI, "gateway-values.yaml"))
        r = one(objs, "HTTPRoute")
        self.assertEqual(r["metadata"]["annotations"], {"example.com/owner": "platform"})
        self.assertEqual(r["spec"]["parentRefs"][0]["sectionName"], "https")
        self.assertEqual(r["spec"]["hostnames"], ["registry.example.com"])
        self.assertEqual(r["spec"]["rules"][0]["timeouts"],
                         {"request": "0s", "backendRequest": "30m"})
        svc = objs[("Service", "reg-atoll")]["spec"]["ports"][0]
        self.assertEqual(r["spec"]["rules"][0]["backendRefs"][0]["port"], svc["port"])

    def test_bad_values_fail(self):
        cases = [
            (["--set", "httpRoute.enabled=true"], "httpRoute.parentRefs"),
            (ROUTE + ["--set", "httpRoute.timeouts.request=1h",
                      "--set", "httpRoute.timeouts.backendRequest=0s"], "must not exceed"),
            (ROUTE + ["--set", "httpRoute.timeouts.request=10m",
                      "--set", "httpRoute.timeouts.backendRequest=1h"], "must not exceed"),
            (ROUTE + ["--set", "httpRoute.timeouts.request=1d"], "request"),
            (ROUTE + ["--set", "httpRoute.path=v2"], "path"),
        ]
        for args, want in cases:
            with self.subTest(args=args):
                p = helm("template", "reg", CHART, *SECRET, *args, check=False)
                self.assertNotEqual(p.returncode, 0, p.stdout[:200])
                self.assertIn(want, p.stderr)


@needs_helm
class ChartArgsParseTest(unittest.TestCase):
    """The rendered flags are flags atoll knows: `atoll serve ARGS --help`
    parses them before printing the usage."""

    def test_flags_known(self):
        if not os.access(harness.ATOLL_BIN, os.X_OK):
            self.skipTest("no atoll binary at %s" % harness.ATOLL_BIN)
        for path in SCENARIOS:
            with self.subTest(values=os.path.basename(path)):
                args = container(objects("-f", path))["args"]
                p = subprocess.run([harness.ATOLL_BIN, *args, "--bogus-flag-probe"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, timeout=30)
                self.assertIn("unknown flag '--bogus-flag-probe'", p.stderr)


def validate(paths, *opts, stdin=None):
    """Run tests/helm/validate.mjs; the CompletedProcess (text, merged)."""
    return subprocess.run([NODE, VALIDATE, "--modules", SCHEMA_MODULES, *opts, *paths],
                          input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=180)


def needs_schema(test):
    if NODE is None:
        return unittest.skip("no node (the schema check runs on Node.js)")(test)
    if not os.path.isdir(os.path.join(SCHEMA_MODULES, "kubernetes-models")):
        return unittest.skip("no schema packages at %s (.ci/install-deps)"
                             % SCHEMA_MODULES)(test)
    return needs_helm(test)


@needs_schema
class ChartSchemaTest(unittest.TestCase):
    """Every object of every scenario validates against the Kubernetes 1.30
    API: the ajv schemas of kubernetes-models (types, enums, patterns,
    required fields; custom resources from the @kubernetes-models packages)
    and, for unknown fields, TypeScript object literals typed with
    kubernetes-types@1.30.0 under `tsc --strict` (one run for all)."""

    # scenario -> extra values, beyond the ci/ files: every optional kind on
    EXTRA = {
        "all-on": ["--set", "cluster.secret.existingSecret=atoll-cluster",
                   "--set", "networkPolicy.enabled=true",
                   "--set", "ingress.enabled=true",
                   "--set", "metrics.serviceMonitor.enabled=true",
                   *MONITORING],
    }

    def test_every_scenario_validates(self):
        with tempfile.TemporaryDirectory() as tmp:
            paths, kinds_seen = [], set()
            renders = [(os.path.basename(p), ["-f", p]) for p in SCENARIOS]
            renders += sorted(self.EXTRA.items())
            for name, args in renders:
                text = template(*KUBE, *args)
                path = os.path.join(tmp, name)
                with open(path, "w") as f:
                    f.write(text)
                paths.append(path)
                kinds_seen |= {d["kind"] for d in yaml.safe_load_all(text) if d}
            p = validate(paths, "--strict")
            self.assertEqual(p.returncode, 0, p.stdout)
            self.assertNotIn("FAIL", p.stdout)
            self.assertNotIn("skip", p.stdout)
            for kind in ("StatefulSet", "Service", "PodDisruptionBudget", "ConfigMap",
                         "Secret", "Ingress", "NetworkPolicy", "ServiceMonitor",
                         "PrometheusRule", "ExternalSecret", "Certificate", "HTTPRoute"):
                self.assertIn(kind, kinds_seen)
                self.assertRegex(p.stdout, r"(?m)^ok .* %s/" % kind)

    def test_broken_objects_fail(self):
        """Each kind of mistake, in its own copy of a rendered object, named
        after the mistake: all in one input, so one tsc run covers them."""
        docs = [d for d in yaml.safe_load_all(template(
            *KUBE, *SECRET, "--set", "metrics.serviceMonitor.enabled=true")) if d]
        by_kind = {d["kind"]: d for d in docs}

        def copy(kind, name):
            d = json.loads(json.dumps(by_kind[kind]))
            d["metadata"]["name"] = name
            return d

        def pod(d):
            return d["spec"]["template"]["spec"]

        wrong_type = copy("StatefulSet", "wrong-type")
        wrong_type["spec"]["replicas"] = "three"
        pod_typo = copy("StatefulSet", "pod-typo")
        pod(pod_typo)["terminationGracePeriodSecond"] = 60
        no_name = copy("StatefulSet", "no-name")
        del pod(no_name)["containers"][0]["name"]
        cr_typo = copy("ServiceMonitor", "cr-typo")
        cr_typo["spec"]["endpoints"][0]["intervall"] = "30s"
        old_api = copy("PodDisruptionBudget", "old-api")
        old_api["apiVersion"] = "policy/v1beta1"
        good = copy("StatefulSet", "good")
        text = yaml.safe_dump_all([wrong_type, pod_typo, no_name, cr_typo, old_api, good])

        # the ajv schemas: types and required fields, but not unknown fields
        p = validate(["-"], stdin=text)
        self.assertEqual(p.returncode, 1, p.stdout)
        out = p.stdout
        self.assertRegex(out, r"FAIL - StatefulSet/wrong-type: schema: .*replicas must be integer")
        self.assertRegex(out, r"FAIL - StatefulSet/no-name: schema: .*must have required "
                         r"property name")
        for ok in ("StatefulSet/pod-typo", "ServiceMonitor/cr-typo", "StatefulSet/good",
                   "PodDisruptionBudget/old-api"):
            self.assertRegex(out, r"(?m)^ok - %s$" % ok)

        # --strict adds the 1.30 types: unknown fields, removed API versions
        p = validate(["-"], "--strict", stdin=text)
        self.assertEqual(p.returncode, 1, p.stdout)
        out = p.stdout
        self.assertRegex(out, r"FAIL - StatefulSet/wrong-type: strict 1.30: .*'string' is not "
                         r"assignable to type 'number'")
        self.assertIn("FAIL - StatefulSet/pod-typo: strict 1.30: ", out)
        self.assertIn("'\"terminationGracePeriodSecond\"' does not exist in type 'PodSpec'", out)
        self.assertRegex(out, r"FAIL - ServiceMonitor/cr-typo: strict 1.30: .*"
                         r"'\"intervall\"' does not exist")
        self.assertIn("FAIL - PodDisruptionBudget/old-api: strict 1.30: policy/v1beta1 "
                      "is not in the Kubernetes 1.30 API", out)
        self.assertRegex(out, r"(?m)^ok - StatefulSet/good$")
        self.assertNotRegex(out, r"(?m)^ok - .*/(wrong-type|pod-typo|no-name|cr-typo|old-api)$")

    def test_unmodelled_kind_is_reported(self):
        obj = "apiVersion: example.com/v1\nkind: Frobnicator\nmetadata: {name: x}\n"
        p = validate(["-"], "--strict", stdin=obj)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("FAIL - Frobnicator/x: no model for example.com/v1 Frobnicator", p.stdout)
        p = validate(["-"], "--strict", "--known-unmodelled", "Frobnicator", stdin=obj)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn("skip - Frobnicator/x", p.stdout)


def promtool(*args):
    """Run promtool; the CompletedProcess (text, stdout and stderr merged)."""
    return subprocess.run([PROMTOOL, *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=60)


@unittest.skipIf(PROMTOOL is None, "no promtool (Debian prometheus package)")
class AlertRulesTest(unittest.TestCase):
    """files/alerts.yaml is a valid rules file as is, and its unit tests
    (files/alerts_test.yaml) show the alerts fire on synthetic series and
    stay quiet otherwise."""

    def test_check_rules(self):
        p = promtool("check", "rules", os.path.join(FILES, "alerts.yaml"))
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn("SUCCESS: 5 rules found", p.stdout)

    def test_rules_unit_tests(self):
        p = promtool("test", "rules", os.path.join(FILES, "alerts_test.yaml"))
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn("SUCCESS", p.stdout)
        with open(os.path.join(FILES, "alerts_test.yaml")) as f:
            tests = yaml.safe_load(f)["tests"] if yaml else []
        tested = {t["alertname"] for case in tests for t in case["alert_rule_test"]}
        with open(os.path.join(FILES, "alerts.yaml")) as f:
            rules = [r for g in yaml.safe_load(f)["groups"] for r in g["rules"]]
        for rule in rules:
            self.assertIn(rule["alert"], tested)
            # per cluster: every aggregation keeps namespace and job, and no
            # rule guesses the cluster from a job name
            self.assertNotIn("=~", rule["expr"], rule["alert"])
            self.assertNotRegex(rule["expr"], r"\bup\b", rule["alert"])
            aggs = re.findall(r"\b(?:max|min|sum|count|avg) by \(([^)]*)\)", rule["expr"])
            self.assertTrue(aggs, rule["alert"])
            for labels in aggs:
                self.assertLessEqual({"namespace", "job"},
                                     {x.strip() for x in labels.split(",")}, rule["alert"])
        quorum = [r for r in rules if r["alert"] == "AtollQuorumAtRisk"][0]["expr"]
        self.assertIn("atoll_raft_voters_healthy", quorum)
        self.assertIn("atoll_raft_voters)", quorum)


@needs_helm
class ChartMonitoringTest(unittest.TestCase):
    """The PrometheusRule takes its groups from files/alerts.yaml; the
    dashboard ConfigMap carries files/dashboard.json; both off by default."""

    def file_groups(self):
        with open(os.path.join(FILES, "alerts.yaml")) as f:
            return yaml.safe_load(f)["groups"]

    def rules(self, objs):
        return {r["alert"]: r for g in one(objs, "PrometheusRule")["spec"]["groups"]
                for r in g["rules"]}

    def test_off_by_default(self):
        objs = objects(*SECRET)
        self.assertEqual(kinds(objs, "PrometheusRule"), [])
        self.assertNotIn(("ConfigMap", "reg-atoll-dashboard"), objs)

    def test_rule_groups_are_the_file(self):
        objs = objects(*SECRET, *MONITORING)
        rule = one(objs, "PrometheusRule")
        self.assertEqual(rule["apiVersion"], "monitoring.coreos.com/v1")
        self.assertEqual(rule["metadata"]["namespace"], "ns1")
        self.assertEqual(rule["spec"]["groups"], self.file_groups())
        if PROMTOOL is not None:
            with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
                yaml.safe_dump({"groups": rule["spec"]["groups"]}, f)
                f.flush()
                p = promtool("check", "rules", f.name)
                self.assertEqual(p.returncode, 0, p.stdout)

    def test_thresholds_from_values(self):
        rules = self.rules(objects(*SECRET, *MONITORING,
                                   "--set", "monitoring.rules.freeBytesMin=5368709120",
                                   "--set", "monitoring.rules.peerLagMax=500"))
        self.assertEqual(rules["AtollDiskLow"]["expr"],
                         "min by (namespace, job, instance) (atoll_storage_free_bytes)"
                         " < 5368709120")
        self.assertTrue(rules["AtollVoterLagging"]["expr"].endswith(") > 500"))
        self.assertIn("more than 500 log", rules["AtollVoterLagging"]["annotations"]
                      ["description"])
        rules = self.rules(objects("-f", os.path.join(CI, "monitoring-values.yaml")))
        self.assertEqual(rules["AtollDiskLow"]["expr"],
                         "min by (namespace, job, instance) (atoll_storage_free_bytes)"
                         " < 21474836480")
        self.assertEqual(len(rules), 5)

    def test_edge_release_has_no_raft_alerts(self):
        rules = self.rules(objects(*SECRET, *MONITORING, "--set", "cluster.role=edge",
                                   "--set", "cluster.join={core-0.example:5001}"))
        self.assertEqual(sorted(rules), ["AtollBlobsUnderReplicated", "AtollDiskLow"])

    def test_dashboard(self):
        objs = objects("-f", os.path.join(CI, "monitoring-values.yaml"))
        cm = objs[("ConfigMap", "reg-atoll-dashboard")]
        self.assertEqual(cm["metadata"]["labels"]["grafana_dashboard"], "1")
        self.assertEqual(cm["metadata"]["annotations"], {"grafana_folder": "atoll"})
        dash = json.loads(cm["data"]["atoll.json"])
        with open(os.path.join(FILES, "dashboard.json")) as f:
            self.assertEqual(dash, json.load(f))
        exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
        for series in ("atoll_http_request_duration_seconds_bucket", "atoll_raft_is_leader",
                       "atoll_raft_term", "atoll_raft_commit_index",
                       "atoll_raft_peer_lag_entries", "atoll_gossip_members",
                       "atoll_storage_free_bytes", "atoll_under_replicated_blobs",
                       "atoll_raft_voters_healthy"):
            self.assertIn(series, exprs)
        self.assertIn("histogram_quantile(0.99", exprs)
        # every series the rules and the dashboard name is one atoll exports
        with open(os.path.join(harness.ROOT, "docs", "api.md")) as f:
            doc = f.read()
        with open(os.path.join(FILES, "alerts.yaml")) as f:
            exprs += f.read()
        for name in set(re.findall(r"\batoll_[a-z_]+", exprs)):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            self.assertIn("`%s`" % base, doc, name)
        ids = [p["id"] for p in dash["panels"]]
        self.assertEqual(len(ids), len(set(ids)))


if __name__ == "__main__":
    unittest.main()
