from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("api/", include("app.jobs.urls")),
    path("admin/", admin.site.urls),
    path("", include("app.demo.urls")),
]

# Errors as JSON: the API's clients (the demo page, the benchmark) always get a body they can show.
handler400 = "app.jobs.views.bad_request"
handler404 = "app.jobs.views.not_found"
handler500 = "app.jobs.views.server_error"
