"""The evidence package of one violation, built from its camera's ring buffer.

At least three full frames (before, at and after the decisive moment) with the caption,
crops of the vehicle, the plate and the signal lamp (when their boxes are known, taken
from the unmarked frame), and an H.264 clip of +/- ``clip_half_s``. Every blob is hashed
(sha256), the event lists them, and the event is signed with the node key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.evidence.clip import encode_clip
from edge.evidence.overlay import Box, caption_lines, draw_caption
from edge.evidence.ring import BufferedFrame, EvidenceRing, Image, encode_jpeg
from edge.outbox import EvidenceBlob, sha256_hex
from roadwatch.contract import EvidenceRef, EvidenceRole, MediaType, ViolationEvent
from roadwatch.contract.models import MAX_LONG_TEXT
from roadwatch.contract.signing import sign


class EvidenceError(ValueError):
    """The ring does not hold what the package needs (too few frames, box off-frame)."""


@dataclass(frozen=True, slots=True)
class EvidenceRequest:
    """What a rule hands over: the (unsigned) event and where to look."""

    event: ViolationEvent
    decisive_mono_s: float
    vehicle_box: Box
    plate_box: Box | None = None
    plate_crop: Image | None = None  # the plate as read (any frame), preferred to plate_box
    lamp_box: Box | None = None
    frame_offset_s: float = 1.0
    clip_half_s: float = 3.0

    @property
    def ready_at_mono_s(self) -> float:
        """The package can be built once the ring holds frames up to this time."""
        return self.decisive_mono_s + max(self.frame_offset_s, self.clip_half_s)


@dataclass(frozen=True, slots=True)
class EvidencePackage:
    event: ViolationEvent  # signed; its evidence list matches ``blobs``
    blobs: tuple[EvidenceBlob, ...]

    def without(self, roles: Iterable[EvidenceRole], key: Ed25519PrivateKey) -> EvidencePackage:
        """The package less some blobs (refused for lack of disk), signed again."""
        drop = set(roles)
        blobs = tuple(b for b in self.blobs if b.ref.role not in drop)
        unsigned = self.event.model_copy(
            update={"evidence": [b.ref for b in blobs], "signature": None}
        )
        return EvidencePackage(event=sign(unsigned, key), blobs=blobs)


NO_EVIDENCE_VI = (
    " Không có chứng cứ: thiết bị không lưu được hình ảnh (lý do: xem bản gốc tiếng Anh)."
)


def _noted(text: str, note: str) -> str:
    """``text`` and then ``note`` (a sentence of its own: the rule's text, which ends
    without a full stop, is given one), cut to what the event holds."""
    ended = not text or text.endswith((".", "…", "!", "?"))
    body = text if ended else text + "."
    room = MAX_LONG_TEXT - len(note)
    return (body[:room] + note)[:MAX_LONG_TEXT]


def without_evidence(event: ViolationEvent, why: str, key: Ed25519PrivateKey) -> EvidencePackage:
    """The violation with no evidence at all, signed, its explanation saying why (its
    frames are gone): found by a rule, it is still stored and reviewed, never lost."""
    update: dict[str, object] = {
        "evidence": [],
        "signature": None,
        "explanation": _noted(event.explanation, f" No evidence: {why}"),
    }
    if event.explanation_vi is not None:
        # (the reason is the node's own English words: the Vietnamese points to them)
        update["explanation_vi"] = _noted(event.explanation_vi, NO_EVIDENCE_VI)
    unsigned = event.model_copy(update=update)
    checked = ViolationEvent.model_validate(unsigned.model_dump())
    return EvidencePackage(event=sign(checked, key), blobs=())


def _blob(role: EvidenceRole, media: MediaType, data: bytes) -> EvidenceBlob:
    ref = EvidenceRef(role=role, media_type=media, sha256=sha256_hex(data), size=len(data))
    return EvidenceBlob(ref=ref, data=data)


def _nearest(frames: Sequence[BufferedFrame], t: float) -> BufferedFrame:
    return min(frames, key=lambda f: abs(f.mono_s - t))


def _crop(image: Image, box: Box, margin: float) -> Image:
    height, width = image.shape[:2]
    try:
        x1, y1, x2, y2 = box.expanded(margin).clipped(width, height)
    except ValueError as exc:
        raise EvidenceError(str(exc)) from exc
    return image[y1:y2, x1:x2]


class EvidenceBuilder:
    """Builds signed evidence packages; holds the node key and encoding settings."""

    def __init__(
        self, key: Ed25519PrivateKey, *, jpeg_quality: int = 90, ffmpeg: str | None = None
    ) -> None:
        self._key = key
        self._quality = jpeg_quality
        self._ffmpeg = ffmpeg

    def build(
        self,
        ring: EvidenceRing,
        request: EvidenceRequest,
        *,
        frames: Sequence[BufferedFrame] | None = None,
    ) -> EvidencePackage:
        """The package of ``request`` from the ring's frames around the decisive moment
        (``frames``: that window, when the caller has already taken it from the ring)."""
        t = request.decisive_mono_s
        if frames is None:
            frames = ring.window(t - request.clip_half_s, t + request.clip_half_s)
        if not frames:
            raise EvidenceError(f"the ring of {ring.camera} holds no frame near the violation")
        at = _nearest(frames, t)
        # (a pushed config may have changed the camera's resolution within the window: the
        # case is told in the frames of the decisive one's size)
        frames = [f for f in frames if (f.width, f.height) == (at.width, at.height)]
        before_pool = [f for f in frames if f.mono_s < at.mono_s]
        after_pool = [f for f in frames if f.mono_s > at.mono_s]
        if not before_pool or not after_pool:
            raise EvidenceError(
                f"the ring of {ring.camera} lacks frames before or after the violation "
                f"({len(before_pool)} before, {len(after_pool)} after)"
            )
        before = _nearest(before_pool, t - request.frame_offset_s)
        after = _nearest(after_pool, t + request.frame_offset_s)

        event = request.event
        at_image = at.image()
        blobs: list[EvidenceBlob] = []
        for role, frame in (
            (EvidenceRole.FRAME_BEFORE, before),
            (EvidenceRole.FRAME_AT, at),
            (EvidenceRole.FRAME_AFTER, after),
        ):
            image = at_image if frame is at else frame.image()
            box = request.vehicle_box if frame is at else None
            try:
                marked = draw_caption(image, caption_lines(event, role, frame.captured_at), box)
            except ValueError as exc:
                raise EvidenceError(str(exc)) from exc
            blobs.append(_blob(role, MediaType.JPEG, encode_jpeg(marked, self._quality)))
        plate_box = request.plate_box if request.plate_crop is None else None
        crops = (
            (EvidenceRole.VEHICLE_CROP, request.vehicle_box, 0.1),
            (EvidenceRole.PLATE_CROP, plate_box, 0.15),
            (EvidenceRole.LAMP_CROP, request.lamp_box, 0.3),
        )
        for role, crop_box, margin in crops:
            if crop_box is not None:
                crop = _crop(at_image, crop_box, margin)
                blobs.append(_blob(role, MediaType.JPEG, encode_jpeg(crop, self._quality)))
        if request.plate_crop is not None and request.plate_crop.size:
            blobs.append(
                _blob(
                    EvidenceRole.PLATE_CROP,
                    MediaType.JPEG,
                    encode_jpeg(np.ascontiguousarray(request.plate_crop), self._quality),
                )
            )
        clip = encode_clip(frames, ffmpeg=self._ffmpeg)
        blobs.append(_blob(EvidenceRole.CLIP, MediaType.MP4, clip))
        unsigned = event.model_copy(update={"evidence": [b.ref for b in blobs], "signature": None})
        # Validate the filled event (model_copy does not), then sign it.
        checked = ViolationEvent.model_validate(unsigned.model_dump())
        return EvidencePackage(event=sign(checked, self._key), blobs=tuple(blobs))

    def without_evidence(self, event: ViolationEvent, why: str) -> EvidencePackage:
        """``event`` signed with no evidence, saying why (see ``without_evidence``)."""
        return without_evidence(event, why, self._key)
