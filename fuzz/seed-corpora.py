#!/usr/bin/env python3
"""Seeds fuzz/corpus/<target>/ from the repository's fixtures (tests/data): captured
frames of real OVN (golden-*.txt), the seed lab's logical flows (lflows/*.json) and
recorded OVSDB exchanges (ovsdb-wire/). Run from the repository root after the fixtures
change; libFuzzer adds what it finds to the same directories."""

import hashlib
import json
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
CORPUS = ROOT / "fuzz" / "corpus"


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def frames():
    for f in sorted(DATA.glob("golden-*.txt")):
        for line in f.read_text().splitlines():
            m = re.search(r"len=\d+ ([0-9a-f]+)", line)
            if m:
                yield bytes.fromhex(m.group(1))


def udp_segment(frame):
    """The UDP segment (header included) of an Ethernet/802.1Q/IPv4/UDP frame."""
    off = 14
    if frame[12:14] == b"\x81\x00":
        off += 4
    ihl = (frame[off] & 0x0F) * 4
    if frame[off + 9] != 17:
        return None
    return frame[off + ihl :]


for frame in frames():
    put("wire", frame)
    put("flow_extract", frame)
    # pipeline: control byte (ingress 15: vm5's VIF), then length, placement, bytes.
    put("pipeline", bytes([2, min(len(frame), 255), 0]) + frame[:255])
    seg = udp_segment(frame)
    if seg:
        put("dhcp", seg)

for name in ["seed.json", "seed-acl.json"]:
    flows = json.loads((DATA / "lflows" / name).read_text())["flows"]
    for flow in flows:
        put("lflow_match", flow["match_"])
        put("lflow_actions", flow["actions"])

for f in sorted((DATA / "ovsdb-wire").iterdir()):
    raw = f.read_bytes()
    put("ovsdb_framing", raw)
    texts = raw.decode(errors="replace").splitlines() if f.suffix == ".jsonl" else [raw.decode(errors="replace")]
    for text in texts:
        try:
            v = json.loads(text)
        except ValueError:
            continue
        if isinstance(v, dict) and "msg" in v:
            v = v["msg"]
        if not isinstance(v, dict):
            continue
        # Monitor replies (result) and notifications (params): their <table-updates>.
        for candidate in [v.get("result"), *(v.get("params") or [])]:
            if isinstance(candidate, list):
                candidate = next((c for c in candidate if isinstance(c, dict)), None)
            if isinstance(candidate, dict) and candidate:
                put("ovsdb_updates", json.dumps(candidate))

# geneve: the frames real OVS sent between two chassis (classic pcap, little-endian).
for f in sorted((DATA / "geneve").glob("*.pcap")):
    raw, at = f.read_bytes(), 24
    while at + 16 <= len(raw):
        n = int.from_bytes(raw[at + 8:at + 12], "little")
        put("geneve", raw[at + 16:at + 16 + n])
        at += 16 + n
