"""The HTTP API's routes, one module a concern, each an ``APIRouter`` that server.py's
``create_app`` includes:

- ``ask``: ``POST /api/ask``; ``search``: ``GET /api/search``; ``sources``:
  ``GET /api/sources/{doc_id}``; ``feedback``: ``POST /api/feedback``;
- ``admin``: ``POST``/``GET /api/admin/reindex``; ``admin_sources``: ``POST``/``GET
  /api/admin/sources``, ``DELETE /api/admin/sources/{doc_id}`` (both need the admin token);
- ``ops``: ``GET /healthz``, ``GET /readyz``; ``pages``: the demo page and the widget.

The routes take what they need from ``deps`` (FastAPI dependencies reading ``app.state``),
their models and documented errors from ``schemas``; ``errors`` holds the exception
handlers. The request guard (rate limit, body limits, security headers) is qa/limits.py.
"""
