"""The API against its own OpenAPI schema: schemathesis fuzzes every operation on a real server.

As an operator and as a customer admin, each with a token of its own and a world of its own
(alarms raised, acknowledged and cleared, a draft and a credit-noted invoice, tickets with and
without an asset, SLA or assignee), so nothing it changes or revokes touches another test. The
checks: no 5xx, every status code and content type the schema names, every body and header
as the schema says. Bounded: a few examples per operation, a fixed seed, a time budget.
`POST`/`DELETE /auth/token/` and `POST /tokens/{id}/revoke/` are left out: they log in
(counted by the lockout) or revoke the token the run uses (schemathesis reuses the ids that
answers show); tests/portal/test_api_tokens.py covers them.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from billing import services as billing_services
from billing.invoicing import bill_period
from billing.models import Invoice, InvoiceRun, Plan
from billing.overrides import override_set
from fleet import alarms, windows
from fleet.exclusions import exclusion_mark
from fleet.models import AlarmRule, AssetModel, AssetStatusChange
from fleet.thresholds import threshold_set
from portal.models import Customer, User
from portal.roles import Role
from portal.tokens import api_token_issue
from support import services as support_services
from tests.billing_fixtures import contract_for, usage
from tests.factories import UserFactory
from tests.fleet_fixtures import Installed
from tests.integration import ARTIFACTS, ROOT, VENV_BIN, start_asgi, stop_process

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)
# A longer hunt, by hand: FLEETPORT_FUZZ_SECONDS=300 FLEETPORT_FUZZ_EXAMPLES=50 FLEETPORT_FUZZ_SEED=7.
EXAMPLES_PER_OPERATION = int(os.environ.get("FLEETPORT_FUZZ_EXAMPLES", "6"))
SECONDS_PER_RUN = int(os.environ.get("FLEETPORT_FUZZ_SECONDS", "45"))
SEED = os.environ.get("FLEETPORT_FUZZ_SEED", "20261207")

pytestmark = [pytest.mark.integration, pytest.mark.timeout(SECONDS_PER_RUN + 240)]


@pytest.fixture
def fuzz_server(transactional_db: None, service_env: dict[str, str]) -> Iterator[str]:
    """A uvicorn of its own, on a Redis database nobody else uses: the tasks and live messages
    the fuzzer's writes queue (invitations, ticket e-mails, invoice runs) reach no test's worker.
    One per test: a server that outlived a flush would hold content-type ids that are gone."""
    redis = service_env["REDIS_URL"].rsplit("/", 1)[0]
    process, url = start_asgi({**service_env, "REDIS_URL": f"{redis}/15"}, name="asgi-fuzz")
    yield url
    stop_process(process)


def _world(
    customer_a: Customer, customer_b: Customer, fleet_a: Installed, fleet_b: Installed, plan: Plan,
    support: User, operator: User,
) -> dict[str, list[Any]]:  # fmt: skip
    """Rows of every kind, in the states whose answers differ (nulls set and unset); their ids."""
    asset = fleet_a.asset
    now = datetime.now(UTC)
    raised = alarms.alarm_raise(
        asset=asset, key="fuzz-raised", kind="threshold", severity="critical", message="Hot", at=now
    )
    acked = alarms.alarm_raise(
        asset=asset, key="fuzz-acked", kind="threshold", severity="warning", message="Warm", at=now
    )
    cleared = alarms.alarm_raise(
        asset=asset, key="fuzz-cleared", kind="offline", severity="info", message="Off", at=now
    )
    assert raised is not None
    assert acked is not None
    assert cleared is not None
    alarms.alarm_acknowledge(alarm=acked, actor=support)
    alarms.alarm_clear(alarm=cleared, actor=support)
    AssetStatusChange.objects.create(
        customer_id=asset.customer_id, asset=asset, at=now, previous="never_seen", status="online"
    )
    contract = contract_for(customer_a, plan, asset, date(2026, 1, 1))
    override_set(
        actor=operator, contract=contract, metric="run_hours", charge_model="per_unit",
        unit_price=Decimal("0.3"), note="Negotiated",
    )  # fmt: skip
    contract_for(customer_b, plan, fleet_b.asset, date(2026, 1, 1))
    usage(asset, datetime(2026, 10, 3, 10, tzinfo=UTC), "10")
    usage(asset, datetime(2026, 10, 4, 10, tzinfo=UTC), "600", metric="energy_kwh")
    bill_period("2026-10", now=datetime(2026, 11, 5, tzinfo=UTC))
    bill_period("2026-09", now=datetime(2026, 11, 5, tzinfo=UTC))
    october = Invoice.objects.get(contract=contract, period="2026-10")
    billing_services.invoice_finalize(actor=operator, invoice=october)
    billing_services.credit_note_create(
        actor=operator, invoice=october, amount=Decimal("5"), reason="Goodwill"
    )
    run = InvoiceRun.objects.create(period="2026-10", started_by=operator)
    admin = User.objects.get(customer=customer_a, role=Role.CUSTOMER_ADMIN)
    plain = support_services.ticket_open(
        actor=admin, customer=customer_a, subject="Question", description="How do I read usage?"
    )
    about_asset = support_services.ticket_open(
        actor=support, customer=customer_a, subject="Noise", description="Rattles.", asset=asset
    )
    support_services.ticket_assign(actor=support, ticket=about_asset, assignee=support)
    support_services.ticket_comment(actor=support, ticket=about_asset, body="On it.", internal=False)
    support_services.attachment_add(
        actor=admin, ticket=plain, upload=SimpleUploadedFile("notes.txt", b"plain text\n", "text/plain")
    )
    dispute = support_services.dispute_open(actor=admin, invoice=october, reason="Too much energy.")
    # Maintenance windows: one running (it can close early), one proposed (it can be confirmed).
    running = windows.window_open_emergency(
        actor=support, customer=customer_a, title="Leak", ends_at=now + timedelta(hours=4), assets=[asset]
    )
    proposed = windows.window_plan(
        actor=support, customer=customer_a, title="Proposed service", starts_at=now + timedelta(days=2),
        ends_at=now + timedelta(days=2, hours=2), status="proposed",
    )  # fmt: skip
    fodder = UserFactory(email="fodder@alpha.test", role=Role.CUSTOMER_VIEWER, customer=customer_a)
    # Alarm rules of the assets' model: one with an asset's own threshold, one without.
    tuned, untuned = (
        AlarmRule.objects.create(
            asset_model=asset.model, name=name, metric="temp_c", comparison=comparison, threshold=Decimal(90)
        )
        for name, comparison in (("Fuzz hot", "gt"), ("Fuzz cold", "lt"))
    )
    threshold_set(asset=asset, rule=tuned, threshold=Decimal("85"), actor=admin)
    stop = exclusion_mark(
        actor=support, asset=asset, starts_at=now - timedelta(days=2), ends_at=now - timedelta(days=1),
        reason="Switched off by the customer",
    )  # fmt: skip
    return {
        "customers": [customer_a.pk, customer_b.pk],
        "users": [fodder.pk, support.pk],
        "sites": [asset.site_id, fleet_b.asset.site_id],
        "asset-models": list(AssetModel.objects.values_list("pk", flat=True)),
        "assets": [asset.pk, fleet_b.asset.pk],
        "devices": [fleet_a.device.pk],
        "alarms": [raised.pk, acked.pk, cleared.pk],
        "plans": [plan.pk],
        "contracts": [contract.pk],
        "metric": ["run_hours", "energy_kwh"],  # …/price-overrides/{metric}/: one set, one not
        "invoice-runs": [run.pk],
        "invoices": list(Invoice.objects.filter(customer=customer_a).values_list("pk", flat=True)),
        "line_id": list(october.lines.values_list("pk", flat=True)),
        "credit-notes": list(october.credit_notes.values_list("pk", flat=True)),
        "tickets": [plain.pk, about_asset.pk, dispute.pk],
        "maintenance-windows": [running.pk, proposed.pk],
        "attachment_id": list(plain.attachments.values_list("pk", flat=True)),
        "rule": [tuned.pk, untuned.pk],  # assets/{id}/thresholds/{rule}/
        "status-exclusions": [stop.pk],
    }


def _schemathesis(
    base_url: str, token: str, ids_file: Path, report: Path
) -> subprocess.CompletedProcess[str]:
    command = [
        str(VENV_BIN / "st"), "run", f"{base_url}/api/v1/schema/",
        "--checks", CHECKS,
        "--max-examples", str(EXAMPLES_PER_OPERATION),
        "--max-time", str(SECONDS_PER_RUN),
        "--phases", "examples,coverage,fuzzing",
        "--seed", SEED,
        "--workers", "1",
        "--request-timeout", "30",
        "--header", f"Authorization: Token {token}",
        "--exclude-path", "/api/v1/auth/token/",
        "--exclude-path", "/api/v1/tokens/{id}/revoke/",
        "--suppress-health-check", "all",
        "--output-truncate", "false",
    ]  # fmt: skip
    env = {
        "PATH": str(VENV_BIN),
        "HOME": str(report.parent),
        "NO_COLOR": "1",
        "SCHEMATHESIS_HOOKS": str(ROOT / "tests" / "fuzz_hooks.py"),
        "FLEETPORT_FUZZ_IDS": str(ids_file),
    }
    # In the test's own folder: schemathesis keeps a cache (.schemathesis/) where it runs.
    result = subprocess.run(
        command, cwd=ids_file.parent, env=env, capture_output=True, text=True, check=False,
        timeout=SECONDS_PER_RUN + 180,
    )  # fmt: skip
    report.write_text(result.stdout + result.stderr)
    return result


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.CUSTOMER_ADMIN])
def test_every_answer_is_what_the_schema_says_and_none_is_a_5xx(
    transactional_db: None,
    fuzz_server: str,
    customer_a: Customer,
    customer_b: Customer,
    admin_a: User,
    fleet_a: Installed,
    fleet_b: Installed,
    plan: Plan,
    support: User,
    operator: User,
    tmp_path: Path,
    role: str,
) -> None:
    ids = _world(customer_a, customer_b, fleet_a, fleet_b, plan, support, operator)
    ids_file = tmp_path / "ids.json"
    ids_file.write_text(json.dumps({key: [str(v) for v in values] for key, values in ids.items()}))
    token = api_token_issue(user=operator if role == Role.OPERATOR else admin_a, name="fuzz")
    report = ARTIFACTS / f"schemathesis-{role}.txt"
    report.parent.mkdir(parents=True, exist_ok=True)

    result = _schemathesis(fuzz_server, token, ids_file, report)

    summary = (result.stdout + result.stderr)[-6000:]
    assert result.returncode == 0, f"schemathesis found failures (all in {report}):\n{summary}"
    assert " passed" in result.stdout, summary
