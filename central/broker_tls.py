"""A private CA and a server certificate for the broker's TLS listener.

For sites without a PKI of their own: `roadwatch central broker-files` writes these next
to the password and ACL files. Nodes and central trust ``ca.crt`` only.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Roadwatch"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def certificate_hosts(path: Path) -> list[str]:
    """The host names and addresses a server certificate is for (its SANs)."""
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(n.value) for n in names]


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


FILES = ("ca.crt", "ca.key", "server.crt", "server.key")


def write_broker_tls(folder: Path, hostnames: list[str], *, days: int = 825) -> TlsFiles:
    """Write ca.crt, ca.key, server.crt and server.key for ``hostnames`` into ``folder``.

    Never replaces any of them: nodes trust ``ca.crt``, and a new CA would cut them off.
    ValueError for a bad host name or a file already there; nothing is written then.
    """
    if not hostnames:
        raise ValueError("at least one broker host name or address is needed")
    for host in hostnames:
        if not host or host != host.strip():
            raise ValueError(f"not a host name: {host!r}")
    there = [name for name in FILES if (folder / name).exists()]
    if there:
        raise ValueError(
            f"{folder} already holds {', '.join(there)}; nodes may trust that CA, so nothing"
            " is replaced (move the files away to make new ones)"
        )
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Roadwatch broker CA"))
        .issuer_name(_name("Roadwatch broker CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    alt_names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hostnames[0] if len(hostnames[0]) <= 64 else "Roadwatch broker"))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    # All four are written under temporary names first, then renamed into place: an
    # interrupted run leaves no partial set (which the next run would have to refuse).
    staged = {
        "ca.crt": (ca_cert.public_bytes(serialization.Encoding.PEM), 0o644),
        "server.crt": (server_cert.public_bytes(serialization.Encoding.PEM), 0o644),
        "ca.key": (_key_pem(ca_key), 0o600),
        "server.key": (_key_pem(server_key), 0o600),
    }
    temporary = []
    try:
        for name, (data, mode) in staged.items():
            tmp = folder / f".{name}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            temporary.append(tmp)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        for name in staged:
            (folder / f".{name}.tmp").replace(folder / name)
    finally:
        for tmp in temporary:
            tmp.unlink(missing_ok=True)
    return TlsFiles(folder / "ca.crt", folder / "server.crt", folder / "server.key")
