"""A generation's job states: ours (`Status`) and CometAPI's (`RemoteStatus`)."""

from django.db import models


class Status(models.TextChoices):
    QUEUED = "queued", "Waiting in our queue"
    SUBMITTING = "submitting", "Submitting"
    SUBMITTED = "submitted", "Submitted"
    PROCESSING = "processing", "Generating"
    SUCCEEDED = "succeeded", "Finished"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)
IN_FLIGHT = (Status.SUBMITTED, Status.PROCESSING)


class RemoteStatus(models.TextChoices):
    """A task's status as CometAPI/Kling spells it (`task_status`), which is not ours."""

    SUBMITTED = "submitted", "Submitted"
    PROCESSING = "processing", "Processing"
    SUCCEED = "succeed", "Succeeded"
    FAILED = "failed", "Failed"


REMOTE_TERMINAL = (RemoteStatus.SUCCEED, RemoteStatus.FAILED)
