"""Model control while serving, behind the API key: reload the repository now (Triton's
``explicit`` mode; the poll and SIGHUP do the same)."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import Authorized, RepositoryDep
from service.api.handlers import ERROR_RESPONSES
from service.api.reloading import reload_now

router = APIRouter(
    prefix="/v1/admin",
    tags=["operations"],
    dependencies=[Authorized],
    responses=ERROR_RESPONSES,
)


@router.post("/reload")
async def reload(repository: RepositoryDep) -> dict[str, object]:
    """Look at the model repository now: packages added are loaded and served, removed ones
    retired once their admitted requests are answered, replaced ones swapped; a broken one is
    refused by name while the rest keep serving. Answers what changed, and every model served."""
    report = await reload_now(repository, "admin")
    return {**report.to_dict(), "models": sorted(m.name for m in repository.models.values())}
