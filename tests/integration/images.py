"""Test images built from bytes: media types, descriptors and manifests, and
pushing an image (its blobs, then its manifest) to a node over the OCI API.

Client tests that need real tar layers in an OCI layout directory use
ocilayout.py instead; these images have layers of any bytes, which is all a
registry looks at.
"""
import hashlib
import json
import os

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha256_digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type, data_or_digest, size=None, **extra):
    """An OCI descriptor for bytes (or for a digest plus size)."""
    if isinstance(data_or_digest, (bytes, bytearray)):
        d = {"mediaType": media_type, "digest": sha256_digest(data_or_digest),
             "size": len(data_or_digest)}
    else:
        d = {"mediaType": media_type, "digest": data_or_digest, "size": size}
    d.update(extra)
    return d


def oci_manifest(config_desc, layer_descs=(), subject=None, artifact_type=None,
                 annotations=None, media_type=OCI_MANIFEST):
    """An image manifest dict (OCI by default)."""
    m = {"schemaVersion": 2, "mediaType": media_type, "config": config_desc,
         "layers": list(layer_descs)}
    if artifact_type is not None:
        m["artifactType"] = artifact_type
    if subject is not None:
        m["subject"] = subject
    if annotations is not None:
        m["annotations"] = annotations
    return m


def manifest_bytes(m):
    return json.dumps(m, separators=(",", ":"), sort_keys=True).encode()


def unique_config(layers):
    """Config bytes for an amd64/linux image of these (uncompressed) layers,
    with a random nonce so that no two images share a config blob."""
    return json.dumps({"architecture": "amd64", "os": "linux",
                       "rootfs": {"type": "layers",
                                  "diff_ids": [sha256_digest(la)
                                               for la in layers]},
                       "n": os.urandom(8).hex()}).encode()


class Image:
    """An OCI image manifest and its blobs, built from bytes (not pushed).
    manifest holds the exact bytes to PUT, digest their digest."""

    def __init__(self, config, layers, subject=None, artifact_type=None):
        self.config = config
        self.layers = list(layers)
        self.config_digest = sha256_digest(config)
        self.layer_digests = [sha256_digest(la) for la in self.layers]
        m = oci_manifest(descriptor(OCI_CONFIG, config),
                         [descriptor(OCI_LAYER, la) for la in self.layers],
                         subject=subject, artifact_type=artifact_type)
        self.manifest = json.dumps(m).encode()
        self.digest = sha256_digest(self.manifest)

    def blobs(self):
        """{digest: bytes} of the config and the layers, config first."""
        out = {self.config_digest: self.config}
        out.update(zip(self.layer_digests, self.layers))
        return out


def image(layers, config=None, subject=None, artifact_type=None):
    """An Image of these layers; config None gives a unique_config()."""
    if config is None:
        config = unique_config(layers)
    return Image(config, layers, subject, artifact_type)


def small(hint=""):
    """A unique tiny image: one layer of 64 random bytes plus `hint`."""
    return image([os.urandom(64) + hint.encode()])


def push_blobs(node, repo, img, timeout=30):
    """Push img's config and layers; a push that fails raises."""
    for data in img.blobs().values():
        node.push_blob(repo, data, timeout=timeout)


def push(node, repo, ref, img, headers=None, timeout=30, blob_timeout=30,
         expect=201):
    """Push img's blobs (push_blobs) and PUT its manifest as `ref` (a tag
    or img.digest) with Content-Type OCI_MANIFEST plus `headers`. Returns
    the manifest PUT's Response; with `expect` (a status, or None for any)
    a different status raises AssertionError."""
    push_blobs(node, repo, img, timeout=blob_timeout)
    hdrs = {"Content-Type": OCI_MANIFEST}
    hdrs.update(headers or {})
    r = node.request("PUT", f"/v2/{repo}/manifests/{ref}", body=img.manifest,
                     headers=hdrs, timeout=timeout)
    if expect is not None and r.status != expect:
        raise AssertionError(f"manifest PUT {repo}:{ref} on {node.addr}: {r!r}")
    return r
