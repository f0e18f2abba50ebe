"""The profile validator: checks a resource against every mECR profile it claims in ``meta.profile``.

https://hl7.org/fhir/R4/resource-definitions.html#Meta.profile: a profile claim is an assertion that the
resource conforms; mECR holds every claim of one of its own profiles to that profile on write. Rules:

- a claim of a profile of the IG: the resource is checked against it (422 with one issue per problem);
- a claim of an unknown profile under the IG's canonical base (``https://mecr.dev/fhir/...``): 422, since it
  can only be a typo or a profile of another IG version;
- a claim of any other profile (Gravity SDOH, US Core, ...): accepted and ignored, as this server has no
  definition of it; the structural validation still applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from ..outcomes import FhirError, Issue, business_rule, invalid, issue
from .checker import check_profile
from .compiler import CompiledProfile, compile_profile
from .ig import ImplementationGuide, default_ig_path, load_ig
from .terminology import ValueSetIndex, canonical_url

__all__ = ["ProfileValidator", "compose_validators", "default_validator", "standard_validator"]

Validator = Any  # Callable[[dict[str, Any]], None]


class ProfileValidator:
    """The IG's profiles compiled once; call it with a resource to enforce its mECR profile claims."""

    def __init__(self, ig: ImplementationGuide) -> None:
        self.ig = ig
        self.valuesets = ValueSetIndex(ig)
        sds = ig.structure_definitions()
        self.extensions: dict[str, CompiledProfile] = {
            url: compile_profile(sd, sds, self.valuesets) for url, sd in ig.extensions.items()
        }
        self.profiles: dict[str, CompiledProfile] = {
            url: compile_profile(sd, sds, self.valuesets) for url, sd in ig.profiles.items()
        }

    def supported_profiles(self) -> dict[str, list[str]]:
        """Resource type -> the IG profiles of that type (for CapabilityStatement.rest.resource.supportedProfile)."""
        out: dict[str, list[str]] = {}
        for url, p in sorted(self.profiles.items()):
            out.setdefault(p.type, []).append(url)
        return out

    def claimed(self, resource: dict[str, Any]) -> list[str]:
        """The canonical URLs in ``meta.profile`` (versions dropped)."""
        meta = resource.get("meta")
        profiles = meta.get("profile") if isinstance(meta, dict) else None
        return [canonical_url(p) for p in profiles or [] if isinstance(p, str)]

    def issues(self, resource: dict[str, Any], profiles: Sequence[str] | None = None) -> list[Issue]:
        """Every issue of ``resource`` against ``profiles`` (default: its mECR claims in ``meta.profile``).

        Profiles passed explicitly (``$validate``'s ``profile``) must be known; claimed ones not under the IG's
        canonical base are ignored.
        """
        rtype = resource.get("resourceType")
        explicit = profiles is not None
        urls = [canonical_url(p) for p in profiles] if profiles is not None else self.claimed(resource)
        out: list[Issue] = []
        for n, url in enumerate(urls):
            where = f"{rtype}.meta.profile[{n}]" if not explicit else "profile"
            profile = self.profiles.get(url)
            if profile is None:
                if explicit or self.ig.is_mecr_canonical(url):
                    out.append(
                        issue(
                            "not-supported",
                            f"{url} is not a profile of this server (mECR IG {self.ig.canonical})",
                            expression=where,
                        )
                    )
                continue
            if profile.type != rtype:
                out.append(
                    issue("structure", f"{url} profiles {profile.type}, not {rtype}", expression=where)
                )
                continue
            out += check_profile(profile, resource, self.extensions)
        return out

    def __call__(self, resource: dict[str, Any]) -> None:
        """Raise a 422 FhirError when ``resource`` breaks an mECR profile it claims (warnings alone pass)."""
        if not isinstance(resource, dict) or not self.claimed(resource):
            return
        found = self.issues(resource)
        if any(i["severity"] in ("error", "fatal") for i in found):
            raise business_rule(found)


@cache
def _for_root(root: Path) -> ProfileValidator:
    return ProfileValidator(load_ig(root))


def default_validator(root: Path | None = None) -> ProfileValidator:
    """The validator of the IG at ``root`` (default: the repository's), compiled once per process."""
    return _for_root(Path(root) if root is not None else default_ig_path())


# What a later stage may raise when it reads a resource an earlier stage has already refused as malformed.
_UNREADABLE = (TypeError, ValueError, KeyError, IndexError, AttributeError)


def compose_validators(*validators: Validator) -> Validator:
    """One validator that runs every one of ``validators`` (structure and bindings first, then profiles) and
    raises one FhirError with all their issues, so a client sees every problem at once (a problem two stages
    both find, same code at the same place, is listed once). Its status is the first failing stage's: 400 when
    the structure is wrong, 422 when only bindings or profiles are broken."""

    def validate(resource: dict[str, Any]) -> None:
        issues: list[Issue] = []
        status: int | None = None
        for v in validators:
            try:
                v(resource)
            except FhirError as exc:
                seen = {(i["code"], tuple(i.get("expression") or ())) for i in issues}
                issues += [i for i in exc.issues if (i["code"], tuple(i.get("expression") or ())) not in seen]
                status = status or exc.status
            except _UNREADABLE:
                if status is None:
                    raise
                # the profile checks assume a well-formed resource; this one is already refused
        if status is not None:
            raise invalid(issues, status)

    return validate


def standard_validator() -> Validator:
    """What the server validates a write with: structure and required bindings, then the IG's profiles (one
    OperationOutcome lists every problem). A module-level function, so a validation worker can build its own
    (:class:`fhir_ecr.store.validation_pool.ValidationPool`)."""
    from ..store.validation import validate_resource

    return compose_validators(validate_resource, default_validator())
