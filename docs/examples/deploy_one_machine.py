"""Several worker processes on one machine (gunicorn -w 4): the tokens in a SQLite file that every
worker opens; no database server. Shown in docs/deployment.rst; tests/test_docs_configs.py runs it."""

from flask import Flask

from flask_oauth2_client import OAuth2Client

oauth = OAuth2Client()


def create_app(config=None, instance_path=None):
    # The tokens go to <instance folder>/oauth2_tokens.sqlite3: Flask's instance folder ("instance"
    # beside the application when it is not installed), or the absolute path given here.
    app = Flask(__name__, instance_path=instance_path)
    # FLASK_SECRET_KEY (the same for every worker), FLASK_OAUTH2_TOKEN_ENCRYPTION_KEYS,
    # FLASK_OAUTH2_PROVIDERS__corp__client_id, ... (see Configuration)
    app.config.from_prefixed_env()
    # The "sql" store without OAUTH2_TOKEN_STORE_URL: SQLite in the instance folder. Workers share
    # the tokens, and a file lock beside the database lets one of them refresh a token at a time.
    app.config["OAUTH2_TOKEN_STORE"] = "sql"
    app.config.update(config or {})
    oauth.init_app(app)

    @app.get("/profile")
    @oauth.token_required("corp")
    def profile(token):
        return {"scopes": sorted(token.scopes)}

    return app
