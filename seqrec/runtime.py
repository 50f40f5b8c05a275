"""Where a run happens (devices, precision, threads): :class:`Runtime`, never part of a model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Runtime:
    """Where a run happens: hardware and threads. Never saved with a model (a model trained on 4
    GPUs loads and serves on one CPU).

    Attributes:
        accelerator: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        devices: devices (GPUs or CPU processes) per node; more than one trains data-parallel.
        num_nodes: machines.
        precision: Lightning precision: ``"32-true"``, ``"bf16-mixed"``, ``"16-mixed"`` or
            ``"auto"`` (bf16-mixed on CUDA, 32-true on CPU).
        threads: torch intra-op threads for this process (None: torch's default, one per core).
        compile: train through ``torch.compile`` (worth it on GPUs; on a CPU the compilation
            usually costs more than it saves on short runs).

    Raises:
        ValueError: a bad value, naming the field.
    """

    accelerator: Literal["cpu", "cuda", "auto"] = "cpu"
    devices: int = 1
    num_nodes: int = 1
    precision: Literal["32-true", "bf16-mixed", "16-mixed", "auto"] = "32-true"
    threads: int | None = None
    compile: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.compile, bool):
            raise ValueError(f"runtime compile={self.compile!r}: expected true or false")
        choices = {"accelerator": ("cpu", "cuda", "auto"),
                   "precision": ("32-true", "bf16-mixed", "16-mixed", "auto")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"runtime {name}={getattr(self, name)!r}: expected one of "
                                 f"{', '.join(allowed)}")
        for name in ("devices", "num_nodes", "threads"):
            value = getattr(self, name)
            if value is None and name == "threads":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"runtime {name}={value!r}: expected an integer >= 1")

    @property
    def world_size(self) -> int:
        """Processes in all: ``devices × num_nodes``."""
        return self.devices * self.num_nodes

    def apply_threads(self) -> None:
        """Set torch's intra-op threads for this process (when ``threads`` is given)."""
        if self.threads is not None:
            import torch

            torch.set_num_threads(self.threads)
