"""The query parameters a route declares, as the refusal of unknown ones reads them."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, Query
from fastapi.routing import APIRoute

import central.api.deps as deps
from central.api.deps import declared_query


async def paged(limit: int = 50, after_id: int | None = None) -> int:
    return limit


def _route() -> APIRoute:
    router = APIRouter(prefix="/api/v1")

    @router.get("/things/{thing}")
    def things(
        thing: int,
        page: Annotated[int, Depends(paged)],
        since: Annotated[str | None, Query(alias="from")] = None,
    ) -> int:
        return thing

    [route] = [r for r in router.routes if isinstance(r, APIRoute)]
    return route


def test_a_routes_query_is_its_own_and_its_dependencies_by_the_names_sent() -> None:
    assert declared_query(_route()) == {"from", "limit", "after_id"}


def test_each_route_is_walked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    walks: list[APIRoute] = []
    walk = deps._walk_query

    def counted(route: APIRoute) -> deps.DeclaredQuery:
        walks.append(route)
        return walk(route)

    monkeypatch.setattr(deps, "_walk_query", counted)
    first, second = _route(), _route()  # (equal by value: each is its own route)
    for _ in range(3):
        assert declared_query(first) == declared_query(second)
    assert walks == [first, second] and walks[0] is first and walks[1] is second


def test_a_parameter_taking_a_list_may_be_given_more_than_once() -> None:
    router = APIRouter(prefix="/api/v1")

    @router.get("/things")
    def things(
        camera: Annotated[list[str] | None, Query()] = None,
        site: str | None = None,
    ) -> int:
        return 0

    [route] = [r for r in router.routes if isinstance(r, APIRoute)]
    assert deps._declared(route) == (frozenset({"camera", "site"}), frozenset({"camera"}))
