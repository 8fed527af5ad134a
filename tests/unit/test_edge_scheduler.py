from __future__ import annotations

import pytest

from edge.scheduler import BatchScheduler

# Each step: (time, action, camera); action "offer" queues a frame named f"{camera}@{time}",
# "take" asks for a batch. Expected: the batches taken, as lists of frame names.
Step = tuple[float, str, str]

CASES: list[tuple[str, int, float, list[Step], list[list[str]]]] = [
    (
        "a full batch goes at once",
        2,
        1.0,
        [(0.0, "offer", "a"), (0.0, "take", ""), (0.01, "offer", "b"), (0.01, "take", "")],
        [[], ["a@0.0", "b@0.01"]],
    ),
    (
        "a partial batch waits for the latency bound",
        4,
        0.05,
        [(0.0, "offer", "a"), (0.01, "offer", "b"), (0.04, "take", ""), (0.05, "take", "")],
        [[], ["a@0.0", "b@0.01"]],
    ),
    (
        "a newer frame replaces the waiting one of the same camera",
        4,
        0.05,
        [(0.0, "offer", "a"), (0.02, "offer", "a"), (0.05, "take", "")],
        [["a@0.02"]],
    ),
    (
        "oldest first and at most max_batch; the rest stays",
        2,
        0.0,
        [
            (0.0, "offer", "c"),
            (0.1, "offer", "a"),
            (0.2, "offer", "b"),
            (0.2, "take", ""),
            (0.2, "take", ""),
        ],
        [["c@0.0", "a@0.1"], ["b@0.2"]],
    ),
    (
        "nothing waiting, nothing taken",
        2,
        0.0,
        [(1.0, "take", "")],
        [[]],
    ),
]


@pytest.mark.parametrize(
    ("name", "max_batch", "max_wait", "steps", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_batching(
    name: str, max_batch: int, max_wait: float, steps: list[Step], expected: list[list[str]]
) -> None:
    scheduler: BatchScheduler[str] = BatchScheduler(max_batch, max_wait)
    taken: list[list[str]] = []
    for now, action, camera in steps:
        if action == "offer":
            scheduler.offer(camera, f"{camera}@{now}", now)
        else:
            taken.append([p.item for p in scheduler.take(now)])
    assert taken == expected


def test_replacement_counts_a_drop_and_keeps_the_older_arrival() -> None:
    scheduler: BatchScheduler[int] = BatchScheduler(8, 0.1)
    assert scheduler.offer("cam", 1, 0.0) is None
    assert scheduler.offer("cam", 2, 0.08) == 1
    assert scheduler.dropped["cam"] == 1
    assert scheduler.deadline() == pytest.approx(0.1)
    assert [p.item for p in scheduler.take(0.1)] == [2]


def test_no_camera_starves_under_overload() -> None:
    # 10 cameras offering every tick, batches of 3: every camera is served within 4 batches.
    scheduler: BatchScheduler[int] = BatchScheduler(3, 0.0)
    served: dict[str, int] = {}
    for tick in range(40):
        for cam in range(10):
            scheduler.offer(f"c{cam}", tick, float(tick))
        for p in scheduler.take(float(tick)):
            served[p.camera] = served.get(p.camera, 0) + 1
    assert set(served) == {f"c{i}" for i in range(10)}
    assert max(served.values()) - min(served.values()) <= 1


def test_force_drains_before_the_deadline() -> None:
    scheduler: BatchScheduler[int] = BatchScheduler(8, 10.0)
    scheduler.offer("a", 1, 0.0)
    assert scheduler.take(0.0) == []
    assert [p.item for p in scheduler.take(0.0, force=True)] == [1]
    assert len(scheduler) == 0 and scheduler.deadline() is None


@pytest.mark.parametrize(("batch", "wait"), [(0, 0.1), (1, -1.0), (1, float("nan"))])
def test_bad_settings_are_refused(batch: int, wait: float) -> None:
    with pytest.raises(ValueError):
        BatchScheduler(batch, wait)
