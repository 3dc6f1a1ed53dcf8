"""Outgoing event webhooks: subscriptions, a transactional outbox and a retrying dispatcher.

Intent is recorded exactly once, delivery is at least once:

* the engine host calls ``enqueue_webhook_deliveries`` inside the SAME SQL transaction that persists
  the decision, so a decision that rolls back leaves no delivery and a committed one cannot lose it;
* ``WebhookDispatcher`` claims due rows (a short SQL transaction), POSTs them outside any
  transaction, then records the outcome with compare-and-set. A dispatcher that dies mid-flight
  leaves its claim to lapse and the row is sent again, so receivers de-duplicate on
  ``X-Switchboard-Delivery``.

One module per part, re-exported here (``routing.webhooks_api`` reads ``webhooks.create_subscription``):

* ``models``        the event types a receiver may subscribe to, and the two tables;
* ``outbox``        ``enqueue_webhook_deliveries`` and the active-subscription cache;
* ``subscriptions`` the service behind the API (create, list, change, delete, test);
* ``dispatcher``    ``WebhookDispatcher``: claim, sign, POST, record, back off.
"""

from routing.webhooks.dispatcher import (
    WebhookDispatcher,
    backoff,
    sign,
)
from routing.webhooks.models import (
    EVENT_TYPES,
    DeliveryState,
    WebhookDelivery,
    WebhookSubscription,
)
from routing.webhooks.outbox import (
    enqueue_webhook_deliveries,
    event_payload,
    subscription_cache,
)
from routing.webhooks.subscriptions import (
    create_subscription,
    delete_subscription,
    enqueue_ping,
    get_subscription,
    list_subscriptions,
    recent_deliveries,
    update_subscription,
)

__all__ = [
    "EVENT_TYPES",
    "DeliveryState",
    "WebhookDelivery",
    "WebhookDispatcher",
    "WebhookSubscription",
    "backoff",
    "create_subscription",
    "delete_subscription",
    "enqueue_ping",
    "event_payload",
    "enqueue_webhook_deliveries",
    "get_subscription",
    "list_subscriptions",
    "recent_deliveries",
    "sign",
    "subscription_cache",
    "update_subscription",
]
