"""One pattern for every administered entity (issue #11): ``mount`` turns an ``Admin`` (the
domain's ``switchboard.crud.Entity`` plus its form and list columns) into

* the JSON API: ``GET/POST /api/<slug>``, ``GET/PATCH/DELETE /api/<slug>/{id}``;
* the console pages: the list (``<base>``), ``<base>/new``, ``<base>/{id}/edit`` (with delete),
  posting plain forms (keyboard: Tab, type, Enter) that show errors at their field.

Both go through ``switchboard.crud`` (validated whole, audited in the transaction, 409 when in use)
and, once committed, tell the routing engine what changed, so nothing waits for a restart.

No ``from __future__ import annotations`` here: the routes are made inside ``mount`` and FastAPI
reads their annotations, which name the entity's role dependency, when they are defined.
"""

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from console.admin.forms import FormField, field_errors, parse_form, resolved_choices
from console.context import console_context, staff_or_login
from switchboard import crud
from switchboard.auth.models import STAFF_RANK, Role, User
from switchboard.crud import json_value
from switchboard.deps import AppSettings, DbSession, OptionalUser, require_staff
from switchboard.errors import DomainError
from switchboard.templating import templates

Column = tuple[str, Callable[[dict[str, Any]], str]]


@dataclass(frozen=True)
class Admin:
    entity: crud.Entity
    fields: tuple[FormField, ...]
    columns: tuple[Column, ...]
    base: str  # the list page, e.g. /supervisor/queues
    intro: str = ""
    inline: FormField | None = None  # one field changed straight from the list (a form per row)
    details: Callable[[AsyncSession, Any], Any] | None = None  # extra read-only facts on the edit page
    list_page: bool = True  # False: the list is a page of its own (/admin/users), the kit makes the rest


# The console's administration menu: (list page, title, least role), in the order mounted.
LINKS: list[tuple[str, str, Role]] = []


def _defaults(admin: Admin) -> dict[str, Any]:
    found = {}
    for name, info in admin.entity.write.model_fields.items():
        if not info.is_required():
            found[name] = json_value(info.get_default(call_default_factory=True))
    return found


def _policy(request: Request, entity: crud.Entity, data: Any, row: Any) -> None:
    if entity.policy is not None:
        entity.policy(request.app.state.settings, data, row)


def _problem_errors(exc: DomainError) -> dict[str, str]:
    errors = exc.extra.get("errors")
    if errors:
        return field_errors(errors)
    return field_errors([{"field": exc.field or "form", "message": exc.detail}])


async def _tell(request: Request, session: AsyncSession, admin: Admin, row: Any) -> None:
    await crud.commit_and_tell(session, request.app.state.redis_client, admin.entity.notices(row))


def mount(admin: Admin) -> tuple[APIRouter, APIRouter]:
    """The entity's JSON API router and its page router."""
    entity = admin.entity
    LINKS.append((admin.base, entity.title, entity.role))
    api = APIRouter(prefix=f"/api/{entity.slug}", tags=["administration"])
    pages = APIRouter(tags=["pages"], include_in_schema=False)
    Staff = Annotated[User, Depends(require_staff(entity.role))]  # noqa: N806 - a type alias
    read = entity.service.read
    redis_of: Callable[[Request], Any] = lambda request: request.app.state.redis_client  # noqa: E731

    # ------------------------------------------------------------------------------ JSON API

    @api.get("", summary=f"List {entity.title.lower()}")
    async def list_rows(session: DbSession, _: Staff) -> dict[str, Any]:
        rows = await entity.service.list(session)
        await session.commit()
        return {"items": [read(r) for r in rows]}

    async def create_row(request: Request, session: DbSession, user: Staff, body: Any) -> Response:
        _policy(request, entity, body, None)
        await crud.routing_reachable(redis_of(request))
        row = await crud.create(session, entity, body, user)
        answer = read(row)
        await _tell(request, session, admin, row)
        return _json(answer, status.HTTP_201_CREATED)

    # The body is the entity's write schema: FastAPI validates it (errors name body.<field>).
    signature = inspect.signature(create_row)
    create_row.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[
            p.replace(annotation=entity.write) if p.name == "body" else p
            for p in signature.parameters.values()
        ]
    )
    api.post("", status_code=status.HTTP_201_CREATED, summary=f"Create a {entity.noun}")(create_row)

    @api.get("/{key}", summary=f"One {entity.noun}")
    async def get_row(key: str, session: DbSession, _: Staff) -> dict[str, Any]:
        row = await crud.get(session, entity, key)
        await session.commit()
        return read(row)

    @api.patch(
        "/{key}",
        summary=f"Change a {entity.noun}",
        description=f"Any fields of {entity.write.__name__} but "
        f"{', '.join(sorted(entity.create_only)) or 'none'}; the result is validated whole.",
    )
    async def patch_row(
        key: str, request: Request, session: DbSession, user: Staff, body: Annotated[dict[str, Any], Body()]
    ) -> Response:
        row = await crud.get(session, entity, key)
        data = crud.validate_patch(entity, row, body)
        _policy(request, entity, data, row)
        await crud.routing_reachable(redis_of(request))
        row = await crud.update(session, entity, row, data, user)
        answer = read(row)
        await _tell(request, session, admin, row)
        return _json(answer)

    @api.delete("/{key}", status_code=status.HTTP_204_NO_CONTENT, summary=f"Delete a {entity.noun}")
    async def delete_row(key: str, request: Request, session: DbSession, user: Staff) -> Response:
        row = await crud.get(session, entity, key)
        await crud.routing_reachable(redis_of(request))
        await crud.delete(session, entity, row, user)
        await _tell(request, session, admin, row)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    # ------------------------------------------------------------------------------- pages

    async def render(
        request: Request,
        session: AsyncSession,
        staff: User,
        settings: Any,
        template: str,
        code: int = 200,
        **extra: Any,
    ) -> Response:
        context = await console_context(
            request,
            staff,
            settings,
            session,
            admin=admin,
            entity=entity,
            choices=(choices := await resolved_choices(admin.fields, session)),
            choice_labels={name: {str(v): label for v, label in pairs} for name, pairs in choices.items()},
            admin_links=[(b, t) for b, t, role in LINKS if STAFF_RANK.get(staff.role, 0) >= STAFF_RANK[role]],
            **extra,
        )
        await session.commit()
        return templates.TemplateResponse(request, template, context, status_code=code)

    async def list_page(
        request: Request,
        user: OptionalUser,
        settings: AppSettings,
        session: DbSession,
        saved: str = "",
        deleted: str = "",
    ) -> Response:
        staff = staff_or_login(request, user, entity.role)
        if staff is None:
            return RedirectResponse("/login", status_code=303)
        rows = [read(r) for r in await entity.service.list(session)]
        notice = next((f"{_label(r)}: saved." for r in rows if r["id"] == saved), None)
        if deleted:
            notice = f"{deleted}: deleted."
        return await render(
            request, session, staff, settings, "console/admin/list.html", rows=rows, notice=notice
        )

    if admin.list_page:
        pages.get(admin.base, response_class=HTMLResponse)(list_page)

    @pages.get(f"{admin.base}/new", response_class=HTMLResponse)
    async def new_page(
        request: Request, user: OptionalUser, settings: AppSettings, session: DbSession
    ) -> Response:
        staff = staff_or_login(request, user, entity.role)
        if staff is None:
            return RedirectResponse("/login", status_code=303)
        return await render(
            request,
            session,
            staff,
            settings,
            "console/admin/form.html",
            row=None,
            values=_defaults(admin),
            errors={},
        )

    @pages.post(admin.base, response_class=HTMLResponse)
    async def create_from_page(
        request: Request, user: OptionalUser, settings: AppSettings, session: DbSession
    ) -> Response:
        staff = staff_or_login(request, user, entity.role)  # before the form: signed out is a 401
        if staff is None:
            return RedirectResponse("/login", status_code=303)
        posted = parse_form(admin.fields, await request.form())
        try:
            data = crud.validate_create(entity, {**_defaults(admin), **posted})
            _policy(request, entity, data, None)
            await crud.routing_reachable(redis_of(request))
            row = await crud.create(session, entity, data, staff)
            key = entity.key_of(row)
            await _tell(request, session, admin, row)
        except DomainError as exc:
            if exc.status >= 500:
                raise
            await session.rollback()
            values = {**_defaults(admin), **posted}
            return await render(
                request, session, staff, settings, "console/admin/form.html", code=exc.status,
                row=None, values=values, errors=_problem_errors(exc),
            )  # fmt: skip
        return RedirectResponse(f"{admin.base}?saved={key}&what=settings#row-{key}", status_code=303)

    @pages.get(f"{admin.base}/{{key}}/edit", response_class=HTMLResponse)
    async def edit_page(
        key: str, request: Request, user: OptionalUser, settings: AppSettings, session: DbSession
    ) -> Response:
        staff = staff_or_login(request, user, entity.role)
        if staff is None:
            return RedirectResponse("/login", status_code=303)
        row = await crud.get(session, entity, key)
        details = await admin.details(session, row) if admin.details else None
        return await render(
            request, session, staff, settings, "console/admin/form.html",
            row=read(row), values=read(row), errors={}, details=details,
        )  # fmt: skip

    @pages.post(f"{admin.base}/{{key}}/edit", response_class=HTMLResponse)
    async def update_from_page(
        key: str, request: Request, user: OptionalUser, settings: AppSettings, session: DbSession
    ) -> Response:
        staff = staff_or_login(request, user, entity.role)
        if staff is None:
            return RedirectResponse("/login", status_code=303)
        row = await crud.get(session, entity, key)
        current = read(row)
        editable = [f for f in admin.fields if not f.create_only]
        posted = parse_form(editable, await request.form())
        try:
            data = crud.validate_patch(entity, row, posted)
            _policy(request, entity, data, row)
            await crud.routing_reachable(redis_of(request))
            row = await crud.update(session, entity, row, data, staff)
            key = entity.key_of(row)  # a wrap-up code's id is its code's
            await _tell(request, session, admin, row)
        except DomainError as exc:
            if exc.status >= 500:
                raise
            await session.rollback()
            return await render(
                request, session, staff, settings, "console/admin/form.html", code=exc.status,
                row=current, values={**current, **posted}, errors=_problem_errors(exc), details=None,
            )  # fmt: skip
        return RedirectResponse(f"{admin.base}?saved={key}&what=settings#row-{key}", status_code=303)

    @pages.post(f"{admin.base}/{{key}}/delete", response_class=HTMLResponse)
    async def delete_from_page(
        key: str, request: Request, user: OptionalUser, settings: AppSettings, session: DbSession
    ) -> Response:
        staff = staff_or_login(request, user, entity.role)
        if staff is None:
            return RedirectResponse("/login", status_code=303)
        row = await crud.get(session, entity, key)
        current, label = read(row), entity.label_of(row)
        try:
            await crud.routing_reachable(redis_of(request))
            await crud.delete(session, entity, row, staff)
            await _tell(request, session, admin, row)
        except DomainError as exc:
            if exc.status >= 500:
                raise
            await session.rollback()
            return await render(
                request, session, staff, settings, "console/admin/form.html", code=exc.status,
                row=current, values=current, errors={}, refusal=exc.detail, details=None,
            )  # fmt: skip
        return RedirectResponse(f"{admin.base}?deleted={quote(label)}", status_code=303)

    return api, pages


def _label(row: dict[str, Any]) -> str:
    return crud.label_of_read(row)


def _json(body: Any, code: int = 200) -> Response:
    return JSONResponse(body, status_code=code)


def mount_all(admins: Sequence[Admin]) -> list[APIRouter]:
    routers: list[APIRouter] = []
    for admin in admins:
        routers.extend(mount(admin))
    return routers
