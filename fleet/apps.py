from django.apps import AppConfig


class FleetConfig(AppConfig):
    name = "fleet"
    verbose_name = "Fleet"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from fleet import (
            customer_panels,
            demo,
            home,
            onboarding,
            windows,  # noqa: F401 - registers fleet.window_notify
        )
        from fleet.ingest.state import model_rules
        from fleet.live import resolve_asset_topic
        from fleet.models import AlarmRule, AssetThreshold, MetricDefinition
        from portal.context_processors import add_nav_item
        from portal.customer_overview import register_customer_panel
        from portal.demo import register_seeder
        from portal.home import register_panel
        from portal.live import register_topic
        from portal.roles import Capability

        for model in (AlarmRule, MetricDefinition, AssetThreshold):  # what the ingest batches keep a copy of
            for signal in (post_save, post_delete):
                signal.connect(model_rules.clear, sender=model, dispatch_uid=f"model_rules.{model.__name__}")
        register_topic("asset", resolve_asset_topic)
        register_panel(home.fleet_panel)
        register_panel(home.sites_panel)
        register_seeder(demo.seed)
        register_customer_panel(customer_panels.fleet_panel)
        onboarding.register_steps()
        add_nav_item("Fleet", "fleet_overview", (Capability.VIEW_FLEET,), 5)
        add_nav_item("Alarms", "alarm_centre", (Capability.VIEW_FLEET,), 7)
        add_nav_item("Sites", "site_list", (Capability.VIEW_FLEET,), 10)
        add_nav_item("Maintenance", "maintenance_calendar", (Capability.VIEW_FLEET,), 8)
