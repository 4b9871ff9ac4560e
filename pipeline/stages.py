"""The five stages as pure functions over an Engine, and the dispatcher the runner calls.

Each stage takes the document, the brand and the outputs of earlier stages, asks the engine
for its output, checks it against contract §8 and returns it. No I/O happens here: the runner
reads inputs and stores outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from config.errors import RunnerError, StageError
from persistence.records import STAGE_NAMES
from pipeline.document import Document
from pipeline.engine import GroundedEngine, grounding_of
from pipeline.stage_schema import StageOutputInvalid, validate_stage_output

if TYPE_CHECKING:
    from pipeline.brands import BrandProfile
    from pipeline.engine import Engine

# Which earlier outputs each stage reads (contract §8's chain).
STAGE_INPUTS: Mapping[int, tuple[int, ...]] = {1: (), 2: (1,), 3: (1, 2), 4: (3,), 5: (4,)}
# A grounded engine's stages 4 and 5 also read the evidence stages 1 and 2 cited.
GROUNDED_INPUTS: Mapping[int, tuple[int, ...]] = {**STAGE_INPUTS, 4: (1, 2, 3), 5: (1, 2, 4)}


def _call(number: int, engine: Engine, document: Document, brand: BrandProfile,
          earlier: Mapping[int, Mapping[str, Any]]) -> Callable[[], object]:
    """The engine call for one stage, with its inputs bound."""
    if number in (4, 5) and isinstance(engine, GroundedEngine):
        grounded = engine
        grounding = grounding_of(earlier[1], earlier[2])
        if number == 4:
            return lambda: grounded.brand_contextualization_grounded(earlier[3], brand, grounding)
        return lambda: grounded.opportunity_generation_grounded(earlier[4], brand, document, grounding)
    calls: dict[int, Callable[[], object]] = {
        1: lambda: engine.input_processing(document),
        2: lambda: engine.signal_amplification(document, earlier[1]),
        3: lambda: engine.general_translation(earlier[1], earlier[2]),
        4: lambda: engine.brand_contextualization(earlier[3], brand),
        5: lambda: engine.opportunity_generation(earlier[4], brand, document),
    }
    return calls[number]


def _inputs(number: int, previous: Mapping[int, Mapping[str, Any]],
            needs: Mapping[int, tuple[int, ...]] = STAGE_INPUTS) -> dict[int, Mapping[str, Any]]:
    """The earlier outputs stage ``number`` needs, or StageError STAGE_INPUT_MISSING."""
    missing = [n for n in needs[number] if not isinstance(previous.get(n), Mapping)]
    if missing:
        names = ", ".join(f"stage {n} ({STAGE_NAMES[n]})" for n in missing)
        raise StageError(number, f"stage {number} ({STAGE_NAMES[number]}) needs the output of {names}, "
                                 f"which is missing", code="STAGE_INPUT_MISSING")
    return {n: previous[n] for n in needs[number]}


def run_stage(number: int, engine: Engine, *, document: Document, brand: BrandProfile,
              previous: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """Run stage ``number`` (1-5) on ``engine`` and return its validated output."""
    if number not in STAGE_INPUTS:
        raise ValueError(f"there is no stage {number!r}: stages are 1-5")
    earlier = _inputs(number, previous, GROUNDED_INPUTS if isinstance(engine, GroundedEngine) else STAGE_INPUTS)
    try:
        output = _call(number, engine, document, brand, earlier)()
    except RunnerError:
        raise  # already says what went wrong, with its own code
    except Exception as exc:  # an engine bug or an unexpected reply: the run fails with a reason
        raise StageError(number, f"stage {number} ({STAGE_NAMES[number]}): the {engine.name} engine "
                                 f"failed: {type(exc).__name__}: {exc}", code="ENGINE_FAILED") from exc
    # Stages 3 and 4 cite the previous stage's ids, which must exist there.
    validate_stage_output(number, output, earlier.get(number - 1) if number in (3, 4) else None)
    result = dict(cast(Mapping[str, Any], output))  # validated above: it is a JSON object
    if number == 4 and result["brand_id"] != brand.brand_id:
        raise StageOutputInvalid(4, [f"brand_id must be {brand.brand_id!r} (the run's brand), "
                                     f"got {result['brand_id']!r}"])
    return result
