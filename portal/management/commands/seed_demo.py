from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from portal.demo import DEMO_PASSWORD, USERS, seed_demo


class Command(BaseCommand):
    help = "Load the demo customers, sites and users (idempotent). Refused in production."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEMO_ALLOWED:
            raise CommandError("Demo data is disabled in these settings (DEMO_ALLOWED is off).")
        counts = seed_demo()
        self.stdout.write(
            self.style.SUCCESS("Demo ready: " + ", ".join(f"{n} {what}" for what, n in counts.items()) + ".")
        )
        self.stdout.write(f"Every demo user's password is: {DEMO_PASSWORD}")
        for email, _name, role, slug in USERS:
            self.stdout.write(f"  {email:<30} {role.label}{f' ({slug})' if slug else ''}")
