"""What a step of the analytic model costs (`steps` prices it): its FLOPs and bytes, the roofline time of its kernels,
communication and fixed costs, and how an eager step's host time adds to them (under the step before, or in series
with its kernels where the scheduler does not run ahead or nothing runs before it)."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class StepCost:
    flops: float  # all devices together
    bytes_per_device: float
    kv_bytes_per_device: float  # the KV-cache share of bytes_per_device (attention's roof)
    activation_bytes_per_device: float  # the elementwise kernels' share of bytes_per_device
    compute_s: float  # all kernels' compute time
    memory_s: float  # all kernels' memory time
    roofline_s: float  # per kind of kernel the longer of the two, summed
    comm_s: float
    overhead_s: float
    host_overlap: bool = False  # the host's fixed costs overlap the device's work (eager CUDA): the longer counts
    busiest_flops: float | None = None  # the FLOPs of the device with the most work [default: flops / shards]
    compute_bound_s: float = 0.0  # the roofline time of the kernels whose compute outlasts their memory traffic
    host_floor_s: float = 0.0  # an eager step's host time launching its kernels (`steps.with_host_time`): at least
    host_in_series: bool = False  # the host time comes before the kernels even under load (no scheduling ahead)

    def intensity(self, shards: int) -> float:
        """FLOPs per byte moved on the device with the most work (a data-parallel attention group holding a lone
        prompt does all of its attention and non-routed layers)."""
        flops = self.busiest_flops if self.busiest_flops is not None else self.flops / shards
        return flops / self.bytes_per_device

    @property
    def time_s(self) -> float:
        return self.time_with(0.0)

    def time_with(self, extra_s: float) -> float:
        """The step's time were its kernels to take `extra_s` longer (a decode step that also carries prompt tokens):
        the fixed costs added, or hidden under the device's work where the host runs ahead of it."""
        if self.host_in_series:
            return self._host_then_kernels(extra_s)
        if self.host_overlap:
            return max(self.roofline_s + self.comm_s + extra_s, self.overhead_s, self.host_floor_s)
        return max(self.roofline_s + self.comm_s + self.overhead_s + extra_s, self.host_floor_s)

    @property
    def alone_s(self) -> float:
        """The step's time with nothing running before it: an eager step's host time (`host_floor_s`) then comes in
        series with its kernels, where under load it overlaps the step before it (unless `host_in_series`)."""
        return self._host_then_kernels(0.0)

    def _host_then_kernels(self, extra_s: float) -> float:
        """The host's launches (`host_floor_s`) and then the kernels, in series."""
        return replace(self, host_floor_s=0.0, host_in_series=False).time_with(extra_s) + self.host_floor_s

    @property
    def launch_bound(self) -> bool:
        """The device waits on the host's launches: the kernels take less time than launching them."""
        device = self.roofline_s + self.comm_s
        return (self.host_overlap and self.overhead_s >= device) or self.host_floor_s >= device + self.overhead_s

    @property
    def bound(self) -> str:
        """What limits the step: the launches, else whichever kind of kernel takes the larger part of its time (the
        linear layers at a large batch are compute-bound while its attention reads the caches: the step is as bound
        as the part that takes longer, not as the sum of its FLOPs over the sum of its bytes)."""
        if self.launch_bound:
            return "launch"
        return "compute" if 2 * self.compute_bound_s >= self.roofline_s else "memory"
