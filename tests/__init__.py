import os
import uuid

# Before any product module is imported: this run's Redis keys and pub/sub channels get their own
# namespace (switchboard.redis.rkey), so two test runs on one Redis never meet. Child processes
# (uvicorn, workers) inherit it through the environment.
os.environ.setdefault("SWITCHBOARD_REDIS_NAMESPACE", f"sbtest-{uuid.uuid4().hex[:8]}")
