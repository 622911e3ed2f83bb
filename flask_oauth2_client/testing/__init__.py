"""Test helpers: :class:`FakeProvider`, a real OAuth 2.0 authorization server.

:class:`FakeProvider` runs a small authorization server and protected resource
on a loopback port in a background thread. Point a provider configuration at
its URLs to test an application end to end, over real HTTP, without any
network access::

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

With pytest, the plugin :mod:`flask_oauth2_client.testing.pytest_plugin`
(registered automatically when the package is installed) provides the
``fake_provider`` fixture.

This package depends only on Flask, Werkzeug and the standard library.
"""

from .provider import FakeProvider
from .provider import Fault
from .provider import RecordedRequest

__all__ = ["FakeProvider", "Fault", "RecordedRequest"]
