from django.urls import path

from . import views

urlpatterns = [
    path("", views.studio, name="studio"),
    path("gallery/", views.gallery, name="gallery"),
    path("g/<uuid:public_id>/", views.generation_detail, name="generation-detail"),
    path("g/<uuid:public_id>/status/", views.generation_status, name="generation-status"),
    path("g/<uuid:public_id>/video.mp4", views.generation_video, name="generation-video"),
    path("g/<uuid:public_id>/poster.jpg", views.generation_poster, name="generation-poster"),
    path(
        "g/<uuid:public_id>/visibility/", views.generation_visibility, name="generation-visibility"
    ),
    path("g/<uuid:public_id>/cancel/", views.generation_cancel, name="generation-cancel"),
    path("hooks/kling/<uuid:public_id>/<str:token>/", views.kling_callback, name="kling-callback"),
    path("healthz", views.healthz, name="healthz"),
]
