"""pytest fixtures for testing with :class:`~flask_oauth2_client.testing.FakeProvider`.

The plugin is registered through the ``pytest11`` entry point, so installing
flask-oauth2-client makes these fixtures available in every test suite:

``fake_provider_server`` (session scope)
    One :class:`~flask_oauth2_client.testing.FakeProvider`, started on an
    ephemeral loopback port for the whole test session and stopped at its end.
    Its state is shared by all tests: prefer ``fake_provider``.

``fake_provider`` (function scope)
    The same provider, :meth:`~flask_oauth2_client.testing.FakeProvider.reset`
    before the test: no tokens, codes, faults or recorded requests; only the
    default client (``demo-client`` / ``demo-secret``) and user (``alice`` /
    ``wonderland``); the constructor options restored (a test may change
    ``fake_provider.auto_approve`` and the like freely). The URL stays the same
    for the whole session. ::

        def test_refresh(fake_provider):
            token = fake_provider.issue_token(expires_in=0)
            ...
            assert fake_provider.calls("token", grant_type="refresh_token") == 1

A test that needs a provider of its own (for instance to stop it and simulate
an outage) can start one with ``with FakeProvider() as provider:``.

To disable the plugin, run pytest with ``-p no:flask_oauth2_client``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .provider import FakeProvider


@pytest.fixture(scope="session")
def fake_provider_server() -> Iterator[FakeProvider]:
    """A :class:`~flask_oauth2_client.testing.FakeProvider` running for the whole session."""
    from .provider import FakeProvider

    with FakeProvider() as provider:
        yield provider


@pytest.fixture
def fake_provider(fake_provider_server: FakeProvider) -> FakeProvider:
    """The session's :class:`~flask_oauth2_client.testing.FakeProvider`, reset to its defaults."""
    fake_provider_server.reset()
    return fake_provider_server
