"""The Celery peer of `zbatch bench`: one no-op task, configured two ways.

ZBATCH_CELERY_PROFILE=seed    the batch guide's settings (acks late, prefetch 1, time limits,
                              max tasks per child 100, Redis result backend)
ZBATCH_CELERY_PROFILE=default Celery's defaults (with the Redis result backend, which the
                              measurement needs to see results)
"""
import os

from celery import Celery

broker = os.environ["CELERY_BROKER_URL"]
app = Celery("zbatch_bench", broker=broker, backend=os.environ.get("CELERY_RESULT_BACKEND", broker))

if os.environ.get("ZBATCH_CELERY_PROFILE", "seed") == "seed":
    app.conf.update(
        task_time_limit=3600,
        task_soft_time_limit=3300,
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=100,
        task_acks_late=True,
    )


@app.task
def noop():
    return None
