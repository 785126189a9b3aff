"""Request bodies of the webhook endpoints (bounded, so oversized input is a 422)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: Annotated[str, Field(min_length=1, max_length=2048)]
    event_types: Annotated[list[Annotated[str, Field(max_length=64)]], Field(min_length=1, max_length=32)]
