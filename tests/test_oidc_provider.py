"""The tests' real OpenID Connect provider: discovery, a full PKCE sign-in, refusals."""

from __future__ import annotations

import base64
import hashlib
import time
import warnings
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from authlib.deprecate import AuthlibDeprecationWarning

with warnings.catch_warnings():  # authlib 1.x deprecates authlib.jose in favour of joserfc
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.jose import JsonWebKey, jwt

from tests.oidc_provider import OidcError, OidcProvider, pkce_pair, sign_in

WEB = "complaints-web"
WEB_SECRET = "web-secret-for-tests-only"


def _redirect_uri(provider: OidcProvider, client_id: str) -> str:
    return str(provider.client(client_id)["redirect_uris"][0])


def _verify(provider: OidcProvider, token: str, **claims_options: object) -> dict[str, object]:
    keys = JsonWebKey.import_key_set(httpx.get(provider.jwks_uri, timeout=10).json())
    claims = jwt.decode(token, keys, claims_options=claims_options)
    claims.validate(now=int(time.time()))
    return dict(claims)


def test_discovery_advertises_s256_pkce_and_jwks(oidc_provider: OidcProvider) -> None:
    """Discovery offers only S256 PKCE and a jwks_uri that serves an RSA signing key."""
    discovery = oidc_provider.discovery
    assert discovery["issuer"] == oidc_provider.issuer
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert discovery["jwks_uri"] == oidc_provider.jwks_uri
    keys = httpx.get(oidc_provider.jwks_uri, timeout=10).json()["keys"]
    assert [key["kty"] for key in keys] == ["RSA"]
    assert "d" not in keys[0]


def test_sign_in_gives_api_access_token_jwt(oidc_provider: OidcProvider) -> None:
    """The PKCE sign-in returns a JWT access token for the API that verifies on the JWKS."""
    tokens = sign_in(oidc_provider, client_id=WEB, client_secret=WEB_SECRET,
                     redirect_uri=_redirect_uri(oidc_provider, WEB), login="alex.case")
    assert tokens["token_type"].lower() == "bearer"
    claims = _verify(oidc_provider, tokens["access_token"],
                     iss={"essential": True, "value": oidc_provider.issuer},
                     aud={"essential": True, "value": oidc_provider.audience},
                     sub={"essential": True, "value": "alex.case"},
                     exp={"essential": True})
    assert claims["iss"] == oidc_provider.issuer
    aud = claims["aud"]
    assert oidc_provider.audience in (aud if isinstance(aud, list) else [aud])
    assert claims["sub"] == "alex.case"
    assert claims["client_id"] == WEB
    assert claims["email"] == "alex.case@staff.example.test"
    id_claims = _verify(oidc_provider, tokens["id_token"], aud={"essential": True, "value": WEB})
    assert id_claims["sub"] == "alex.case"
    assert id_claims["email"] == "alex.case@staff.example.test"
    assert id_claims["email_verified"] is True
    assert id_claims["name"] == "alex.case"


def test_authorisation_without_pkce_is_refused(oidc_provider: OidcProvider) -> None:
    """An authorisation code request without a code challenge is sent back with an error."""
    redirect_uri = _redirect_uri(oidc_provider, WEB)
    params = {"response_type": "code", "client_id": WEB, "redirect_uri": redirect_uri,
              "scope": "openid profile email", "state": "s-1"}
    response = httpx.get(f"{oidc_provider.discovery['authorization_endpoint']}?"
                         f"{urlencode(params)}", follow_redirects=False, timeout=10)
    assert response.is_redirect
    location = response.headers["location"]
    assert location.split("?")[0] == redirect_uri
    answer = parse_qs(urlsplit(location).query)
    assert answer["error"] == ["invalid_request"]
    assert "PKCE" in answer["error_description"][0]
    assert "code" not in answer


def test_wrong_client_secret_is_refused_at_token_endpoint(oidc_provider: OidcProvider) -> None:
    """A code exchanged with the wrong client secret is refused as invalid_client."""
    with pytest.raises(OidcError) as refused:
        sign_in(oidc_provider, client_id=WEB, client_secret="not-the-secret",
                redirect_uri=_redirect_uri(oidc_provider, WEB), login="alex.case")
    assert refused.value.error == "invalid_client"
    assert refused.value.status == 401
    assert "token endpoint" in str(refused.value)


def test_pkce_pair_is_s256() -> None:
    """The PKCE challenge is the unpadded base64url SHA-256 of a 64-character verifier."""
    verifier, challenge = pkce_pair()
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    assert challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    assert len(verifier) == 64
