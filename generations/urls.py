from django.urls import path

from . import health
from .galleries import bulk, clip, files, lists, zips
from .governance import usage
from .review import boards, inbox
from .review import notes as review
from .studio import views

urlpatterns = [
    path("", views.studio, name="studio"),
    path("gallery/", lists.team_gallery, name="gallery"),
    path("gallery/clips.zip", zips.gallery_zip, name="gallery-zip"),
    path("mine/", lists.my_generations, name="my-generations"),
    path("mine/view/<uuid:public_id>/", clip.mine_view, name="mine-view"),
    path("gallery/view/<uuid:public_id>/", clip.gallery_view, name="gallery-view"),
    path("mine/selected/", bulk.my_generations_bulk, name="my-generations-bulk"),
    path("gallery/selected/", bulk.gallery_bulk, name="gallery-bulk"),
    path("mine/clips.zip", zips.my_generations_zip, name="my-generations-zip"),
    path("g/<uuid:public_id>/", clip.generation_detail, name="generation-detail"),
    path("g/<uuid:public_id>/favourite/", clip.generation_favourite, name="generation-favourite"),
    path("g/<uuid:public_id>/delete/", clip.generation_delete, name="generation-delete"),
    path("g/<uuid:public_id>/status/", views.generation_status, name="generation-status"),
    path("live/", views.live_cards, name="live-cards"),
    path("g/<uuid:public_id>/video.mp4", files.generation_video, name="generation-video"),
    path("g/<uuid:public_id>/poster.jpg", files.generation_poster, name="generation-poster"),
    path(
        "g/<uuid:public_id>/visibility/", views.generation_visibility, name="generation-visibility"
    ),
    path("g/<uuid:public_id>/cancel/", views.generation_cancel, name="generation-cancel"),
    path("g/<uuid:public_id>/retry/", views.generation_retry, name="generation-retry"),
    path("prices/", views.price_list, name="prices"),
    path("usage/", usage.usage_page, name="usage"),
    path("usage.csv", usage.usage_csv, name="usage-csv"),
    # The token is a query parameter (?token=…), which access logs redact
    # (kling_site/logs.py); the path form is how tasks submitted before that still call back.
    path("hooks/kling/<uuid:public_id>/", views.kling_callback, name="kling-callback"),
    path("hooks/kling/<uuid:public_id>/<str:token>/", views.kling_callback),
    path("healthz", health.healthz, name="healthz"),
    # Team review (review/: notes, boards, inbox)
    path("g/<uuid:public_id>/comments/", review.comment_create, name="comment-create"),
    path("g/<uuid:public_id>/comments/<int:pk>/edit/", review.comment_edit, name="comment-edit"),
    path(
        "g/<uuid:public_id>/comments/<int:pk>/delete/",
        review.comment_delete,
        name="comment-delete",
    ),
    path("g/<uuid:public_id>/rating/", review.rating_set, name="rating-set"),
    path("g/<uuid:public_id>/review/", review.review_set, name="review-set"),
    path("g/<uuid:public_id>/boards/", boards.clip_boards, name="clip-boards"),
    path("boards/", boards.board_list, name="board-list"),
    path("boards/<uuid:public_id>/", boards.board_detail, name="board-detail"),
    path("boards/<uuid:public_id>/edit/", boards.board_edit, name="board-edit"),
    path("boards/<uuid:public_id>/delete/", boards.board_delete, name="board-delete"),
    path("boards/<uuid:public_id>/clips.zip", boards.board_zip, name="board-zip"),
    path(
        "boards/<uuid:public_id>/items/<int:pk>/move/",
        boards.board_item_move,
        name="board-item-move",
    ),
    path(
        "boards/<uuid:public_id>/items/<int:pk>/remove/",
        boards.board_item_remove,
        name="board-item-remove",
    ),
    path("compare/", boards.compare, name="compare"),
    path("inbox/", inbox.inbox, name="inbox"),
    path("inbox/unread/", inbox.inbox_unread, name="inbox-unread"),
    path("inbox/read/", inbox.inbox_mark_read, name="inbox-mark-read"),
    path("inbox/preferences/", inbox.inbox_preferences, name="inbox-preferences"),
]
