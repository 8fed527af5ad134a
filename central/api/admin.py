"""Log-in, users, the node registry and cameras."""

from __future__ import annotations

import json
import math
import re
import time
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import select
from sqlalchemy.orm import Session

from central.api.deps import (
    CONFLICT,
    NOT_FOUND,
    PROTECTED,
    Admin,
    AnyUser,
    ApiRefusal,
    Manager,
    RegistryReader,
    SessionDep,
    StateDep,
    field_refused,
    oauth2,
)
from central.api.schemas import (
    NO_NUL,
    USERNAME_PATTERN,
    CameraOut,
    CameraUpdate,
    NodeConfigIn,
    NodeConfigOut,
    NodeConfigRecord,
    NodeCreate,
    NodeKeyIn,
    NodeKeyOut,
    NodeKeyRevoke,
    NodeOut,
    NodeRegistered,
    TokenOut,
    UserCreate,
    UserOut,
    UserUpdate,
    time_text,
)
from central.broker_acl import BROKER_FILES_STEP
from central.health import camera_health, clock_off, clock_offset_s, node_health
from central.models import Camera, Node, NodeKey, User, Violation, utcnow
from central.records import (
    NotRegisteredError,
    RegistryConflictError,
    RegistryError,
    add_node_key,
    append_audit,
    clear_login_failures,
    create_user,
    login_locked_until,
    note_login_failure,
    register_node,
    revoke_node_key,
)
from central.security import (
    decode_access_token,
    dummy_verify,
    hash_password,
    issue_access_token,
    verify_password,
)
from central.workflow import Action, Role, Status
from roadwatch.errors import UserError

router = APIRouter(prefix="/api/v1", responses=PROTECTED)
login_router = APIRouter(prefix="/api/v1")


@login_router.post(
    "/auth/token",
    tags=["auth"],
    summary="Log in (OAuth2 password flow)",
    responses={
        401: {"description": "Wrong user name or password"},
        429: {
            "description": "Too many failed log-ins in a row under this name: locked for a"
            " while (Retry-After says how long)"
        },
    },
)
def login(
    state: StateDep,
    session: SessionDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> TokenOut:
    # Only a name that could be an account is looked up and counted (no name holds a
    # NUL, which PostgreSQL could not look up anyway); any such name is counted the same,
    # an account's or not, so being locked tells nothing of which names are accounts.
    name = form.username
    counted = re.fullmatch(USERNAME_PATTERN, name) is not None
    now = utcnow()
    if counted and (until := login_locked_until(session, name, now)) is not None:
        raise _locked(until, now)
    user = session.scalar(select(User).where(User.username == name)) if counted else None
    if user is None:
        dummy_verify()
    # The password is checked for a disabled user too: answering at once would tell which
    # names are accounts (disabled ones), as a quick answer for an unknown name would.
    right = user is not None and verify_password(form.password, user.password_hash)
    if user is None or not user.active or not right:
        if counted:
            until = note_login_failure(session, name, now)
            session.commit()
            if until is not None:
                raise _locked(until, now)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "wrong user name or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    clear_login_failures(session, name)
    session.commit()
    minutes = state.settings.access_token_minutes
    token = issue_access_token(
        user.username,
        Role(user.role),
        state.settings.token_key(),
        minutes,
        generation=user.session_generation,
    )
    return TokenOut(access_token=token, expires_in=minutes * 60, role=Role(user.role))


def _locked(until: datetime, now: datetime) -> ApiRefusal:
    seconds = max(1, math.ceil((until - now).total_seconds()))
    refusal = ApiRefusal(
        status.HTTP_429_TOO_MANY_REQUESTS,
        "login_locked",
        f"too many failed log-ins under this name: try again in {seconds} s",
        seconds=seconds,
    )
    refusal.headers = {"Retry-After": str(seconds)}
    return refusal


@router.post("/auth/refresh", tags=["auth"], summary="A fresh token while signed in")
def refresh(
    caller: AnyUser, state: StateDep, token: Annotated[str | None, Depends(oauth2)]
) -> TokenOut:
    """A new token for the caller, with the role the user record has now: the web UI asks
    for one before its token runs out, so a reviewer at work is not logged out mid-case,
    and a changed role takes effect. A log-in lasts at most ``session_max_hours`` however
    often it is renewed (so a token that leaked does not live on); a disabled user gets
    401 like any other call."""
    settings = state.settings
    claims = decode_access_token(token or "", settings.token_key())
    max_s = settings.session_max_hours * 3600
    if claims is None or time.time() - claims.signed_in_at > max_s:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"signed in more than {settings.session_max_hours:g} h ago: log in again",
            headers={"WWW-Authenticate": "Bearer"},
        )
    minutes = settings.access_token_minutes
    fresh = issue_access_token(caller.username, caller.role, settings.token_key(), minutes,
                               signed_in_at=claims.signed_in_at,
                               generation=caller.generation)  # fmt: skip
    return TokenOut(access_token=fresh, expires_in=minutes * 60, role=caller.role)


@router.post(
    "/auth/logout",
    tags=["auth"],
    status_code=204,
    summary="Log out: end every session of the caller",
    response_class=Response,
)
def logout(caller: AnyUser, session: SessionDep) -> Response:
    """End every session the caller has (this token, its renewals and any other tab or
    device signed in as the same user, open live feeds included), as a password change
    does: a token copied off a shared workstation is no use once its officer has logged
    out. The web UI calls this on Log out."""
    user = session.scalar(select(User).where(User.username == caller.username))
    if user is not None:
        user.session_generation += 1
        session.commit()
    return Response(status_code=204)


@router.get("/auth/me", tags=["auth"], summary="Who am I")
def me(caller: AnyUser, session: SessionDep) -> UserOut:
    user = session.scalar(select(User).where(User.username == caller.username))
    return UserOut.model_validate(user)


@router.get("/users", tags=["users"], summary="List users")
def list_users(_: Admin, session: SessionDep) -> list[UserOut]:
    return [UserOut.model_validate(u) for u in session.scalars(select(User).order_by(User.id))]


@router.post("/users", tags=["users"], status_code=201, summary="Create a user", responses=CONFLICT)
def add_user(caller: Admin, session: SessionDep, body: UserCreate) -> UserOut:
    try:
        user = create_user(
            session,
            username=body.username,
            password=body.password,
            role=Role(body.role),
            full_name=body.full_name,
        )
    except RegistryConflictError as exc:  # (the API names no node role: the name is taken)
        raise _registry_refusal(exc) from exc
    append_audit(
        session,
        actor=caller.username,
        action="user_create",
        detail={"username": body.username, "role": body.role},
    )
    session.commit()
    return UserOut.model_validate(user)


@router.patch(
    "/users/{username}",
    tags=["users"],
    summary="Change a user's role or state",
    responses={**NOT_FOUND, **CONFLICT},
)
def change_user(
    caller: Admin,
    session: SessionDep,
    username: Annotated[str, PathParam(pattern=NO_NUL)],
    body: UserUpdate,
) -> UserOut:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no user {username!r}")
    stays_admin = (body.role or user.role) == Role.ADMIN and (
        user.active if body.active is None else body.active
    )
    if user.role == Role.ADMIN and user.active and not stays_admin:
        _keep_an_admin(session, user)
    changed: dict[str, Any] = {}
    if body.role is not None:
        user.role = changed["role"] = Role(body.role).value
    if body.active is not None:
        user.active = changed["active"] = body.active
    if body.full_name is not None:
        user.full_name = changed["full_name"] = body.full_name
    if body.password is not None:
        user.password_hash = hash_password(body.password)
        changed["password"] = "changed"
    if body.password is not None or body.active is False:
        # Every session the user has ends: a token taken with the old password (or held
        # by someone the account was disabled against) is not one to let back in.
        user.session_generation += 1
    if changed:
        append_audit(
            session,
            actor=caller.username,
            action="user_update",
            detail={"username": username, **changed},
        )
    if not user.active or Role(user.role) not in REVIEWING_ROLES:
        _release_held_cases(session, user.username, caller.username)
    session.commit()
    return UserOut.model_validate(user)


REVIEWING_ROLES = frozenset({Role.OFFICER, Role.SUPERVISOR})


def _release_held_cases(session: Session, username: str, actor: str) -> None:
    """Cases a user held in review go back to the queue once the user can no longer
    review (disabled, or given a role that does not review): they stayed held by the
    account, refused to every other officer ("being reviewed by ..."), until a supervisor
    found and released each one. Each release is audited as the admin's."""
    held = session.scalars(
        select(Violation)
        .where(Violation.status == Status.IN_REVIEW.value, Violation.reviewer == username)
        .order_by(Violation.id)
    ).all()
    for v in held:
        version = v.version
        v.status, v.reviewer, v.confirmed_by, v.decided_at = Status.NEW.value, None, None, None
        session.flush()
        append_audit(
            session,
            actor=actor,
            action=Action.RELEASE.value,
            violation_id=v.id,
            detail={
                "from": Status.IN_REVIEW.value,
                "to": Status.NEW.value,
                "version": version,
                "reason": f"the reviewer {username} can no longer review",
            },
        )


def _keep_an_admin(session: Session, user: User) -> None:
    """409 unless another active admin stays (the rows are locked until the commit, so two
    admins cannot each demote the other at once)."""
    admins = session.scalars(
        select(User.id).where(User.role == Role.ADMIN.value, User.active).with_for_update()
    ).all()
    if not any(a != user.id for a in admins):
        raise ApiRefusal(
            status.HTTP_409_CONFLICT,
            "last_admin",
            f"{user.username!r} is the last active admin: make another user admin first",
            user=user.username,
        )


@router.get("/nodes", tags=["registry"], summary="Edge nodes and their last status")
def list_nodes(_: RegistryReader, state: StateDep, session: SessionDep) -> list[NodeOut]:
    nodes = session.scalars(select(Node).order_by(Node.site, Node.node))
    now, silent_after = utcnow(), state.settings.silent_after
    out = []
    for n in nodes:
        health = node_health(n, now, silent_after)
        out.append(
            NodeOut(
                site=n.site,
                node=n.node,
                state=health.state,
                status_sent_at=n.status_sent_at,
                status_received_at=n.status_received_at,
                clock_offset_s=(offset := clock_offset_s(n)),
                clock_off=clock_off(offset),
                status=json.loads(n.status_json) if n.status_json else None,
                updated_at=health.since,
            )
        )
    return out


@router.post(
    "/nodes",
    tags=["registry"],
    status_code=201,
    summary="Register a node's key",
    responses=CONFLICT,
)
def add_node(caller: Admin, session: SessionDep, body: NodeCreate) -> NodeRegistered:
    try:
        reg = register_node(
            session, site=body.site, node=body.node, public_key_pem=body.public_key_pem
        )
    except RegistryError as exc:
        raise _registry_refusal(exc, invalid=status.HTTP_400_BAD_REQUEST) from exc
    append_audit(
        session,
        actor=caller.username,
        action="node_add",
        detail={"site": reg.site, "node": reg.node},
    )
    session.commit()
    return NodeRegistered(
        site=reg.site,
        node=reg.node,
        upload_token=reg.token,
        broker_username=reg.mqtt_username,
        broker_password=reg.mqtt_password,
        broker_password_in_force=BROKER_FILES_STEP,
    )


SiteId = Annotated[str, PathParam(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Fingerprint = Annotated[str, PathParam(pattern=r"^[0-9a-f]{16,64}$")]


def _key_out(key: NodeKey) -> NodeKeyOut:
    return NodeKeyOut(
        fingerprint=key.fingerprint,
        public_key_pem=key.public_key_pem,
        added_at=key.added_at,
        revoked_at=key.revoked_at,
        revoke_reason=key.revoke_reason,
    )


def _registry_refusal(exc: RegistryError, invalid: int = 422) -> HTTPException:
    if isinstance(exc, NotRegisteredError):
        code = status.HTTP_404_NOT_FOUND
    elif isinstance(exc, RegistryConflictError):
        code = status.HTTP_409_CONFLICT
    else:
        code = invalid
    if exc.code is None:
        return HTTPException(code, str(exc))
    return ApiRefusal(code, exc.code, str(exc), **exc.params)


@router.get(
    "/nodes/{site}/{node}/keys",
    tags=["registry"],
    summary="A node's signing keys: in force, rotated out, revoked",
    responses=NOT_FOUND,
)
def list_node_keys(_: Manager, session: SessionDep, site: SiteId, node: SiteId) -> list[NodeKeyOut]:
    found = session.scalar(select(Node).where(Node.site == site, Node.node == node))
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no node {site}/{node} is registered")
    keys = session.scalars(
        select(NodeKey).where(NodeKey.node_id == found.id).order_by(NodeKey.added_at, NodeKey.id)
    )
    return [_key_out(k) for k in keys]


@router.post(
    "/nodes/{site}/{node}/keys",
    tags=["registry"],
    status_code=201,
    summary="Add a node's new signing key (rotation: its earlier keys stay until revoked)",
    responses={**NOT_FOUND, **CONFLICT, 422: {"description": "Not a PEM Ed25519 public key"}},
)
def add_key(
    caller: Admin, session: SessionDep, site: SiteId, node: SiteId, body: NodeKeyIn
) -> NodeKeyOut:
    try:
        key = add_node_key(session, site=site, node=node, public_key_pem=body.public_key_pem)
    except RegistryError as exc:
        raise _registry_refusal(exc) from exc
    append_audit(
        session,
        actor=caller.username,
        action="node_key_add",
        detail={"site": site, "node": node, "fingerprint": key.fingerprint},
    )
    session.commit()
    return _key_out(key)


@router.post(
    "/nodes/{site}/{node}/keys/{fingerprint}/revoke",
    tags=["registry"],
    summary="Revoke a node's key: what it signs is refused; the cases it signed that central"
    " received from `since` (default now) on are flagged",
    responses={**NOT_FOUND, **CONFLICT},
)
def revoke_key(
    caller: Admin,
    session: SessionDep,
    site: SiteId,
    node: SiteId,
    fingerprint: Fingerprint,
    body: NodeKeyRevoke,
) -> NodeKeyOut:
    try:
        key = revoke_node_key(
            session, site=site, node=node, fingerprint=fingerprint, reason=body.reason,
            since=body.since,
        )  # fmt: skip
    except RegistryError as exc:
        raise _registry_refusal(exc) from exc
    append_audit(
        session,
        actor=caller.username,
        action="node_key_revoke",
        detail={"site": site, "node": node, "fingerprint": key.fingerprint,
                "reason": key.revoke_reason, "since": key.revoked_at.isoformat()
                if key.revoked_at else None},
    )  # fmt: skip
    session.commit()
    return _key_out(key)


@router.put(
    "/nodes/{site}/{node}/config",
    tags=["registry"],
    summary="Push a camera and scene config to a node (retained on its config topic)",
    responses={
        **NOT_FOUND,
        **CONFLICT,
        422: {
            "description": "The document is not a valid config for the node, or it changes"
            " what the node takes only from its own site file (against the push it runs)"
        },
        503: {"description": "No config-signing key, or the broker did not take the push"},
    },
)
def push_node_config(
    caller: Admin, state: StateDep, session: SessionDep, site: SiteId, node: SiteId,
    body: NodeConfigIn,
) -> NodeConfigOut:  # fmt: skip
    from central.node_config import (
        UNCHECKED_THEN,
        ConfigConflictError,
        InvalidConfigError,
        UnknownNodeError,
        load_config_key,
        publish_retained,
        push_config,
    )

    try:
        record = push_config(
            session,
            site=site,
            node=node,
            document=body.config,
            actor=caller.username,
            key=lambda: load_config_key(state.settings),
            publish=lambda topic, payload: publish_retained(state.settings, topic, payload),
        )
    except UnknownNodeError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except InvalidConfigError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    except ConfigConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except UserError as exc:  # no config-signing key, or the broker did not take the push
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    session.commit()
    return NodeConfigOut(
        site=record.site,
        node=record.node,
        version=record.version,
        sha256=record.sha256,
        issued_at=record.issued_at,
        pushed_by=record.pushed_by,
        repeated=record.repeated,
        checked=not record.unchecked,
        not_checked=f"{record.unchecked}; {UNCHECKED_THEN}" if record.unchecked else None,
    )


@router.get(
    "/nodes/{site}/{node}/config",
    tags=["registry"],
    summary="Configs pushed to a node, newest first",
    responses=NOT_FOUND,
)
def node_config_history(
    _: Admin, session: SessionDep, site: SiteId, node: SiteId
) -> list[NodeConfigRecord]:
    from central.node_config import config_history

    if session.scalar(select(Node.id).where(Node.site == site, Node.node == node)) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no node {site}/{node}")
    return [
        NodeConfigRecord(
            site=r.site,
            node=r.node,
            version=r.version,
            sha256=r.sha256,
            issued_at=r.issued_at,
            pushed_by=r.pushed_by,
            config=json.loads(r.document),
        )
        for r in config_history(session, site=site, node=node)
    ]


@router.get("/cameras", tags=["registry"], summary="Cameras with their health")
def list_cameras(_: AnyUser, state: StateDep, session: SessionDep) -> list[CameraOut]:
    cams = session.scalars(select(Camera).order_by(Camera.site, Camera.camera))
    now, silent_after = utcnow(), state.settings.silent_after
    return [camera_out(c, now, silent_after) for c in cams]


def camera_out(cam: Camera, now: datetime, silent_after: timedelta) -> CameraOut:
    """The camera as the IOC sees it: ``unknown`` once its node has gone silent."""
    health = camera_health(cam, now, silent_after)
    return camera_view(cam).model_copy(
        update={"state": health.state, "reason": health.reason, "updated_at": health.since}
    )


def camera_view(cam: Camera) -> CameraOut:
    """The camera as stored, its place the one set on central or else its node's."""
    return CameraOut.model_validate(cam).model_copy(
        update={"place": shown_place(cam), "registered_place": cam.place}
    )


def shown_place(cam: Camera) -> str:
    """The place set on central (people chose its words), or else the one its node names."""
    return cam.place or cam.node_place or ""


def camera_places(cam: Camera) -> dict[str, Any]:
    """Where a camera is, as the camera list says it: the place shown, and both sources."""
    return {"place": shown_place(cam), "registered_place": cam.place, "node_place": cam.node_place}


class GeoJSONResponse(JSONResponse):
    media_type = "application/geo+json"


GEOJSON_EXAMPLE = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "id": 1,
            "geometry": {"type": "Point", "coordinates": [106.7047, 10.9046]},
            "properties": {"site": "ql13-km22", "camera": "cam-01", "state": "up"},
        }
    ],
}


@router.get(
    "/cameras.geojson",
    tags=["registry"],
    summary="Cameras as a GeoJSON FeatureCollection (geometry null until located)",
    response_class=GeoJSONResponse,
    responses={200: {"content": {"application/geo+json": {"example": GEOJSON_EXAMPLE}}}},
)
def cameras_geojson(_: AnyUser, state: StateDep, session: SessionDep) -> GeoJSONResponse:
    features = []
    now, silent_after = utcnow(), state.settings.silent_after
    for c in session.scalars(select(Camera).order_by(Camera.id)):
        health = camera_health(c, now, silent_after)
        located = c.latitude is not None and c.longitude is not None
        features.append(
            {
                "type": "Feature",
                "id": c.id,
                "geometry": {"type": "Point", "coordinates": [c.longitude, c.latitude]}
                if located
                else None,
                "properties": {
                    "site": c.site,
                    "node": c.node,
                    "camera": c.camera,
                    "name": c.name,
                    **camera_places(c),
                    "state": health.state,
                    "reason": health.reason,
                    "seen_at": time_text(c.seen_at) if c.seen_at else None,
                    "updated_at": time_text(health.since),
                },
            }
        )
    return GeoJSONResponse({"type": "FeatureCollection", "features": features})


# A camera's fields as ``PATCH`` names them, where its column is named otherwise (the
# place set on central is the column ``place``; the list's ``place`` is the one shown).
_COLUMN = {"registered_place": "place"}


@router.patch(
    "/cameras/{camera_id}",
    tags=["registry"],
    summary="Name and locate a camera",
    responses=NOT_FOUND,
)
def update_camera(
    caller: Manager,
    session: SessionDep,
    camera_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)],
    body: CameraUpdate,
) -> CameraOut:
    """Changes the fields sent. The place set on central is `registered_place`, as the
    camera list names it: what a client read there it can send back unchanged. The list's
    `place` (the place shown: central's, or else its node's) is refused (422), so that a
    client writing back what it read cannot make the node's words central's without a
    word, hiding the node's later changes."""
    cam = session.get(Camera, camera_id)
    if cam is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id}")
    changes = {k: v for k, v in body.changes().items() if getattr(cam, _COLUMN.get(k, k)) != v}
    latitude = changes.get("latitude", cam.latitude)
    longitude = changes.get("longitude", cam.longitude)
    if (latitude is None) != (longitude is None):
        missing = "longitude" if longitude is None else "latitude"
        raise field_refused(
            ["body", missing],
            f"a map position needs both latitude and longitude: send {missing} too (or null"
            " for both, to take the camera off the map)",
            "position_half",
        )
    if changes:  # (a request that changes nothing leaves no audit entry)
        for key, value in changes.items():
            setattr(cam, _COLUMN.get(key, key), value)
        cam.edited_at = utcnow()  # (its state's time, ``updated_at``, stays)
        append_audit(
            session,
            actor=caller.username,
            action="camera_update",
            detail={"camera_id": camera_id, **changes},
        )
        session.commit()
    return camera_view(cam)
