"""The FastAPI dependencies of mECR's routes, as named ``Annotated`` aliases (one module, used by every router).

@router.get("/fhir/{rtype}/{rid}")
async def read(rtype: str, rid: str, access: AccessDep, services: ServicesDep) -> Response: ...
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from .auth.access import Access, current_access
from .services import Services, get_services

__all__ = ["AccessDep", "ServicesDep"]

#: The caller's :class:`~fhir_ecr.auth.access.Access` (set by the auth middleware; anonymous when auth is off).
AccessDep = Annotated[Access, Depends(current_access)]
#: The running application's :class:`~fhir_ecr.services.Services`.
ServicesDep = Annotated[Services, Depends(get_services)]
