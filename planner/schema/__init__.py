"""The one schema: pydantic models that the CLI, the Python API, reports and (later) the HTTP
service and CI gate all exchange. Every top-level model carries `schema_version` and round-trips
through JSON (`model_validate_json(model_dump_json())`).

- `core`: hardware and model specs, the profile request
- `profile`: the profile's result
- `workload`: what a deployment must serve (or train), with SLOs and budgets
- `advice`: bottleneck, plan steps, predictions, alternatives, rejections
"""

from .advice import (  # noqa: F401
    Advice,
    AdviseRequest,
    Alternative,
    Bottleneck,
    HardwareChoice,
    HardwareOption,
    Plan,
    PlanStep,
    Prediction,
    Rejection,
)
from .core import *  # noqa: F401,F403
from .core import SCHEMA_VERSION  # noqa: F401
from .profile import *  # noqa: F401,F403
from .workload import SLO, Training, Workload  # noqa: F401
