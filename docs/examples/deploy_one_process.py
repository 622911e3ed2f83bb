"""One process: the development server, or gunicorn with one worker (and as many threads as you
like). Shown in docs/deployment.rst; tests/test_docs_configs.py runs it."""

from flask import Flask

from flask_oauth2_client import OAuth2Client

oauth = OAuth2Client()


def create_app(config=None):
    app = Flask(__name__)
    # FLASK_SECRET_KEY, FLASK_OAUTH2_PROVIDERS__corp__client_id, ... (see Configuration)
    app.config.from_prefixed_env()
    # Tokens in this process's memory: nothing of them reaches the browser, no server is needed,
    # and they are gone when the process stops. Without this line the default "session" store
    # keeps them, encrypted, in the session cookie instead.
    app.config["OAUTH2_TOKEN_STORE"] = "memory"
    app.config.update(config or {})
    oauth.init_app(app)

    @app.get("/profile")
    @oauth.token_required("corp")
    def profile(token):
        return {"scopes": sorted(token.scopes)}

    return app
