"""Several hosts behind a load balancer: the tokens in PostgreSQL or Redis, the sessions in Redis
(Flask-Session). Shown in docs/deployment.rst; tests/test_docs_configs.py runs it."""

import redis
from flask import Flask
from flask_session import Session
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_oauth2_client import OAuth2Client

oauth = OAuth2Client()


def create_app(config=None):
    app = Flask(__name__)
    # Everything else comes from the environment, the same on every host: FLASK_SECRET_KEY,
    # FLASK_REDIS_URL, FLASK_OAUTH2_TOKEN_STORE, FLASK_OAUTH2_TOKEN_STORE_URL,
    # FLASK_OAUTH2_TOKEN_ENCRYPTION_KEYS, FLASK_OAUTH2_PROVIDERS__corp__client_id, ...
    app.config.from_prefixed_env()
    app.config.update(
        SESSION_TYPE="redis",  # server-side sessions: the cookie holds only a session id
        SESSION_COOKIE_SECURE=True,  # ... and travels over HTTPS only
        SESSION_COOKIE_SAMESITE="Lax",  # "Strict" would drop it on the provider's redirect back
    )
    app.config.update(config or {})
    app.config["SESSION_REDIS"] = redis.Redis.from_url(app.config["REDIS_URL"])
    Session(app)  # before the OAuth2 extension, which then sees the server-side session
    oauth.init_app(app)

    # One proxy (the load balancer) in front: believe its X-Forwarded-Proto and X-Forwarded-Host,
    # so that the redirect URI is https://<public host>/oauth2/corp/callback.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)

    @app.get("/profile")
    @oauth.token_required("corp")
    def profile(token):
        return {"scopes": sorted(token.scopes)}

    return app
