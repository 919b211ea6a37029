"""Bearer tokens for writes: HS256 JWTs signed with `JWT_SECRET`, carrying `products:write` in `scope`."""

from __future__ import annotations

import time
from typing import Any

import jwt

from product_service.errors import ApiError

WRITE_SCOPE = "products:write"
_ALGORITHM = "HS256"


class TokenVerifier:
    """Checks the `Authorization` header of a write: 401 when absent or invalid, 403 without the scope."""

    def __init__(self, secret: str, required_scope: str = WRITE_SCOPE) -> None:
        self._secret = secret
        self._required_scope = required_scope

    def require_scope(self, authorization: str | None) -> dict[str, Any]:
        """The token's claims; raises `ApiError` (401/403) otherwise."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                "missing_token",
                "an Authorization: Bearer <token> header is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            # Pinning the algorithm list rejects "none" and algorithm-confusion tokens; exp is mandatory
            # so that a leaked token stops working on its own.
            claims: dict[str, Any] = jwt.decode(
                token.strip(), self._secret, algorithms=[_ALGORITHM], options={"require": ["exp"]}
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("token_expired", "the bearer token has expired") from None
        except jwt.InvalidTokenError as error:
            raise _unauthorized("invalid_token", f"the bearer token is invalid: {error}") from None
        scopes = claims.get("scope")
        if not isinstance(scopes, str) or self._required_scope not in scopes.split():
            raise ApiError(
                403,
                "insufficient_scope",
                f"the bearer token lacks the {self._required_scope} scope",
                headers={
                    "WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{self._required_scope}"'
                },
            )
        return claims


def mint_token(secret: str, subject: str, ttl_seconds: int, scope: str = WRITE_SCOPE) -> str:
    """A signed token, for local development and tests."""
    now = int(time.time())
    return jwt.encode(
        {"sub": subject, "scope": scope, "iat": now, "exp": now + ttl_seconds}, secret, algorithm=_ALGORITHM
    )


def _unauthorized(code: str, message: str) -> ApiError:
    return ApiError(401, code, message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
