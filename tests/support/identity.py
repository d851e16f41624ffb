"""A local stand-in of the App Service managed-identity endpoint (IDENTITY_ENDPOINT).

The real ``azure-identity`` code asks it for tokens exactly as it would in production:
``GET <IDENTITY_ENDPOINT>?api-version=2019-08-01&resource=...`` with X-IDENTITY-HEADER.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@dataclass
class IdentityEndpoint:
    """Issues numbered tokens to callers that present ``secret``; records each request."""

    secret: str
    lifetime: int = 3600
    requests: list[dict[str, str]] = field(default_factory=list)

    def token(self, number: int) -> str:
        return f"mi-token-{number}"

    def app(self) -> Starlette:
        async def issue(request: Request) -> JSONResponse:
            self.requests.append(dict(request.query_params))
            if request.headers.get("x-identity-header") != self.secret:
                return JSONResponse({"error": "bad identity header"}, status_code=401)
            resource = request.query_params.get("resource", "")
            return JSONResponse(
                {
                    "access_token": self.token(len(self.requests)),
                    "expires_on": str(int(time.time()) + self.lifetime),
                    "resource": resource,
                    "token_type": "Bearer",
                }
            )

        return Starlette(routes=[Route("/msi/token", issue)])
