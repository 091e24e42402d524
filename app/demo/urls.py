from django.urls import path

from app.demo import views

urlpatterns = [
    path("", views.index, name="demo"),
    path("api/dyno", views.dyno, name="dyno"),
]
