from django.apps import AppConfig


class SupportConfig(AppConfig):
    name = "support"
    verbose_name = "Support"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from fleet import events
        from portal.context_processors import add_nav_item
        from portal.customer_overview import register_customer_panel
        from portal.demo import register_seeder
        from portal.home import register_panel
        from portal.roles import Capability
        from support import customer_panels, demo, home, tasks

        events.subscribe(events.AlarmRaised, tasks.on_alarm_raised)
        events.subscribe(events.AlarmCleared, tasks.on_alarm_cleared)
        register_panel(home.tickets_panel)
        register_seeder(demo.seed)
        register_customer_panel(customer_panels.tickets_panel)
        add_nav_item("Tickets", "ticket_list", (Capability.VIEW_TICKETS, Capability.RUN_INVOICES), 12)
        add_nav_item("SLA report", "sla_report", (Capability.WORK_TICKETS, Capability.VIEW_TICKETS), 14)
