from django.urls import path

from . import gallery, health, views

urlpatterns = [
    path("", views.studio, name="studio"),
    path("gallery/", gallery.team_gallery, name="gallery"),
    path("gallery/clips.zip", gallery.gallery_zip, name="gallery-zip"),
    path("mine/", gallery.my_generations, name="my-generations"),
    path("mine/clips.zip", gallery.my_generations_zip, name="my-generations-zip"),
    path("g/<uuid:public_id>/", gallery.generation_detail, name="generation-detail"),
    path(
        "g/<uuid:public_id>/favourite/", gallery.generation_favourite, name="generation-favourite"
    ),
    path("g/<uuid:public_id>/delete/", gallery.generation_delete, name="generation-delete"),
    path("g/<uuid:public_id>/status/", views.generation_status, name="generation-status"),
    path("g/<uuid:public_id>/video.mp4", views.generation_video, name="generation-video"),
    path("g/<uuid:public_id>/poster.jpg", views.generation_poster, name="generation-poster"),
    path(
        "g/<uuid:public_id>/visibility/", views.generation_visibility, name="generation-visibility"
    ),
    path("g/<uuid:public_id>/cancel/", views.generation_cancel, name="generation-cancel"),
    path("g/<uuid:public_id>/retry/", views.generation_retry, name="generation-retry"),
    path("prices/", views.price_list, name="prices"),
    # The token is a query parameter (?token=…), which access logs redact
    # (kling_site/logs.py); the path form is how tasks submitted before that still call back.
    path("hooks/kling/<uuid:public_id>/", views.kling_callback, name="kling-callback"),
    path("hooks/kling/<uuid:public_id>/<str:token>/", views.kling_callback),
    path("healthz", health.healthz, name="healthz"),
]
