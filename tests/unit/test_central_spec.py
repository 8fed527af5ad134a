"""The published OpenAPI spec names every refusal a route answers with, under its status."""

from __future__ import annotations

from fastapi import status

from central.api.cases import WORKFLOW_ERRORS
from central.app import create_app
from central.settings import Settings
from central.workflow import WORKFLOW_REFUSALS

# Refused by the review route itself, before or after the workflow decides.
REVIEW_ROUTE_REFUSALS = {
    "changed": status.HTTP_409_CONFLICT,
    "record_altered": status.HTTP_409_CONFLICT,
    "evidence_damaged": status.HTTP_409_CONFLICT,
}


def test_the_review_routes_responses_name_each_refusal_code_under_its_status() -> None:
    """A client reads from the spec which `code` a 403, 409 or 422 of a review action can
    carry (a confirmation without a plate, on damaged evidence …), not only from trying."""
    spec = create_app(Settings()).openapi()
    responses = spec["paths"]["/api/v1/violations/{violation_id}/review"]["post"]["responses"]
    expected = {
        **{
            c: WORKFLOW_ERRORS.get(c, status.HTTP_422_UNPROCESSABLE_CONTENT)
            for c in WORKFLOW_REFUSALS
        },
        **REVIEW_ROUTE_REFUSALS,
    }
    missing = [
        f"{code} ({answer})"
        for code, answer in sorted(expected.items())
        if f"`{code}`" not in responses[str(answer)]["description"]
    ]
    assert not missing, f"not named in the review route's responses: {', '.join(missing)}"
