"""The app's models, one module per domain; everything is importable from here, as
before the split (migrations name `generations.models.new_external_task_id`)."""

from .coordination import ClusterHeartbeat, DownloadSlot, WorkerLease
from .generation import (
    Favourite,
    Generation,
    GenerationQuerySet,
    ReviewState,
    Visibility,
    new_callback_token,
    new_external_task_id,
)
from .governance import AuditEvent, MemberLimits, Price, TeamLimits
from .keys import USABLE, ApiKey, ApiKeyManager, ApiKeyQuerySet, RetiredSecret, mask_secret
from .review import (
    COMMENT_MAX,
    RATING_CHOICES,
    Board,
    BoardItem,
    BoardQuerySet,
    Comment,
    InboxPreference,
    Notification,
    Rating,
    Review,
    Verb,
)
from .states import IN_FLIGHT, REMOTE_TERMINAL, TERMINAL, RemoteStatus, Status

__all__ = [
    "ApiKey",
    "ApiKeyManager",
    "ApiKeyQuerySet",
    "AuditEvent",
    "Board",
    "BoardItem",
    "BoardQuerySet",
    "COMMENT_MAX",
    "ClusterHeartbeat",
    "Comment",
    "DownloadSlot",
    "Favourite",
    "Generation",
    "GenerationQuerySet",
    "IN_FLIGHT",
    "InboxPreference",
    "MemberLimits",
    "Notification",
    "Price",
    "RATING_CHOICES",
    "REMOTE_TERMINAL",
    "Rating",
    "RemoteStatus",
    "RetiredSecret",
    "Review",
    "ReviewState",
    "Status",
    "TERMINAL",
    "USABLE",
    "TeamLimits",
    "Verb",
    "Visibility",
    "WorkerLease",
    "new_callback_token",
    "new_external_task_id",
    "mask_secret",
]
