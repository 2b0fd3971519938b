"""The peer protocol for tests (proto/peer.h, proto/atoll.proto): the
version header every peer request carries, and a tiny protobuf encoder and
decoder for the few peer messages tests send and read. There is no
protobuf library here; varints and length-delimited fields are all these
messages use."""

PEER_PROTOCOL = 2
VERSION_HEADER = "X-Atoll-Peer-Protocol"
CONTENT_TYPE = "application/x-protobuf"


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _uint(num, v):
    """A varint field (proto3 leaves zeros out)."""
    return _varint(num << 3) + _varint(v) if v else b""


def _bytes(num, b):
    """A length-delimited field (string, bytes, message)."""
    if isinstance(b, str):
        b = b.encode()
    return _varint(num << 3 | 2) + _varint(len(b)) + b if b else b""


def join_body(name, peer_address, api_address="", region="", standby=False,
              node_id=0, version=PEER_PROTOCOL):
    """A PeerJoin: version, then a NodeUpsert."""
    node = (_uint(1, node_id) + _bytes(2, name) + _bytes(3, peer_address)
            + _bytes(4, api_address) + _bytes(5, region)
            + _uint(6, 1 if standby else 0))
    return _uint(1, version) + _varint(2 << 3 | 2) + _varint(len(node)) + node


def read_index_body(from_id=0, from_term=0, version=PEER_PROTOCOL):
    """A PeerReadIndex."""
    return _uint(1, version) + _uint(2, from_id) + _uint(3, from_term)


def _fields(data):
    """{field number: value} of a message with varint and length fields."""
    out, i = {}, 0
    while i < len(data):
        key, i = _read_varint(data, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            out[num], i = _read_varint(data, i)
        elif wire == 2:
            n, i = _read_varint(data, i)
            out[num], i = data[i:i + n], i + n
        else:
            raise ValueError(f"wire type {wire} in a peer message")
    return out


def _read_varint(data, i):
    v = shift = 0
    while True:
        b = data[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def _sint(v):
    return (v >> 1) ^ -(v & 1)


def reply(data):
    """A PeerReply as a dict: version, status, result, index, term, id,
    role."""
    f = _fields(data)
    return {"version": f.get(1, 0), "status": _sint(f.get(2, 0)),
            "result": _sint(f.get(3, 0)), "index": f.get(4, 0),
            "term": f.get(5, 0), "id": f.get(6, 0),
            "role": f.get(7, b"").decode()}
