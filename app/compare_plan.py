"""May the panes of a comparison run at once? A memory plan from the load estimates.

Each llama.cpp pane needs what `app.memory.estimate_load` says (weights + 10 % and the KV
cache), the same estimate `ModelHost` refuses loads by, so a plan that says "parallel" is
one the host will let load. The budget is what the host allows: RAM available minus the
1 GiB margin, plus a discrete GPU's free memory when the panes offload to it; on Apple
Silicon the GPU's working-set limit also bounds what the panes put on the GPU. Server models
(Ollama, OpenAI-compatible) take no memory here and count 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from app.choices import LLAMACPP, split_choice
from app.engine import gpu_budget_bytes
from app.errors import WorkbenchError
from app.hardware import HardwareProfile
from app.library import ModelLibrary
from app.memory import MARGIN_BYTES, available_ram, estimate_load, format_size
from app.model_session import local_target
from runtimes.base import LoadOptions

PlanMode = Literal["parallel", "sequential"]
RequestedMode = Literal["auto", "parallel", "sequential"]


@dataclass(frozen=True, slots=True)
class PaneNeed:
    """What one pane's model needs.

    Attributes:
        choice: the model choice.
        name: its display name.
        bytes_needed: the load estimate in bytes (None: a server model, or unknown).
        gpu_bytes: the part of it planned on the GPU (None: nothing offloaded).
    """

    choice: str
    name: str
    bytes_needed: int | None
    gpu_bytes: int | None = None

    @property
    def is_server(self) -> bool:
        """Whether a server holds the model (it takes no memory here)."""
        return split_choice(self.choice)[0] != LLAMACPP


@dataclass(frozen=True, slots=True)
class MemoryPlan:
    """How the panes will run, and why.

    Attributes:
        mode: "parallel" (all loaded at once) or "sequential" (load, generate, unload, next).
        fits_together: whether the panes' needs fit the budget together.
        runnable: False when a pane does not fit even alone, or parallel was forced for
            panes that do not fit together: never start such a combination.
        needs: each pane's need.
        budget_bytes: memory the panes may use (None: unknown).
        reason: one sentence for the UI: why this mode.
    """

    mode: PlanMode
    fits_together: bool
    runnable: bool
    needs: tuple[PaneNeed, ...]
    budget_bytes: int | None
    reason: str

    def as_dict(self) -> dict[str, object]:
        """Plain JSON-able form (for `compare --json`)."""
        return {
            "mode": self.mode,
            "fits_together": self.fits_together,
            "runnable": self.runnable,
            "budget_bytes": self.budget_bytes,
            "reason": self.reason,
            "needs": [
                {
                    "model": n.choice,
                    "name": n.name,
                    "bytes_needed": n.bytes_needed,
                    "gpu_bytes": n.gpu_bytes,
                }
                for n in self.needs
            ],
        }


@dataclass(frozen=True, slots=True)
class _Budget:
    total: int
    gpu_limit: int | None  # Apple's working-set limit, or a discrete GPU's free memory


def _budget(needs: Sequence[PaneNeed], profile: HardwareProfile | None) -> _Budget:
    ram = profile.memory.available_bytes if profile is not None else available_ram()
    gpu = gpu_budget_bytes(profile)
    offloads = any(n.gpu_bytes for n in needs)
    if profile is not None and profile.apple is not None:
        return _Budget(ram - MARGIN_BYTES, gpu if offloads else None)
    extra = (gpu or 0) if offloads else 0
    return _Budget(ram + extra - MARGIN_BYTES, gpu if offloads else None)


def _alone_problem(need: PaneNeed, budget: _Budget) -> str:
    """Why `need` does not fit even alone ("" when it does or cannot be judged)."""
    if need.bytes_needed is not None and need.bytes_needed > budget.total:
        return (
            f"{need.name} alone needs ~{format_size(need.bytes_needed)} but only "
            f"{format_size(max(0, budget.total))} is free"
        )
    if need.gpu_bytes and budget.gpu_limit is not None and need.gpu_bytes > budget.gpu_limit:
        return (
            f"{need.name} alone puts ~{format_size(need.gpu_bytes)} on the GPU, which "
            f"allows {format_size(budget.gpu_limit)}"
        )
    return ""


def _server_note(needs: Sequence[PaneNeed]) -> str:
    servers = sum(1 for n in needs if n.is_server)
    if not servers:
        return ""
    them = "model runs" if servers == 1 else "models run"
    return f" ({servers} server {them} elsewhere and count 0 here)"


def plan_memory(
    needs: Sequence[PaneNeed],
    profile: HardwareProfile | None,
    requested: RequestedMode = "auto",
) -> MemoryPlan:
    """Decide whether the panes run in parallel or one after another.

    Auto runs them in parallel when their needs fit the budget together, else
    sequentially. Forcing "sequential" always works when each pane fits alone; forcing
    "parallel" for panes that do not fit together is not runnable.

    Args:
        needs: each pane's need (`pane_needs`).
        profile: the hardware (RAM available, GPU limits); None reads the RAM available now.
        requested: "auto", or the mode the user forced.
    """
    needs = tuple(needs)
    budget = _budget(needs, profile)
    note = _server_note(needs)
    for need in needs:
        problem = _alone_problem(need, budget)
        if problem:
            reason = f"Cannot run: {problem}; choose a smaller quantization or context."
            mode: PlanMode = "parallel" if requested == "parallel" else "sequential"
            return MemoryPlan(mode, False, False, needs, budget.total, reason)
    local = sum(n.bytes_needed or 0 for n in needs)
    on_gpu = sum(n.gpu_bytes or 0 for n in needs)
    unknown = [n.name for n in needs if n.bytes_needed is None and not n.is_server]
    fits_gpu = budget.gpu_limit is None or on_gpu <= budget.gpu_limit
    fits = not unknown and local <= budget.total and fits_gpu
    figures = f"~{format_size(local)} for all panes against {format_size(budget.total)} free"
    if not fits_gpu and budget.gpu_limit is not None:
        figures += f", ~{format_size(on_gpu)} on the GPU against {format_size(budget.gpu_limit)}"
    if unknown:
        figures = f"the memory of {', '.join(unknown)} could not be estimated"
    if requested == "sequential":
        reason = f"Sequential, as chosen: one model loaded at a time ({figures}){note}."
        return MemoryPlan("sequential", fits, True, needs, budget.total, reason)
    if fits:
        reason = f"Parallel: all panes fit in memory together ({figures}){note}."
        return MemoryPlan("parallel", True, True, needs, budget.total, reason)
    if requested == "parallel":
        reason = (
            f"Cannot run in parallel: the panes do not fit together ({figures}){note}; "
            "never start a combination that would not fit. Run them sequentially."
        )
        return MemoryPlan("parallel", False, False, needs, budget.total, reason)
    reason = (
        f"Sequential: the panes do not fit together ({figures}){note}, so each model is "
        "loaded, run and unloaded in turn."
    )
    return MemoryPlan("sequential", False, True, needs, budget.total, reason)


def pane_needs(
    choices: Sequence[tuple[str, LoadOptions | None]],
    profile: HardwareProfile | None,
    library: ModelLibrary | None,
) -> tuple[PaneNeed, ...]:
    """Each pane's need: the load estimate of a llama.cpp model with the options it would
    load with (as `LocalSessionOpener` plans them), nothing for a server model.

    A model that cannot be found or read gets `bytes_needed` None; opening it will say why.
    """
    return tuple(_need(choice, load, profile, library) for choice, load in choices)


def _need(
    choice: str,
    load: LoadOptions | None,
    profile: HardwareProfile | None,
    library: ModelLibrary | None,
) -> PaneNeed:
    runtime_key, model = split_choice(choice)
    if runtime_key != LLAMACPP:
        return PaneNeed(choice, model, None, None)
    try:
        target = local_target(model, library, load, profile)
        total = estimate_load(target.path, target.plan.options).total_bytes
    except WorkbenchError:
        return PaneNeed(choice, model, None, None)
    options = target.plan.options
    gpu: int | None = None
    if target.plan.backend != "CPU" and options.n_gpu_layers != 0:
        if options.n_gpu_layers < 0:
            gpu = total
        else:
            layers = _layer_count(target.path) or options.n_gpu_layers
            gpu = total * min(options.n_gpu_layers, layers) // layers
    return PaneNeed(choice, target.name, total, gpu)


def _layer_count(path: object) -> int:
    from app.gguf import read_model_metadata

    try:
        return read_model_metadata(str(path)).block_count or 0
    except WorkbenchError:
        return 0
