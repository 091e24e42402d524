from django.urls import path

from app.jobs import views

urlpatterns = [
    path("health", views.health, name="health"),
    path("jobs", views.jobs, name="jobs"),
    path("jobs/<str:job_id>", views.job_detail, name="job-detail"),
    path("wait", views.wait, name="wait"),
    path("openapi.json", views.openapi, name="openapi"),
]
