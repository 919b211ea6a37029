"""Bearer tokens for writes: HS256 JWTs signed with `JWT_SECRET`, carrying `products:write` in `scope`.

Registered claims are checked for type as well as value (RFC 7519, section 4.1: `exp`, `nbf` and `iat`
are NumericDates, JSON numbers): PyJWT converts a string `exp` with int() and would accept it. With
`JWT_AUDIENCE` / `JWT_ISSUER` set, `aud` and `iss` are required and must match.
"""

from __future__ import annotations

import time
from typing import Any

import jwt

from product_service.errors import ApiError

WRITE_SCOPE = "products:write"
_ALGORITHM = "HS256"
_NUMERIC_DATE_CLAIMS = ("exp", "nbf", "iat")

# What the client is told for each way a token can be wrong: about the token, never PyJWT's own words.
_INVALID_TOKEN_MESSAGES: tuple[tuple[type[jwt.InvalidTokenError], str], ...] = (
    (jwt.ImmatureSignatureError, "the bearer token is not valid yet (nbf)"),
    (jwt.InvalidAudienceError, "the bearer token is not meant for this service (aud)"),
    (jwt.InvalidIssuerError, "the bearer token comes from another issuer (iss)"),
    (jwt.InvalidAlgorithmError, f"the bearer token must be signed with {_ALGORITHM}"),
    (jwt.InvalidSignatureError, "the bearer token's signature does not match"),
    (jwt.DecodeError, "the bearer token is not a well-formed JWT"),
)


class TokenVerifier:
    """Checks the `Authorization` header of a write: 401 when absent or invalid, 403 without the scope."""

    def __init__(
        self,
        secret: str,
        required_scope: str = WRITE_SCOPE,
        audience: str | None = None,
        issuer: str | None = None,
    ) -> None:
        self._secret = secret
        self._required_scope = required_scope
        self._audience = audience
        self._issuer = issuer
        self._required_claims = ["exp", *(["aud"] if audience else []), *(["iss"] if issuer else [])]

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
        claims = self._verified_claims(token.strip())
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

    def _verified_claims(self, token: str) -> dict[str, Any]:
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            raise _unauthorized("invalid_token", "the bearer token is not a well-formed JWT") from None
        for claim in _NUMERIC_DATE_CLAIMS:
            value = unverified.get(claim)
            if claim in unverified and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise _unauthorized("invalid_token", f"the bearer token's {claim} claim must be a number")
        try:
            # Pinning the algorithm list rejects "none" and algorithm-confusion tokens; exp is mandatory
            # so that a leaked token stops working on its own.
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": self._required_claims},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("token_expired", "the bearer token has expired") from None
        except jwt.MissingRequiredClaimError as error:
            raise _unauthorized("invalid_token", f"the bearer token lacks the {error.claim} claim") from None
        except jwt.InvalidTokenError as error:
            raise _unauthorized("invalid_token", _invalid_token_message(error)) from None
        return claims


def mint_token(
    secret: str,
    subject: str,
    ttl_seconds: int,
    scope: str = WRITE_SCOPE,
    audience: str | None = None,
    issuer: str | None = None,
) -> str:
    """A signed token, for local development and tests."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": subject, "scope": scope, "iat": now, "exp": now + ttl_seconds}
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)


def _invalid_token_message(error: jwt.InvalidTokenError) -> str:
    for kind, message in _INVALID_TOKEN_MESSAGES:
        if isinstance(error, kind):
            return message
    return "the bearer token is invalid"


def _unauthorized(code: str, message: str) -> ApiError:
    return ApiError(401, code, message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
