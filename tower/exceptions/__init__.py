"""Exceptions: lifecycle, the emergency-room queue, escalation and response measures."""
