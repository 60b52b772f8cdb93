"""The staff web app: server-rendered pages (Jinja2 and htmx) beside the HTTP API.

``create_web_app`` serves both: the API under ``/api/v1`` and the pages at ``/``. Staff
sign in with OpenID Connect (or, in ``complaints dev`` only, by picking a seeded member of
staff); every page acts as the signed-in person through the same checks as the API.
"""

from complaints.web.app import create_web_app

__all__ = ["create_web_app"]
