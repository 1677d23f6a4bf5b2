from django.contrib import admin

from fleet.models import Site


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin[Site]):
    list_display = ["name", "customer", "time_zone", "created_at"]
    list_filter = ["customer"]
    search_fields = ["name", "address"]
