"""The REST schemas of the core models: documentation kept in step with what is sent.

``ProjectOut``, ``ApiKeyOut`` and ``AccountOut`` repeat the fields of the core dataclasses on
purpose: they are the OpenAPI contract, typed as JSON sees them (timestamps as strings), while
the answers are built from the dataclasses by ``model_body`` alone. A field added to a model
appears in the answers at once; this test makes the contract follow, or fails.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pydantic import BaseModel

from ledger.core.accounts import Account
from ledger.core.api_keys import ApiKeyRow
from ledger.core.projects import Project
from ledger.daemons.gateway.schemas.accounts import AccountOut, ApiKeyOut, ProjectOut


@pytest.mark.parametrize(("model", "schema"), [(Project, ProjectOut), (ApiKeyRow, ApiKeyOut),
                                               (Account, AccountOut)])
def test_a_schema_names_exactly_the_fields_its_answers_carry(model: Any,
                                                             schema: type[BaseModel]) -> None:
    sent = [field.name for field in dataclasses.fields(model)]
    assert list(schema.model_fields) == sent
