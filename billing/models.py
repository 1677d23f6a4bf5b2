"""Plans, service contracts, usage metering and invoices arrive with the Billing issue."""
