"""Request bodies: the roles a person can be given, and how a wrong one is named."""

from __future__ import annotations

from typing import get_args

import pytest
from pydantic import ValidationError

from central.api.schemas import UserCreate, UserRole
from central.workflow import Role


def test_every_role_but_the_nodes_can_be_given_to_a_person() -> None:
    assert set(get_args(UserRole)) == {r.value for r in Role} - {Role.NODE.value}


def test_a_wrong_role_is_refused_naming_the_roles_as_the_api_spells_them() -> None:
    with pytest.raises(ValidationError) as err:
        UserCreate(username="tran.binh", password="a long passphrase", role="node")
    assert "'officer', 'supervisor', 'admin' or 'ioc'" in str(err.value)
    assert "Role." not in str(err.value)
