"""What the audit actions say to a person: a sentence per action, and where its object is seen.

Every action that `portal.services.audit_record` is given (the list in docs/architecture.md,
"The audit log") has a sentence here, with `{target}` where the object goes;
`tests/portal/test_activity_labels.py` fails when code records an action without one. The
activity page and the home pages' recent activity show `Who` + sentence, the object linked
when the viewer may open its page (its row visible to them and their role allowed there) —
otherwise its name only, as recorded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.urls import reverse

from portal.models import AuditEntry, User
from portal.roles import Capability, can

LABELS: dict[str, str] = {
    # portal
    "user.invited": "invited {target}",
    "user.role_changed": "changed the role of {target}",
    "user.activated": "reactivated {target}",
    "user.deactivated": "deactivated {target}",
    "user.password_changed": "changed their password",
    "user.password_set": "set their password",
    "customer.created": "created the customer {target}",
    "customer.updated": "updated the details of {target}",
    "api_token.created": "created the API token {target}",
    "api_token.revoked": "revoked the API token {target}",
    # fleet
    "site.created": "added the site {target}",
    "site.updated": "updated the site {target}",
    "asset_model.created": "added the asset model {target}",
    "asset.created": "added the machine {target}",
    "asset.updated": "updated the machine {target}",
    "device.installed": "installed the device {target}",
    "device.removed": "removed the device {target}",
    "device.token_issued": "issued a new token for the device {target}",
    "device.revoked": "revoked the tokens of the device {target}",
    "alarm.acknowledged": "acknowledged the alarm {target}",
    "alarm.cleared": "cleared the alarm {target}",
    "counter_reading.accepted": "accepted an implausible counter reading of {target}",
    "counter_reading.rejected": "rejected an implausible counter reading of {target}",
    "threshold.set": "tightened an alarm threshold of {target}",
    "threshold.cleared": "removed a tightened alarm threshold of {target}",
    "status_exclusion.marked": "marked a stop of {target} as the customer's",
    "status_exclusion.removed": "unmarked a stop of {target}",
    "maintenance_window.planned": "planned the maintenance {target}",
    "maintenance_window.proposed": "proposed the maintenance {target}",
    "maintenance_window.moved": "moved the maintenance {target}",
    "maintenance_window.cancelled": "cancelled the maintenance {target}",
    "maintenance_window.closed_early": "ended the maintenance {target} early",
    # billing
    "plan.created": "created the plan {target}",
    "plan.updated": "updated the plan {target}",
    "contract.created": "created the contract {target}",
    "contract.updated": "updated the contract {target}",
    "contract.asset_added": "added a machine to the contract {target}",
    "contract.asset_removed": "removed a machine from the contract {target}",
    "contract.price_override_set": "set a negotiated price on the contract {target}",
    "contract.price_override_removed": "removed a negotiated price from the contract {target}",
    "invoice_run.started": "started the invoice run {target}",
    "invoice_run.retried": "retried the invoice run {target}",
    "invoice.finalized": "finalized the invoice {target}",
    "invoice.paid": "marked the invoice {target} as paid",
    "invoice.voided": "voided the invoice {target}",
    "invoice.overdue": "marked the invoice {target} as overdue",
    "invoice.reminder_queued": "queued a payment reminder for the invoice {target}",
    "invoice.reminder_sent": "sent a payment reminder for the invoice {target}",
    "invoice.emailed": "e-mailed the invoice {target}",
    "credit_note.created": "issued the credit note {target}",
    "credit_note.emailed": "e-mailed the credit note {target}",
    "payment.recorded": "recorded a payment on the invoice {target}",
    # support
    "ticket.opened": "opened the ticket {target}",
    "ticket.status": "changed the status of the ticket {target}",
    "ticket.auto_closed": "closed the ticket {target} (resolved, no reply)",
}

SYSTEM = "Fleetport"  # entries without a person: tasks, the simulator, the invoice run


@dataclass(frozen=True)
class Link:
    """Where an object of a model is seen: the page's URL name, the capabilities that open it
    (any one), and the field naming the object the page shows when it is not the target itself
    (a device is seen on its machine's page)."""

    url_name: str
    capabilities: tuple[Capability, ...]
    via: str = "pk"


# Users are not linked: inviting an address that has an account elsewhere is recorded without
# its user (docs/security.md, "Invitations"), and a link on the new ones only would tell them apart.
LINKS: dict[str, Link] = {
    "portal.customer": Link("customer_detail", (Capability.VIEW_ALL_CUSTOMERS,)),
    "fleet.site": Link("site_detail", (Capability.VIEW_FLEET,)),
    "fleet.asset": Link("asset_detail", (Capability.VIEW_FLEET,)),
    "fleet.device": Link("asset_detail", (Capability.VIEW_FLEET,), via="asset_id"),
    "fleet.alarm": Link("asset_detail", (Capability.VIEW_FLEET,), via="asset_id"),
    "fleet.maintenancewindow": Link("maintenance_window", (Capability.VIEW_FLEET,)),
    "billing.contract": Link("contract_detail", (Capability.VIEW_CONTRACTS,)),
    "billing.invoice": Link("invoice_detail", (Capability.VIEW_INVOICES,)),
    "billing.creditnote": Link("invoice_detail", (Capability.VIEW_INVOICES,), via="invoice_id"),
    "billing.plan": Link("plan_detail", (Capability.MANAGE_PLANS,)),
    "support.ticket": Link("ticket_detail", (Capability.VIEW_TICKETS,)),
}


@dataclass(frozen=True)
class ActivityRow:
    """One entry as a sentence: `actor` `before`[target, linked when `link`]`after`."""

    entry: AuditEntry
    actor: str
    before: str
    target: str
    after: str
    link: str | None


def sentence(action: str) -> tuple[str, str]:
    """The words before and after the object; an unknown action reads as its code."""
    label = LABELS.get(action)
    if label is None:
        return f"{action} ", ""
    before, _, after = label.partition("{target}")
    return before, after


def actor_name(entry: AuditEntry) -> str:
    if entry.actor is not None:
        return entry.actor.full_name or entry.actor.email
    return SYSTEM if entry.actor_label in ("", "system") else entry.actor_label


def activity_rows(entries: Iterable[AuditEntry], *, viewer: User) -> list[ActivityRow]:
    """The entries as sentences for `viewer`, each object linked where they may open it.

    A fixed number of queries: one per kind of object on the page, through the model's own
    `visible_to(viewer)`, so a link never leads to another customer's object (nor to a 404).
    """
    entries = list(entries)
    wanted: dict[str, set[str]] = defaultdict(set)
    for entry in entries:
        key = _model_key(entry)
        if key in LINKS and entry.target_id:
            wanted[key].add(entry.target_id)
    pages: dict[tuple[str, str], str] = {}
    for key, ids in wanted.items():
        link = LINKS[key]
        if not any(can(viewer, c) for c in link.capabilities):
            continue
        model: Any = apps.get_model(key)
        rows = model.objects.visible_to(viewer).filter(pk__in=ids).values_list("pk", link.via)
        for pk, shown in rows:
            if shown is not None:
                pages[(key, str(pk))] = reverse(link.url_name, args=[shown])
    rows_out = []
    for entry in entries:
        before, after = sentence(entry.action)
        names_target = "{target}" in LABELS.get(entry.action, "{target}")
        rows_out.append(
            ActivityRow(
                entry=entry,
                actor=actor_name(entry),
                before=before,
                target=entry.target_repr if names_target else "",
                after=after,
                link=pages.get((_model_key(entry), entry.target_id)),
            )
        )
    return rows_out


def _model_key(entry: AuditEntry) -> str:
    ct = entry.target_type
    return f"{ct.app_label}.{ct.model}" if ct is not None else ""
