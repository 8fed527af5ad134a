"""Shared request dependencies: the database session, the caller and role checks."""

from __future__ import annotations

import math
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, OAuth2PasswordBearer
from sqlalchemy import Row, bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from central.evidence import EvidenceStore
from central.metrics import ApiMetrics
from central.models import Node, User
from central.records import REGISTRY_REFUSALS, node_for_token
from central.security import (
    NODE_TOKEN_PREFIX,
    TokenClaims,
    decode_access_token,
    expired_access_token,
)
from central.settings import Settings
from central.workflow import WORKFLOW_REFUSALS, Policy, Role

TOKEN_URL = "/api/v1/auth/token"
PROTECTED: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed request"},
    401: {"description": "Not authenticated, or the token is invalid or expired"},
    403: {"description": "The caller's role may not use this operation"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such record"}}
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "Conflicts with a record"}}
oauth2 = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)
node_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="NodeUploadToken",
    description="A node's upload token, printed by `roadwatch central node add`",
)


@dataclass
class AppState:
    settings: Settings
    sessions: sessionmaker[Session]
    read_sessions: sessionmaker[Session]  # for GET requests: they never write
    store: EvidenceStore
    metrics: ApiMetrics
    policy: Policy


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.central
    return state


# Dependencies that do no I/O are ``async def``: FastAPI runs them on the event loop
# instead of handing each to the thread pool and back.
async def _app_state(request: Request) -> AppState:
    return app_state(request)


StateDep = Annotated[AppState, Depends(_app_state)]


READING = frozenset({"GET", "HEAD"})


async def db_session(state: StateDep, request: Request) -> AsyncIterator[Session]:
    """The request's session; a reading one for GET and HEAD (see read_session_factory).

    A session connects on first use, in the route's thread. Closing a reading session
    does no I/O on PostgreSQL (no transaction is open) and only ends a read snapshot on
    SQLite, so it is closed here on the event loop: two thread-pool hops fewer for every
    read. A writing session may still hold a transaction to roll back: closed in a thread.
    """
    reading = request.method in READING
    session = (state.read_sessions if reading else state.sessions)()
    try:
        yield session
    finally:
        if reading:
            session.close()
        else:
            await run_in_threadpool(session.close)


SessionDep = Annotated[Session, Depends(db_session)]


# The refusals a client can word in its user's language: the workflow's and these.
REFUSALS = (
    *WORKFLOW_REFUSALS,
    *REGISTRY_REFUSALS,
    "changed",
    "last_admin",
    "evidence_damaged",
    "record_altered",
    "no_case_key",
    "login_locked",
    "role_not_allowed",
)


class ApiRefusal(HTTPException):
    """A request refused for a reason a client can word in its user's language: the body
    carries ``code`` (one of ``REFUSALS``) and ``params`` beside the English ``detail``."""

    def __init__(self, status_code: int, code: str, detail: str, **params: str | int) -> None:
        assert code in REFUSALS, code
        super().__init__(status_code, detail)
        self.code = code
        self.params = params


def query_refused(name: str, message: str) -> HTTPException:
    """A 422 in FastAPI's own shape, naming the query parameter."""
    return field_refused(["query", name], message)


def field_refused(loc: list[str], message: str, kind: str = "value_error") -> HTTPException:
    """A 422 in FastAPI's own shape (a list of what was wrong, and where), for a check
    the request's schema cannot make."""
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [_problem(loc, message, kind)])


def _problem(loc: list[str], message: str, kind: str) -> dict[str, Any]:
    """One entry of a 422's list, as FastAPI writes it (the input is not echoed)."""
    return {"type": kind, "loc": loc, "msg": message, "input": None}


API_PREFIX = "/api/"
UNKNOWN_QUERY: dict[str, Any] = {
    "description": "A query parameter the route does not take, or one of one value given twice"
}


async def declared_query_only(request: Request) -> None:
    """Refuses (422) a query parameter the route does not declare, on the JSON API, and
    one that takes a single value given more than once.

    Otherwise a misspelt filter (``form=`` for ``from=``, ``cameras=`` for ``camera=``)
    would be dropped without a word and the answer, unfiltered, read as the filtered one.
    Each unknown parameter is named with the ones the route takes (its value is not
    echoed: it may be a token sent in the wrong place). Likewise ``camera=a&camera=b``
    would count the last camera alone, read as both. The web UI's pages and assets
    (outside ``/api/``) are not checked.
    """
    if not request.scope.get("query_string"):
        return
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not route.path_format.startswith(API_PREFIX):
        return
    allowed, repeatable = _declared(route)
    sent = request.query_params
    unknown = sorted({name for name in sent if name not in allowed})
    repeated = sorted(
        {
            name
            for name in sent
            if name in allowed and name not in repeatable and len(sent.getlist(name)) > 1
        }
    )
    if not unknown and not repeated:
        return
    takes = ", ".join(sorted(allowed)) if allowed else "no query parameters"
    detail = [
        _problem(
            ["query", name],
            f"unknown query parameter '{name}'; this route takes {takes}",
            "extra_forbidden",
        )
        for name in unknown
    ] + [
        _problem(
            ["query", name],
            f"query parameter '{name}' given {len(sent.getlist(name))} times; it takes one"
            " value (ask once for each)",
            "repeated_parameter",
        )
        for name in repeated
    ]
    raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


# By the route's id, beside a weak reference that tells the route from a later one given
# the same id (routes compare by value, so they key no dictionary themselves).
_DECLARED: dict[int, tuple[weakref.ref[APIRoute], DeclaredQuery]] = {}
# The query parameters a route declares (by the name sent), and those of them that take a
# list of values (sent once for each).
DeclaredQuery = tuple[frozenset[str], frozenset[str]]


def declared_query(route: APIRoute) -> frozenset[str]:
    """The query parameters (by the name sent: an alias where one is given) that
    ``route`` and every dependency under it declare; walked once per route (about 20 µs)."""
    return _declared(route)[0]


def _declared(route: APIRoute) -> DeclaredQuery:
    known = _DECLARED.get(id(route))
    if known is not None and known[0]() is route:
        return known[1]
    declared = _walk_query(route)
    _DECLARED[id(route)] = (weakref.ref(route), declared)
    return declared


def _walk_query(route: APIRoute) -> DeclaredQuery:
    names: set[str] = set()
    repeatable: set[str] = set()
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        for field in dependant.query_params:
            names.add(field.alias)
            if _takes_many(field.field_info.annotation):
                repeatable.add(field.alias)
        pending.extend(dependant.dependencies)
    return frozenset(names), frozenset(repeatable)


def _takes_many(annotation: Any) -> bool:
    """Whether a query parameter of this type is a list of values (``x=1&x=2``)."""
    origin = get_origin(annotation)
    if origin is Union or origin is UnionType:
        return any(_takes_many(arg) for arg in get_args(annotation))
    return isinstance(origin, type) and issubclass(origin, (Sequence, AbstractSet))


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


@dataclass(frozen=True)
class Caller:
    username: str
    role: Role
    generation: int = 0  # the user's session generation (see User.session_generation)
    token_expires_at: float = math.inf  # epoch seconds: when the caller's token runs out


# Built once: a statement object keeps its cache key, which costs more to compute than
# the look-up's SQL takes to run.
_CALLER = select(User.active, User.role, User.session_generation).where(
    User.username == bindparam("username")
)


def signed_in_user(session: Session, claims: TokenClaims) -> Row[bool, str, int] | None:
    """The user record (active, role, session generation) a token's session still stands
    on: None where the user is unknown or disabled, or the token is of a session that
    ended (its password changed, or it was disabled, since the token was issued)."""
    user = session.execute(_CALLER, {"username": claims.username}).first()
    if user is None or not user.active or user.session_generation != claims.generation:
        return None
    return user


def current_user(
    state: StateDep, session: SessionDep, token: Annotated[str | None, Depends(oauth2)]
) -> Caller:
    if not token:
        raise _unauthorized("not authenticated: log in at " + TOKEN_URL)
    claims = decode_access_token(token, state.settings.token_key())
    if claims is None:
        if token.startswith(NODE_TOKEN_PREFIX) and node_for_token(session, token) is not None:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "nodes may only upload evidence")
        if expired_access_token(token, state.settings.token_key()):
            raise _unauthorized(
                f"access token expired: log in again at {TOKEN_URL} (renew a token with"
                " /api/v1/auth/refresh before it runs out)"
            )
        raise _unauthorized("access token is not valid")
    user = signed_in_user(session, claims)
    if user is None:
        raise _unauthorized("user is unknown or disabled, or the session has ended: log in")
    # End the look-up's transaction: a long request (an upload, the live feed) must not
    # hold it open (on SQLite that would be the write lock).
    session.commit()
    return Caller(claims.username, Role(user.role), claims.generation, claims.expires_at)


CurrentUser = Annotated[Caller, Depends(current_user)]


def require(*roles: Role) -> Callable[[Caller], Coroutine[Any, Any, Caller]]:
    allowed = frozenset(roles)

    async def check(caller: CurrentUser) -> Caller:
        if caller.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise ApiRefusal(
                status.HTTP_403_FORBIDDEN,
                "role_not_allowed",
                f"role '{caller.role.value}' may not do this ({names})",
                role=caller.role.value,
                allowed=names,
            )
        return caller

    return check


def current_node(
    state: StateDep,
    session: SessionDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(node_bearer)],
) -> Node:
    if creds is None or not creds.credentials:
        raise _unauthorized("not authenticated: send the node's upload token")
    token = creds.credentials
    if token.startswith(NODE_TOKEN_PREFIX):
        node = node_for_token(session, token)
        if node is not None:
            session.commit()  # see current_user
            return node
        raise _unauthorized("upload token is not valid")
    claims = decode_access_token(token, state.settings.token_key())
    if claims is not None:
        raise ApiRefusal(
            status.HTTP_403_FORBIDDEN,
            "role_not_allowed",
            "only nodes upload evidence",
            role=claims.role.value,
            allowed="node",
        )
    raise _unauthorized("upload token is not valid")


NodeDep = Annotated[Node, Depends(current_node)]

HUMANS = (Role.OFFICER, Role.SUPERVISOR, Role.ADMIN, Role.IOC)
AnyUser = Annotated[Caller, Depends(require(*HUMANS))]
Reviewer = Annotated[Caller, Depends(require(Role.OFFICER, Role.SUPERVISOR))]
Admin = Annotated[Caller, Depends(require(Role.ADMIN))]
CaseReader = Annotated[Caller, Depends(require(Role.OFFICER, Role.SUPERVISOR, Role.ADMIN))]
Manager = Annotated[Caller, Depends(require(Role.SUPERVISOR, Role.ADMIN))]
RegistryReader = Annotated[Caller, Depends(require(Role.SUPERVISOR, Role.ADMIN, Role.IOC))]
