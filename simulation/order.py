"""The state of one order while it is in flight (dropped when it ends: flat memory)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import simpy

if TYPE_CHECKING:
    from simulation.stock import Warehouse
    from simulation.world import Customer

Item = tuple[str, int]  # (sku, qty)


class Order:
    """What the model knows of an order between ``order.created`` and its end."""

    __slots__ = (
        "cancelled", "cold", "created_h", "custom", "customer", "evidence", "flow", "id", "items", "priority",
        "process", "promised_h", "rerouted_from", "rush", "shipped", "supplier", "warehouse",
    )

    def __init__(self, id: str, flow: str, created_h: float, promised_h: float, rush: bool,
                 custom: bool, cold: bool, priority: int) -> None:
        self.id = id
        self.flow = flow
        self.created_h = created_h
        self.promised_h = promised_h
        self.rush = rush
        self.custom = custom
        self.cold = cold
        self.priority = priority
        self.customer: Customer | None = None
        self.items: tuple[Item, ...] = ()
        self.supplier: str | None = None  # who supplies its main line (set by the procurement stage)
        self.warehouse: Warehouse | None = None
        self.rerouted_from: str | None = None
        # (stage, kind) -> None once uploaded, or the event a late upload will trigger
        self.evidence: dict[tuple[str, str], simpy.Event | None] | None = None
        self.shipped = False  # handed to the carrier: too late to cancel
        self.cancelled = False
        self.process: simpy.Process | None = None


class Parcel:
    """One parcel of an order on its way to the customer."""

    __slots__ = ("carrier", "done", "id", "order", "picked_up_h")

    def __init__(self, *, id: str, order: Order, carrier: str, picked_up_h: float) -> None:
        self.id = id
        self.order = order
        self.carrier = carrier
        self.picked_up_h = picked_up_h
        self.done = False  # delivered or lost: the sensor stops
