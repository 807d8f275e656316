"""What a simulation run produces: flat records (one row per thing, like Ciw's records)
and the streaming tallies the statistics are computed from.

Times are simulated hours since the scenario's ``start``. A run always hands back its
:class:`~simulation.tally.RunTally` (flat in memory however long it runs), the usage
of each resource, event counts and ground truth; a record per stage visit and per
order only when asked for (``Model(records=True)``), for tests and exact checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulation.tally import RunTally

# StageVisit and OrderOutcome are not frozen: a run makes millions of them, and a
# frozen dataclass costs three times as much to build (object.__setattr__ per field).
# Treat them as read-only all the same.


@dataclass(slots=True)
class StageVisit:
    """One order's pass through one stage: queued at ``arrived_h``, served from
    ``started_h`` to ``finished_h`` on ``resource``. Rework makes a second visit."""

    order_id: str
    flow: str
    stage: str
    resource: str
    rush: bool
    arrived_h: float
    started_h: float
    finished_h: float
    rework: bool = False

    @property
    def wait_h(self) -> float:
        return self.started_h - self.arrived_h

    @property
    def work_h(self) -> float:
        return self.finished_h - self.started_h


@dataclass(slots=True)
class OrderOutcome:
    """An order from creation to its end (``done_h`` None = still open at the horizon)."""

    order_id: str
    flow: str
    rush: bool
    custom: bool
    created_h: float
    promised_h: float
    done_h: float | None
    status: str  # "delivered" | "cancelled" | "lost" | "in_progress"

    @property
    def lead_time_h(self) -> float | None:
        return None if self.done_h is None else self.done_h - self.created_h

    @property
    def on_time(self) -> bool | None:
        return None if self.done_h is None else self.done_h <= self.promised_h


@dataclass(slots=True, frozen=True)
class ResourceUsage:
    """Busy and available server-hours of one resource over a window of the run."""

    resource: str
    flow: str
    stage: str
    capacity: int
    busy_h: float        # integral of servers busy over the window
    available_h: float   # integral of servers on shift over the window
    queue_area_h: float  # integral of queue length over the window (L_q x time)
    window_h: float

    @property
    def utilization(self) -> float:
        return self.busy_h / self.available_h if self.available_h > 0 else 0.0

    @property
    def queue_len_mean(self) -> float:
        return self.queue_area_h / self.window_h if self.window_h > 0 else 0.0


@dataclass(slots=True, frozen=True)
class GroundTruth:
    """An injected disruption: what, where, when (for measuring rule detection)."""

    kind: str          # hub_outage | supplier_delay | stock_out | compressor_failure | ...
    where: str         # hub, warehouse, stage or parcel id
    start_h: float
    end_h: float
    detail: str = ""
    order_id: str = ""  # the order concerned, when the truth is about one order


@dataclass(slots=True)
class RunResult:
    """Everything one replication produced."""

    scenario: str
    seed: int
    replication: int
    horizon_h: float
    warmup_h: float
    visits: list[StageVisit] = field(default_factory=list)
    orders: list[OrderOutcome] = field(default_factory=list)
    resources: list[ResourceUsage] = field(default_factory=list)
    ground_truth: list[GroundTruth] = field(default_factory=list)
    event_counts: dict[str, int] = field(default_factory=dict)
    sim_events: int = 0  # SimPy events processed (for the benchmark)
    tally: RunTally | None = None  # the streaming statistics (None: figures from the records)
    records: bool = True  # visits and orders hold every record of the window
