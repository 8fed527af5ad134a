"""Evidence blobs: node upload (PUT/HEAD) and download for reviewers."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request, Response, status
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect

from central.api.deps import PROTECTED, ApiRefusal, NodeDep, Reviewer, SessionDep, StateDep
from central.api.schemas import EvidenceStored
from central.db import transaction
from central.evidence import SHA256_RE, EvidenceError, file_chunks, intact, of_media_type
from central.models import Blob
from central.records import blob_known, record_blob
from roadwatch.contract import MediaType

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["evidence"], responses=PROTECTED)
Sha256 = Annotated[
    str, PathParam(pattern=SHA256_RE.pattern, description="sha256 of the blob, lower-case hex")
]
MEDIA_TYPES = frozenset(m.value for m in MediaType)


def _check_sha(sha256: str) -> None:
    if not SHA256_RE.fullmatch(sha256):
        raise HTTPException(400, "not a sha256: expected 64 lower-case hex digits")


@router.put(
    "/evidence/{sha256}",
    summary="Upload one evidence blob (node token)",
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {m: {"schema": {"type": "string", "format": "binary"}} for m in MEDIA_TYPES},
        }
    },
    responses={
        200: {"description": "Already stored (idempotent)", "model": EvidenceStored},
        201: {"description": "Stored", "model": EvidenceStored},
        400: {"description": "Hash mismatch, bad sha256 or empty body"},
        401: {"description": "No or invalid upload token"},
        403: {"description": "Caller is not a node"},
        413: {"description": "Blob larger than ROADWATCH_MAX_EVIDENCE_BYTES"},
        415: {
            "description": "Media type is not image/jpeg, image/png or video/mp4, or the"
            " body is not of the type it is sent as"
        },
        503: {"description": "The evidence store is unavailable; try again later"},
    },
)
async def put_evidence(
    node: NodeDep,
    state: StateDep,
    request: Request,
    response: Response,
    sha256: Sha256,
    content_type: Annotated[str | None, Header()] = None,
    content_length: Annotated[int | None, Header()] = None,
) -> EvidenceStored:
    """Stores the body under its sha256 after checking the hash while it streams in."""
    _check_sha(sha256)
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type not in MEDIA_TYPES:
        raise HTTPException(415, f"media type must be one of {', '.join(sorted(MEDIA_TYPES))}")
    limit = state.settings.max_evidence_bytes
    if content_length is not None and content_length > limit:
        state.metrics.evidence.labels("too_large").inc()
        raise HTTPException(413, f"blob is {content_length} bytes; at most {limit} allowed")
    node_id = node.id
    try:
        body = of_media_type(request.stream(), media_type)
        stored = await state.store.put(sha256, body, limit)
    except EvidenceError as exc:
        state.metrics.evidence.labels("refused").inc()
        raise HTTPException(exc.status, str(exc)) from exc
    except ClientDisconnect:
        # The node went away mid-body: nothing was stored, it sends the blob again.
        state.metrics.evidence.labels("disconnected").inc()
        raise HTTPException(400, "the upload ended before its body was complete") from None

    def note() -> list[int]:
        with transaction(state.sessions) as session:
            return record_blob(
                session, sha256=sha256, size=stored.size, media_type=media_type, node_id=node_id
            )

    completed = await run_in_threadpool(note)
    ingest = getattr(request.app.state, "ingest", None)
    if completed and ingest is not None:
        # The nodes learn from a fresh receipt that these events' evidence is complete.
        await run_in_threadpool(ingest.send_completion_receipts, completed)
    response.status_code = 201 if stored.created else 200
    state.metrics.evidence.labels("stored" if stored.created else "present").inc()
    return EvidenceStored(
        sha256=sha256, size=stored.size, stored=stored.created, completed_violations=completed
    )


@router.head(
    "/evidence/{sha256}",
    summary="Is this blob stored? (node token)",
    responses={
        200: {"description": "Stored"},
        400: {"description": "Not a sha256"},
        404: {"description": "Not stored"},
        503: {"description": "The evidence store is unavailable; try again later"},
    },
)
def head_evidence(_: NodeDep, state: StateDep, session: SessionDep, sha256: Sha256) -> Response:
    _check_sha(sha256)
    # (a stored copy that no longer hashes to its name is not stored: the node sends it again)
    if blob_known(session, sha256) and intact(state.store, sha256):
        return Response(status_code=200)
    return Response(status_code=404)


@router.get(
    "/evidence/{sha256}",
    summary="Download an evidence blob",
    response_class=StreamingResponse,
    responses={
        200: {"content": {m: {} for m in MEDIA_TYPES}},
        400: {"description": "Not a sha256"},
        404: {"description": "Not here"},
        409: {"description": "The stored copy no longer hashes to its sha256 (not served)"},
        503: {"description": "The evidence store is unavailable; try again later"},
    },
)
def get_evidence(
    _: Reviewer, state: StateDep, session: SessionDep, sha256: Sha256
) -> StreamingResponse:
    _check_sha(sha256)
    blob = session.get(Blob, sha256)
    session.close()  # the download may take long: it holds no database connection
    missing = HTTPException(status.HTTP_404_NOT_FOUND, "blob has not arrived")
    if blob is None or not state.store.exists(sha256):
        raise missing
    try:
        # Read from the store once: the bytes checked against the sha256 are those served.
        checked = state.store.open_checked(sha256)
    except FileNotFoundError:
        raise missing from None
    if checked is None:
        log.error("evidence %s in the store no longer hashes to its name", sha256)
        state.metrics.damaged.inc()
        raise ApiRefusal(
            status.HTTP_409_CONFLICT,
            "evidence_damaged",
            "the stored copy no longer hashes to its sha256: it was altered or damaged in"
            " the store, and is not served (its node can send it again)",
        )
    return StreamingResponse(
        file_chunks(checked),
        media_type=blob.media_type,
        headers={
            "Content-Length": str(blob.size),
            "Cache-Control": "private, max-age=86400",
            # Opened on its own (a link copied from the case page), a blob is shown as
            # its type says or not at all: never read as a page or run as one.
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )
