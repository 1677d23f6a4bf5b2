"""The activity page speaks: a sentence per audit action ("issued a new token for the device
GW-1"), not its code ("device.token_issued"); the actor by name; the object linked where the
viewer may open it; still only the viewer's customer's entries."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from fleet import services as fleet_services
from fleet.credentials import device_token_issue
from fleet.models import AssetModel
from portal.audit_labels import LABELS, SYSTEM
from portal.models import Customer, User
from portal.services import audit_record
from tests.conftest import client_for
from tests.factories import SiteFactory

ROOT = Path(__file__).resolve().parents[2]
APPS = ("portal", "fleet", "billing", "support")


def recorded_actions() -> tuple[set[str], set[str]]:
    """Every `action=` given to audit_record in our code: the literal strings (both branches of
    a conditional too) and, for an f-string, a pattern of what it can produce."""
    literals: set[str] = set()
    patterns: set[str] = set()

    def collect(node: ast.expr) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            literals.add(node.value)
        elif isinstance(node, ast.IfExp):
            collect(node.body)
            collect(node.orelse)
        elif isinstance(node, ast.JoinedStr):
            parts = [
                re.escape(str(v.value)) if isinstance(v, ast.Constant) else "[a-z_]+" for v in node.values
            ]
            patterns.add("".join(parts))

    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "audit_record":
                    for keyword in node.keywords:
                        if keyword.arg == "action":
                            collect(keyword.value)
    return literals, patterns


def test_every_action_recorded_in_the_code_has_a_sentence() -> None:
    literals, patterns = recorded_actions()

    assert len(literals) > 40  # the scan finds the calls (a broken scan passes nothing)
    assert sorted(literals - set(LABELS)) == []
    for pattern in patterns:
        assert any(re.fullmatch(pattern, action) for action in LABELS), pattern
    assert {"counter_reading.accepted", "counter_reading.rejected"} <= set(
        LABELS
    )  # f"counter_reading.{status}"
    assert all(label.count("{target}") <= 1 for label in LABELS.values())


def test_the_activity_page_shows_sentences_names_and_links(admin_a: User, customer_a: Customer) -> None:
    # given a machine of customer A and its device, whose token the simulator (no one) issued
    model = AssetModel.objects.create(code="m-1", name="M1", heartbeat_interval_seconds=30)
    site = SiteFactory(customer=customer_a)
    asset = fleet_services.asset_create(
        actor=admin_a, site=site, model=model, serial_number="S-1", name="Press 1"
    )
    device, _token = fleet_services.device_install(actor=None, asset=asset, serial_number="GW-S-1")
    device_token_issue(device=device, actor=None)

    body = client_for(admin_a).get("/activity/").content.decode()

    # then the entries read as sentences, by name, the machine linked to its page
    assert "device.token_issued" not in body.replace('title="device.token_issued"', "")
    assert "issued a new token for the device" in body
    assert f'<a href="/fleet/assets/{asset.pk}/">GW-S-1</a>' in body
    assert f'added the machine <a href="/fleet/assets/{asset.pk}/">' in body
    assert admin_a.full_name in body
    assert f"<td>{SYSTEM}</td>" in body


def test_a_customer_admin_reads_only_their_customers_entries_and_links(
    admin_a: User, customer_a: Customer, customer_b: Customer
) -> None:
    # given a machine at each customer, and an entry of A's naming B's machine (as a staff
    # member's might)
    model = AssetModel.objects.create(code="m-2", name="M2", heartbeat_interval_seconds=30)
    asset_a = fleet_services.asset_create(
        actor=None, site=SiteFactory(customer=customer_a), model=model, serial_number="A-1", name="A machine"
    )
    asset_b = fleet_services.asset_create(
        actor=None, site=SiteFactory(customer=customer_b), model=model, serial_number="B-1", name="B machine"
    )
    audit_record(actor=None, action="asset.updated", target=asset_b, customer=customer_a)

    body = client_for(admin_a).get("/activity/").content.decode()
    home = client_for(admin_a).get("/").content.decode()

    # then B's own entries are not there, and B's machine is never linked
    assert f"/fleet/assets/{asset_a.pk}/" in body
    assert f"/fleet/assets/{asset_b.pk}/" not in body
    assert f"/fleet/assets/{asset_b.pk}/" not in home
    assert body.count("added the machine") == 1
    assert "updated the machine B machine" in body  # named as recorded, not linked
