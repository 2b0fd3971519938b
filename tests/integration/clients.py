"""External clients in the integration tests (skopeo, podman): where they
are, a skip decorator for when skopeo is missing, and skopeo copies between
an OCI layout directory (ocilayout.py) and a registry."""
import shutil
import unittest

import ocilayout
from harness import run_tool

SKOPEO = shutil.which("skopeo")
PODMAN = shutil.which("podman")
TIMEOUT = 180

needs_skopeo = unittest.skipIf(SKOPEO is None, "skopeo not installed")


def skopeo(*args, timeout=TIMEOUT, check=True):
    """skopeo --insecure-policy ARGS (harness.run_tool)."""
    return run_tool([SKOPEO, "--insecure-policy"] + list(args),
                    timeout=timeout, check=check)


def docker_ref(addr, repo, tag=None, digest=None):
    """skopeo's name of repo (by tag, by digest or bare) on a registry."""
    ref = f"docker://{addr}/{repo}"
    if digest:
        return f"{ref}@{digest}"
    return f"{ref}:{tag}" if tag else ref


def skopeo_push(layout, tag, dest, extra=(), timeout=TIMEOUT):
    """Copy the image tagged `tag` in the OCI layout dir to dest (a
    docker:// reference) over plain HTTP."""
    return skopeo("copy", "--dest-tls-verify=false", *extra,
                  f"oci:{layout}:{tag}", dest, timeout=timeout)


def skopeo_pull(src, layout, tag, timeout=TIMEOUT):
    """Copy src (a docker:// reference) over plain HTTP into a new OCI
    layout dir as `tag`; returns it read back (ocilayout.ReadImage)."""
    skopeo("copy", "--src-tls-verify=false", src, f"oci:{layout}:{tag}",
           timeout=timeout)
    return ocilayout.read_layout(layout, tag)


def assert_same_image(test, img, back):
    """back (read from a layout) has img's manifest, config and layer bytes
    (img: an ocilayout.Image)."""
    test.assertEqual(back.manifest, img.manifest, "manifest bytes differ")
    test.assertEqual(back.digest, img.digest)
    test.assertEqual(back.config, img.config, "config bytes differ")
    test.assertEqual(back.layer_digests, [la.digest for la in img.layers])
    for la, blob in zip(img.layers, back.layers):
        test.assertEqual(blob, la.blob, f"layer {la.digest} differs")
