"""Operations: liveness, readiness, the version and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from contract.version import __version__
from service.api.deps import Authorized, MetricsAuthorized, RepositoryDep, ServicesDep
from service.api.handlers import ERROR_RESPONSES

router = APIRouter(tags=["operations"], responses=ERROR_RESPONSES)


class Health(BaseModel):
    status: str  # ok | a reason it is not


class Ready(BaseModel):
    ready: bool
    # Why the state store (keys and usage, document jobs) is unavailable, when it is (then not
    # ready: a keyed request would get 503 here, state_failure=closed, while another replica
    # may reach it).
    state: str | None = None
    # The door's limits reached in the last seconds (api/shed.py), when any: someone is holding
    # the door, or the service is past its capacity. Readiness stays as it was: a client that
    # holds one replica's door must not take every replica out of the load balancer's rotation.
    held: list[str] | None = None


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
async def healthz(repository: RepositoryDep) -> JSONResponse:
    """Liveness: the process answers and every model's scheduler thread runs (a dead one would
    answer nobody again: Kubernetes should restart the pod)."""
    if not repository.healthy:
        return JSONResponse({"status": "a scheduler thread has stopped"}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/readyz", response_model=Ready, responses={503: {"model": Ready}})
async def readyz(request: Request) -> JSONResponse:
    """Readiness: models loaded, not draining, the state store answering (the keys' database,
    then the document jobs'); ``held`` names the limits reached lately."""
    state = (
        await request.app.state.services.access.ready()
        or await request.app.state.document_jobs.ready()
    )
    ready = request.app.state.ready and not request.app.state.draining and state is None
    held = request.app.state.limits_reached.held()
    body: dict[str, object] = {"ready": ready, "held": held} if held else {"ready": ready}
    if state is not None:
        body["state"] = state
    return JSONResponse(body, status_code=200 if ready else 503)


class Version(BaseModel):
    version: str  # Tongyeok's
    onnxruntime: str
    python: str


@router.get("/version", response_model=Version, dependencies=[Authorized])
async def version() -> Version:
    """What is running: Tongyeok's version and the runtime it decodes with."""
    import platform

    import onnxruntime

    return Version(
        version=__version__, onnxruntime=onnxruntime.__version__, python=platform.python_version()
    )


@router.get(
    "/metrics",
    dependencies=[MetricsAuthorized],
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(services: ServicesDep) -> Response:
    """Every metric, in Prometheus' text format."""
    return Response(generate_latest(services.metrics.exposed), media_type=CONTENT_TYPE_LATEST)
