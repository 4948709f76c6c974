# Path helpers: every rule's input/output comes from
# contracts/states.yaml + the dataset dictionary, through engine.core.stateio (one owner).
import glob

from engine.core import identity, stateio
from engine.refdata.build import TABLES as REF_TABLES

PARAM_FILES = sorted(
    glob.glob("config/**/*.yaml", recursive=True)
    + glob.glob("config/**/*.csv", recursive=True)
)
RECEIPT = stateio.RECEIPT


def state_inputs(state_id):
    return stateio.declare(state_id)[0]


def state_outputs(state_id):
    """Declared outputs; a validation state's report and summary page go into `--report`."""
    outs = dict(stateio.declare(state_id)[1])
    seg = state_id.split(".")[0]
    if stateio.states()[state_id].get("kind") == "validation":
        outs["report"] = report(
            outs["report"], caption=f"../report/{seg}_validation.rst", category=seg
        )
        outs["summary"] = report(
            outs["summary"], caption=f"../report/{seg}_summary.rst", category=seg
        )
    return outs


def shard_outputs(state_id):
    """Outputs of one shard job of a shardable state (wildcards scenario, k, n)."""
    return stateio.declare(state_id, shard=("{k}", "{n}"), scenario="{scenario}")[1]


def merge_inputs(state_id):
    return stateio.declare(state_id, merge=stateio.shard_jobs(config, state_id))[0]
