"""Build and read OCI image layout directories (oci-layout, index.json,
blobs/sha256/...) for the client tests (skopeo, podman). Python stdlib only.

build_layout(dir, ...) writes a valid single-platform image (linux/amd64):
a config whose rootfs.diff_ids match the uncompressed layer tars, N layers of
random file contents (gzip'ed or plain tar), an OCI image manifest, and an
index.json entry carrying the tag in org.opencontainers.image.ref.name.
It returns an Image describing every digest and every byte so tests can
compare what comes back from a registry.
"""
import gzip
import hashlib
import io
import json
import os
import tarfile

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
REF_NAME = "org.opencontainers.image.ref.name"
GZIP_TYPES = (MT_LAYER_GZIP, MT_DOCKER_LAYER_GZIP)


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Layer:
    def __init__(self, tar_bytes, blob, media_type, files):
        self.tar = tar_bytes            # uncompressed tar
        self.blob = blob                # bytes stored as the blob
        self.media_type = media_type
        self.files = files              # {path: bytes}
        self.diff_id = digest_of(tar_bytes)
        self.digest = digest_of(blob)
        self.size = len(blob)

    def descriptor(self):
        return {"mediaType": self.media_type, "digest": self.digest,
                "size": self.size}


class Image:
    def __init__(self, layers, config, manifest, tag):
        self.layers = layers
        self.config = config            # bytes
        self.manifest = manifest        # bytes
        self.tag = tag
        self.config_digest = digest_of(config)
        self.digest = digest_of(manifest)

    @property
    def diff_ids(self):
        return [layer.diff_id for layer in self.layers]

    def blobs(self):
        """{digest: bytes} of config and layers."""
        out = {self.config_digest: self.config}
        for layer in self.layers:
            out[layer.digest] = layer.blob
        return out


def make_tar(files):
    """Deterministic uncompressed tar of {path: bytes} (sorted, mtime 0)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        dirs = set()
        for path in sorted(files):
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    ti = tarfile.TarInfo(d)
                    ti.type = tarfile.DIRTYPE
                    ti.mode = 0o755
                    ti.mtime = 0
                    tf.addfile(ti)
            ti = tarfile.TarInfo(path)
            ti.size = len(files[path])
            ti.mode = 0o644
            ti.mtime = 0
            tf.addfile(ti, io.BytesIO(files[path]))
    return buf.getvalue()


def make_layer(files, compress=True):
    tar_bytes = make_tar(files)
    if compress:
        blob = gzip.compress(tar_bytes, compresslevel=1, mtime=0)
        mt = MT_LAYER_GZIP
    else:
        blob = tar_bytes
        mt = MT_LAYER_TAR
    return Layer(tar_bytes, blob, mt, files)


def random_layer(index, size, compress=True, prefix="data"):
    """One layer with a file of `size` random bytes (plus a small text file
    so that even size 0 gives a distinct layer)."""
    files = {f"{prefix}/layer{index}/random.bin": os.urandom(size),
             f"{prefix}/layer{index}/note.txt":
                 f"layer {index} nonce {os.urandom(8).hex()}\n".encode()}
    return make_layer(files, compress)


def make_config(layers, extra_labels=None):
    cfg = {
        "created": "2024-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/true"],
                   "Labels": dict(extra_labels or {})},
        "rootfs": {"type": "layers",
                   "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": "2024-01-01T00:00:00Z",
                     "created_by": f"atoll test layer {i}"}
                    for i in range(len(layers))],
    }
    return json.dumps(cfg, indent=None, sort_keys=True).encode()


def make_manifest(config, layers, annotations=None):
    m = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
         "config": {"mediaType": MT_CONFIG, "digest": digest_of(config),
                    "size": len(config)},
         "layers": [layer.descriptor() for layer in layers]}
    if annotations:
        m["annotations"] = dict(annotations)
    return json.dumps(m, indent=None, sort_keys=True).encode()


def make_image(sizes=(1024, 5 * 1024 * 1024, 4096), compress=True, tag="v1",
               layers=None, label=None):
    """An Image with one random layer per entry of `sizes`, preceded by the
    given shared `layers` (Layer objects) if any."""
    layers = list(layers or [])
    for i, size in enumerate(sizes):
        layers.append(random_layer(len(layers) + i, size, compress))
    labels = {"atoll.test": label or os.urandom(6).hex()}
    config = make_config(layers, labels)
    manifest = make_manifest(config, layers)
    return Image(layers, config, manifest, tag)


def _write_blob(root, data):
    d = digest_of(data)
    path = os.path.join(root, "blobs", "sha256", d.split(":", 1)[1])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return d


def write_layout(root, images):
    """Write one or more Images into an OCI layout at `root` (created)."""
    os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    entries = []
    for img in images:
        for data in img.blobs().values():
            _write_blob(root, data)
        _write_blob(root, img.manifest)
        entries.append({"mediaType": MT_MANIFEST, "digest": img.digest,
                        "size": len(img.manifest),
                        "annotations": {REF_NAME: img.tag}})
    index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": entries}
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump(index, f)
    return root


def build_layout(root, sizes=(1024, 5 * 1024 * 1024, 4096), compress=True,
                 tag="v1", layers=None):
    """Make one image and write it as an OCI layout; returns the Image."""
    img = make_image(sizes, compress, tag, layers)
    write_layout(root, [img])
    return img


class ReadImage:
    """An image read back from an OCI layout."""

    def __init__(self, root, desc, manifest):
        self.root = root
        self.desc = desc
        self.manifest = manifest                  # bytes
        self.digest = digest_of(manifest)
        self.manifest_json = json.loads(manifest)
        self.config_digest = self.manifest_json["config"]["digest"]
        self.config = read_blob(root, self.config_digest)
        self.config_json = json.loads(self.config)
        self.layer_descs = self.manifest_json.get("layers", [])
        self.layers = [read_blob(root, d["digest"]) for d in self.layer_descs]

    @property
    def layer_digests(self):
        return [d["digest"] for d in self.layer_descs]

    def uncompressed_layers(self):
        """Uncompressed tar bytes of each layer (gunzip when needed, by
        media type or by gzip magic)."""
        out = []
        for desc, blob in zip(self.layer_descs, self.layers):
            if desc["mediaType"] in GZIP_TYPES or blob[:2] == b"\x1f\x8b":
                out.append(gzip.decompress(blob))
            else:
                out.append(blob)
        return out

    def diff_ids(self):
        return [digest_of(t) for t in self.uncompressed_layers()]

    def files(self):
        """{path: bytes} of the regular files of all layers merged."""
        out = {}
        for tar_bytes in self.uncompressed_layers():
            with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tf:
                for m in tf.getmembers():
                    if m.isfile():
                        out[m.name.lstrip("./")] = tf.extractfile(m).read()
        return out


def read_blob(root, digest, verify=True):
    algo, hexd = digest.split(":", 1)
    with open(os.path.join(root, "blobs", algo, hexd), "rb") as f:
        data = f.read()
    if verify and digest_of(data) != digest:
        raise ValueError(f"blob {digest} in {root} has wrong content")
    return data


def read_layout(root, tag=None):
    """Read the image tagged `tag` (or the only one) from an OCI layout."""
    with open(os.path.join(root, "index.json"), "rb") as f:
        index = json.load(f)
    entries = index.get("manifests", [])
    if tag is not None:
        entries = [e for e in entries
                   if e.get("annotations", {}).get(REF_NAME) == tag]
    if len(entries) != 1:
        raise ValueError(f"expected one manifest for tag {tag!r} in {root}, "
                         f"got {len(entries)}")
    desc = entries[0]
    manifest = read_blob(root, desc["digest"])
    return ReadImage(root, desc, manifest)
