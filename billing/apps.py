from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from billing import customer_panels, demo, home, tasks
        from fleet import events
        from portal.context_processors import add_nav_item
        from portal.customer_overview import register_customer_panel
        from portal.demo import register_seeder
        from portal.home import register_panel
        from portal.roles import Capability

        events.subscribe(events.AssetStatusChanged, tasks.assets_reported)
        register_panel(home.usage_panel)
        register_panel(home.billing_desk_panel)
        register_seeder(demo.seed)
        register_customer_panel(customer_panels.billing_panel)
        add_nav_item("Contracts", "contract_list", (Capability.VIEW_CONTRACTS,), 20)
        add_nav_item("Invoices", "invoice_list", (Capability.VIEW_INVOICES,), 22)
        add_nav_item("Overdue", "overdue_list", (Capability.RECORD_PAYMENTS,), 23)
        add_nav_item("Invoice runs", "invoice_run_list", (Capability.RUN_INVOICES,), 24)
        add_nav_item("Plans", "plan_list", (Capability.MANAGE_PLANS,), 26)
        add_nav_item("Revenue", "revenue", (Capability.RUN_INVOICES,), 28)
