from rest_framework.routers import SimpleRouter

from fleet.api.views import SiteViewSet

router = SimpleRouter(trailing_slash=True)
router.register("sites", SiteViewSet, basename="site")

urlpatterns = router.urls
