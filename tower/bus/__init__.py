"""The event bus: a small protocol with an in-process and a Redis Streams adapter."""

from tower.bus.base import BusError, EventBus, Handler
from tower.bus.memory import InProcessBus

__all__ = ["BusError", "EventBus", "Handler", "InProcessBus"]
