"""ByteTrack association (Zhang et al., 2022) with a constant-velocity Kalman filter.

Pure NumPy plus SciPy's assignment solver; no I/O. Every output row *is* the detection
that was associated, so a tracked object is never dropped from a frame because its
filtered box drifted from the detection.

Why not a library: supervision's ``ByteTrack`` is the obvious one, and its 0.30 series is
the only one that ships it without requiring the ``opencv-python`` wheel (which clashes
with ``opencv-python-headless``; 0.27-0.29 require it, 0.31 removed ByteTrack in favour of
the ``trackers`` package, which requires it too). Measured on the Hanoi clip with the same
detections, supervision 0.30.9 gave an id to 4,803 of 7,136 detections, this module to
6,415: supervision re-matches its Kalman boxes to the detections after tracking and drops
pairs under IoU 0.5, which on the hand-labelled stretch in the tests lost a car that
was being tracked in 3 of its 4 labelled frames.

Steps per frame (as in the paper): predict every track; match high-score detections to
tracked and lost tracks by IoU; match the low-score detections to the tracks still
unmatched; let unconfirmed tracks take what is left; start new tracks from unmatched
high-score detections; forget tracks lost for longer than the buffer.

Time is the frames' own: the prediction spans the time since the frame before (in
nominal frame periods, so a camera whose frames come late or are dropped has its tracks
carried as far as they went), and a lost track is forgotten after the buffer's seconds,
however few frames came meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from edge.boxes import iou

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_STD_POSITION = 1.0 / 20
_STD_VELOCITY = 1.0 / 160
# Rounding in frame times (index / fps) must not end a track one frame before its buffer.
TIME_SLACK_S = 1e-6


def _xyah_all(boxes: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]:
    """(K, 4) boxes (x1, y1, x2, y2) -> (K, 4) measurements (centre, aspect, height)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return np.stack([boxes[:, 0] + w / 2, boxes[:, 1] + h / 2, w / np.maximum(h, 1e-6), h], 1)


class KalmanBox:
    """Constant-velocity Kalman filter on (centre x, centre y, aspect, height).

    A camera's boxes step together (``predict_all``, ``update_all``): one array operation
    for all of a frame's tracks instead of a few small ones per track."""

    def __init__(self, box: npt.NDArray[np.floating]) -> None:
        z = _xyah_all(np.asarray(box)[None])[0].astype(np.float64)
        self.mean = np.r_[z, np.zeros(4)]
        h = z[3]
        p, v = 2 * _STD_POSITION * h, 10 * _STD_VELOCITY * h
        std = [p, p, 1e-2, p, v, v, 1e-5, v]
        self.cov = np.diag(np.square(std))


# Process noise (one sigma) per unit of box height, and the aspect's fixed sigmas.
_PROCESS_STD = np.array([
    _STD_POSITION, _STD_POSITION, 0.0, _STD_POSITION,
    _STD_VELOCITY, _STD_VELOCITY, 0.0, _STD_VELOCITY,
])  # fmt: skip
_PROCESS_FIXED = np.array([0.0, 0.0, 1e-2, 0.0, 0.0, 0.0, 1e-5, 0.0])
_MEASURE_STD = np.array([_STD_POSITION, _STD_POSITION, 0.0, _STD_POSITION])
_MEASURE_FIXED = np.array([0.0, 0.0, 1e-1, 0.0])


def _xyxy(means: FloatArray) -> FloatArray:
    """(K, 8) states -> (K, 4) boxes (x1, y1, x2, y2)."""
    cx, cy, a, h = means[:, 0], means[:, 1], means[:, 2], means[:, 3]
    w = a * h
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def predict_all(boxes: list[KalmanBox], steps: float = 1.0) -> None:
    """``steps`` frame periods for each box: positions move by their velocities (per frame
    period), uncertainty grows with the box's height and the time spanned."""
    if not boxes:
        return
    mean = np.stack([b.mean for b in boxes])
    cov = np.stack([b.cov for b in boxes])
    noise = np.square(_PROCESS_FIXED + _PROCESS_STD * mean[:, 3:4]) * steps
    mean[:, :4] += steps * mean[:, 4:]
    # F P F^T with F = [[I, s I], [0, I]], written out by blocks (for s = 1, the same sums
    # in the same order as the one-frame step, to the last bit).
    a, b, c, d = cov[:, :4, :4], cov[:, :4, 4:], cov[:, 4:, :4], cov[:, 4:, 4:]
    stepped = np.empty_like(cov)
    stepped[:, :4, :4] = a + steps * b + steps * c + (steps * steps) * d
    stepped[:, :4, 4:] = b + steps * d
    stepped[:, 4:, :4] = c + steps * d
    stepped[:, 4:, 4:] = d
    diagonal = np.arange(8)
    stepped[:, diagonal, diagonal] += noise
    for i, box in enumerate(boxes):
        box.mean, box.cov = mean[i], stepped[i]


def update_all(boxes: list[KalmanBox], measured: npt.NDArray[np.floating]) -> None:
    """Correct each box with its measured box (rows of ``measured``, x1 y1 x2 y2)."""
    if not boxes:
        return
    mean = np.stack([b.mean for b in boxes])
    cov = np.stack([b.cov for b in boxes])
    # (In the boxes' own precision, as a track's first box is: the same numbers.)
    z = _xyah_all(np.asarray(measured)).astype(np.float64)
    diagonal = np.arange(4)
    # The measurement reads the positions: H P H^T is P's top-left block, H P its top rows.
    innovation_cov = cov[:, :4, :4].copy()
    innovation_cov[:, diagonal, diagonal] += np.square(_MEASURE_FIXED + _MEASURE_STD * mean[:, 3:4])
    gain = np.linalg.solve(innovation_cov, cov[:, :4, :]).transpose(0, 2, 1)  # (K, 8, 4)
    mean = mean + np.einsum("kij,kj->ki", gain, z - mean[:, :4])
    cov = cov - gain @ innovation_cov @ gain.transpose(0, 2, 1)
    for i, box in enumerate(boxes):
        box.mean, box.cov = mean[i], cov[i]


class TrackPhase(Enum):
    NEW = "new"  # not confirmed yet: has no public id
    TRACKED = "tracked"
    LOST = "lost"


@dataclass(eq=False)
class ByteTrack:
    kalman: KalmanBox
    score: float
    last_t: float  # seconds, when it was last matched
    hits: int = 1
    phase: TrackPhase = TrackPhase.NEW
    track_id: int = 0  # assigned when confirmed; always > 0 after that


@dataclass(frozen=True)
class Association:
    """Detection rows that belong to a confirmed track this frame, and their ids."""

    detection_index: IntArray
    track_id: IntArray


def _match(
    tracks: list[ByteTrack], boxes: npt.NDArray[np.float32], max_cost: float
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Hungarian matching on 1 - IoU; pairs above ``max_cost`` are refused."""
    if not tracks or len(boxes) == 0:
        return [], list(range(len(tracks))), list(range(len(boxes)))
    predicted = _xyxy(np.stack([t.kalman.mean for t in tracks])).astype(np.float32)
    cost = 1.0 - iou(predicted, boxes)
    rows, cols = linear_sum_assignment(cost)
    pairs = [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if cost[r, c] <= max_cost]
    used_t = {r for r, _ in pairs}
    used_d = {c for _, c in pairs}
    return (
        pairs,
        [i for i in range(len(tracks)) if i not in used_t],
        [j for j in range(len(boxes)) if j not in used_d],
    )


@dataclass
class ByteTracker:
    """ByteTrack state for one camera."""

    # Without a per-detection ``high`` mask, detections from it up lead the association.
    high_threshold: float = 0.25
    low_threshold: float = 0.1  # low detections from it up only extend existing tracks
    new_track_threshold: float = 0.35  # a high detection needs this much to start a track
    match_cost: float = 0.8  # 1 - IoU allowed in the first association
    low_match_cost: float = 0.5
    new_match_cost: float = 0.7
    max_lost_s: float = 1.0  # a track unmatched for longer is forgotten
    frame_period_s: float = 1 / 30  # the nominal time between frames: the filter's unit
    confirm_hits: int = 2
    _tracks: list[ByteTrack] = field(default_factory=list)
    _frame: int = -1
    _last_t: float | None = None
    _next_id: int = 1

    def update(
        self,
        xyxy: npt.NDArray[np.float32],
        scores: npt.NDArray[np.float32],
        t: float,
        high: npt.NDArray[np.bool_] | None = None,
    ) -> Association:
        """The association of one frame's detections, seen at ``t`` seconds. ``high``
        says which detections lead (the detector's own call, per class); by default those
        scoring ``high_threshold`` or more. Only a high detection starts a track."""
        self._frame += 1
        frame = self._frame
        # (Rounded: frames at their nominal times step exactly one period each.)
        since = 1.0 if self._last_t is None else (t - self._last_t) / self.frame_period_s
        self._last_t = t
        predict_all([k.kalman for k in self._tracks], max(0.0, round(since, 6)))
        out_det: list[int] = []
        out_id: list[int] = []
        # A track is matched at most once per frame and each stage matches on boxes the
        # stages before did not correct, so the corrections are made together at the end.
        corrected: list[tuple[KalmanBox, int]] = []

        def hit(track: ByteTrack, det: int) -> None:
            corrected.append((track.kalman, det))
            track.score = float(scores[det])
            track.last_t = t
            track.hits += 1
            if track.phase is TrackPhase.NEW and track.hits >= self.confirm_hits:
                track.track_id = self._next_id
                self._next_id += 1
            if track.track_id:
                track.phase = TrackPhase.TRACKED
                out_det.append(det)
                out_id.append(track.track_id)

        leads = scores >= self.high_threshold if high is None else np.asarray(high, bool)
        high_i = np.flatnonzero(leads)
        low = np.flatnonzero(~leads & (scores >= self.low_threshold))
        confirmed = [k for k in self._tracks if k.phase is not TrackPhase.NEW]
        unconfirmed = [k for k in self._tracks if k.phase is TrackPhase.NEW]

        pairs, rest_t, rest_d = _match(confirmed, xyxy[high_i], self.match_cost)
        for ti, di in pairs:
            hit(confirmed[ti], int(high_i[di]))
        left_high = high_i[rest_d]

        still_tracked = [confirmed[i] for i in rest_t if confirmed[i].phase is TrackPhase.TRACKED]
        pairs, rest_t2, _ = _match(still_tracked, xyxy[low], self.low_match_cost)
        for ti, di in pairs:
            hit(still_tracked[ti], int(low[di]))
        for i in rest_t2:
            still_tracked[i].phase = TrackPhase.LOST

        pairs, rest_u, rest_d = _match(unconfirmed, xyxy[left_high], self.new_match_cost)
        for ti, di in pairs:
            hit(unconfirmed[ti], int(left_high[di]))
        dead = {id(unconfirmed[i]) for i in rest_u}

        update_all([k for k, _ in corrected], xyxy[[d for _, d in corrected]])

        for di in left_high[rest_d]:
            if scores[di] < self.new_track_threshold:
                continue
            track = ByteTrack(KalmanBox(xyxy[di]), float(scores[di]), t)
            self._tracks.append(track)
            if frame == 0 or self.confirm_hits <= 1:
                track.track_id = self._next_id
                self._next_id += 1
                track.phase = TrackPhase.TRACKED
                out_det.append(int(di))
                out_id.append(track.track_id)

        horizon = t - self.max_lost_s - TIME_SLACK_S
        self._tracks = [k for k in self._tracks if id(k) not in dead and k.last_t >= horizon]
        order = np.argsort(np.array(out_det, dtype=np.int64), kind="stable")
        return Association(
            np.array(out_det, dtype=np.int64)[order], np.array(out_id, dtype=np.int64)[order]
        )

    @property
    def live_tracks(self) -> int:
        return len(self._tracks)
