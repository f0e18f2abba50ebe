"""The app's own signing keys for ``private_key_jwt`` (client-confidential-asymmetric) and Backend Services.

Spec: https://hl7.org/fhir/smart-app-launch/STU2.2/client-confidential-asymmetric.html

- "The client SHALL support both" ``RS384`` and ``ES384``; keys here carry one of those two ``alg`` values.
- "each JWK SHALL represent an asymmetric key by including ``kty`` and ``kid`` properties", with ``n``/``e``
  (RSA) or ``crv``/``x``/``y`` (EC). A key loaded without ``kid`` gets its RFC 7638 thumbprint.
- "The client SHALL protect the associated private key": :meth:`ClientKeySet.private_jwks` is for a
  secret store only; :meth:`ClientKeySet.public_jwks` is what the app serves at its JWKS URL.

JOSE is done with ``joserfc`` (``authlib.jose`` is deprecated since authlib 1.6 in favour of it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, KeyParameters, RSAKey

from .errors import ConfigurationError

__all__ = ["SIGNING_ALGORITHMS", "ClientKeySet", "generate_private_jwks"]

#: The two algorithms a SMART client SHALL support, in our order of preference.
SIGNING_ALGORITHMS: tuple[str, ...] = ("RS384", "ES384")

_MIN_RSA_BITS = 2048
SigningKey = RSAKey | ECKey


def _normalise(key: Any) -> SigningKey:
    """Check that ``key`` is a private RS384/ES384 key and give it ``alg``, ``use`` and ``kid``."""
    if not isinstance(key, (RSAKey, ECKey)):
        raise ConfigurationError("signing keys must be RSA or EC keys")
    if not key.is_private:
        raise ConfigurationError(f"key {key.kid!r} is a public key; a private key is needed to sign")
    if isinstance(key, RSAKey):
        expected = "RS384"
        if key.raw_value.key_size < _MIN_RSA_BITS:
            raise ConfigurationError(f"RSA keys must be at least {_MIN_RSA_BITS} bits")
    else:
        expected = "ES384"
        if key.curve_name != "P-384":
            raise ConfigurationError(f"ES384 needs a P-384 key, not {key.curve_name}")
    if key.alg is not None and key.alg != expected:
        raise ConfigurationError(f"key {key.kid!r} has alg {key.alg!r}; SMART clients sign with {expected}")
    if key.get("use") not in (None, "sig"):
        raise ConfigurationError(f"key {key.kid!r} is not a signing key (use={key.get('use')!r})")
    data = key.as_dict(private=True)
    data.update(alg=expected, use="sig")
    normalised = JWKRegistry.import_key(data)
    normalised.ensure_kid()
    assert isinstance(normalised, (RSAKey, ECKey))
    return normalised


class ClientKeySet:
    """The app's private signing keys; the first key of each algorithm is the one used to sign.

    Keep a retired key in the set (after the new one) during rotation so it stays in the public JWKS
    until servers have fetched the new key (backend-services.md, "keep the old and new keys").
    """

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[Any]) -> None:
        normalised = [_normalise(key) for key in keys]
        if not normalised:
            raise ConfigurationError("a client key set needs at least one key")
        kids = [key.kid for key in normalised]
        if len(set(kids)) != len(kids):
            raise ConfigurationError("each key needs a unique 'kid' within the key set")
        self._keys: tuple[SigningKey, ...] = tuple(normalised)

    @classmethod
    def generate(
        cls, algorithms: Sequence[str] = SIGNING_ALGORITHMS, *, rsa_bits: int = 2048
    ) -> ClientKeySet:
        """A new key set with one fresh key per algorithm (RS384 -> RSA, ES384 -> P-384)."""
        keys: list[SigningKey] = []
        for alg in algorithms:
            if alg == "RS384":
                keys.append(
                    RSAKey.generate_key(rsa_bits, parameters={"alg": alg, "use": "sig"}, auto_kid=True)
                )
            elif alg == "ES384":
                keys.append(ECKey.generate_key("P-384", parameters={"alg": alg, "use": "sig"}, auto_kid=True))
            else:
                raise ConfigurationError(f"unsupported signing algorithm {alg!r}; use RS384 or ES384")
        return cls(keys)

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any] | str | bytes) -> ClientKeySet:
        """Load a private JWK set (``{"keys": [...]}``), as a mapping or JSON text."""
        try:
            data = json.loads(jwks) if isinstance(jwks, (str, bytes)) else jwks
            entries = data["keys"]
            if not isinstance(entries, list):
                raise TypeError("'keys' must be a list")
            return cls(JWKRegistry.import_key(dict(entry)) for entry in entries)
        except (ValueError, KeyError, TypeError, JoseError) as exc:
            raise ConfigurationError(f"not a usable private JWK set: {exc}") from exc

    @classmethod
    def from_pem(
        cls, pem: str | bytes, *, kid: str | None = None, password: str | bytes | None = None
    ) -> ClientKeySet:
        """Load one private key from PEM (RSA -> RS384, EC P-384 -> ES384)."""
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        parameters: KeyParameters | None = {"kid": kid} if kid else None
        errors: list[str] = []
        key_class: type[RSAKey] | type[ECKey]
        for key_class in (RSAKey, ECKey):
            try:
                key = key_class.import_key(data, parameters=parameters, password=password)
            except (ValueError, TypeError, JoseError) as exc:
                errors.append(f"{key_class.key_type}: {exc}")
                continue
            return cls([key])
        raise ConfigurationError("not a usable RSA or EC private key in PEM: " + "; ".join(errors))

    @property
    def algorithms(self) -> tuple[str, ...]:
        """Algorithms this set can sign with, in key order, without repeats."""
        return tuple(dict.fromkeys(str(key.alg) for key in self._keys))

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(str(key.kid) for key in self._keys)

    def signing_key(self, alg: str) -> SigningKey:
        """The preferred (first) key for ``alg``."""
        for key in self._keys:
            if key.alg == alg:
                return key
        raise ConfigurationError(f"no signing key for {alg!r}; this key set has {list(self.algorithms)}")

    def choose_algorithm(self, server_algorithms: Iterable[str] | None, preferred: str | None = None) -> str:
        """Pick the algorithm to sign with: ``preferred`` if given, else the first of ours the server lists.

        ``server_algorithms`` is discovery's ``token_endpoint_auth_signing_alg_values_supported``; when the
        server does not publish it, our first algorithm is used.
        """
        ours = self.algorithms
        if preferred is not None:
            if preferred not in ours:
                raise ConfigurationError(f"no signing key for {preferred!r}; this key set has {list(ours)}")
            return preferred
        if server_algorithms is None:
            return ours[0]
        offered = set(server_algorithms)
        for alg in ours:
            if alg in offered:
                return alg
        raise ConfigurationError(
            f"the server accepts {sorted(offered)} for client assertions; we sign with {list(ours)}"
        )

    def private_jwks(self) -> dict[str, Any]:
        """The private JWK set, to keep in a secret store. Never serve this."""
        return {"keys": [key.as_dict(private=True) for key in self._keys]}

    def public_jwks(self) -> dict[str, Any]:
        """The public JWK set the app serves at its registered JWKS URL (``/.well-known/jwks.json``)."""
        return {"keys": [key.as_dict(private=False) for key in self._keys]}

    def __repr__(self) -> str:
        # Never print key material.
        return f"ClientKeySet(kids={list(self.kids)!r}, algorithms={list(self.algorithms)!r})"


def generate_private_jwks(algorithms: Sequence[str] = SIGNING_ALGORITHMS) -> dict[str, Any]:
    """A fresh private JWK set (RS384 and ES384 by default), ready to store as a secret."""
    return ClientKeySet.generate(algorithms).private_jwks()
