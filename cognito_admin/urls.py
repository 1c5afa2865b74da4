"""URL configuration: the operator UI is the Django admin."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import path
from django.views.generic import RedirectView


class FaviconView(RedirectView):
    """Browsers ask for /favicon.ico whatever the page says: send them to the static icon."""

    permanent = False

    def get_redirect_url(self, *args, **kwargs):
        return static("directory/favicon.svg")


urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("favicon.ico", FaviconView.as_view(), name="favicon"),
    path("admin/", admin.site.urls),
]
