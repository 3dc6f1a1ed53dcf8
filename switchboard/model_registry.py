"""Import every domain's models so ``Base.metadata`` is complete (Alembic, tests)."""

from console import thresholds as console_thresholds  # noqa: F401
from customers import models as customers_models  # noqa: F401
from customers import timeline_models as customers_timeline  # noqa: F401
from experience import dashboard_models as experience_dashboard  # noqa: F401
from experience import models as experience_models  # noqa: F401
from experience import resolution_rollup as experience_resolution  # noqa: F401
from experience import survey_models as experience_surveys  # noqa: F401
from interactions import feedback_models as interactions_feedback  # noqa: F401
from interactions import models as interactions_models  # noqa: F401
from interactions import pulse_models as interactions_pulse  # noqa: F401
from interactions.email import models as interactions_email  # noqa: F401
from interactions.voice import models as voice_models  # noqa: F401
from routing import history as routing_history  # noqa: F401
from routing import models as routing_models  # noqa: F401
from routing import webhooks as routing_webhooks  # noqa: F401
from switchboard import audit  # noqa: F401
from switchboard.auth import models as auth_models  # noqa: F401
from switchboard.db import Base
from workforce import forecast_models as workforce_forecast  # noqa: F401
from workforce import models as workforce_models  # noqa: F401
from workforce import presence_log as workforce_presence_log  # noqa: F401
from workforce import schedule_models as workforce_schedules  # noqa: F401
from workforce import swap_models as workforce_swaps  # noqa: F401

metadata = Base.metadata
