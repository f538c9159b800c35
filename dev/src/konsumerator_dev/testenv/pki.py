"""A throwaway PKI and admin kubeconfig for one local cluster, made with the openssl CLI.

Why openssl and not a Python library: it is on every Debian machine and needs nothing from
PyPI. Why a real PKI at all: the operator must be tested with RBAC on, which needs real
client identities. The layout follows envtest and kwokctl:

* ``ca.crt/ca.key``: one CA that signs everything (also kcm's CSR signer);
* ``apiserver.crt``: serving cert for 127.0.0.1/localhost/kubernetes.default.svc;
* ``admin.crt``: client cert in ``system:masters`` (kubectl, kcm, scheduler, kwok, tests);
* ``sa.key/sa.pub``: ServiceAccount token signing pair, so TokenRequest works.

Keys are ECDSA P-256 (Kubernetes accepts them for TLS and as ES256 token signing keys):
generating four RSA keys costs seconds on a busy 2-core machine, EC keys milliseconds.

The SKI/AKI extensions make the chain acceptable to Python 3.13's strict X.509 checks.
"""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import yaml

from konsumerator_dev.testenv.errors import TestenvError

_CA_CNF = """\
[req]
distinguished_name = dn
x509_extensions = v3_ca
prompt = no
[dn]
CN = konsumerator-testenv-ca
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
"""

_EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256")

_SERVER_SANS = (
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
    "DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1"
)


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise TestenvError(f"openssl {' '.join(args)} failed:\n{result.stderr.strip()}")


def _sign(directory: Path, name: str, subject: str, extensions: list[str]) -> None:
    ext = directory / f"{name}.ext"
    ext.write_text(
        "\n".join([*extensions, "subjectKeyIdentifier=hash", "authorityKeyIdentifier=keyid,issuer"])
        + "\n"
    )
    csr = f"{name}.csr"
    _openssl(
        "req", "-new", *_EC_KEY, "-nodes", "-sha256", "-subj", subject,
        "-keyout", f"{name}.key", "-out", csr, cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-sha256", "-days", "3650", "-in", csr, "-CA", "ca.crt",
        "-CAkey", "ca.key", "-set_serial", f"0x{secrets.token_hex(12)}",
        "-extfile", ext.name, "-out", f"{name}.crt", cwd=directory,
    )  # fmt: skip
    (directory / csr).unlink()
    ext.unlink()


def generate(directory: Path) -> None:
    """Write the CA, serving, admin and ServiceAccount key material into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.cnf").write_text(_CA_CNF)
    _openssl(
        "req", "-x509", "-new", "-nodes", *_EC_KEY, "-sha256", "-days", "3650",
        "-keyout", "ca.key", "-out", "ca.crt", "-config", "ca.cnf", cwd=directory,
    )  # fmt: skip
    _sign(
        directory,
        "apiserver",
        "/CN=kube-apiserver",
        [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature",
            "extendedKeyUsage=serverAuth",
            f"subjectAltName={_SERVER_SANS}",
        ],
    )
    _sign(
        directory,
        "admin",
        "/O=system:masters/CN=konsumerator-testenv-admin",
        [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature",
            "extendedKeyUsage=clientAuth",
        ],
    )
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "sa.key",
        cwd=directory,
    )  # fmt: skip
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=directory)
    for key in directory.glob("*.key"):
        key.chmod(0o600)


def write_kubeconfig(path: Path, *, server: str, pki: Path, cluster: str) -> None:
    """An admin kubeconfig with absolute paths, usable by kubectl, lightkube and the binaries."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": f"{cluster}-admin",
                "user": {
                    "client-certificate": str(pki / "admin.crt"),
                    "client-key": str(pki / "admin.key"),
                },
            }
        ],
        "contexts": [
            {
                "name": cluster,
                "context": {"cluster": cluster, "user": f"{cluster}-admin", "namespace": "default"},
            }
        ],
        "current-context": cluster,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
