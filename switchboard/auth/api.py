"""JSON auth routes: token issue, sign-out, who-am-I, user administration."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response, status

from switchboard.auth import service
from switchboard.auth.passwords import check_password
from switchboard.auth.schemas import (
    PasswordChange,
    PasswordSet,
    TokenRead,
    UserCreate,
    UserList,
    UserRead,
    UserUpdate,
)
from switchboard.deps import AppSettings, CurrentUser, DbSession, RequireAdmin
from switchboard.errors import Invalid, Unauthorized
from switchboard.security import verify_password_off_loop
from switchboard.throttle import client_address, throttle_of

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post(
    "/token", response_model=TokenRead, responses={401: {"description": "Wrong username or password"}}
)
async def issue_token(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    username: Annotated[str, Form(min_length=1, max_length=80)],
    password: Annotated[str, Form(min_length=1, max_length=256)],
) -> TokenRead:
    """OAuth2 password grant (form-encoded ``username`` and ``password``); returns a Bearer JWT.

    Failed attempts are throttled per account and per address (429 with ``Retry-After``)."""
    user = await service.authenticate_throttled(
        session, throttle_of(request), username=username, password=password, address=client_address(request)
    )
    if user is None:
        raise Unauthorized("Wrong username or password")
    token, expires_in = service.token_for(user, settings)
    return TokenRead(access_token=token, expires_in=expires_in)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(user: CurrentUser, session: DbSession) -> Response:
    """Ends every session of the caller (their tokens are refused from now on, sockets close)."""
    await service.sign_out(session, user_id=user.id)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", response_model=UserRead)
async def me(user: CurrentUser) -> UserRead:
    return UserRead.model_validate(user)


@router.post("/me/password", status_code=status.HTTP_204_NO_CONTENT)
async def change_own_password(
    body: PasswordChange, user: CurrentUser, session: DbSession, settings: AppSettings
) -> Response:
    """The current password, then the new one; every session of the caller ends (sign in again)."""
    row = await service.get_user(session, user.id)
    if not await verify_password_off_loop(row.password_hash, body.current_password):
        raise Invalid("The current password is wrong", field="body.current_password")
    check_password(
        body.new_password,
        min_length=settings.password_min_length,
        username=row.username,
        field="body.new_password",
    )
    await service.set_password(session, user=row, password=body.new_password, actor=row)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users", response_model=UserList)
async def list_users(session: DbSession, _admin: RequireAdmin) -> UserList:
    users = await service.list_users(session)
    await session.commit()
    return UserList(items=[UserRead.model_validate(u) for u in users])


@router.post("/users", response_model=UserRead, status_code=status.HTTP_201_CREATED)
async def create_user(
    body: UserCreate, session: DbSession, settings: AppSettings, _admin: RequireAdmin
) -> UserRead:
    check_password(
        body.password, min_length=settings.password_min_length, username=body.username, field="body.password"
    )
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


@router.patch("/users/{user_id}", response_model=UserRead)
async def update_user(
    user_id: uuid.UUID, body: UserUpdate, session: DbSession, admin: RequireAdmin
) -> UserRead:
    """Change a user's role; their sessions end (they sign in again with the new role)."""
    user = await service.change_role(session, user_id=user_id, role=body.role, actor=admin)
    await session.commit()
    return UserRead.model_validate(user)


@router.post("/users/{user_id}/disable", response_model=UserRead)
async def disable_user(user_id: uuid.UUID, session: DbSession, admin: RequireAdmin) -> UserRead:
    """No more sign-ins; every session ends and open desktop sockets close within seconds. Audited."""
    user = await service.set_active(session, user_id=user_id, active=False, actor=admin)
    await session.commit()
    return UserRead.model_validate(user)


@router.post("/users/{user_id}/enable", response_model=UserRead)
async def enable_user(user_id: uuid.UUID, session: DbSession, admin: RequireAdmin) -> UserRead:
    user = await service.set_active(session, user_id=user_id, active=True, actor=admin)
    await session.commit()
    return UserRead.model_validate(user)


@router.post("/users/{user_id}/password", status_code=status.HTTP_204_NO_CONTENT)
async def set_user_password(
    user_id: uuid.UUID, body: PasswordSet, session: DbSession, settings: AppSettings, admin: RequireAdmin
) -> Response:
    """Set a user's password (a reset); every session of theirs ends. Audited, never logged."""
    user = await service.get_user(session, user_id)
    check_password(
        body.password, min_length=settings.password_min_length, username=user.username, field="body.password"
    )
    await service.set_password(session, user=user, password=body.password, actor=admin)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
