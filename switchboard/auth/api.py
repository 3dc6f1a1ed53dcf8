"""JSON auth routes: token issue, who-am-I, user administration."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, status

from switchboard.auth import service
from switchboard.auth.schemas import TokenRead, UserCreate, UserRead
from switchboard.deps import AppSettings, CurrentUser, DbSession, RequireAdmin
from switchboard.errors import Unauthorized

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/token", response_model=TokenRead)
async def issue_token(
    session: DbSession,
    settings: AppSettings,
    username: Annotated[str, Form(min_length=1, max_length=80)],
    password: Annotated[str, Form(min_length=1, max_length=256)],
) -> TokenRead:
    """OAuth2 password grant (form-encoded ``username`` and ``password``); returns a Bearer JWT."""
    user = await service.authenticate(session, username=username, password=password)
    if user is None:
        raise Unauthorized("Wrong username or password")
    token, expires_in = service.token_for(user, settings)
    return TokenRead(access_token=token, expires_in=expires_in)


@router.get("/me", response_model=UserRead)
async def me(user: CurrentUser) -> UserRead:
    return UserRead.model_validate(user)


@router.post("/users", response_model=UserRead, status_code=status.HTTP_201_CREATED)
async def create_user(body: UserCreate, session: DbSession, _admin: RequireAdmin) -> UserRead:
    user = await service.create_user(
        session,
        username=body.username,
        display_name=body.display_name,
        role=body.role,
        password=body.password,
        email=body.email,
    )
    await session.commit()
    return UserRead.model_validate(user)
