"""Notifications: the transactional outbox and its channels (webhook, log, ...)."""
