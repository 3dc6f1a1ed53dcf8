"""The routers of every administered entity, for ``switchboard.app`` to include."""

from __future__ import annotations

from console.admin.entities import ADMINS
from console.admin.kit import mount_all

routers = mount_all(ADMINS)
