#!/usr/bin/env python3
"""Regenerates safety_number_v1.json from SPEC.md §9.1, independently of the Rust code.

Usage: python3 generate.py > safety_number_v1.json
The identity keys are the public keys of RFC 8032 §7.1 TEST 1, 2 and 3.
"""
import hashlib, json

LABEL = b"doubleratchet v1 safety number"
ITERATIONS = 5200
KEYS = {
    "rfc8032_test1": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    "rfc8032_test2": "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    "rfc8032_test3": "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
}

def half(ik: bytes) -> bytes:
    h = hashlib.sha512(LABEL + b"\x00\x01" + ik).digest()
    for _ in range(ITERATIONS):
        h = hashlib.sha512(h + ik).digest()
    return h[:32]

def safety_number(a: bytes, b: bytes):
    first, second = sorted([a, b])
    halves = [half(first), half(second)]
    form = bytes([0x01, 0x40]) + halves[0] + halves[1]
    groups = []
    for h in halves:
        for i in range(6):
            groups.append("%05d" % (int.from_bytes(h[5 * i:5 * i + 5], "big") % 100000))
    return form.hex(), " ".join(groups)

cases = []
for x, y in [("rfc8032_test1", "rfc8032_test2"), ("rfc8032_test2", "rfc8032_test3"), ("rfc8032_test3", "rfc8032_test1")]:
    form, digits = safety_number(bytes.fromhex(KEYS[x]), bytes.fromhex(KEYS[y]))
    cases.append({"identity_a": KEYS[x], "identity_b": KEYS[y], "bytes": form, "digits": digits})

print(json.dumps({
    "_comment": "Safety number known-answer vectors for doubleratchet profile v1 (SPEC.md §9.1). "
                "Computed 2026-11-28 by tests/vectors/safety_numbers/generate.py with Python's hashlib, "
                "independently of the Rust implementation. Identity keys are the RFC 8032 §7.1 TEST 1-3 "
                "public keys. The result does not depend on the order of identity_a and identity_b.",
    "label": LABEL.decode(),
    "iterations": ITERATIONS,
    "cases": cases,
}, indent=2))
