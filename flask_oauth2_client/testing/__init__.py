"""Test helpers: :class:`FakeProvider`, a real OAuth 2.0 authorization server and OpenID provider.

:class:`FakeProvider` runs a small authorization server, OpenID Connect
provider and protected resource on a loopback port in a background thread.
Point a provider configuration at its URLs to test an application end to end,
over real HTTP, without any network access::

    from flask_oauth2_client.testing import FakeProvider, Fault

    with FakeProvider() as provider:
        app.config["OAUTH2_PROVIDERS"] = {
            "fake": {
                "authorize_url": provider.authorize_url,
                "token_url": provider.token_url,
                "client_id": provider.client_id,
                "client_secret": provider.client_secret,
            }
        }
        provider.set_fault("token", Fault(status=503, times=1))
        ...
        assert provider.calls("token", grant_type="refresh_token") == 1

With the ``openid`` scope it issues ID tokens signed with keys it publishes at
:attr:`FakeProvider.jwks_url`; :meth:`FakeProvider.make_id_token` and
:meth:`FakeProvider.set_next_id_token` forge broken ones for negative tests.

It also speaks JWT client authentication (``private_key_jwt``,
``client_secret_jwt``), pushed authorization requests, DPoP and the device
authorization grant; :func:`jwk_thumbprint` computes the RFC 7638 thumbprint
DPoP binds tokens to.

With pytest, the plugin :mod:`flask_oauth2_client.testing.pytest_plugin`
(registered automatically when the package is installed) provides the
``fake_provider`` fixture.

This package depends only on Flask, Werkzeug, PyJWT, cryptography and the
standard library.
"""

from ._jose import jwk_thumbprint
from .provider import DPoPProof
from .provider import FakeProvider
from .provider import Fault
from .provider import RecordedRequest
from .provider import SigningKey

__all__ = ["DPoPProof", "FakeProvider", "Fault", "RecordedRequest", "SigningKey", "jwk_thumbprint"]
