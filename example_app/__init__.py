"""A small Flask app that signs in with OAuth 2.0 through flask-oauth2-client.

Run it with ``make demo`` (or ``flask --app example_app.app run``); see ``example_app/README.md``.
"""
