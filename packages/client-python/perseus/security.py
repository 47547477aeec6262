"""TLS and bearer tokens for the client's three links, from arguments and environment variables.

For link ``agent``, ``optimizer`` or ``profiler`` (``<LINK>`` below, upper-case), each setting is
taken from the argument, else ``PERSEUS_<LINK>_<NAME>``, else ``PERSEUS_<NAME>`` (for the token:
the first level that has a token or a token file wins):

========================  ===================================================================
``TOKEN``                  bearer token, sent as ``authorization: Bearer <token>``
``TOKEN_FILE``             file holding the token (first line); must not be readable by others
``TLS_CA``                 PEM CA bundle that signs the server's certificate; enables TLS
``TLS_CERT``/``TLS_KEY``   PEM client certificate and key (mutual TLS)
========================  ===================================================================

A ``grpcs://`` or ``https://`` URL also enables TLS (with the system's roots unless a CA is given).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from perseus._grpc import LinkSecurity

LINKS = ("agent", "optimizer", "profiler")


def _setting(link: str, name: str, arg: str | None, env: Mapping[str, str]) -> str | None:
    if arg:
        return arg
    return env.get(f"PERSEUS_{link.upper()}_{name}") or env.get(f"PERSEUS_{name}") or None


def _token(link: str, token: str | None, token_file: str | None, env: Mapping[str, str]) -> str:
    """The first of: argument token, argument file, the link's variables, the generic ones."""
    levels = [(token, token_file), (env.get(f"PERSEUS_{link.upper()}_TOKEN"), env.get(f"PERSEUS_{link.upper()}_TOKEN_FILE")), (env.get("PERSEUS_TOKEN"), env.get("PERSEUS_TOKEN_FILE"))]
    for secret, path in levels:
        if secret:
            return secret
        if path:
            return read_token_file(path)
    return ""


def read_token_file(path: str) -> str:
    """The token in ``path`` (first line). Refuses a file other users can read, as ssh does for keys."""
    st = os.stat(path)
    if st.st_mode & (stat.S_IROTH | stat.S_IWOTH):
        raise ValueError(f"token file {path} is readable by other users (mode {stat.S_IMODE(st.st_mode):o}); chmod 600 it")
    token = Path(path).read_text().strip().splitlines()
    if not token or not token[0].strip():
        raise ValueError(f"token file {path} is empty")
    return token[0].strip()


def resolve_security(
    link: str,
    *,
    token: str | None = None,
    token_file: str | None = None,
    tls_ca_file: str | None = None,
    tls_cert_file: str | None = None,
    tls_key_file: str | None = None,
    env: Mapping[str, str] | None = None,
) -> LinkSecurity:
    """The :class:`LinkSecurity` of one link (see the module docstring for the order)."""
    if link not in LINKS:
        raise ValueError(f"link must be one of {LINKS}, got {link!r}")
    e = os.environ if env is None else env
    secret = _token(link, token, token_file, e)
    ca = _setting(link, "TLS_CA", tls_ca_file, e)
    cert = _setting(link, "TLS_CERT", tls_cert_file, e)
    key = _setting(link, "TLS_KEY", tls_key_file, e)
    if bool(cert) != bool(key):
        raise ValueError(f"{link}: a TLS client certificate needs both TLS_CERT and TLS_KEY")
    return LinkSecurity(
        tls=bool(ca or cert),
        root_certificates=Path(ca).read_bytes() if ca else None,
        certificate_chain=Path(cert).read_bytes() if cert else None,
        private_key=Path(key).read_bytes() if key else None,
        token=secret,
    )
