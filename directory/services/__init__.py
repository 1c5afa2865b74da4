"""Every write an operator can make, one module per domain: validate, write the mirror, request the
change through the outbox and audit it, in one transaction. Callers import the domain module."""
