"""The FastAPI application factory. Nothing is created at import time."""

from __future__ import annotations

import gc
import hmac
import logging
import math
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from sqlalchemy import Engine, text
from starlette.datastructures import Headers, MutableHeaders
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from central.api import admin, cases, events, evidence, ioc
from central.api.deps import (
    API_PREFIX,
    TOKEN_URL,
    UNKNOWN_QUERY,
    ApiRefusal,
    AppState,
    app_state,
    declared_query_only,
    signed_in_user,
)
from central.api.schemas import Health
from central.db import make_engine, migrate, read_session_factory, session_factory
from central.evidence import EvidenceError, open_store
from central.ingest_lock import ClientIdLock
from central.metrics import ApiMetrics, IngestMetrics, metrics_text
from central.security import decode_access_token
from central.settings import Settings
from central.ui import router as ui_router
from central.workflow import Policy, Role

log = logging.getLogger(__name__)

DESCRIPTION = """\
Central service of Roadwatch: ingested violation records, the police review workflow
with a hash-chained audit log, the camera and node registry, statistics and a live feed
for the Intelligent Operation Centre (IOC), and evidence upload for edge nodes.

Log in with `POST /api/v1/auth/token` (OAuth2 password flow) and send the access token as
`Authorization: Bearer …`. Roles: **officer** (review), **supervisor** (review, notices,
deadlines, audit), **admin** (users, nodes, cameras, audit), **ioc** (read-only) and
**node** (evidence upload with its upload token only).
"""

metrics_bearer = HTTPBearer(auto_error=False, scheme_name="MetricsToken")


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    with_ingest: bool = False,
    ingest_lock: ClientIdLock | None = None,
    freeze_gc: bool = False,
) -> FastAPI:
    """Build the app; the engine, migrations and (optionally) the ingest start in lifespan.

    ``ingest_lock``: the ingest's lock on its client id, when the caller took it already
    (to refuse a second ingest with one line before the server starts).

    ``freeze_gc`` (for a server process): once started, the objects made so far (modules,
    the app, the engine: about 140,000) are moved out of the garbage collector's reach,
    so a full collection scans only what requests leave behind (21 ms -> under 1 ms).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = open_store(settings)
        store.check()  # an unusable store stops the start with the reason
        own_engine = engine is None
        eng = engine or make_engine(settings.resolved_database_url)
        if settings.migrate_on_start:
            migrate(eng)
        registry = CollectorRegistry()
        app.state.registry = registry
        app.state.central = AppState(
            settings=settings,
            sessions=session_factory(eng),
            read_sessions=read_session_factory(eng),
            store=store,
            metrics=ApiMetrics(registry),
            policy=Policy(
                two_person_rule=settings.two_person_rule,
                notice_days=settings.notice_days,
                escalation_days=settings.escalation_days,
            ),
        )
        ingest = None
        if with_ingest:
            from central.ingest import IngestService

            ingest = IngestService(settings, eng, IngestMetrics(registry), lock=ingest_lock)
            ingest.start()
        app.state.ingest = ingest
        if freeze_gc:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            if ingest is not None:
                ingest.stop()
            if own_engine:
                eng.dispose()

    app = FastAPI(
        title="Roadwatch central",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(declared_query_only)],
        openapi_tags=[
            {"name": "auth", "description": "Log in; tokens are short-lived JWTs"},
            {"name": "violations", "description": "Search and read violation records"},
            {"name": "review", "description": "The review workflow and legal deadlines"},
            {"name": "audit", "description": "The append-only, hash-chained audit log"},
            {"name": "statistics", "description": "Counts and traffic flow for the IOC"},
            {"name": "live", "description": "Server-sent events of new cases and health"},
            {"name": "registry", "description": "Cameras (also as GeoJSON) and edge nodes"},
            {"name": "evidence", "description": "Content-addressed evidence blobs"},
            {"name": "ingest", "description": "What the MQTT ingest refused"},
            {"name": "users", "description": "User accounts and roles"},
            {"name": "operations", "description": "Health and Prometheus metrics"},
        ],
    )

    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(NoNulMiddleware)  # (inside the measuring, which counts its 422s)
    app.add_middleware(MeasureMiddleware)

    @app.get(
        "/health",
        tags=["operations"],
        summary="Liveness, database reachability and the ingest served beside the API",
    )
    def health(request: Request) -> JSONResponse:
        state = app_state(request)
        ingest = getattr(request.app.state, "ingest", None)
        # (the broker away is no fault of this process, which serves the API meanwhile and
        # reconnects; an ingest that stopped by itself is: its process wants a restart)
        told = ingest.state if ingest is not None else None
        stopped = told is not None and told.startswith("stopped")
        try:
            with state.read_sessions() as session:
                session.execute(text("SELECT 1"))
            database = "ok"
        except Exception as exc:  # the database is away: say so, do not crash
            database = type(exc).__name__
        fine = database == "ok" and not stopped
        body = Health(status="ok" if fine else "degraded", database=database, ingest=told)
        return JSONResponse(body.model_dump(), status_code=200 if fine else 503)

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics (metrics token, or an admin/supervisor/ioc access token)",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}, 401: {"description": "No token"}},
    )
    def metrics(
        request: Request,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(metrics_bearer)],
    ) -> Response:
        state = app_state(request)
        token = creds.credentials if creds else ""
        allowed = bool(token) and (
            (
                state.settings.metrics_token is not None
                and _same(token, state.settings.metrics_token)
            )
            or _metrics_reader(state, token)
        )
        if not allowed:
            return JSONResponse(
                {"detail": "send the metrics token or an access token"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        registry: CollectorRegistry = request.app.state.registry
        return Response(metrics_text(registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(admin.login_router)
    app.include_router(admin.router)
    app.include_router(cases.router)
    app.include_router(ioc.router)
    app.include_router(evidence.router)
    app.include_router(events.router)
    app.include_router(ui_router)
    say_unknown_query_is_refused(app)

    @app.exception_handler(ApiRefusal)
    async def refused(request: Request, exc: ApiRefusal) -> Response:
        body = {"detail": exc.detail, "code": exc.code, "params": exc.params}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(EvidenceError)
    async def evidence_refused(request: Request, exc: EvidenceError) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        # The upload interface answers 400 for a malformed sha256, as for a hash mismatch.
        if any(tuple(e.get("loc", ())) == ("path", "sha256") for e in exc.errors()):
            return JSONResponse(
                {"detail": "not a sha256: expected 64 lower-case hex digits"}, status_code=400
            )
        # The errors echo the input: a NaN or an infinity there is not valid JSON, nor is
        # a lone surrogate (a "\\ud800" escape) UTF-8.
        errors = [_without_secrets(e) for e in exc.errors()]
        if request.url.path == TOKEN_URL and "json" in request.headers.get("content-type", ""):
            errors.insert(0, LOGIN_AS_FORM)
        return JSONResponse({"detail": _echoable(jsonable_encoder(errors))}, status_code=422)

    return app


def say_unknown_query_is_refused(app: FastAPI) -> None:
    """Lists the 422 of ``declared_query_only`` in the OpenAPI schema of each API
    operation that lists none (FastAPI lists one where a route takes parameters or a
    body)."""
    make_schema = app.openapi

    def schema() -> dict[str, Any]:
        if app.openapi_schema is None:
            for path, operations in make_schema()["paths"].items():
                if path.startswith(API_PREFIX):
                    for operation in operations.values():
                        operation["responses"].setdefault("422", UNKNOWN_QUERY)
        return make_schema()

    app.openapi = schema  # type: ignore[method-assign]  # (FastAPI's way to extend it)


# A log-in sent as JSON, as every other body is: OAuth2's token request is a form.
LOGIN_AS_FORM = {
    "type": "form_expected",
    "loc": ["body"],
    "msg": "log in with a form (application/x-www-form-urlencoded: username=…&password=…),"
    " not JSON",
}

# Fields whose value a refusal never echoes (the answer lands in logs, proxies and the
# browser's console); what was wrong with them is still said.
SECRET_FIELDS = frozenset({"password", "client_secret", "access_token", "upload_token"})
HIDDEN = "(hidden)"


def _without_secrets(error: Mapping[str, Any]) -> dict[str, Any]:
    """A validation error with a secret field's input, or its value within the input (a
    whole body echoed), replaced by "(hidden)"."""
    out = dict(error)
    if "input" in out:
        loc = out.get("loc", ())
        secret = bool(loc) and loc[-1] in SECRET_FIELDS
        out["input"] = HIDDEN if secret else _hide_secret_values(out["input"])
    return out


def _hide_secret_values(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            k: HIDDEN if k in SECRET_FIELDS else _hide_secret_values(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_hide_secret_values(v) for v in value]
    return value


def _echoable(value: Any) -> Any:
    """``value`` with every NaN or infinity written as a string ("nan", "inf", "-inf") and
    every lone surrogate in a string as "?": what JSON in UTF-8 can carry."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_echoable(k): _echoable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_echoable(v) for v in value]
    return value


NUL_REFUSED = "NUL characters are not allowed in names, plates, filters or any other text"


class NoNulMiddleware:
    """Refuses (422) a request whose path or query holds a NUL character, before routing.

    PostgreSQL text cannot hold one (it would fail as a server error there and be stored
    on SQLite). The free-text fields of bodies and queries say so in the API's schema too
    (``schemas.NO_NUL``); this catches what reaches no such field.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query: bytes = scope["query_string"]
            where = "path" if "\x00" in scope["path"] else None
            where = where or ("query" if b"%00" in query or b"\x00" in query else None)
            if where is not None:
                # The shape of every other 422: a list of what was wrong, and where.
                error = {"type": "string_nul", "loc": [where], "msg": NUL_REFUSED}
                await JSONResponse({"detail": [error]}, status_code=422)(scope, receive, send)
                return
        await self.app(scope, receive, send)


MAX_BODY_BYTES = 1024 * 1024
"""The largest request body central reads, evidence uploads apart (they stream to the
store under ``max_evidence_bytes``): a config push (at most 256 KiB of config) is the
largest any other route takes."""


class BodyTooLargeError(HTTPException):
    def __init__(self) -> None:
        super().__init__(413, f"the request body is over {MAX_BODY_BYTES} bytes")


class BodyLimitMiddleware:
    """Refuses (413) a request body over ``MAX_BODY_BYTES``, but for evidence uploads.

    FastAPI reads a route's whole body before its dependencies run, the caller's token
    check among them: without a limit anyone could make a process hold hundreds of
    megabytes per request. A body announced larger is refused before it is read; one
    that grows larger as it streams (chunked) is refused once it has.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _streams_its_body(scope):
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            refused = BodyTooLargeError()
            await JSONResponse({"detail": refused.detail}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    raise BodyTooLargeError()  # (answered by the app's HTTPException handler)
            return message

        await self.app(scope, counted, send)


def _streams_its_body(scope: Scope) -> bool:
    return scope["method"] == "PUT" and str(scope["path"]).startswith("/api/v1/evidence/")


class MeasureMiddleware:
    """Request latency by route template; the full list of methods on a 405.

    A plain ASGI middleware: it only watches the response start, so streamed responses
    (the live feed, evidence downloads) pass through untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if status == 405:
                    fastapi_app = scope["app"]
                    headers = MutableHeaders(scope=message)
                    headers["Allow"] = _allowed_methods(fastapi_app, scope)
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            central: AppState | None = getattr(scope["app"].state, "central", None)
            if central is not None:
                route = getattr(scope.get("route"), "path", "unmatched")
                central.metrics.requests.labels(scope["method"], route, str(status)).observe(
                    time.perf_counter() - start
                )


def _allowed_methods(app: FastAPI, scope: Scope) -> str:
    """Every method the path accepts (Starlette names only the first matching route's)."""
    methods: set[str] = set()
    for route in app.router.routes:
        match, _child = route.matches({**scope, "method": "GET"})
        if match is not Match.NONE and isinstance(route, APIRoute):
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


def _same(given: str, expected: str) -> bool:
    """``given == expected`` in a time that does not tell how much of it was right."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _metrics_reader(state: AppState, token: str) -> bool:
    """An access token of an active admin, supervisor or IOC user."""
    readers = (Role.ADMIN, Role.SUPERVISOR, Role.IOC)
    claims = decode_access_token(token, state.settings.token_key())
    if claims is None:
        return False
    with state.read_sessions() as session:
        user = signed_in_user(session, claims)
    return user is not None and Role(user.role) in readers


def app_from_environment() -> FastAPI:
    """Factory for uvicorn worker processes (``--factory``): settings from the environment."""
    from central.settings import load_settings

    return create_app(load_settings(), freeze_gc=True)
