"""libs/outbound: which URLs and peer addresses the platform may call (pure logic), and the guarded client against a local server."""

from __future__ import annotations

import socket

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver

from libs.devstack.processes import free_port
from libs.outbound import Outbound, OutboundError, OutboundURLRefused, check_url
from libs.outbound.addresses import parse, refusal
from libs.outbound.client import RefusedAddress, _guarded_socket_factory

REFUSED_URLS = [
    "http://169.254.169.254/latest/meta-data/", "https://169.254.169.254/", "https://10.0.0.1/", "https://192.168.1.1/",
    "https://172.16.5.4/", "https://100.64.0.1/", "https://[fd00::1]/", "https://[fc00::1]/", "https://[fe80::1]/",
    "https://[::ffff:127.0.0.1]/", "https://[::ffff:a9fe:a9fe]/", "https://[::ffff:8.8.8.8]/", "https://[::127.0.0.1]/",
    "https://[64:ff9b::a00:1]/", "https://[2002:a00:1::]/", "https://[2001::1]/", "https://0.0.0.0/", "https://[::]/",
    "https://224.0.0.1/", "https://255.255.255.255/", "https://240.0.0.1/", "https://192.0.2.1/", "https://[2001:db8::1]/",
    "https://2130706433/", "https://127.1/", "https://0x7f.0.0.1/", "https://017700000001/", "https://metadata/",
    "https://metadata.google.internal/", "https://printer.local/", "https://[ff02::1]/",
    "ftp://agency.example/", "file:///etc/passwd", "https://user:pw@agency.example/", "https://agency.example/#x",
    "http://agency.example/cb",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_private_mapped_and_malformed_urls_are_refused_even_when_loopback_is_allowed(url):
    for allow in (False, True):
        with pytest.raises(OutboundURLRefused):
            check_url(url, allow_loopback=allow)


@pytest.mark.parametrize("url", ["https://127.0.0.1/", "http://127.0.0.1:8080/cb", "http://localhost:9/x", "https://[::1]/", "http://[::1]:80/", "https://a.localhost/"])
def test_loopback_only_with_the_setting(url):
    with pytest.raises(OutboundURLRefused):
        check_url(url, allow_loopback=False)
    assert check_url(url, allow_loopback=True) == url


@pytest.mark.parametrize("url", ["https://agency.example/cb", "https://8.8.8.8/", "https://[2606:4700::1111]/jwks", "https://a-b.gov.hk:8443/x?y=1"])
def test_public_https_urls_are_accepted(url):
    assert check_url(url, allow_loopback=False) == url


def test_the_setting_is_read_from_the_environment(monkeypatch):
    monkeypatch.delenv("HARBOUR_OUTBOUND_ALLOW_LOOPBACK", raising=False)
    with pytest.raises(OutboundURLRefused):
        check_url("http://127.0.0.1:1/")
    monkeypatch.setenv("HARBOUR_OUTBOUND_ALLOW_LOOPBACK", "1")
    assert check_url("http://127.0.0.1:1/")


def test_addresses_embedding_ipv4_are_refused_whatever_they_embed():
    for text in ("::ffff:8.8.8.8", "::ffff:0:8.8.8.8", "64:ff9b::808:808", "64:ff9b:1::808:808", "2002:808:808::1", "2001:0:4136:e378::1", "::8.8.8.8"):
        assert refusal(parse(text), allow_loopback=True), text
    assert refusal(parse("8.8.8.8")) is None and refusal(parse("2606:4700::1111")) is None
    assert refusal(parse("fe80::1%eth0"), allow_loopback=True)


class FakeNames(AbstractResolver):
    """A name service under test control: each name answers the addresses it is given (DNS rebinding: a list per call)."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def resolve(self, host, port=0, family=socket.AF_INET):
        self.calls.append(host)
        addresses = self.answers[host].pop(0) if len(self.answers[host]) > 1 else self.answers[host][0]
        return [{"hostname": host, "host": a, "port": port, "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST} for a in addresses]

    async def close(self):
        pass


@pytest.fixture
async def local_server():
    hits: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        hits.append(request.path)
        if request.path == "/redirect":
            raise web.HTTPFound("http://127.0.0.1:1/elsewhere")
        if request.path == "/big":
            return web.Response(body=b"x" * 100_000)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port, hits
    await runner.cleanup()


async def test_a_name_resolving_to_loopback_or_private_is_refused_at_connection_time_and_nothing_is_sent(local_server):
    port, hits = local_server
    # Registration sees a public address; by the time of the call the name answers loopback (DNS rebinding).
    names = FakeNames({"rebind.example": [["93.184.216.34"], ["127.0.0.1"]], "mixed.example": [["93.184.216.34", "10.0.0.7"]]})
    outbound = Outbound(allow_loopback=False, resolver=names)
    await outbound.check_resolved(f"https://rebind.example:{port}/cb")
    with pytest.raises(OutboundError, match="127.0.0.1"):
        await outbound.request("POST", f"https://rebind.example:{port}/cb", data=b"x")
    with pytest.raises(OutboundURLRefused, match="10.0.0.7"):
        await outbound.check_resolved("https://mixed.example/cb")
    assert hits == []


async def test_loopback_refused_without_the_setting_and_called_with_it(local_server):
    port, hits = local_server
    with pytest.raises(OutboundError, match="must use https|loopback"):
        await Outbound(allow_loopback=False).request("GET", f"http://127.0.0.1:{port}/x")
    assert hits == []
    answer = await Outbound(allow_loopback=True).request("GET", f"http://127.0.0.1:{port}/x")
    assert answer.status == 200 and answer.body == b"ok" and hits == ["/x"]


async def test_no_redirects_bounded_size_and_failures_remembered(local_server):
    port, hits = local_server
    outbound = Outbound(allow_loopback=True, failure_ttl_s=60)
    assert (await outbound.request("GET", f"http://127.0.0.1:{port}/redirect")).status == 302
    assert hits == ["/redirect"]  # the Location was not followed
    with pytest.raises(OutboundError, match="larger than"):
        await outbound.request("GET", f"http://127.0.0.1:{port}/big", max_bytes=1000)
    with pytest.raises(OutboundError, match="moments ago"):
        await outbound.request("GET", f"http://127.0.0.1:{port}/x")
    assert hits == ["/redirect", "/big"]  # the origin's failure was remembered: no new request
    dead = free_port()
    with pytest.raises(OutboundError, match="could not connect"):
        await outbound.request("GET", f"http://127.0.0.1:{dead}/")


def test_the_socket_is_checked_against_the_address_it_connects_to():
    refused: list[str] = []
    factory = _guarded_socket_factory(False, refused)
    with pytest.raises(RefusedAddress):
        factory((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80)))
    with pytest.raises(RefusedAddress):
        factory((socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::ffff:10.0.0.1", 80, 0, 0)))
    sock = factory((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443)))
    sock.close()
    assert len(refused) == 2
