"""
A fake of Anthropic's account hosts for the CLI's subscription login: the
OAuth token endpoint (C{https://platform.claude.com/v1/oauth/token}) and
the account API (C{https://api.anthropic.com/api/oauth/usage},
C{/api/oauth/profile}).

The CLI refuses a custom OAuth URL that is not one of Anthropic's own
(C{CLAUDE_CODE_CUSTOM_OAUTH_URL} has an allowlist), but it honours
C{HTTPS_PROXY} and C{NODE_EXTRA_CA_CERTS} for these hosts (checked with
2.1.197 and 2.1.332): this fake is an HTTP CONNECT proxy on loopback that
ends the TLS itself with a certificate for those hosts signed by a CA of
its own, and answers them.  C{NO_PROXY} keeps the Messages API (the fake
upstream, C{ANTHROPIC_BASE_URL} on loopback) direct.

The token endpoint rotates refresh tokens as the real one does: a refresh
token works once; using it again is C{invalid_grant}.  Access tokens are
valid until their C{expires_in} has passed (L{valid}, for the fake
upstream).
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
from typing import Any, Optional

import attrs
from twisted.internet import ssl
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from tests.fakes import tcp_port

#: the hosts the fake answers for (a CONNECT to any other is refused)
HOSTS = ("api.anthropic.com", "platform.claude.com", "claude.ai")
SCOPES = ["user:inference", "user:profile", "user:sessions:claude_code"]


def make_certificates(directory: str) -> tuple[str, bytes]:
    """
    A CA (its PEM written to C{directory}/ca.pem, for C{NODE_EXTRA_CA_CERTS})
    and a server certificate for L{HOSTS} it signs; the CA's path and the
    server's key and certificate in PEM.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "claudeproxy test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOSTS[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in HOSTS]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = os.path.join(directory, "ca.pem")
    with open(ca_path, "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ) + leaf.public_bytes(serialization.Encoding.PEM)
    return ca_path, pem


@attrs.define
class Seen:
    host: str
    method: str
    path: str
    authorization: str
    body: Any


class _Api(Resource):
    isLeaf = True

    def __init__(self, account: FakeAccount) -> None:
        super().__init__()
        self.account = account

    def render(self, request: Request) -> bytes:
        raw = request.content.read() if request.content is not None else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        host = (request.getHeader(b"host") or b"").decode().split(":")[0]
        auth = (request.getHeader(b"authorization") or b"").decode()
        path = request.path.decode()
        self.account.seen.append(Seen(host, request.method.decode(), path, auth, body))
        request.setHeader(b"content-type", b"application/json")
        code, answer = self.account.answer(request.method.decode(), path, auth, body)
        request.setResponseCode(code)
        return json.dumps(answer).encode()


class _Tunnel(Protocol):
    """
    One proxy connection: a CONNECT to one of L{HOSTS}, then TLS with the
    fake's certificate, then HTTP to the fake's site.
    """

    def __init__(self, account: FakeAccount) -> None:
        self.account = account
        self.head = b""
        self.channel: Any = None

    def dataReceived(self, data: bytes) -> None:
        if self.channel is not None:
            self.channel.dataReceived(data)
            return
        self.head += data
        if b"\r\n\r\n" not in self.head:
            return
        head, rest = self.head.split(b"\r\n\r\n", 1)
        method, target = (head.split(b"\r\n", 1)[0].split(b" ") + [b"", b""])[:2]
        host = target.decode("latin-1").rsplit(":", 1)[0]
        self.account.connects.append(host)
        assert self.transport is not None
        if method != b"CONNECT" or host not in HOSTS:
            self.transport.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
            self.transport.loseConnection()
            return
        self.transport.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.transport.startTLS(self.account.tls)  # type: ignore[attr-defined]
        self.channel = self.account.site.buildProtocol(self.transport.getPeer())
        self.channel.makeConnection(self.transport)
        if rest:
            self.channel.dataReceived(rest)

    def connectionLost(self, reason: Any = None) -> None:
        if self.channel is not None:
            self.channel.connectionLost(reason)


class FakeAccount:
    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.dir = tempfile.mkdtemp(prefix="cp-account-")
        self.ca_path, pem = make_certificates(self.dir)
        self.tls = ssl.PrivateCertificate.loadPEM(pem).options()
        self.site = Site(_Api(self))
        self.site.noisy = False
        self.port: Optional[IListeningPort] = None
        self.connects: list[str] = []
        self.seen: list[Seen] = []
        #: seconds an issued access token lives
        self.expires_in = 3600
        #: the refresh token that works now (each works once)
        self.refresh_token = "rt-0"
        #: access token -> when it expires (epoch seconds)
        self.access: dict[str, float] = {}
        self.issued = 0
        #: the refreshes answered, and those refused
        self.refreshes: list[str] = []
        self.refused: list[str] = []
        #: the login is revoked: every refresh is invalid_grant
        self.revoked = False
        #: what /api/oauth/usage answers (the real API's shape)
        self.usage: dict[str, Any] = {
            "five_hour": {"utilization": 12.0, "resets_at": "2026-12-06T08:00:00.000000+00:00"},
            "seven_day": {"utilization": 64.0, "resets_at": "2026-12-10T12:00:00.000000+00:00"},
            "seven_day_oauth_apps": None,
            "seven_day_opus": None,
            "seven_day_sonnet": None,
            "extra_usage": {
                "is_enabled": True,
                "monthly_limit": 5000,
                "used_credits": 1234,
                "utilization": 24.68,
                "currency": "USD",
            },
        }

    def listen(self) -> str:
        factory = Factory.forProtocol(lambda: _Tunnel(self))
        self.port = self.reactor.listenTCP(0, factory, interface="127.0.0.1")
        assert self.port is not None
        return "http://127.0.0.1:%d" % (tcp_port(self.port),)

    def stop(self) -> Any:
        assert self.port is not None
        return self.port.stopListening()

    def env(self, proxy: str) -> dict[str, str]:
        """
        What the CLI's environment needs to reach this fake (the fake
        upstream on loopback stays direct).
        """
        return {
            "HTTPS_PROXY": proxy,
            "https_proxy": proxy,
            "NODE_EXTRA_CA_CERTS": self.ca_path,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }

    def issue(self, lifetime: float) -> str:
        self.issued += 1
        token = "at-%d" % (self.issued,)
        self.access[token] = self.reactor.seconds() + lifetime
        return token

    def valid(self, authorization: str) -> bool:
        """
        Whether an C{Authorization} header carries an access token that has
        not expired.
        """
        token = authorization.split(" ", 1)[-1]
        expires = self.access.get(token)
        return expires is not None and expires > self.reactor.seconds()

    def write_credentials(self, home: str, lifetime: float) -> str:
        """
        A stored login in C{home} (as C{claude} then C{/login} writes it on
        Linux) whose access token expires in C{lifetime} seconds; the token.
        """
        token = self.issue(lifetime)
        os.makedirs(os.path.join(home, ".claude"), exist_ok=True)
        path = os.path.join(home, ".claude", ".credentials.json")
        with open(path, "w") as f:
            json.dump(
                {
                    "claudeAiOauth": {
                        "accessToken": token,
                        "refreshToken": self.refresh_token,
                        "expiresAt": int(self.access[token] * 1000),
                        "scopes": SCOPES,
                        "subscriptionType": "max",
                    }
                },
                f,
            )
        os.chmod(path, 0o600)
        return token

    def answer(self, method: str, path: str, authorization: str, body: Any) -> tuple[int, Any]:
        if path == "/v1/oauth/token" and method == "POST":
            return self._token(body if isinstance(body, dict) else {})
        if path.startswith("/api/oauth/"):
            if not self.valid(authorization):
                return 401, {
                    "type": "error",
                    "error": {"type": "authentication_error", "message": "OAuth token has expired"},
                }
            if path == "/api/oauth/usage":
                return 200, self.usage
            if path == "/api/oauth/profile":
                return 200, {
                    "account": {"uuid": "acc-1", "email_address": "user@example.com"},
                    "organization": {
                        "uuid": "org-1",
                        "organization_type": "claude_max",
                        "rate_limit_tier": "default_claude_max_20x",
                    },
                }
        return 404, {"type": "error", "error": {"type": "not_found_error", "message": "not in the fake"}}

    def _token(self, body: dict[str, Any]) -> tuple[int, Any]:
        given = str(body.get("refresh_token"))
        if body.get("grant_type") != "refresh_token" or self.revoked or given != self.refresh_token:
            self.refused.append(given)
            return 400, {"error": "invalid_grant", "error_description": "Invalid refresh token"}
        self.refreshes.append(given)
        self.refresh_token = "rt-%d" % (len(self.refreshes),)
        return 200, {
            "token_type": "Bearer",
            "access_token": self.issue(self.expires_in),
            "refresh_token": self.refresh_token,
            "expires_in": self.expires_in,
            "scope": " ".join(SCOPES),
        }
