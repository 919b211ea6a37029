"""What a credential looks like, for the rules that look for credentials in plain places.

Two signals, both visible to a policy in the engine (which receives secret values unwrapped and
cannot tell which ones were Pulumi secrets): the *name* a value is stored under, and the *shape* of
the value itself.
"""

from __future__ import annotations

import re

# A key that names a credential: DB_PASSWORD, apiKey, client_secret, GITHUB_TOKEN, ... Anchored at
# the end, so keys that *point at* a credential held elsewhere (secretName, passwordKey, tokenFile,
# credentialsPath) do not match; existingSecret is the one common pointer that ends like a credential.
_SECRET_KEY = re.compile(
    r"(passw(or)?d|passwd|secret|token|apikey|privatekey|accesskey|credentials?|authstring)$"
)

_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    (
        "a URL with a password",
        re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:(?!\$\(|\$\{)[^/\s@]+@", re.IGNORECASE),
    ),
    ("an AWS access key id", re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("a Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b")),
    ("a JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
)


def looks_like_secret_key(key: str) -> bool:
    """True when a key names a credential rather than a reference to one."""
    compact = re.sub(r"[^a-z0-9]", "", key.lower())
    return not compact.startswith("existing") and bool(_SECRET_KEY.search(compact))


def secret_shaped(value: str) -> str | None:
    """What kind of credential `value` contains, judging by its shape alone; None if none."""
    for label, pattern in _SHAPES:
        if pattern.search(value):
            return label
    return None
