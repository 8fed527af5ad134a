"""The stream-density bench's search for the largest stream count that keeps up."""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.bench_support import load_bench

DOUBLED = [1, 2, 4, 8, 16, 32, 64, 128]
TO_140 = [192, 160, 144, 136, 140, 142, 141]  # bisecting between 128 and 256


@pytest.fixture(scope="module")
def density() -> ModuleType:
    return load_bench("gpu_density")


@pytest.mark.parametrize(
    ("capacity", "limit", "start", "within", "found", "tried"),
    [
        pytest.param(140, 256, 1, 1, 140, [*DOUBLED, 256, *TO_140], id="from 1"),
        pytest.param(140, 256, 64, 1, 140, [64, 128, 256, *TO_140], id="from 64"),
        pytest.param(140, 256, 64, 8, 136, [64, 128, 256, 192, 160, 144, 136], id="to 8 streams"),
        pytest.param(40, 256, 64, 1, 40, [64, 32, 48, 40, 44, 42, 41], id="start too high"),
        pytest.param(0, 256, 8, 1, None, [8, 4, 2, 1], id="none keeps up"),
        pytest.param(3, 256, 64, 8, 2, [64, 32, 16, 8, 4, 2], id="start too high, to 8"),
        pytest.param(300, 256, 1, 1, 256, [*DOUBLED, 256], id="all up to the limit"),
        pytest.param(300, 100, 64, 1, 100, [64, 100], id="limit between doublings"),
    ],
)  # fmt: skip
def test_search_finds_the_largest_count_that_keeps_up(
    density: ModuleType,
    capacity: int,
    limit: int,
    start: int,
    within: int,
    found: int | None,
    tried: list[int],
) -> None:
    def run(n: int) -> object:
        # A box that keeps every camera at 30 fps up to ``capacity`` streams; beyond, the
        # slowest camera falls to 20 fps.
        fps = 30.0 if n <= capacity else 20.0
        return density.Trial(n, 10.0, {f"cam-{i}": round(fps * 10) for i in range(n)}, 0)

    found_ = density.search(run, limit, start, within)
    assert [t.streams for t in found_.trials] == tried
    assert (found_.best.streams if found_.best else None) == found
    assert found_.stopped == ""
