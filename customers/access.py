"""Who may see a customer, as a dependency of the customer routes.

Supervisors and admins see every customer; an agent only those behind work of theirs (an
interaction assigned to them, or live-offered to them). That rule reads the work, which lives in
the layers above customers (interactions, routing's offers), so it is not written here: the app
wires it (``switchboard.app`` sets ``app.state.customer_access`` to
``routing.visibility.authorise_customer_access``) and the routes call it through
``CustomerAccess``. An app that did not wire it fails closed (every such request errors).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.auth.models import User

# (session, user, customer_id) -> None, or NotFound when the user may not see the customer.
AccessRule = Callable[[AsyncSession, User, uuid.UUID], Awaitable[None]]


def _wired_rule(request: Request) -> AccessRule:
    rule: AccessRule = request.app.state.customer_access
    return rule


CustomerAccess = Annotated[AccessRule, Depends(_wired_rule)]
