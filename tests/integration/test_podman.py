"""podman against the registry with a private storage root (vfs): pull an
image that skopeo pushed, tag it, push it to another repo (containers-storage
recompresses: chunked uploads of unknown size), pull that back with skopeo and
compare the uncompressed layers. Containers are never run."""
import json
import os
import shutil
import tempfile
import unittest

import harness
import ocilayout
from clients import PODMAN, SKOPEO, docker_ref, skopeo_pull, skopeo_push
from harness import run_tool

TIMEOUT = 240


@unittest.skipIf(PODMAN is None or SKOPEO is None,
                 "podman or skopeo not installed")
class PodmanTest(harness.NodeTestCase):
    @classmethod
    def setUpClass(cls):
        # class cleanups run last to first, also when this fails half-way
        cls.tmp = tempfile.mkdtemp(prefix="atoll-podman-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.podman_tmp = os.path.join(cls.tmp, "tmp")
        os.makedirs(cls.podman_tmp)
        cls.addClassCleanup(cls.cleanup_podman)
        p = cls.podman("images", "--format", "json", check=False)
        if p.returncode != 0:
            raise unittest.SkipTest(f"podman cannot run here: {p.stderr.strip()[-500:]}")
        super().setUpClass()

    @classmethod
    def cleanup_podman(cls):
        # vfs leaves plain directories; "system reset" would also work but
        # removing images is enough to drop any mounts before rmtree
        cls.podman("rmi", "--all", "--force", check=False)

    @classmethod
    def podman(cls, *args, check=True):
        base = [PODMAN, "--root", os.path.join(cls.tmp, "root"),
                "--runroot", os.path.join(cls.tmp, "runroot"),
                "--tmpdir", os.path.join(cls.tmp, "libpod"),
                "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
                "--events-backend", "file"]
        return run_tool(base + list(args), timeout=TIMEOUT, check=check,
                        env={"TMPDIR": cls.podman_tmp})

    def setUp(self):
        self.work = self.temp_dir(prefix="case-", dir=self.tmp)

    def tearDown(self):
        self.assert_running(self.node)

    def push_layout(self, repo, sizes):
        src = os.path.join(self.work, "src")
        img = ocilayout.build_layout(src, sizes=sizes)
        skopeo_push(src, "v1", docker_ref(self.node.addr, repo, "v1"),
                    timeout=TIMEOUT)
        return img

    def skopeo_pull(self, ref, name):
        return skopeo_pull(f"docker://{ref}", os.path.join(self.work, name),
                           "x", timeout=TIMEOUT)

    def expected_files(self, img):
        return {p: b for la in img.layers for p, b in la.files.items()}

    def test_pull_tag_push_roundtrip(self):
        addr = self.node.addr
        img = self.push_layout("podman/src", (1500, 3 * 1024 * 1024, 20000))
        src_ref = f"{addr}/podman/src:v1"
        self.podman("pull", "--tls-verify=false", src_ref)

        info = json.loads(self.podman("image", "inspect", src_ref).stdout)[0]
        self.assertEqual(info["Digest"], img.digest)
        self.assertEqual(info["RootFS"]["Layers"], img.diff_ids)
        self.assertEqual(info["Architecture"], "amd64")
        self.assertEqual(info["Os"], "linux")
        self.assertIn(src_ref, info["RepoTags"])

        dst_ref = f"{addr}/podman/dst:pushed"
        self.podman("tag", src_ref, dst_ref)
        self.podman("push", "--tls-verify=false", "--compression-format", "gzip",
                    dst_ref)

        back = self.skopeo_pull(dst_ref, "back")
        self.assertEqual(back.config_json["rootfs"]["diff_ids"], img.diff_ids)
        self.assertEqual(back.diff_ids(), img.diff_ids)
        self.assertEqual(back.files(), self.expected_files(img))
        # every blob of the pushed image served byte-exact over HTTP
        for d in [back.config_digest] + back.layer_digests:
            r = self.node.request("GET", f"/v2/podman/dst/blobs/{d}")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(harness.sha256_digest(r.body), d)
        r = self.node.request("GET", "/v2/podman/dst/tags/list")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["tags"], ["pushed"])

        # pull the pushed copy with podman too, by digest
        self.podman("pull", "--tls-verify=false", f"{addr}/podman/dst@{back.digest}")
        info2 = json.loads(self.podman("image", "inspect",
                                       f"{addr}/podman/dst@{back.digest}").stdout)[0]
        self.assertEqual(info2["RootFS"]["Layers"], img.diff_ids)

    def test_push_fresh_image_from_import(self):
        # podman import builds an image in containers-storage that the
        # registry has never seen; push it (unknown-size chunked uploads).
        files = {"hello/world.txt": b"hello from podman import\n",
                 "hello/blob.bin": os.urandom(600000)}
        tar_path = os.path.join(self.work, "rootfs.tar")
        with open(tar_path, "wb") as f:
            f.write(ocilayout.make_tar(files))
        ref = f"{self.node.addr}/podman/imported:latest"
        self.podman("import", tar_path, ref)
        self.podman("push", "--tls-verify=false", "--compression-format", "gzip",
                    ref)
        back = self.skopeo_pull(ref, "back")
        self.assertEqual(back.files(), files)
        info = json.loads(self.podman("image", "inspect", ref).stdout)[0]
        self.assertEqual(info["RootFS"]["Layers"], back.diff_ids())


if __name__ == "__main__":
    unittest.main()
