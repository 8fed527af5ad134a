"""Rendering ground-truth scenes from real imagery, and writing them as H.264 video.

The road is a real, empty road: the median of a real gantry clip, re-projected through
the scene's camera using that clip's survey (its dashed lanes repeat every 6 m, so the
texture tiles along the road). The vehicles are real cut-outs from the same clip (each
one the foreground of a frame against the empty road), scaled by their distance.

The cut-outs' own plates (a far gantry view: some 15 pixels wide) can never be read. A
scene may give vehicles a plate picture (``PlateArt``): it is drawn over the cut-out's
own plate at its real size, in the perspective of the scene's camera, before the
camera's noise and the video coding, so what can be read of it is what the camera sees.
"""

from __future__ import annotations

import math
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from calibration.config import PointsFile
from calibration.errors import CalibrationError
from calibration.homography import (
    Matrix3,
    apply_homography,
    fit_homography,
)
from calibration.scenes import (
    BoxTruth,
    FrameTruth,
    LampColourName,
    PhaseTruth,
    SceneSpec,
    SceneTruth,
    SignalHeadSpec,
    VehicleTruth,
    camera_truth,
)

Image = npt.NDArray[np.uint8]

SAMPLE_CLIP = "kraten_cars.mp4"
SAMPLE_SURVEY = Path(__file__).with_name("examples") / "kraten_cars.points.yaml"
# The stretch of the sample road that tiles: three 6 m dash periods nearest the camera.
TILE_M = (0.0, 18.0)
# Across the road the texture mirrors about the outer lane centres, so lanes repeat.
MIRROR_X_M = (-5.25, 5.25)
FAR_ROAD_M = 400.0
# Foreground: a pixel differs from the empty road by more than this (0-255).
FOREGROUND_THRESHOLD = 35
MIN_SPRITE_AREA_PX = 2500
SHADOW_MAX_RATIO = 0.85
SHADOW_MAX_SATURATION_CHANGE = 30
SHADOW_MAX_VALUE = 90
# Where a cut-out's own plate is looked for (fractions of its box): the rear bumper.
PLATE_SEARCH_X = (0.15, 0.85)
PLATE_SEARCH_Y = (0.45, 0.97)
# Height of a rear plate's centre above the road, metres (only its perspective uses it).
PLATE_CENTRE_Z_M = 0.55


@dataclass(frozen=True)
class Sprite:
    """A real vehicle cut-out: its pixels, its opacity and its real width on the road;
    ``plate_at`` is the centre of its own rear plate (fractions of its width and height),
    where one was found."""

    image: Image
    alpha: npt.NDArray[np.float32]
    width_m: float
    source: str
    plate_at: tuple[float, float] | None = None


@dataclass(frozen=True)
class PlateArt:
    """A number plate to put on a vehicle: its picture seen square-on (BGR) and its real
    width in metres (its height follows from the picture's proportions)."""

    image: Image
    width_m: float

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or min(self.image.shape[:2]) < 8:
            raise CalibrationError("a plate picture must be a colour image of at least 8x8 px")
        if not 0.1 <= self.width_m <= 1.0:
            raise CalibrationError(f"plate width {self.width_m} m is outside 0.1-1.0 m")


def find_plate(image: Image, alpha: npt.NDArray[np.float32]) -> tuple[float, float] | None:
    """The centre of a cut-out's own plate (fractions of its box), or None.

    The sample clip's plates are blue: the plate is the largest plate-shaped blue patch on
    the vehicle's rear bumper (a blue truck body is too large to be one)."""
    h, w = image.shape[:2]
    px = image.astype(np.int16)
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    bluish = px[..., 0] - np.maximum(px[..., 1], px[..., 2]) > 20
    blue_hue = (hsv[..., 0] >= 95) & (hsv[..., 0] <= 130) & (hsv[..., 1] >= 60)
    x0, x1 = (round(f * w) for f in PLATE_SEARCH_X)
    y0, y1 = (round(f * h) for f in PLATE_SEARCH_Y)
    window = np.zeros((h, w), bool)
    window[y0:y1, x0:x1] = True
    found = (bluish | blue_hue) & (hsv[..., 2] >= 60) & (alpha > 0.5) & window
    mask = cv2.morphologyEx(found.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((2, 3), np.uint8))
    count, _, stats, centres = cv2.connectedComponentsWithStats(mask)
    best: tuple[int, float, float] | None = None
    for k in range(1, count):
        _, _, bw, bh, area = (int(v) for v in stats[k])
        plate_shaped = bw <= 0.4 * w and bh <= 0.2 * h and bw >= 1.2 * bh and area >= 8
        if plate_shaped and (best is None or area > best[0]):
            best = (area, float(centres[k][0]), float(centres[k][1]))
    if best is None:
        return None
    return ((best[1] + 0.5) / w, (best[2] + 0.5) / h)


@dataclass(frozen=True)
class SceneAssets:
    road: Image
    road_to_image: Matrix3
    """Road metres -> pixels of ``road``."""
    sky: Image
    sprites: tuple[Sprite, ...]


def _median_background(capture: cv2.VideoCapture, step: int) -> tuple[Image, list[Image]]:
    frames: list[Image] = []
    index = 0
    while True:
        if index % step == 0:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(np.asarray(frame, dtype=np.uint8))
        elif not capture.grab():
            break
        index += 1
    if len(frames) < 5:
        raise CalibrationError("sample clip too short for an empty-road background")
    return np.median(np.stack(frames), axis=0).astype(np.uint8), frames


def _cut_out(frame: Image, road: Image, image_to_road: Matrix3, source: str) -> Sprite | None:
    """The largest whole vehicle in the near part of ``frame``, if there is one."""
    diff = np.abs(frame.astype(np.int16) - road.astype(np.int16)).max(axis=2)
    # A cast shadow darkens the road without changing its colour: it is not the vehicle,
    # and leaving it in would put the vehicle's contact point below its bumper.
    hsv_frame = cv2.cvtColor(frame, cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv_road = cv2.cvtColor(road, cv2.COLOR_BGR2HSV).astype(np.float32)
    darker = (hsv_frame[..., 2] + 1) / (hsv_road[..., 2] + 1) < SHADOW_MAX_RATIO
    grey = np.abs(hsv_frame[..., 1] - hsv_road[..., 1]) < SHADOW_MAX_SATURATION_CHANGE
    shadow = darker & grey & (hsv_frame[..., 2] < SHADOW_MAX_VALUE)
    mask = ((diff > FOREGROUND_THRESHOLD) & ~shadow).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    h, w = mask.shape
    best = None
    for k in range(1, count):
        x, y, bw, bh, area = (int(v) for v in stats[k])
        inside = x > 0.23 * w and x + bw < 0.88 * w and y > 0.3 * h and y + bh < 0.95 * h
        plausible = inside and area >= MIN_SPRITE_AREA_PX and 0.5 < bw / bh < 1.6
        if plausible and (best is None or area > best[4]):
            best = (x, y, bw, bh, area, k)
    if best is None:
        return None
    x, y, bw, bh, _, k = best
    solid = np.zeros((bh, bw), np.uint8)
    contours, _ = cv2.findContours(
        (labels[y : y + bh, x : x + bw] == k).astype(np.uint8),
        cv2.RETR_EXTERNAL,
        cv2.CHAIN_APPROX_NONE,
    )
    # Seen from above, a vehicle's outline is close to convex: the hull also fills the
    # windows, which are as dark as the road and so missing from the foreground.
    hull = cv2.convexHull(np.vstack(contours))
    cv2.fillConvexPoly(solid, hull, 1)
    alpha = np.asarray(cv2.GaussianBlur(solid.astype(np.float32), (3, 3), 0), np.float32)
    # Real width from the survey: the box's bottom edge measured on the road.
    ends = apply_homography(image_to_road, np.array([[x, y + bh - 1.0], [x + bw, y + bh - 1.0]]))
    width_m = float(np.hypot(*(ends[1] - ends[0])))
    if not (1.4 <= width_m <= 3.0):
        return None
    image = np.ascontiguousarray(frame[y : y + bh, x : x + bw])
    return Sprite(
        image=image,
        alpha=alpha,
        width_m=width_m,
        source=source,
        plate_at=find_plate(image, alpha),
    )


def load_assets(data_dir: Path, max_sprites: int = 8) -> SceneAssets:
    """Road texture and vehicle cut-outs from the sample gantry clip in ``data_dir``."""
    from calibration.store import load_points

    clip = data_dir / SAMPLE_CLIP
    if not clip.is_file():
        raise CalibrationError(f"sample clip {clip} is not there (scene imagery comes from it)")
    survey: PointsFile = load_points(SAMPLE_SURVEY)
    fit = fit_homography([p.pair() for p in survey.points], survey.ransac_threshold_px)
    capture = cv2.VideoCapture(str(clip))
    try:
        road, frames = _median_background(capture, step=10)
    finally:
        capture.release()
    sprites: list[Sprite] = []
    for i, frame in enumerate(frames[::5]):
        sprite = _cut_out(frame, road, fit.image_to_world, f"{SAMPLE_CLIP} frame {i * 50}")
        if sprite is not None:
            sprites.append(sprite)
        if len(sprites) == max_sprites:
            break
    if not sprites:
        raise CalibrationError(f"no vehicle cut-outs found in {clip}")
    sky_rows = max(8, road.shape[0] // 6)
    return SceneAssets(
        road=road,
        road_to_image=fit.world_to_image,
        sky=np.ascontiguousarray(road[:sky_rows]),
        sprites=tuple(sprites),
    )


def _background(spec: SceneSpec, assets: SceneAssets) -> Image:
    """The empty road as the scene's camera sees it."""
    camera = spec.camera
    us, vs = np.meshgrid(np.arange(camera.width) + 0.5, np.arange(camera.height) + 0.5)
    pixels = np.column_stack([us.ravel(), vs.ravel()])
    world = apply_homography(camera.image_to_world, pixels)
    road = np.isfinite(world).all(axis=1) & (world[:, 1] < FAR_ROAD_M)
    y0, y1 = TILE_M
    tiled = world.copy()
    tiled[road, 1] = y0 + np.mod(world[road, 1] - y0, y1 - y0)
    x0, x1 = MIRROR_X_M
    folded = np.mod(world[road, 0] - x0, 2 * (x1 - x0))
    tiled[road, 0] = x0 + np.where(folded > x1 - x0, 2 * (x1 - x0) - folded, folded)
    source = np.zeros_like(world)
    source[road] = apply_homography(assets.road_to_image, tiled[road])
    shape = (camera.height, camera.width)
    image = cv2.remap(
        assets.road,
        source[:, 0].reshape(shape).astype(np.float32),
        source[:, 1].reshape(shape).astype(np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT,
    )
    road_rows = np.flatnonzero(road.reshape(shape).any(axis=1))
    horizon = int(road_rows[0]) if road_rows.size else camera.height
    if horizon > 0:
        sky = cv2.resize(assets.sky, (camera.width, horizon), interpolation=cv2.INTER_LINEAR)
        not_road = ~road.reshape(shape)[:horizon]
        image[:horizon][not_road] = sky[not_road]
    return np.asarray(image, dtype=np.uint8)


# Lamp colours (BGR): lit, and the dark glass of an unlit lamp.
LAMP_LIT = {
    LampColourName.RED: (40, 40, 255),
    LampColourName.YELLOW: (0, 200, 255),
    LampColourName.GREEN: (90, 255, 40),
}
LAMP_DARK = {
    LampColourName.RED: (40, 40, 70),
    LampColourName.YELLOW: (35, 60, 70),
    LampColourName.GREEN: (50, 70, 40),
}
HOUSING = (28, 28, 28)


def _paint(image: Image, spec: SceneSpec) -> Image:
    """Road markings painted onto the empty road (blended, as worn paint lets the road show)."""
    if not spec.markings:
        return image
    layer = image.copy()
    for marking in spec.markings:
        pixels = spec.camera.project(np.array(marking.polygon, dtype=np.float64))
        if not np.isfinite(pixels).all():
            raise CalibrationError(f"scene {spec.name}: a road marking is behind the camera")
        points = np.round(pixels * 16).astype(np.int32)
        cv2.fillConvexPoly(layer, points, marking.colour, lineType=cv2.LINE_AA, shift=4)
    return np.asarray(cv2.addWeighted(layer, 0.85, image, 0.15, 0), dtype=np.uint8)


def _draw_signal(frame: Image, head: SignalHeadSpec, t: float) -> None:
    x0, y0, x1, y1 = head.box
    cv2.rectangle(frame, (x0, y0), (x1 - 1, y1 - 1), HOUSING, thickness=-1)
    lit = head.colour_at(t)
    for colour, (a, b, c, d) in zip(LAMP_LIT, head.lamp_boxes(), strict=True):
        centre = ((a + c) // 2, (b + d) // 2)
        radius = max(2, min(c - a, d - b) // 2)
        fill = LAMP_LIT[colour] if colour is lit else LAMP_DARK[colour]
        cv2.circle(frame, centre, radius, fill, thickness=-1, lineType=cv2.LINE_AA)


@dataclass(frozen=True)
class _Placed:
    vehicle_id: int
    xyxy: tuple[float, float, float, float]
    world: tuple[float, float]
    contact: tuple[float, float]
    speed_kmh: float
    area_px: float


class SceneRenderer:
    """Draws the frames of one scene; frame ``i`` depends only on the spec, the plates and
    ``i``. ``plates`` gives vehicles (by id) a plate drawn over their cut-out's own."""

    def __init__(
        self, spec: SceneSpec, assets: SceneAssets, plates: Mapping[int, PlateArt] | None = None
    ) -> None:
        for v in spec.vehicles:
            if not 0 <= v.sprite < len(assets.sprites):
                raise CalibrationError(
                    f"scene {spec.name}: vehicle {v.vehicle_id} uses sprite {v.sprite}, "
                    f"only {len(assets.sprites)} loaded"
                )
        known = {v.vehicle_id for v in spec.vehicles}
        if unknown := sorted(set(plates or {}) - known):
            raise CalibrationError(f"scene {spec.name}: plates for unknown vehicles {unknown}")
        self.spec = spec
        self.assets = assets
        self.plates = dict(plates or {})
        self.background = _paint(_background(spec, assets), spec)

    def truth(self) -> SceneTruth:
        return SceneTruth(
            name=self.spec.name,
            seed=self.spec.seed,
            fps=self.spec.fps,
            camera=camera_truth(self.spec.camera),
            vehicles=[
                VehicleTruth(
                    vehicle_id=v.vehicle_id,
                    speed_kmh=v.speed_kmh,
                    velocity_kmh=v.velocity_kmh,
                    width_m=self.assets.sprites[v.sprite].width_m,
                    sprite=v.sprite,
                )
                for v in self.spec.vehicles
            ],
            frames=[],
            signal_phases=[]
            if self.spec.signal is None
            else [PhaseTruth(start_s=p.start_s, colour=p.colour) for p in self.spec.signal.phases],
        )

    def render(self, index: int) -> tuple[Image, FrameTruth]:
        spec, camera = self.spec, self.spec.camera
        t = spec.time(index)
        frame = self.background.copy()
        owner = np.zeros(frame.shape[:2], np.int32)
        placed: list[_Placed] = []
        todo = []
        for v in spec.vehicles:
            position = v.position(t)
            if position is not None:
                todo.append((float(camera.depth(np.array([position]))[0]), v, position))
        for depth, vehicle, position in sorted(todo, key=lambda item: -item[0]):
            if depth <= 1.0:
                continue
            sprite = self.assets.sprites[vehicle.sprite]
            item = self._paste(frame, owner, sprite, vehicle.vehicle_id, position)
            if item is not None:
                placed.append(
                    _Placed(
                        vehicle.vehicle_id, item[0], position, item[1], vehicle.speed_at(t), item[2]
                    )
                )
        boxes = []
        for p in placed:
            visible = float(np.count_nonzero(owner == p.vehicle_id)) / max(p.area_px, 1.0)
            x1, y1, x2, y2 = p.xyxy
            clipped = (max(x1, 0.0), max(y1, 0.0), min(x2, camera.width), min(y2, camera.height))
            if clipped[2] - clipped[0] < 1 or clipped[3] - clipped[1] < 1:
                continue
            boxes.append(
                BoxTruth(
                    vehicle_id=p.vehicle_id,
                    xyxy=clipped,
                    world_m=p.world,
                    contact_px=p.contact,
                    speed_kmh=p.speed_kmh,
                    visible=min(1.0, visible),
                )
            )
        if spec.signal is not None:
            _draw_signal(frame, spec.signal, t)
        image = self._effects(frame, index)
        return image, FrameTruth(index=index, t=t, boxes=boxes)

    def _paste(
        self,
        frame: Image,
        owner: npt.NDArray[np.int32],
        sprite: Sprite,
        vehicle_id: int,
        position: tuple[float, float],
    ) -> tuple[tuple[float, float, float, float], tuple[float, float], float] | None:
        camera = self.spec.camera
        x, y = position
        half = sprite.width_m / 2
        ends = camera.project(np.array([[x - half, y], [x + half, y]]))
        contact = camera.project(np.array([[x, y]]))[0]
        if not np.isfinite(ends).all():
            return None
        scale = float(np.hypot(*(ends[1] - ends[0]))) / sprite.image.shape[1]
        sh, sw = sprite.image.shape[:2]
        width, height = sw * scale, sh * scale
        x1, y1 = contact[0] - width / 2, contact[1] - height
        box = (float(x1), float(y1), float(x1 + width), float(contact[1]))
        fh, fw = frame.shape[:2]
        if box[2] <= 0 or box[0] >= fw or box[3] <= 0 or box[1] >= fh or width < 2:
            return None
        # Shrink with area averaging first, then place with a sub-pixel affine warp.
        pre = min(1.0, 2.0 * scale)
        image, alpha = sprite.image, sprite.alpha
        if pre < 1.0:
            size = (max(2, round(sw * pre)), max(2, round(sh * pre)))
            image = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)
            alpha = np.asarray(cv2.resize(alpha, size, interpolation=cv2.INTER_AREA), np.float32)
        sx = width / image.shape[1]
        sy = height / image.shape[0]
        c0, r0 = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
        c1, r1 = min(fw, math.ceil(box[2]) + 1), min(fh, math.ceil(box[3]) + 1)
        warp = np.array([[sx, 0, box[0] - c0], [0, sy, box[1] - r0]], dtype=np.float64)
        size = (c1 - c0, r1 - r0)
        patch = cv2.warpAffine(image, warp, size, flags=cv2.INTER_LINEAR)
        a = cv2.warpAffine(alpha, warp, size, flags=cv2.INTER_LINEAR)[..., None]
        roi = frame[r0:r1, c0:c1]
        roi[:] = (roi * (1 - a) + patch * a + 0.5).astype(np.uint8)
        owner[r0:r1, c0:c1][a[..., 0] > 0.5] = vehicle_id
        art = self.plates.get(vehicle_id)
        if art is not None and sprite.plate_at is not None:
            anchor = (box[0] + sprite.plate_at[0] * width, box[1] + sprite.plate_at[1] * height)
            self._put_plate(frame, art, position, anchor)
        area = float(np.count_nonzero(sprite.alpha > 0.5)) * (width / sw) * (height / sh)
        return box, (float(contact[0]), float(contact[1])), area

    def _put_plate(
        self,
        frame: Image,
        art: PlateArt,
        position: tuple[float, float],
        anchor: tuple[float, float],
    ) -> None:
        """Draw ``art`` upright across the road at the vehicle's rear, as the camera sees
        it (size and perspective), centred on ``anchor`` (the cut-out's own plate)."""
        x, y = position
        ph, pw = art.image.shape[:2]
        half_w, half_h = art.width_m / 2, art.width_m * ph / pw / 2
        z = PLATE_CENTRE_Z_M
        corners = np.array(
            [
                [x - half_w, y, z + half_h],
                [x + half_w, y, z + half_h],
                [x + half_w, y, z - half_h],
                [x - half_w, y, z - half_h],
            ]
        )
        quad = self.spec.camera.project_3d(corners)
        if not np.isfinite(quad).all():
            return
        quad += np.asarray(anchor) - quad.mean(axis=0)
        fh, fw = frame.shape[:2]
        c0, r0 = max(0, math.floor(quad[:, 0].min())), max(0, math.floor(quad[:, 1].min()))
        c1, r1 = min(fw, math.ceil(quad[:, 0].max()) + 1), min(fh, math.ceil(quad[:, 1].max()) + 1)
        target_w = float(np.linalg.norm(quad[1] - quad[0]))
        if c1 - c0 < 2 or r1 - r0 < 2 or target_w < 2:
            return
        # Shrink with area averaging first (no aliasing), then warp into place.
        pre = min(1.0, 2.0 * target_w / pw)
        picture = art.image
        if pre < 1.0:
            size = (max(2, round(pw * pre)), max(2, round(ph * pre)))
            picture = np.asarray(cv2.resize(picture, size, interpolation=cv2.INTER_AREA), np.uint8)
        sh, sw = picture.shape[:2]
        src = np.array([[0, 0], [sw, 0], [sw, sh], [0, sh]], dtype=np.float32)
        dst = (quad - np.array([c0, r0])).astype(np.float32)
        warp = cv2.getPerspectiveTransform(src, dst)
        size = (c1 - c0, r1 - r0)
        patch = cv2.warpPerspective(picture, warp, size, flags=cv2.INTER_LINEAR)
        cover = np.ones((sh, sw), np.float32)
        a = cv2.warpPerspective(cover, warp, size, flags=cv2.INTER_LINEAR)[..., None]
        roi = frame[r0:r1, c0:c1]
        roi[:] = (roi * (1 - a) + patch * a + 0.5).astype(np.uint8)

    def _effects(self, frame: Image, index: int) -> Image:
        fx = self.spec.effects
        out = frame.astype(np.float32)
        fraction = index / max(self.spec.frames - 1, 1)
        out *= fx.gain(fraction)
        if fx.blur_sigma_px > 0:
            out = np.asarray(cv2.GaussianBlur(out, (0, 0), fx.blur_sigma_px), np.float32)
        if fx.noise_sigma > 0:
            rng = np.random.default_rng([self.spec.seed, index])
            out += rng.normal(0, fx.noise_sigma, out.shape).astype(np.float32)
        return np.asarray(np.clip(out + 0.5, 0, 255), dtype=np.uint8)


@dataclass(frozen=True)
class ScenePaths:
    video: Path
    truth: Path


def _encoder(spec: SceneSpec, video: Path) -> list[str]:
    import imageio_ffmpeg

    quality = (
        ["-qp", "0", "-pix_fmt", "yuv444p"]
        if spec.effects.crf is None
        else ["-crf", str(spec.effects.crf), "-pix_fmt", "yuv420p"]
    )
    return [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-v", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "bgr24",
        "-s", f"{spec.camera.width}x{spec.camera.height}", "-r", f"{spec.fps:g}",
        "-i", "-", "-an",
        "-c:v", "libx264", "-preset", "veryfast", *quality,
        str(video),
    ]  # fmt: skip


def write_scene(
    spec: SceneSpec,
    assets: SceneAssets,
    out_dir: Path,
    plates: Mapping[int, PlateArt] | None = None,
) -> ScenePaths:
    """Render ``spec`` to ``out_dir/NAME.mp4`` (H.264) and ``out_dir/NAME.truth.json``."""
    if not out_dir.is_dir():
        raise CalibrationError(f"{out_dir}: folder does not exist")
    renderer = SceneRenderer(spec, assets, plates)
    paths = ScenePaths(out_dir / f"{spec.name}.mp4", out_dir / f"{spec.name}.truth.json")
    frames: list[FrameTruth] = []
    with tempfile.TemporaryFile() as log:
        encoder = subprocess.Popen(
            _encoder(spec, paths.video),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        assert encoder.stdin is not None
        try:
            for index in range(spec.frames):
                image, frame_truth = renderer.render(index)
                frames.append(frame_truth)
                encoder.stdin.write(image.tobytes())
            encoder.stdin.close()
            code = encoder.wait(timeout=120)
        finally:
            if encoder.poll() is None:
                encoder.kill()
                encoder.wait(timeout=10)
        if code != 0:
            log.seek(0)
            message = log.read().decode(errors="replace").strip().splitlines()
            raise CalibrationError(f"H.264 encoding failed: {message[-1] if message else code}")
    truth = renderer.truth().model_copy(update={"frames": frames})
    paths.truth.write_text(truth.model_dump_json(), encoding="utf-8")
    return paths


def read_truth(path: Path) -> SceneTruth:
    try:
        return SceneTruth.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read ({exc.strerror})") from exc
    except ValueError as exc:
        raise CalibrationError(f"{path}: not a scene truth file ({exc})") from exc
