"""Secrets out of everything patina stores, logs, shows or exports: one redaction for URIs and text.

A manifest may reach its masters with credentials in the URI: ``s3://KEY:SECRET@bucket/x.jpg``,
``https://user:pass@host/x.jpg``, or pre-signed URLs (``?X-Amz-Signature=...``, Google's
``X-Goog-*``, Azure SAS ``sig=``). patina reads the master with the URI as given (the manifest
keeps its copy) and everywhere else uses :func:`redact`: the user information of every URL is
dropped and the values of signing query parameters become ``REDACTED``. Provenance, logs, the
report, PREMIS, IIIF, the terminal and Prefect's database (flow parameters, task logs, error
messages) only ever see the redacted form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

MARK = "REDACTED"

SIGNING_PARAMETERS = frozenset(
    {
        # AWS Signature V4 / V2 pre-signed URLs
        "x-amz-signature", "x-amz-credential", "x-amz-security-token", "awsaccesskeyid", "signature",
        # Google Cloud Storage signed URLs
        "x-goog-signature", "x-goog-credential", "googleaccessid",
        # Azure shared access signatures, CloudFront signed URLs, and the usual bearer spellings
        "sig", "key-pair-id", "policy", "token", "access_token", "api_key", "apikey", "password", "secret",
    }
)  # fmt: skip
"""Query parameters whose values are credentials (compared in lower case)."""

_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^/\s@?#'\"]+)@")
_PARAMETER = re.compile(r"(?P<sep>[?&;])(?P<name>[A-Za-z0-9_.\-]+)=(?P<value>[^&\s#'\"]*)")


def _parameter(match: re.Match[str]) -> str:
    if match["name"].lower() not in SIGNING_PARAMETERS or not match["value"]:
        return match[0]
    return f"{match['sep']}{match['name']}={MARK}"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` (a URI, or a message holding URIs) without credentials: userinfo and signing values removed.

    ``s3://AKIA:secret@bucket/x.jpg`` -> ``s3://bucket/x.jpg``;
    ``https://h/x.jpg?X-Amz-Signature=abc&v=2`` -> ``https://h/x.jpg?X-Amz-Signature=REDACTED&v=2``.
    ``secrets`` (:func:`secrets_of` a URI) are also replaced wherever they appear, for messages that
    quote a part of the URI without its scheme (botocore: ``Invalid bucket name "AKIA:secret@bucket"``).
    Text without any of them comes back unchanged.
    """
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MARK)
    if "@" not in text and "=" not in text:
        return text
    return _PARAMETER.sub(_parameter, _USERINFO.sub(r"\g<scheme>", text))


def secrets_of(uri: str) -> list[str]:
    """The credentials ``uri`` holds, as written and URL-decoded: its userinfo and signing parameter values."""
    found: list[str] = []
    if match := _USERINFO.search(uri):
        found.append(match["userinfo"])
        found.extend(part for part in match["userinfo"].split(":", 1) if len(part) >= 4)
    for match in _PARAMETER.finditer(uri):
        if match["name"].lower() in SIGNING_PARAMETERS and match["value"]:
            found.append(match["value"])
    return sorted({variant for value in found for variant in (value, unquote(value)) if variant}, key=len)


def has_credentials(uri: str) -> bool:
    """Whether :func:`redact` changes ``uri``."""
    return redact(uri) != uri
