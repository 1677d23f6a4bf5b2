from django.apps import AppConfig


class FleetConfig(AppConfig):
    name = "fleet"
    verbose_name = "Fleet"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from fleet import demo, home
        from fleet.live import resolve_asset_topic
        from portal.context_processors import add_nav_item
        from portal.demo import register_seeder
        from portal.home import register_panel
        from portal.live import register_topic
        from portal.roles import Capability

        register_topic("asset", resolve_asset_topic)
        register_panel(home.fleet_panel)
        register_panel(home.sites_panel)
        register_seeder(demo.seed)
        add_nav_item("Fleet", "fleet_overview", (Capability.VIEW_FLEET,), 5)
        add_nav_item("Alarms", "alarm_centre", (Capability.VIEW_FLEET,), 7)
        add_nav_item("Sites", "site_list", (Capability.VIEW_FLEET,), 10)
