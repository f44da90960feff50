"""A bare ASGI app for the workers' tests: it cannot be imported while the file named by
QA_TEST_FAIL_FLAG exists (a worker that cannot start); otherwise it answers with its pid."""

import os
from pathlib import Path
from typing import Any

if Path(os.environ.get("QA_TEST_FAIL_FLAG", "/nonexistent")).exists():
    raise RuntimeError("this worker cannot start while the flag file exists")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
