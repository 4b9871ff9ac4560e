"""SSRF edge ranges: addresses that wrap an internal IPv4 address, and the IETF protocol block."""

from __future__ import annotations

import ipaddress

import pytest

from pipeline.blob_rules import address_problem


@pytest.mark.parametrize("text", [
    "2002:7f00:1::1",  # 6to4 around 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 around the cloud metadata address
    "2002:0a00:0001::",  # 6to4 around 10.0.0.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo whose client is 127.0.0.1
    "64:ff9b::7f00:1",  # NAT64 (well-known prefix) around 127.0.0.1
    "64:ff9b:1::a9fe:a9fe",  # NAT64 (local-use prefix) around the metadata address
    "::ffff:127.0.0.1",  # IPv4-mapped
    "192.0.0.8",  # IETF protocol assignments: all of 192.0.0.0/24
    "192.0.0.0",
    "192.0.0.170",
    "192.0.0.255",
])
def test_addresses_that_reach_inside_are_refused(text: str) -> None:
    assert address_problem(ipaddress.ip_address(text)) is not None, text


def test_a_relay_is_refused_whatever_it_wraps() -> None:
    """6to4 and Teredo are deprecated relays: refused on Python 3.11 and 3.13 alike."""
    assert address_problem(ipaddress.ip_address("2002:5db8:d822::1")) == "6to4 relay (6to4 around 93.184.216.34)"


def test_an_embedded_address_is_named_in_the_reason() -> None:
    reason = address_problem(ipaddress.ip_address("2002:7f00:1::1"))
    assert reason is not None and "127.0.0.1" in reason and "6to4" in reason


@pytest.mark.parametrize("text", [
    "93.184.216.34",
    "2606:4700::6810:84e5",
    "192.0.1.1",  # next door to 192.0.0.0/24, but public
])
def test_public_addresses_pass(text: str) -> None:
    assert address_problem(ipaddress.ip_address(text)) is None
