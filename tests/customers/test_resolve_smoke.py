from __future__ import annotations

from customers.models import IdentityKind
from customers.service import resolve_or_create_customer


async def test_resolve_same_phone_written_differently(session):
    c1, _, created1 = await resolve_or_create_customer(
        session, kind=IdentityKind.PHONE, raw_value="07911 123456", default_region="GB"
    )
    c2, ident, created2 = await resolve_or_create_customer(
        session, kind=IdentityKind.PHONE, raw_value="+44 7911 123456", default_region="GB"
    )
    await session.commit()
    assert created1 and not created2
    assert c1.id == c2.id
    assert ident.value == "+447911123456"
