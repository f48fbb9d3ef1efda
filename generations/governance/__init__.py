"""Governance: the key pool, prices and money, budgets, the usage page and the audit trail."""
