"""A service process leaves the system's CA bundle on disk and reads each CA certificate from the hashed directory
when a TLS peer needs it (libs/lean_start.py, `ca_certificates_on_demand`): the same trust, 1.5-2 MB less memory.

The outbound https calls are made by aiohttp, with the verified context it builds when imported, so the checks
below import aiohttp in a fresh interpreter after the lean start and connect to a real TLS server on loopback.
"""

from __future__ import annotations

import datetime
import json
import os
import ssl
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from libs.lean_start import ca_certificates_on_demand

REPO = Path(__file__).resolve().parents[2]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, key, issuer: str, issuer_key, *, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer)).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _server_files(folder: Path, name: str, ca_name: str) -> x509.Certificate:
    """A `localhost` certificate and its key in `name`.pem and `name`.key, issued by a new CA: that CA."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate(ca_name, ca_key, ca_name, ca_key, ca=True)
    (folder / f"{name}.pem").write_bytes(_pem(_certificate("localhost", key, ca_name, ca_key, ca=False)))
    (folder / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    return ca


def _system(bundle: Path, directory: Path) -> SimpleNamespace:
    """OpenSSL's defaults as `ssl.get_default_verify_paths()` gives them, here the test's bundle and directory."""
    return SimpleNamespace(openssl_cafile_env="SSL_CERT_FILE", openssl_cafile=str(bundle),
                           openssl_capath_env="SSL_CERT_DIR", openssl_capath=str(directory))


def _trust_store(tmp_path: Path, cas: list[x509.Certificate]) -> tuple[Path, Path]:
    """A bundle of these CAs and the hashed directory mirroring it, as update-ca-certificates makes them."""
    directory = tmp_path / "certs"
    directory.mkdir()
    for i, ca in enumerate(cas):
        (directory / f"ca{i}.pem").write_bytes(_pem(ca))
    subprocess.run(["openssl", "rehash", str(directory)], check=True, capture_output=True)
    bundle = tmp_path / "ca-certificates.crt"
    bundle.write_bytes(b"".join(_pem(ca) for ca in cas))
    return bundle, directory


PROBE = """
import asyncio, json, ssl, sys
from types import SimpleNamespace
from libs.lean_start import ca_certificates_on_demand, leave_out_optional_extras

leave_out_optional_extras()
system = SimpleNamespace(**json.loads(sys.argv[1]))
on_demand = json.loads(sys.argv[2]) and ca_certificates_on_demand(verify_paths=system)
import aiohttp
from aiohttp import web
from aiohttp.connector import _SSL_CONTEXT_VERIFIED as verified

async def main():
    loaded_at_start = verified.cert_store_stats()["x509_ca"]
    outcomes = {}
    for name in ("trusted", "stranger"):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(f"{sys.argv[3]}/{name}.pem", f"{sys.argv[3]}/{name}.key")
        app = web.Application()
        app.router.add_get("/", lambda request: web.Response(text="hello"))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"https://localhost:{port}/") as response:
                    outcomes[name] = await response.text()
        except aiohttp.ClientConnectorCertificateError:
            outcomes[name] = "certificate refused"
        finally:
            await runner.cleanup()
    print(json.dumps({"on_demand": on_demand, "loaded_at_start": loaded_at_start, "outcomes": outcomes,
                      "loaded_after": verified.cert_store_stats()["x509_ca"]}))

asyncio.run(main())
"""


def _probe(tmp_path: Path, *, on_demand: bool) -> dict:
    trusted_ca = _server_files(tmp_path, "trusted", "Harbour test CA")
    _server_files(tmp_path, "stranger", "Nobody's CA")  # its CA in no trust store
    other_ca = _server_files(tmp_path, "other", "Another trusted CA")
    bundle, directory = _trust_store(tmp_path, [trusted_ca, other_ca])
    env = {**os.environ, "SSL_CERT_FILE": str(bundle), "SSL_CERT_DIR": str(directory)}
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(vars(_system(bundle, directory))), json.dumps(on_demand),
                          str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_with_the_bundle_left_out_the_same_servers_are_trusted_and_a_ca_is_read_only_when_a_chain_needs_it(tmp_path):
    result = _probe(tmp_path, on_demand=True)
    assert result["on_demand"] is True
    assert result["loaded_at_start"] == 0
    assert result["outcomes"] == {"trusted": "hello", "stranger": "certificate refused"}
    assert result["loaded_after"] == 1  # the trusted server's CA, read from the directory; not the other one


def test_without_it_every_ca_of_the_bundle_is_parsed_at_import(tmp_path):
    result = _probe(tmp_path, on_demand=False)
    assert result["loaded_at_start"] == 2
    assert result["outcomes"] == {"trusted": "hello", "stranger": "certificate refused"}


def test_a_bundle_an_operator_chose_is_kept(tmp_path):
    ca = _server_files(tmp_path, "trusted", "Harbour test CA")
    bundle, directory = _trust_store(tmp_path, [ca])
    own = tmp_path / "corporate.pem"
    own.write_bytes(_pem(ca))
    environ = {"SSL_CERT_FILE": str(own)}
    assert ca_certificates_on_demand(environ, _system(bundle, directory)) is False
    assert environ == {"SSL_CERT_FILE": str(own)}


def test_a_directory_that_does_not_mirror_the_bundle_leaves_the_bundle_in_use(tmp_path):
    first = _server_files(tmp_path, "one", "CA one")
    second = _server_files(tmp_path, "two", "CA two")
    bundle, directory = _trust_store(tmp_path, [first, second])
    for link in directory.iterdir():
        if link.name.endswith(".0"):
            link.unlink()
            break  # one certificate of the bundle missing from the directory
    environ: dict[str, str] = {}
    assert ca_certificates_on_demand(environ, _system(bundle, directory)) is False
    assert environ == {}


def test_a_service_on_this_machine_starts_with_no_ca_parsed():
    """The machine's own trust store (Debian's ca-certificates: the bundle and its hashed directory)."""
    probe = ("import json\nfrom libs.lean_start import start_lean\nstart_lean()\n"
             "from aiohttp.connector import _SSL_CONTEXT_VERIFIED as v\nprint(json.dumps(v.cert_store_stats()['x509_ca']))")
    system = ssl.get_default_verify_paths()
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                         check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == 0, system
