"""Import every domain's models so ``Base.metadata`` is complete (Alembic, tests)."""

from agent_desktop import ex_models as agent_desktop_ex  # noqa: F401
from customers import models as customers_models  # noqa: F401
from interactions import feedback_models as interactions_feedback  # noqa: F401
from interactions import models as interactions_models  # noqa: F401
from interactions.email import models as interactions_email  # noqa: F401
from interactions.voice import models as voice_models  # noqa: F401
from routing import history as routing_history  # noqa: F401
from routing import models as routing_models  # noqa: F401
from routing import webhooks as routing_webhooks  # noqa: F401
from switchboard import audit  # noqa: F401
from switchboard.auth import models as auth_models  # noqa: F401
from switchboard.db import Base

metadata = Base.metadata
