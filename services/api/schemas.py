"""Request bodies. Strings are bounded so oversized input is a 422, not a slow hash."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Short = Annotated[str, Field(min_length=1, max_length=320)]
Password = Annotated[str, Field(min_length=1, max_length=1024)]
Code = Annotated[str, Field(min_length=1, max_length=64)]


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class LoginIn(Body):
    workspace: Short
    email: Short
    password: Password


class TwoFactorIn(Body):
    challenge: Annotated[str, Field(min_length=1, max_length=200)]
    code: Code


class AcceptIn(Body):
    token: Annotated[str, Field(min_length=1, max_length=200)]
    password: Password
    name: Annotated[str, Field(max_length=200)] = ""


class TokenIn(Body):
    token: Annotated[str, Field(min_length=1, max_length=200)]


class CodeIn(Body):
    code: Code


class PolicyIn(Body):
    require_two_factor: bool


class TeammateIn(Body):
    email: Short
    name: Annotated[str, Field(max_length=200)] = ""
    role: Literal["admin", "member"] = "member"
