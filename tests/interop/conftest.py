"""Fixtures for the interop tests: the OpenID Certified ``oidc-provider`` (npm, pinned in
oidc_provider/package.json) run by oidc_provider/launcher.mjs as a real authorization server on
127.0.0.1.

``oidc_provider`` is one server for the whole session with a confidential web client (see
``DEFAULT_CLIENT``); ``oidc_provider_factory`` starts further servers with clients and options of a
test's own (short token lifetimes, key rotation without disturbing other tests, ...).

Without ``node``/``npm`` the tests are skipped, except under ``CI=true``, where they fail.

For private_key_jwt / client_secret_jwt, DPoP and friends: :func:`make_client_key` makes a client
key pair (private and public JWK, PEM), :func:`client_assertion` signs an RFC 7523 client assertion,
:func:`dpop_proof` an RFC 9449 proof, and :func:`serve_jwks` / the ``jwks_server`` fixture serve a
client's JWKS over http://127.0.0.1 for a client registered with ``jwks_uri`` (start the provider
with ``fetch_loopback=True`` so that oidc-provider may fetch it).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric import rsa

HERE = Path(__file__).resolve().parent
PACKAGE_DIR = HERE / "oidc_provider"
LAUNCHER = PACKAGE_DIR / "launcher.mjs"
READY_PREFIX = "OIDC_PROVIDER_READY "
START_TIMEOUT = 30.0

CLIENT_ID = "flask-web"
CLIENT_SECRET = "flask-web-secret-that-is-long-enough-for-hs256"
#: The session provider's client: confidential (client_secret_basic), code flow with PKCE,
#: refresh tokens (with offline_access + prompt=consent), client_credentials.
DEFAULT_CLIENT: dict[str, Any] = {
    "client_id": CLIENT_ID,
    "client_secret": CLIENT_SECRET,
    "redirect_uris": ["http://localhost/oauth2/op/callback"],
    "post_logout_redirect_uris": ["http://localhost/", "http://localhost/logged-out"],
    "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "client_secret_basic",
    "scope": "openid offline_access profile email api:read api:write",
}
#: Scopes known besides openid/offline_access/profile/email; client_credentials tokens carry these.
DEFAULT_SCOPES = ["api:read", "api:write"]
#: ``client_assertion_type`` of RFC 7523 client authentication.
JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: ``grant_type`` of the device authorization grant (RFC 8628); clients need it in ``grant_types``.
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the interop tests must run on CI)", pytrace=False)
    pytest.skip(reason)


def _installed_version() -> str | None:
    try:
        manifest = json.loads((PACKAGE_DIR / "node_modules" / "oidc-provider" / "package.json").read_text())
    except (OSError, ValueError):
        return None
    return str(manifest.get("version"))


def _pinned_version() -> str:
    return str(json.loads((PACKAGE_DIR / "package.json").read_text())["dependencies"]["oidc-provider"])


def _ensure_node_modules() -> None:
    """``npm ci`` when oidc-provider is missing or not the pinned version (``make pytest`` does it too)."""
    npm = shutil.which("npm")
    if not shutil.which("node") or not npm:
        _unavailable("node and npm are needed to run oidc-provider for the interop tests")
        return
    if _installed_version() == _pinned_version():
        return
    command = [npm, "ci", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"]
    result = subprocess.run(  # noqa: S603 - npm with our fixed arguments
        command, cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode != 0 or _installed_version() != _pinned_version():
        _unavailable(f"`npm ci` in {PACKAGE_DIR} failed:\n{result.stdout}\n{result.stderr}")


@dataclass
class OIDCProvider:
    """A running oidc-provider. ``client_id``/``client_secret`` are those of its first client."""

    issuer: str
    port: int
    admin_token: str
    clients: list[dict[str, Any]]
    process: subprocess.Popen[bytes]
    log_path: Path
    kids: list[str] = field(default_factory=list)
    _metadata: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def metadata_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def client(self) -> dict[str, Any]:
        return self.clients[0]

    @property
    def client_id(self) -> str:
        return str(self.client["client_id"])

    @property
    def client_secret(self) -> str:
        return str(self.client.get("client_secret", ""))

    @property
    def metadata(self) -> dict[str, Any]:
        """The discovery document (fetched once)."""
        if self._metadata is None:
            answer = requests.get(self.metadata_url, timeout=5)
            answer.raise_for_status()
            self._metadata = answer.json()
        return self._metadata

    def endpoint(self, name: str) -> str:
        """A metadata URL by name: ``endpoint("token")`` is ``token_endpoint``, ``endpoint("jwks")`` is ``jwks_uri``."""
        key = "jwks_uri" if name == "jwks" else f"{name}_endpoint"
        return str(self.metadata[key])

    def jwks(self) -> dict[str, Any]:
        answer = requests.get(self.endpoint("jwks"), timeout=5)
        answer.raise_for_status()
        return dict(answer.json())

    def log(self) -> str:
        """What the launcher and oidc-provider wrote to stderr so far."""
        return self.log_path.read_text(errors="replace")

    # -- admin hooks ----------------------------------------------------------------------------

    def _admin(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = requests.post(
            f"{self.issuer}/_harness/{action}",
            json=body,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=10,
        )
        assert answer.status_code == 200, f"admin {action}: {answer.status_code} {answer.text}"
        return dict(answer.json())

    def rotate_keys(self, *, keep_previous: bool = True) -> list[str]:
        """New signing keys from now on; returns their ``kid`` values. The previous keys stay in
        the JWKS (tokens they signed still verify) unless ``keep_previous=False``. Sessions, grants
        and tokens issued before the rotation stay valid."""
        answer = self._admin("rotate-keys", {"keep_previous": keep_previous})
        self.kids = list(answer["kids"])
        return list(answer["signing_kids"])

    def update_client(self, client: dict[str, Any]) -> None:
        """Add a client, or replace the one with the same ``client_id`` (all of its metadata)."""
        self._admin("clients", client)
        for index, known in enumerate(self.clients):
            if known["client_id"] == client["client_id"]:
                self.clients[index] = copy.deepcopy(client)
                break
        else:
            self.clients.append(copy.deepcopy(client))

    def _client(self, client_id: str | None) -> dict[str, Any]:
        wanted = client_id or self.client_id
        for known in self.clients:
            if known["client_id"] == wanted:
                return copy.deepcopy(known)
        raise KeyError(wanted)

    def register_redirect_uri(self, *uris: str, client_id: str | None = None) -> None:
        """Allow more ``redirect_uris`` for a client (default: the first), e.g. a live example
        app's ``http://127.0.0.1:<port>/oauth2/op/callback``."""
        client = self._client(client_id)
        client["redirect_uris"] = list(dict.fromkeys([*client.get("redirect_uris", []), *uris]))
        self.update_client(client)

    def register_post_logout_redirect_uri(self, *uris: str, client_id: str | None = None) -> None:
        client = self._client(client_id)
        known = client.get("post_logout_redirect_uris", [])
        client["post_logout_redirect_uris"] = list(dict.fromkeys([*known, *uris]))
        self.update_client(client)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


ProviderFactory = Callable[..., OIDCProvider]


# -- client keys, assertions, DPoP proofs, a JWKS server ----------------------------------------------


@dataclass
class ClientKey:
    """A client's signing key pair (for private_key_jwt, DPoP, signed request objects)."""

    alg: str
    kid: str
    private_key: Any  # a cryptography private key

    @property
    def public_jwk(self) -> dict[str, Any]:
        """The public JWK (with ``kid``, ``alg``, ``use``), for a client's ``jwks`` / ``jwks_uri``."""
        algorithm = jwt.get_algorithm_by_name(self.alg)
        jwk = dict(json.loads(algorithm.to_jwk(self.private_key.public_key())))
        jwk.pop("key_ops", None)
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    @property
    def private_jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        jwk = dict(json.loads(algorithm.to_jwk(self.private_key)))
        jwk.pop("key_ops", None)
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    @property
    def private_pem(self) -> str:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk]}

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        return jwt.encode(claims, self.private_key, algorithm=self.alg, headers={"kid": self.kid, **(headers or {})})


def make_client_key(alg: str = "ES256", kid: str | None = None) -> ClientKey:
    """A fresh key pair: ``ES256`` (P-256), ``RS256``/``PS256`` (RSA 2048) or ``EdDSA`` (Ed25519).
    oidc-provider 9 accepts HS256, RS256, PS256, ES256, Ed25519/EdDSA for client assertions, and
    ES256, Ed25519/EdDSA (not RSA) for DPoP proofs."""
    if alg == "ES256":
        key: Any = ec.generate_private_key(ec.SECP256R1())
    elif alg in ("RS256", "PS256"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "EdDSA":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"unsupported alg {alg}")
    return ClientKey(alg=alg, kid=kid or f"{alg.lower()}-{uuid.uuid4().hex[:8]}", private_key=key)


def client_assertion(
    client_id: str,
    audience: str | list[str],
    *,
    key: ClientKey | None = None,
    secret: str | None = None,
    jti: str | None = None,
    lifetime: int = 60,
    extra: dict[str, Any] | None = None,
) -> str:
    """An RFC 7523 client assertion: signed with *key* (private_key_jwt) or HS256 with *secret*
    (client_secret_jwt). oidc-provider 9 requires ``iss`` = ``sub`` = client_id, ``aud``, ``jti``
    and ``exp``; see test_harness_beyond.py for the audiences it accepts."""
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": jti or uuid.uuid4().hex,
        "iat": now,
        "exp": now + lifetime,
        **(extra or {}),
    }
    if key is not None:
        return key.sign(claims)
    if secret is None:
        raise ValueError("a key or a secret is needed")
    return jwt.encode(claims, secret, algorithm="HS256")


def dpop_proof(
    key: ClientKey,
    method: str,
    url: str,
    *,
    access_token: str | None = None,
    nonce: str | None = None,
    jti: str | None = None,
    iat: int | None = None,
) -> str:
    """An RFC 9449 DPoP proof: ``typ`` dpop+jwt, the public ``jwk`` in the header, ``htm``,
    ``htu`` (query and fragment are ignored by the provider), ``iat``, ``jti``, and ``ath`` (the
    access token's SHA-256, base64url) when *access_token* is given."""
    claims: dict[str, Any] = {
        "htm": method,
        "htu": url,
        "iat": int(time.time()) if iat is None else iat,
        "jti": jti or uuid.uuid4().hex,
    }
    if access_token is not None:
        digest = hashlib.sha256(access_token.encode()).digest()
        claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    if nonce is not None:
        claims["nonce"] = nonce
    public = {name: value for name, value in key.public_jwk.items() if name not in ("kid", "alg", "use")}
    return jwt.encode(claims, key.private_key, algorithm=key.alg, headers={"typ": "dpop+jwt", "jwk": public})


class JWKSServer:
    """A client's JWKS at ``url`` (http://127.0.0.1:<port>/jwks.json), served from a thread.
    ``keys`` can be changed at any time; ``hits`` counts the GET requests served."""

    def __init__(self, keys: list[dict[str, Any]] | None = None, *, cache_control: str | None = None) -> None:
        self.keys: list[dict[str, Any]] = list(keys or [])
        self.cache_control = cache_control
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/jwks.json":
                    self.send_error(404)
                    return
                server.hits += 1
                body = json.dumps({"keys": server.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if server.cache_control:
                    self.send_header("Cache-Control", server.cache_control)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/jwks.json"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def serve_jwks(keys: list[dict[str, Any]] | None = None, *, cache_control: str | None = None) -> JWKSServer:
    """Start a :class:`JWKSServer`; call ``stop()`` when done (or use the ``jwks_server`` fixture)."""
    return JWKSServer(keys, cache_control=cache_control)


def start_provider(workdir: Path, *, clients: list[dict[str, Any]] | None = None, **options: Any) -> OIDCProvider:
    """Start launcher.mjs on a free 127.0.0.1 port; *options* are further launcher config keys
    (``ttl``, ``features``, ``scopes``, ``resource_servers``, ``issue_refresh_token``, ``dpop``, ``par``,
    ``device_flow``, ``fetch_loopback``, ...; see launcher.mjs's header)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = {"scopes": DEFAULT_SCOPES, **options, "clients": copy.deepcopy(clients or [DEFAULT_CLIENT])}
    config_path = workdir / "config.json"
    config_path.write_text(json.dumps(config, indent=2))
    out_path, log_path = workdir / "stdout.log", workdir / "stderr.log"
    with out_path.open("wb") as out, log_path.open("wb") as err:
        process = subprocess.Popen(  # noqa: S603 - node running our launcher
            [shutil.which("node") or "node", str(LAUNCHER), str(config_path), "--port", "0"],
            cwd=PACKAGE_DIR,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )

    def fail(reason: str) -> None:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        log = log_path.read_text(errors="replace")
        pytest.fail(f"oidc-provider did not start: {reason}\n--- launcher stderr ---\n{log}", pytrace=False)

    deadline = time.monotonic() + START_TIMEOUT
    ready: dict[str, Any] | None = None
    while ready is None:
        for line in out_path.read_text(errors="replace").splitlines():
            if line.startswith(READY_PREFIX):
                ready = json.loads(line[len(READY_PREFIX) :])
        if ready is not None:
            break
        if process.poll() is not None:
            fail(f"the launcher exited with status {process.returncode}")
        if time.monotonic() > deadline:
            fail(f"no ready line within {START_TIMEOUT:.0f}s")
        time.sleep(0.02)

    provider = OIDCProvider(
        issuer=ready["issuer"],
        port=int(ready["port"]),
        admin_token=ready["admin_token"],
        clients=config["clients"],
        process=process,
        log_path=log_path,
        kids=list(ready["kids"]),
    )
    while True:
        try:
            if requests.get(provider.metadata_url, timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            fail(f"{provider.metadata_url} did not answer")
        time.sleep(0.02)
    return provider


@pytest.fixture(scope="session")
def oidc_provider_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProviderFactory]:
    """``factory(clients=[...], ttl={"AccessToken": 2}, ...)`` starts a provider of the test's own
    (``clients`` defaults to ``[DEFAULT_CLIENT]``); all are stopped at the end of the session."""
    _ensure_node_modules()
    started: list[OIDCProvider] = []

    def factory(*, clients: list[dict[str, Any]] | None = None, **options: Any) -> OIDCProvider:
        provider = start_provider(tmp_path_factory.mktemp("oidc-provider"), clients=clients, **options)
        started.append(provider)
        return provider

    try:
        yield factory
    finally:
        for provider in started:
            provider.stop()


@pytest.fixture(scope="session")
def oidc_provider(oidc_provider_factory: ProviderFactory) -> OIDCProvider:
    """One oidc-provider for the whole session, with ``DEFAULT_CLIENT``."""
    return oidc_provider_factory()


@pytest.fixture
def jwks_server() -> Iterator[JWKSServer]:
    """An empty :class:`JWKSServer` for the test (set ``jwks_server.keys``); stopped afterwards."""
    server = serve_jwks()
    try:
        yield server
    finally:
        server.stop()
