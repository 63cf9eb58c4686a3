"""The bridge's core: packs in, one guarded bank state out, and what to do when BMSs fall silent.

Pure apart from the injected clock, so link-loss timing is tested without waiting.

Link loss, in phases (``LinkLoss``):

=========  ==============================================  ==============================
phase      when                                            what the sinks get
=========  ==============================================  ==============================
waiting    no pack has answered yet                        nothing
normal     at least one pack can be combined               the bank, clamped to hardware
derated    no pack usable, for less than ``silent_after_s``  the safe limits, ``general`` warning
safe       no pack usable for ``silent_after_s`` ...        the safe limits and a ``general`` alarm
lost       ... and ``safe_hold_s`` more                    nothing: the broadcast stops
=========  ==============================================  ==============================

The safe limits are CCL = DCL = 0 with both enables and force-charge cleared.
CVL and DVL stay the last ones sent (a CVL of 0 is never sent), and so do the
measurements: the profiles' frames need them to be decodable, and the hold is
bounded; what the inverter acts on are the zero limits, the cleared flags and
the alarm. After the hold the broadcast stops, so the inverter registers the
battery as lost instead of hearing old values forever. The first pack that
answers again brings the bank back at once.

SoC per pack, before aggregation (``bmslink.control.soc.PackSoc``): every good reading of a
pack feeds that pack's voltage-based estimator at the bridge clock's time, and the pack's
SoC comes from its BMS or from the estimate as its ``PackSocSettings`` (``soc`` in its
[[bms]] table) say; without a basis or a capacity it stays None, and the controller refuses
what needs it. A failed poll feeds nothing. ``soc_sources`` names each pack's source (for
status), and a ``soc_source`` event tells when a pack's source changes (not its basis).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from bmslink.bridge.aggregate import Bank, BankSettings, PackReading, PackSettings, aggregate
from bmslink.clock import Clock
from bmslink.control import Controller, ControlOutput
from bmslink.control.soc import PackSoc, PackSocSettings, SocSettings
from bmslink.limits import HardwareLimits
from bmslink.roles.common import EVENT_HISTORY, RoleEvent
from bmslink.state import ALARM_NAMES, BatteryState

Phase = Literal["waiting", "normal", "derated", "safe", "lost"]

#: An unchanged result is pushed to the sinks again this often (s): their staleness timers
#: (10 s by default) must never see a working bridge as stalled.
REPUSH_S = 1.0


@dataclass(frozen=True)
class LinkLossSettings:
    #: Every pack unusable this long: the safe state with an alarm.
    silent_after_s: float = 10.0
    #: How long the safe state is sent before the broadcast stops.
    safe_hold_s: float = 30.0
    #: A pack whose last good reading is older than this is lost even if its driver
    #: has not reported a failed poll yet (a driver stuck on a dead port).
    pack_stale_s: float = 5.0

    def __post_init__(self) -> None:
        for name in ("silent_after_s", "safe_hold_s", "pack_stale_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


def safe_state(last: BatteryState, *, alarm: bool) -> BatteryState:
    """``last`` with no current allowed either way; ``alarm`` raises ``general`` as an alarm."""
    alarms = set(last.alarms or ())
    warnings = set(last.warnings or ())
    (alarms if alarm else warnings).add("general")
    return last.merged(
        {
            "charge_current_a": 0.0,
            "discharge_current_a": 0.0,
            "charge_enable": False,
            "discharge_enable": False,
            "force_charge": False,
            "alarms": sorted(alarms, key=ALARM_NAMES.index),
            "warnings": sorted(warnings - alarms, key=ALARM_NAMES.index),
        }
    )


@dataclass
class Output:
    """What goes to the sinks now: a state, or None (silence) with the reason."""

    phase: Phase
    state: BatteryState | None
    reason: str


class LinkLoss:
    """The phase machine of the module docstring."""

    def __init__(self, settings: LinkLossSettings) -> None:
        self.settings = settings
        self.last_good: BatteryState | None = None
        self.last_good_at = float("-inf")

    def step(self, bank_state: BatteryState | None, now: float) -> Output:
        s = self.settings
        if bank_state is not None:
            self.last_good, self.last_good_at = bank_state, now
            return Output("normal", bank_state, "")
        last = self.last_good
        if last is None:
            return Output("waiting", None, "no BMS has answered yet")
        silent = now - self.last_good_at
        if silent < s.silent_after_s:
            return Output("derated", safe_state(last, alarm=False), "no pack usable")
        if silent < s.silent_after_s + s.safe_hold_s:
            why = f"no pack usable for {silent:.0f} s"
            return Output("safe", safe_state(last, alarm=True), why)
        held = s.silent_after_s + s.safe_hold_s
        return Output("lost", None, f"no pack usable for {held:g} s: broadcast stopped")


class Sink(Protocol):
    """An inverter-facing output: a CAN profile, a Pylontech RS485 or a Modbus server."""

    name: str

    def update(self, state: BatteryState | None, reason: str) -> None: ...

    def poll(self) -> None: ...

    @property
    def inverter_online(self) -> bool | None: ...


@dataclass
class _Latest:
    state: BatteryState | None
    error: str | None
    at: float


class Bridge:
    """Packs' readings in (``on_reading``), guarded bank state out to every sink."""

    def __init__(
        self,
        packs: Sequence[PackSettings],
        bank: BankSettings,
        hardware: HardwareLimits,
        clock: Clock,
        *,
        link_loss: LinkLossSettings | None = None,
        sinks: Sequence[Sink] = (),
        controller: Controller | None = None,
        soc: Mapping[str, PackSocSettings] | None = None,
        soc_estimator: SocSettings | None = None,
    ) -> None:
        """``controller``: the charge-control brain between the bank and the sinks (CVL stages,
        tapers, temperature windows); None passes the bank's own limits on, clamped. While
        no pack is usable it is stepped with nothing (its stale rule), so its limits come
        back through hold and ramp. ``soc``: per pack name, where its SoC comes from (a pack
        not named: "auto", no configured capacity); ``soc_estimator`` tunes the estimators."""
        names = [p.name for p in packs]
        if len(set(names)) != len(names):
            raise ValueError(f"pack names repeat: {names}")
        if not packs:
            raise ValueError("a bridge needs at least one pack")
        soc = soc or {}
        unknown = sorted(set(soc) - set(names))
        if unknown:
            raise ValueError(f"soc settings for unknown packs: {unknown}")
        self.packs = list(packs)
        self.bank_settings = bank
        self.hardware = hardware
        self.clock = clock
        self.link_loss = LinkLoss(link_loss or LinkLossSettings())
        self.sinks = list(sinks)
        self._latest: dict[str, _Latest] = {
            p.name: _Latest(None, None, float("-inf")) for p in packs
        }
        self.bank: Bank = Bank(None, [])
        self.output = Output("waiting", None, "no BMS has answered yet")
        self.clamped: list[str] = []
        self.controller = controller
        #: The controller's last decision (its reasons name the rule that limits each output).
        self.control: ControlOutput | None = None
        self.events: deque[RoleEvent] = deque(maxlen=EVENT_HISTORY)
        self._notes: list[str] = []
        self._inverter_online: dict[str, bool | None] = {}
        self._last_refresh = float("-inf")
        self._last_push = float("-inf")
        #: Per pack: its SoC source and estimator (fed before aggregation, in ``on_reading``).
        self.pack_soc: dict[str, PackSoc] = {
            p.name: PackSoc(soc.get(p.name), bank.series_cells, soc_estimator) for p in packs
        }
        #: Per pack that has answered: where its SoC comes from, "bms", "estimate:BASIS" or
        #: "none:WHY" (``PackSoc.source``).
        self.soc_sources: dict[str, str] = {}

    # -- in --------------------------------------------------------------------------------------

    def on_reading(self, pack: str, state: BatteryState | None, error: str | None = None) -> None:
        """A pack's poll result; the bank is recomputed and pushed at once."""
        if pack not in self._latest:
            raise KeyError(f"unknown pack {pack!r}")
        now = self.clock.now()
        if state is not None:  # a failed poll feeds nothing: it is not a zero reading
            state = self._with_soc(pack, state, now)
        self._latest[pack] = _Latest(state, error, now)
        self.refresh(new_reading=True)

    def _with_soc(self, pack: str, state: BatteryState, now: float) -> BatteryState:
        """The pack's state with the SoC its settings choose; an event when the source changes."""
        pack_soc = self.pack_soc[pack]
        before = pack_soc.kind if pack in self.soc_sources else None
        state = pack_soc.apply(state, now)
        self.soc_sources[pack] = pack_soc.source
        if pack_soc.kind != before:
            self._event("soc_source", f"{pack}: {pack_soc.describe()}")
        return state

    def on_note(self, pack: str, note: str) -> None:
        """Something a user should know about a good poll (names a firmware did not send)."""
        self._event("pack_note", f"{pack}: {note}")

    # -- out -------------------------------------------------------------------------------------

    def pack_readings(self) -> list[PackReading]:
        now = self.clock.now()
        stale_s = self.link_loss.settings.pack_stale_s
        out = []
        for p in self.packs:
            latest = self._latest[p.name]
            if latest.state is not None and now - latest.at > stale_s:
                out.append(PackReading(p, None, f"no reading for {now - latest.at:.1f} s"))
            else:
                out.append(PackReading(p, latest.state, latest.error))
        return out

    def refresh(self, *, new_reading: bool = False) -> Output:
        """Recompute the bank and the phase, and push the result to every sink.

        A result that cannot differ from the last one pushed (no new reading, the same
        phase and packs) is pushed again only every ``REPUSH_S``: often enough to keep the
        sinks' staleness timers fed, without re-encoding an unchanged round four times a second.
        """
        now = self.clock.now()
        combined_before = self.bank.combined
        self.bank = aggregate(self.pack_readings(), self.bank_settings)
        state = self.bank.state
        self.clamped = []
        if self.controller is not None:
            if state is None:
                if self.link_loss.last_good is not None:
                    # the bank was usable and is not now: the controller's stale rule, so its
                    # limits come back through hold and ramp (before any reading: nothing to do)
                    self.control = self.controller.step(None)
            else:
                read_at = max(self._latest[name].at for name in self.bank.combined)
                self.control = self.controller.step(state, read_at)
                state = self.control.apply(state)
        if state is not None:
            state, self.clamped = self.hardware.clamp(state)
        output = self.link_loss.step(state, now)
        if output.phase != self.output.phase:
            self._event(f"phase_{output.phase}", output.reason)
        if self.bank.notes != self._notes and output.phase != "waiting":
            for note in self.bank.notes:
                if note not in self._notes:
                    self._event("pack_note", note)
            self._notes = list(self.bank.notes)
        changed = (
            new_reading
            or output.phase != self.output.phase
            or self.bank.combined != combined_before
            or now - self._last_push >= REPUSH_S
        )
        self.output = output
        self._last_refresh = now
        if changed:
            for sink in self.sinks:
                sink.update(output.state, output.reason)
            self._last_push = now
        return output

    def tick(self) -> None:
        """Called often (every few tens of ms): staleness, phase timing, sinks' own schedule."""
        self.refresh_if_due()
        for sink in self.sinks:
            sink.poll()
            online = sink.inverter_online
            before = self._inverter_online.get(sink.name)
            if online is None or online == bool(before):
                continue
            # a warning when a keep-alive that was there disappears; silence before the first
            kind = "inverter_keepalive_seen" if online else "inverter_keepalive_lost"
            self._event(kind, sink.name)
            self._inverter_online[sink.name] = online

    def refresh_if_due(self, every_s: float = 0.25) -> None:
        now = self.clock.now()
        if now - self._last_refresh >= every_s:
            self._last_refresh = now
            self.refresh()

    def _event(self, kind: str, detail: str) -> None:
        self.events.append(RoleEvent(self.clock.now(), kind, detail))
