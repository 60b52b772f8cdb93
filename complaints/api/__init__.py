"""The HTTP API: FastAPI, versioned under ``/api/v1``, OpenAPI at ``/openapi.json``.

Everything staff can do from the CLI, for housing-management systems, resident portals
and the ``complaints`` CLI's remote mode, as an authenticated person or integration
(:mod:`complaints.identity`) within the permission matrix (:mod:`domain.permissions`).
Errors are RFC 9457 problem details (:mod:`complaints.api.problems`).
"""

from complaints.api.app import create_app

__all__ = ["create_app"]
